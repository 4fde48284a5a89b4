"""Plain words: a traversal's diagnostics and quality as sentences a clinician reads."""

from __future__ import annotations

import math

from ..explore.study import LATENT_SHIFT, SPLINE


def _signed(x: float) -> str:
    return f"{x:+.2f}"


def plain_words(result: dict) -> list[str]:
    """The direction's diagnostics and the traversal's quality, as sentences a clinician reads."""
    if result.get("error") or result.get("cancelled"):
        return []
    name, d, q = result["attribute"], result["diagnostics"], result["quality"]
    direction = result["direction"]
    lines = [(f"Patient {result['patient_label']}: {result['label']} {result['patient_value']:.3g} "
              f"(from {result['patient_value_source']}).")]
    if direction.kind == "predictive":
        lines.append(f"The {direction.estimator} direction is diagnostic: it shows what the latent code knows "
                     f"about {name}, and need not change the image the way {name} does.")
    if direction.estimator == SPLINE:
        low, high = result["targets"][0], result["targets"][-1]
        lines.append(f"The direction is the mean change of the latent code between {name} {low:.3g} and {high:.3g}, "
                     f"this traversal's range: what changes from this patient's level of {name}, where the "
                     f"straight mean shift averages the change over the whole cohort. {d['n_in_range']} of the "
                     f"{d['n']} exams lie in that range; the fewer, the noisier the direction.")
    if "matched" in d:
        held = " and ".join(f"{k} {v}" for k, v in d["matched"].items())
        lines.append(f"The direction was fitted on the {d['n']} exams with {held}, as this patient's.")
    if "unique_variance_of_attribute" in d and direction.confounders:
        among = "Among these exams, " if "matched" in d else ""
        lines.append(f"{among}{d['unique_variance_of_attribute']:.0%} of the variation in {name} is not explained by "
                     f"{', '.join(direction.confounders)}; the direction uses that part only.")
    for key, what in (("cv_r2", "R²"), ("cv_roc_auc", "AUC")):
        if key in d:
            lines.append(f"The latent code predicts {name} with a cross-validated {what} of {d[key]:.2f}.")
    if "correlation" in d:
        lines.append(f"This principal axis explains {d['explained_variance_ratio']:.0%} of the latent variance and "
                     f"correlates {d['correlation']:.2f} with {name}.")
    if direction.estimator == LATENT_SHIFT:
        lines.append(f"Latent Shift: for this patient only, the change of the image that raises the CNN's prediction "
                     f"fastest. It explains the CNN (what it responds to here), not how {name} differs across "
                     "the cohort.")
    else:
        lines.append(f"Fitted on {d.get('n', '?')} images.")
    strongest = sorted(result["cosines"].items(), key=lambda kv: -abs(kv[1]))[:3]
    if strongest:
        lines.append("Most entangled with: " + ", ".join(f"{k} (cosine {_signed(v)})" for k, v in strongest)
                     + ". Near ±1 means moving along this direction also moves that attribute.")
    if q.get("measured_by"):
        mono = q["monotonicity"]
        lines.append(f"Measured by {q['measured_by']}, {name} "
                     + ("rises steadily" if mono > 0.9 else "rises, unevenly," if mono > 0.5 else "does not rise")
                     + f" across the frames (rank correlation {mono:.2f}).")
        achieved = q["achieved_over_intended"]
        if math.isfinite(achieved):
            lines.append(f"The frames reach {achieved:.0%} of the intended change in {name}.")
        leaks = sorted(q["leakage"].items(), key=lambda kv: -abs(kv[1]))[:3]
        if leaks:
            lines.append("Other attributes change along the way (per unit of intended change): "
                         + ", ".join(f"{k} {_signed(v)}" for k, v in leaks) + ".")
    elif q.get("not_measured"):
        lines.append(f"Not scored: {q['not_measured']}.")
    if "proximity" in q:
        lines.append(f"Proximity {q['proximity']:.2f}: "
                     + ("the change is concentrated in a small region." if q["proximity"] > 0.7
                        else "the change spreads over much of the image."))
    if "reconstruction_psnr_db" in q:
        lines.append(f"The reconstruction matches the original image at {q['reconstruction_psnr_db']:.1f} dB PSNR "
                     "(higher is more faithful; frames start from the reconstruction).")
    if result["agreement"] is not None:
        g = result["agreement"]
        lines.append(f"Where the traversal changes the image and where the CNN looks ({result['method']}) "
                     f"agree with rank correlation {g['spearman']:.2f}; {g['top_overlap']:.0%} of their top 5% "
                     "pixels coincide.")
    return lines
