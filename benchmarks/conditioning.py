"""Conditioning NT-proBNP on age and view: the view held by a linear term, or by matching.

``seegaan-explore evaluate`` holds the view of ``nt_probnp|age,view`` by matching: each patient's
direction is fitted on the fit-set phantoms imaged as that patient was, age as a linear term. This
scores that and the earlier linear view term side by side, for each ``--fit`` and ``--patients``
given (same model, oracle, patients and interventions as ``evaluate``): diffmap r of the
conditioned direction and the conditioned-leakage ratios into age and view, with their 95%
bootstrap intervals over the patients.

    python benchmarks/conditioning.py [--checkpoint CKPT] [--oracle CKPT] [--fit 1000 3000] [--patients 16 64]
"""

from __future__ import annotations

import argparse

from seegaan_explore.demo import FILES, WEIGHTS_DIR
from seegaan_explore.model import load_model
from seegaan_explore.model.oracle import load_oracle
from seegaan_explore.phantoms.evaluation import evaluate
from seegaan_explore.phantoms.specs import SPECS, Spec

CONDITIONED = "nt_probnp|age,view"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=WEIGHTS_DIR / FILES["autoencoder"])
    parser.add_argument("--oracle", default=WEIGHTS_DIR / FILES["oracle"])
    parser.add_argument("--fit", type=int, nargs="+", default=[1000])
    parser.add_argument("--patients", type=int, nargs="+", default=[16])
    args = parser.parse_args()
    model = load_model(args.checkpoint).eval()
    oracle = load_oracle(args.oracle)
    specs = {s.name: s for s in SPECS}
    ways = {"matched": specs[CONDITIONED], "linear": Spec(CONDITIONED, "log_nt_probnp", ("age", "view"))}
    print(f"{'view held by':>12} {'fit':>5} {'patients':>8} {'diffmap r':>9}  {'ratio into view (95%)':>22}  "
          "ratio into age (95%)")
    for n_fit in args.fit:
        for n_patients in args.patients:
            for way, spec in ways.items():
                result = evaluate(model, oracle, n_fit=n_fit, n_patients=n_patients, n_reconstructed=n_patients,
                                  specs=(specs["nt_probnp"], spec), progress=False)
                ratio, interval = result["conditioned_leakage_ratio"], result["conditioned_leakage_ratio_ci95"]
                view, age = (f"{ratio[f]:5.0%} ({interval[f][0]:.0%}-{interval[f][1]:.0%})" for f in ("view", "age"))
                print(f"{way:>12} {n_fit:5d} {n_patients:8d} {result['attributes'][CONDITIONED]['diffmap_r']:9.3f}  "
                      f"{view:>22}  {age}", flush=True)


if __name__ == "__main__":
    main()
