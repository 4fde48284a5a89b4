"""How many knots the spline mean shift needs: ``evaluate``'s scores for the continuous attributes
along ``spline_mean_shift`` with each ``--knots`` given (same model, oracle, patients and
interventions as ``seegaan-explore evaluate --estimator spline_mean_shift``). More knots follow a
curvier mean latent and rest each slope on fewer phantoms.

    python benchmarks/spline_knots.py [--checkpoint CKPT] [--fit 1000] [--patients 16] [--knots 2 3 4 5]
"""

from __future__ import annotations

import argparse

from seegaan_explore.demo import FILES, WEIGHTS_DIR
from seegaan_explore.explore import directions
from seegaan_explore.model import load_model
from seegaan_explore.model.oracle import load_oracle
from seegaan_explore.phantoms.evaluation import evaluate
from seegaan_explore.phantoms.specs import SPECS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=WEIGHTS_DIR / FILES["autoencoder"])
    parser.add_argument("--fit", type=int, default=1000)
    parser.add_argument("--patients", type=int, default=16)
    parser.add_argument("--knots", type=int, nargs="+", default=[2, 3, 4, 5])
    args = parser.parse_args()
    model = load_model(args.checkpoint).eval()
    oracle = load_oracle(WEIGHTS_DIR / FILES["oracle"])
    specs = tuple(s for s in SPECS if not s.binary)
    print(f"{'knots':>5}  diffmap r: " + " / ".join(s.name for s in specs) + "  age Spearman  age achieved")
    for knots in args.knots:
        directions.ESTIMATORS["spline_mean_shift"] = directions.SplineMeanShift(knots=knots)
        result = evaluate(model, oracle, n_fit=args.fit, n_patients=args.patients, n_reconstructed=args.patients,
                          specs=specs, estimator="spline_mean_shift", progress=False)["attributes"]
        print(f"{knots:5d}  " + " / ".join(f"{result[s.name]['diffmap_r']:.2f}" for s in specs)
              + f"  {result['age']['spearman']:12.2f}  {result['age']['achieved_over_intended']:12.3f}", flush=True)


if __name__ == "__main__":
    main()
