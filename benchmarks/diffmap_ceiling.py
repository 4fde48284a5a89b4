"""Where a traversal's difference map loses the truth: in the autoencoder, or in the direction?

For held-out phantoms and each attribute of ``seegaan-explore evaluate`` (same seeds, units,
interventions and steps from the patient's own value), the Pearson r against the true counterfactual
difference map of:

* ``mean_shift``: the evaluated traversal (the mean-shift direction fitted on ``--fit`` phantoms);
* ``best_global``: one direction for everyone, the mean of the true latent changes per unit of
  ``--people`` other phantoms (each individual's two true re-renders encoded, the difference of their latents).
  No single direction fitted from data can do much better than this one;
* ``own_change``: each patient's own true latent change (its two true re-renders encoded, the
  difference), applied as a straight step through the patient's latent, as a traversal steps;
* ``autoencoder``: each patient's two true re-renders encoded and decoded: the autoencoder's
  ceiling, reached only by a path through exactly those two latents.

    python benchmarks/diffmap_ceiling.py [--checkpoint CKPT] [--fit 600] [--patients 8] [--people 40]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from seegaan_explore.demo import FILES, WEIGHTS_DIR
from seegaan_explore.model import load_model
from seegaan_explore.model.oracle import FACTORS, factor_targets
from seegaan_explore.phantoms import sample_individual
from seegaan_explore.phantoms.evaluation import (
    FIT_SEED,
    PATIENT_SEED,
    encode_held_out,
    encode_images,
    pearson,
    true_ends,
    true_latent_change,
)
from seegaan_explore.phantoms.specs import SPECS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=WEIGHTS_DIR / FILES["autoencoder"])
    parser.add_argument("--fit", type=int, default=600)
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--people", type=int, default=40)
    args = parser.parse_args()
    model = load_model(args.checkpoint).eval()
    size = model.config.resolution
    held = encode_held_out(model, args.fit, args.patients, tuple(name for name, _ in FACTORS))
    factors, w0 = held.fit_factors, held.w0

    def decoded_change(w: np.ndarray, per_unit: np.ndarray, span: tuple[float, float]) -> np.ndarray:
        ends = torch.from_numpy(np.stack([w + span[0] * per_unit, w + span[1] * per_unit]).astype(np.float32))
        frames = model.decode(ends, noise=0)[:, 0].cpu().numpy()
        return frames[1] - frames[0]

    print(f"{'attribute':20s} {'mean_shift':>10s} {'best_global':>11s} {'own_change':>10s} {'autoencoder':>11s}")
    patient_factors = factor_targets(held.table, tuple(factors.columns))
    for spec in SPECS:
        half = spec.half_step(factors)
        people = range(min(args.people, args.fit))
        best_global = np.mean([true_latent_change(model, sample_individual(FIT_SEED, j), spec, held.fit_table.iloc[j],
                                                  half, held.fit_windows[j]) for j in people], axis=0)
        scores = {"mean_shift": [], "best_global": [], "own_change": [], "autoencoder": []}
        for k in range(args.patients):
            row = held.table.iloc[k]
            ends = true_ends(sample_individual(PATIENT_SEED, k), spec.interventions(row, half), size, held.windows[k])
            truth, span, encoded_ends = ends[1] - ends[0], spec.span(row, half), encode_images(model, ends)
            own = (encoded_ends[1] - encoded_ends[0]) / (span[1] - span[0])
            direction = spec.direction(held.fit_latents, factors, patient_factors.iloc[k])
            scores["mean_shift"].append(pearson(decoded_change(w0[k], direction.vector, span), truth))
            scores["best_global"].append(pearson(decoded_change(w0[k], best_global, span), truth))
            scores["own_change"].append(pearson(decoded_change(w0[k], own, span), truth))
            frames = model.decode(torch.from_numpy(encoded_ends), noise=0)[:, 0].cpu().numpy()
            scores["autoencoder"].append(pearson(frames[1] - frames[0], truth))
        print(f"{spec.name:20s} " + " ".join(f"{np.mean(v):>{len(n)}.2f}" for n, v in scores.items()))


if __name__ == "__main__":
    main()
