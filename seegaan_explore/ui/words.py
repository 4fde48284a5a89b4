"""Plain words: a traversal's diagnostics and quality as sentences a clinician reads."""

from __future__ import annotations

import html
import math

from ..explore.study import LATENT_SHIFT, SPLINE


def _signed(x: float) -> str:
    return f"{x:+.2f}"


def plain_words(result: dict, study=None) -> list[str]:
    """The direction's diagnostics and the traversal's quality, as sentences a clinician reads; in
    the ``study``'s words and units where it is given (:class:`~seegaan_explore.explore.study.Study`)."""
    if result.get("error") or result.get("cancelled"):
        return []
    name, d, q = result["label"], result["diagnostics"], result["quality"]
    direction = result["direction"]

    def say(value: float) -> str:
        return study.format(result["attribute"], value) if study is not None else f"{value:.3g}"

    def label(column: str) -> str:
        return study.label(column) if study is not None else column

    lines = [f"Patient {result['patient_label']}: {name} {say(result['patient_value'])} "
             f"({result['patient_value_source']})."]
    if result.get("range_note"):
        lines.append(result["range_note"])
    if result.get("calibration") is not None:
        lines.append(result["calibration"].words)
    if study is not None and direction.estimator != LATENT_SHIFT:
        low, high = study.ends(result["attribute"])
        forward = result["targets"][-1] >= result["targets"][0]
        lines.append(f"The film runs from {say(result['targets'][0])} to {say(result['targets'][-1])}: towards "
                     f"{high if forward else low}.")
    if direction.kind == "predictive":
        lines.append(f"The {direction.estimator} direction is diagnostic: it shows what the model's code knows "
                     f"about {name}, and need not change the image the way {name} does.")
    if direction.estimator == SPLINE:
        low, high = result["targets"][0], result["targets"][-1]
        lines.append(f"The direction is the mean change of the model's code between {name} {say(low)} and "
                     f"{say(high)}, this traversal's range: what changes from this patient's level of {name}, where "
                     f"the straight mean shift averages the change over the whole cohort. {d['n_in_range']} of the "
                     f"{d['n']} exams lie in that range; the fewer, the noisier the direction.")
    if "matched" in d:
        held = " and ".join(f"{label(k)} {v}" for k, v in d["matched"].items())
        lines.append(f"The direction was fitted on the {d['n']} exams with {held}, as this patient's.")
    if "unique_variance_of_attribute" in d and direction.confounders:
        among = "Among these exams, " if "matched" in d else ""
        lines.append(f"{among}{d['unique_variance_of_attribute']:.0%} of the variation in {name} is not explained by "
                     f"{', '.join(map(label, direction.confounders))}; the direction uses that part only.")
    for key, what, scale in (("cv_r2", "R²", "1 is perfect, 0 no better than the cohort's mean"),
                             ("cv_roc_auc", "AUC", "1 is perfect, 0.5 chance")):
        if key in d:
            lines.append(f"The model's code predicts {name} with a cross-validated {what} of {d[key]:.2f} ({scale}).")
    if "correlation" in d:
        lines.append(f"This principal axis explains {d['explained_variance_ratio']:.0%} of the variation in the "
                     f"model's codes and correlates {d['correlation']:.2f} with {name}.")
    if direction.estimator == LATENT_SHIFT:
        lines.append(f"Latent Shift: for this patient only, the change of the image that raises the CNN's prediction "
                     f"fastest. It explains the CNN (what it responds to here), not how {name} differs across "
                     "the cohort.")
    else:
        lines.append(f"Fitted on {d.get('n', '?')} images.")
    strongest = sorted(result["cosines"].items(), key=lambda kv: -abs(kv[1]))[:3]
    if strongest:
        closest = ", ".join(f"{label(k)} (cosine {_signed(v)})" for k, v in strongest)
        lines.append(f"In the model's space, the direction lies closest to those of: {closest}; +1 is the same "
                     "way, 0 unrelated, −1 the opposite. Near ±1: the cohort's exams differ in both together.")
    if q.get("measured_by"):
        mono = q["monotonicity"]
        lines.append(f"Measured by {q['measured_by']}, {name} "
                     + ("rises steadily" if mono > 0.9 else "rises, unevenly," if mono > 0.5 else "does not rise")
                     + f" across the frames (rank correlation {mono:.2f}; 1 is every frame above the last).")
        achieved = q["achieved_over_intended"]
        if math.isfinite(achieved):
            lines.append(f"The frames reach {achieved:.0%} of the intended change in {name}"
                         + (f", read against the {q['reader_gain']:.0%} of a difference between the cohort's own "
                            f"exams that {q['measured_by']} reads." if q.get("reader_gain") else "."))
        leaks = result.get("leakage") or []
        if leaks:
            lines.append("Other attributes change along the way: "
                         + ", ".join(f"{label} {words}" for label, _, words, *_ in leaks[:3]) + ".")
    elif q.get("not_measured"):
        lines.append(f"Not scored: {q['not_measured']}.")
    if "proximity" in q:
        lines.append(("The change is concentrated in a small region" if q["proximity"] > 0.7
                      else "The change spreads over much of the image")
                     + f" (proximity {q['proximity']:.2f}: 1 when all of it lies in the tenth of the image that "
                       "changes most).")
    if "reconstruction_psnr_db" in q:
        cohort = result.get("cohort_psnr")
        beside = (f"the cohort's median {cohort.median:.1f} dB, its worst twentieth below {cohort.low:.1f} dB"
                  if cohort is not None else "the verdict compares it with the cohort's")
        lines.append(f"The model's copy of the image (its reconstruction, where the frames start) matches the "
                     f"original at {q['reconstruction_psnr_db']:.1f} dB (peak signal-to-noise ratio; higher is more "
                     f"faithful; {beside}).")
    if result["agreement"] is not None:
        g = result["agreement"]
        lines.append(f"Where the traversal changes the image and where the CNN looks ({result['method']}) "
                     f"agree with rank correlation {g['spearman']:.2f}; {g['top_overlap']:.0%} of their top 5% "
                     "pixels coincide.")
    return lines


VERDICT_COLOURS = {"trust": "#2e7d32", "care": "#b26a00", "stop": "#b00020"}


def _sentence(text: str) -> str:
    """``text`` as a sentence: its first word capitalised where it is a plain word ("the model ...",
    "sex ..."), left as written where it is a name ("pH", "crp_val", "NT-proBNP")."""
    first = text.split(" ", 1)[0]
    return text[:1].upper() + text[1:] if first.isalpha() and first.islower() else text


def verdict_html(result: dict, study=None) -> str:
    """The verdict first, as a traffic light with its reasons; the numbers behind it on demand."""
    lines = "".join(f"<li>{html.escape(line)}</li>" for line in plain_words(result, study))
    verdict = result.get("verdict")
    if verdict is None:
        return f"<ul>{lines}</ul>"
    colour = VERDICT_COLOURS[verdict.level]
    reasons = "; ".join(verdict.reasons)
    return (f"<div class='seegaan-verdict seegaan-verdict-{verdict.level}' style='border-left:6px solid {colour};"
            f"padding:4px 10px;background:#f7f7f7;margin:2px 0 6px 0'><b style='color:{colour}'>"
            f"{html.escape(verdict.headline)}</b> {html.escape(_sentence(reasons))}.</div>"
            + (f"<div class='seegaan-range-note'><small>{html.escape(result['range_note'])}</small></div>"
               if result.get("range_note") else "")
            + (f"<div class='seegaan-calibration-note'><small>{html.escape(result['calibration'].words)}</small></div>"
               if result.get("calibration") is not None else "")
            + f"<details><summary>The numbers behind it</summary><ul>{lines}</ul></details>")
