"""How should the conditioned NT-proBNP direction hold age and view so that it leaks less into them?

Issue 18's target: the conditioned direction's leakage into age and view below 10% of the
unconditioned one's. ``evaluate``'s conditioned direction holds age by a linear term and view by
matching. Two alternatives, each scored by ``evaluate`` (bundled models, default settings):

- projected out: the same direction with the mean-shift directions of age and view projected out
  of it (InterFaceGAN's conditional manipulation);
- view projected out: only the view's mean-shift direction projected out (age stays held by its
  linear term); or only the view's direction fitted with its causes held (``view|nt_probnp,age``),
  which carries less of the disease the view goes with;
- age matched too: fitted only on the phantoms of the patient's view and age quintile (age still
  held linearly within it), as view is matched.

    python benchmarks/leakage_holding.py [--patients 16] [--oracle ORACLE]   # about 3 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from seegaan_explore.demo import FILES, WEIGHTS_DIR
from seegaan_explore.explore.directions import direction_for
from seegaan_explore.model.checkpoint import load_model
from seegaan_explore.model.oracle import load_oracle
from seegaan_explore.phantoms.evaluation import evaluate
from seegaan_explore.phantoms.specs import SPECS, Spec

HELD = ("age", "view")


@dataclasses.dataclass(frozen=True)
class ProjectedSpec(Spec):
    """The spec's direction with the held attributes' own mean-shift directions projected out."""

    projected = tuple(Spec(name, name) for name in HELD)

    def direction(self, latents, fit_factors, patient=None, *, estimator="mean_shift", span=None):
        direction = super().direction(latents, fit_factors, patient, estimator=estimator, span=span)
        others = np.stack([spec.direction(latents, fit_factors).vector for spec in self.projected], 1)
        basis = np.linalg.qr(others.astype(np.float64))[0]
        vector = direction.vector - basis @ (basis.T @ direction.vector)
        return dataclasses.replace(direction, vector=vector.astype(np.float32))


@dataclasses.dataclass(frozen=True)
class ViewProjectedSpec(ProjectedSpec):
    """The spec's direction with only the view's mean-shift direction projected out."""

    projected = (Spec("view", "view"),)


@dataclasses.dataclass(frozen=True)
class CausesHeldViewProjectedSpec(ProjectedSpec):
    """The spec's direction with the view's direction, fitted with its causes held, projected out."""

    projected = (Spec("view|nt_probnp,age", "view", ("log_nt_probnp", "age")),)


@dataclasses.dataclass(frozen=True)
class AgeMatchedSpec(Spec):
    """The spec's direction fitted among the phantoms of the patient's view and age quintile."""

    def direction(self, latents, fit_factors, patient=None, *, estimator="mean_shift", span=None):
        edges = np.quantile(fit_factors["age"], [0.2, 0.4, 0.6, 0.8])
        match = {"view": fit_factors["view"].to_numpy(), "age_quintile": np.digitize(fit_factors["age"], edges)}
        like = {"view": patient["view"], "age_quintile": int(np.digitize(patient["age"], edges))}
        return direction_for("mean_shift", latents, fit_factors[self.factor].to_numpy(),
                             fit_factors[list(self.confounders)].to_numpy(), attribute=self.name,
                             confounder_names=self.confounders, match=match, like=like)

    def per_patient(self, estimator: str) -> bool:
        return True  # each patient its own quintile (evaluate then fits per patient, not per view)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=16, help="patients traversed (evaluate's --patients)")
    parser.add_argument("--oracle", help="the ruler (default: the bundled oracle)")
    args = parser.parse_args()
    model = load_model(WEIGHTS_DIR / FILES["autoencoder"]).eval()
    oracle = load_oracle(args.oracle or WEIGHTS_DIR / FILES["oracle"])
    ruler = f"the oracle {args.oracle}" if args.oracle else f"the bundled oracle ({FILES['oracle']})"
    by_name = {s.name: s for s in SPECS}
    unconditioned, conditioned = by_name["nt_probnp"], by_name["nt_probnp|age,view"]
    fields = (conditioned.name, conditioned.factor, conditioned.confounders, conditioned.matched)
    print("| direction | leakage into age (95% interval) | into view | diffmap r | achieved / intended |")
    print("|---|---|---|---|---|")
    variants = (("held in the fit (evaluate's)", conditioned), ("held, and projected out", ProjectedSpec(*fields)),
                ("held, and view's direction projected out", ViewProjectedSpec(*fields)),
                ("held, and view's direction with its causes held projected out", CausesHeldViewProjectedSpec(*fields)),
                ("age matched too (its quintile)", AgeMatchedSpec(*fields)))
    for label, spec in variants:
        result = evaluate(model, oracle, specs=(unconditioned, spec), n_patients=args.patients,
                          n_calibration=0, progress=False, ruler=ruler)
        ratio, interval = result["conditioned_leakage_ratio"], result["conditioned_leakage_ratio_ci95"]
        scores = result["attributes"][conditioned.name]
        cells = [f"{ratio[f]:.0%} ({interval[f][0]:.0%}–{interval[f][1]:.0%})" for f in HELD]
        print(f"| {label} | {' | '.join(cells)} | {scores['diffmap_r']:.2f} | {scores['achieved_over_intended']:.2f} |")
    print(f"Leakage as a share of the unconditioned direction's, read by {result['ruler']}.")


if __name__ == "__main__":
    main()
