"""How far can ONE direction for everyone go, whatever the model? diffmap r of an ideal autoencoder.

The ideal latent is the phantom renderer's own input (age, BMI, CTR, edema, effusions, bone density;
for sex and view, the factor itself), perfectly disentangled and decoded exactly by the renderer:
:mod:`seegaan_explore.phantoms.ceiling`, the same code ``seegaan-explore evaluate`` reports its
``diffmap_r_ceiling`` with. Its direction is fitted with each estimator over ``--fit`` phantoms'
tables, with the confounders and matching ``evaluate`` uses; each held-out patient is stepped along
it from its own value, as ``evaluate`` steps, and the rendered difference is correlated with the
true counterfactual's. The step is one SD over the first ``--step-fit`` of those tables (default: all;
``evaluate``'s is its encoded fit set, 1,000 phantoms), so ``--patients 16 --step-fit 1000`` is
``evaluate``'s ``diffmap_r_ceiling`` on its default patients.

Columns: the straight mean shift over all patients, over those whose view and device stay put under
the true intervention, and the spline mean shift (each input's slope over the patient's own range).

    python benchmarks/diffmap_ideal_latent.py [--fit 5000] [--patients 32] [--step-fit N]
"""

from __future__ import annotations

import argparse

from seegaan_explore.data.images import intensity_window
from seegaan_explore.phantoms import generate_cohort, sample_individual
from seegaan_explore.phantoms.ceiling import diffmap_ceiling, ideal_fit_set
from seegaan_explore.phantoms.evaluation import FIT_SEED, PATIENT_SEED
from seegaan_explore.phantoms.specs import SPECS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", type=int, default=5000, help="phantom tables the slopes are fitted on")
    parser.add_argument("--patients", type=int, default=32)
    parser.add_argument("--step-fit", type=int, help="phantoms whose SD is the step (default: --fit)")
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    fit = ideal_fit_set(args.fit, FIT_SEED)
    step_factors = ideal_fit_set(args.step_fit, FIT_SEED).factors if args.step_fit else fit.factors
    exams, table = generate_cohort(args.patients, args.size, seed=PATIENT_SEED)
    windows = [intensity_window(exam) for exam in exams]
    patients = [sample_individual(PATIENT_SEED, k) for k in range(args.patients)]

    print(f"{'attribute':20s} {'ideal r':>7s} {'without a view or device switch':>32s} {'spline':>8s}")
    for spec in SPECS:
        half = spec.half_step(step_factors)

        def ceiling(estimator: str):
            return diffmap_ceiling(spec, fit, patients, table, windows, half, args.size, estimator=estimator)

        straight, spline = ceiling("mean_shift"), ceiling("spline_mean_shift")
        kept = sum(straight.unswitched)
        print(f"{spec.name:20s} {straight.r:7.2f} {straight.r_unswitched:24.2f} ({kept} of {args.patients}) "
              f"{spline.r:8.2f}", flush=True)


if __name__ == "__main__":
    main()
