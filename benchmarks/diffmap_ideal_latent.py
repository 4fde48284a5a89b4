"""How far can ONE direction for everyone go, whatever the model? diffmap r of an ideal autoencoder.

The ideal latent is the phantom renderer's own input (age, BMI, CTR, edema, effusions, bone density,
view, device; the anatomy fixed): perfectly disentangled, and decoded exactly by the renderer. Its
mean-shift direction is each input regressed on the attribute and its confounders over ``--fit``
phantoms' tables (a confounder that ``evaluate`` matches enters here as a linear term). Each
held-out patient's inputs are stepped along it, from the patient's own value as ``seegaan-explore
evaluate`` steps, with view and device held (a renderer cannot draw 0.3 of a pacemaker), and the
rendered difference is correlated with the true counterfactual's.

What stays below 1 is the attribute's effect differing between individuals in the causal model
itself: sigmoid onsets, switches at each person's own threshold, an inverted-U dependence. No model
and no population direction recovers it. The last column steps along the spline mean shift instead
(``spline_mean_shift``: each input's spline in the attribute, its slope over the patient's own
range), which follows an effect that depends on the patient's level of the attribute (BMI's
inverted U in age) but not one that depends on anything else. Continuous attributes only: for sex
and view the ideal direction is the factor itself (r = 1).

    python benchmarks/diffmap_ideal_latent.py [--fit 5000] [--patients 32]
"""

from __future__ import annotations

import argparse

import numpy as np

from seegaan_explore.data.images import intensity_window
from seegaan_explore.explore.directions import fit_direction
from seegaan_explore.model.oracle import FACTORS, factor_targets
from seegaan_explore.phantoms import cohort_table, factors, generate_cohort, sample_individual
from seegaan_explore.phantoms.evaluation import FIT_SEED, PATIENT_SEED, pearson, true_ends
from seegaan_explore.phantoms.specs import SPECS

RENDER_INPUTS = {"age": (18.0, 95.0), "bmi": (15.0, 60.0), "ctr": (0.30, 0.80), "edema_score": (0.0, 3.0),
                 "effusion_left": (0.0, 1500.0), "effusion_right": (0.0, 1500.0), "bone_density": (0.0, 2.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", type=int, default=5000, help="phantom tables the slopes are fitted on")
    parser.add_argument("--patients", type=int, default=32)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    fit_table = cohort_table(args.fit, seed=FIT_SEED)
    fit_factors = factor_targets(fit_table, tuple(name for name, _ in FACTORS))
    exams, table = generate_cohort(args.patients, args.size, seed=PATIENT_SEED)
    windows = [intensity_window(exam) for exam in exams]
    patient_factors = factor_targets(table, tuple(name for name, _ in FACTORS))

    print(f"{'attribute':20s} {'ideal r':>7s} {'without a view or device switch':>32s} {'spline':>8s}")
    inputs = fit_table[list(RENDER_INPUTS)].to_numpy(float)  # the ideal latents of the fit set
    for spec in (s for s in SPECS if not s.binary):
        values = fit_factors[spec.factor].to_numpy()
        held = list(spec.confounders + spec.matched)
        confounders = fit_factors[held].to_numpy() if held else None

        def slopes(estimator: str, **at) -> np.ndarray:
            return fit_direction(estimator, inputs, values, confounders, attribute=spec.name, **at).vector

        straight = slopes("mean_shift")
        half = float(values.std())  # evaluate's step: one SD of the attribute
        every, unswitched, spline = [], [], []
        for k in range(args.patients):
            row, individual = table.iloc[k], sample_individual(PATIENT_SEED, k)
            low, high = spec.interventions(row, half)
            truth = np.diff(true_ends(individual, (low, high), args.size, windows[k]), axis=0)[0]
            own, span = factors(individual), spec.span(row, half)

            def r_along(per_unit: np.ndarray) -> float:
                stepped = [{**{name: float(np.clip(own[name] + step * slope, *bounds))
                               for (name, bounds), slope in zip(RENDER_INPUTS.items(), per_unit)},
                            "view": own["view"], "device": own["device"]} for step in span]
                return pearson(np.diff(true_ends(individual, stepped, args.size, windows[k]), axis=0)[0], truth)

            every.append(r_along(straight))
            value = patient_factors.iloc[k][spec.factor]
            spline.append(r_along(slopes("spline_mean_shift", at=tuple(value + step for step in span))))
            at_low, at_high = factors(individual, low), factors(individual, high)
            if at_low["view"] == at_high["view"] and at_low["device"] == at_high["device"]:
                unswitched.append(every[-1])
        print(f"{spec.name:20s} {np.mean(every):7.2f} {np.mean(unswitched):24.2f} "
              f"({len(unswitched)} of {args.patients}) {np.mean(spline):8.2f}", flush=True)


if __name__ == "__main__":
    main()
