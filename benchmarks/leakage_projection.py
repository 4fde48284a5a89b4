"""Does projecting the held attributes' own directions out of NT-proBNP's (InterFaceGAN's
conditional manipulation) cut its leakage into age and view below what holding them in the fit does?

Issue 18's target: the conditioned direction's leakage into age and view below 10% of the
unconditioned one's. ``evaluate``'s conditioned direction holds age by a linear term and view by
matching. Here the same direction has, in addition, the mean-shift directions of age and view
projected out of it, and both are scored by ``evaluate`` (bundled models, default settings).

    python benchmarks/leakage_projection.py      # about 2 minutes on 2 cores
"""

from __future__ import annotations

import dataclasses

import numpy as np

from seegaan_explore.demo import FILES, WEIGHTS_DIR
from seegaan_explore.model.checkpoint import load_model
from seegaan_explore.model.oracle import load_oracle
from seegaan_explore.phantoms.evaluation import evaluate
from seegaan_explore.phantoms.specs import SPECS, Spec

HELD = ("age", "view")


@dataclasses.dataclass(frozen=True)
class ProjectedSpec(Spec):
    """The spec's direction with the held attributes' own mean-shift directions projected out."""

    def direction(self, latents, fit_factors, patient=None, *, estimator="mean_shift", span=None):
        direction = super().direction(latents, fit_factors, patient, estimator=estimator, span=span)
        others = np.stack([Spec(name, name).direction(latents, fit_factors).vector for name in HELD], 1)
        basis = np.linalg.qr(others.astype(np.float64))[0]
        vector = direction.vector - basis @ (basis.T @ direction.vector)
        return dataclasses.replace(direction, vector=vector.astype(np.float32))


def main() -> None:
    model = load_model(WEIGHTS_DIR / FILES["autoencoder"]).eval()
    oracle = load_oracle(WEIGHTS_DIR / FILES["oracle"])
    by_name = {s.name: s for s in SPECS}
    unconditioned, conditioned = by_name["nt_probnp"], by_name["nt_probnp|age,view"]
    projected = ProjectedSpec(conditioned.name, conditioned.factor, conditioned.confounders, conditioned.matched)
    print("| direction | leakage into age (95% interval) | into view | diffmap r | achieved / intended |")
    print("|---|---|---|---|---|")
    for label, spec in (("held in the fit (evaluate's)", conditioned), ("held, and projected out", projected)):
        result = evaluate(model, oracle, specs=(unconditioned, spec), n_calibration=0, progress=False,
                          ruler=f"the bundled oracle ({FILES['oracle']})")
        ratio, interval = result["conditioned_leakage_ratio"], result["conditioned_leakage_ratio_ci95"]
        scores = result["attributes"][conditioned.name]
        cells = [f"{ratio[f]:.0%} ({interval[f][0]:.0%}–{interval[f][1]:.0%})" for f in HELD]
        print(f"| {label} | {' | '.join(cells)} | {scores['diffmap_r']:.2f} | {scores['achieved_over_intended']:.2f} |")
    print(f"Leakage as a share of the unconditioned direction's, read by {result['ruler']}.")


if __name__ == "__main__":
    main()
