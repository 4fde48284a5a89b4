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

from seegaan_explore.data.images import intensity_window
from seegaan_explore.data.phantoms import generate_cohort, render_noise_free, sample_individual
from seegaan_explore.demo import FILES, WEIGHTS_DIR
from seegaan_explore.evaluate import FIT_SEED, PATIENT_SEED, SPECS, _encode, _pearson, as_read
from seegaan_explore.explore.directions import fit_direction
from seegaan_explore.model import load_model
from seegaan_explore.model.oracle import FACTORS, factor_targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=WEIGHTS_DIR / FILES["autoencoder"])
    parser.add_argument("--fit", type=int, default=600)
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--people", type=int, default=40)
    args = parser.parse_args()
    model = load_model(args.checkpoint).eval()
    size = model.config.resolution
    fit_images, fit_table = generate_cohort(args.fit, size, seed=FIT_SEED)
    fit_windows = [intensity_window(image) for image in fit_images]
    latents = _encode(model, as_read(fit_images, fit_windows))
    factors = factor_targets(fit_table, tuple(name for name, _ in FACTORS))
    exams, table = generate_cohort(args.patients, size, seed=PATIENT_SEED)
    windows = [intensity_window(exam) for exam in exams]
    w0 = _encode(model, as_read(exams, windows))

    def true_ends(seed, index, row, window, spec, half) -> np.ndarray:
        individual = sample_individual(seed, index)
        renders = [render_noise_free(individual, size, do=do).image for do in spec.interventions(row, half)]
        return as_read(np.stack(renders), [window] * 2)

    def decoded_change(w: np.ndarray, per_unit: np.ndarray, span: tuple[float, float]) -> np.ndarray:
        ends = torch.from_numpy(np.stack([w + span[0] * per_unit, w + span[1] * per_unit]).astype(np.float32))
        frames = model.decode(ends, noise=0)[:, 0].cpu().numpy()
        return frames[1] - frames[0]

    def true_change_per_unit(ends: np.ndarray, span: tuple[float, float]) -> np.ndarray:
        latents = _encode(model, ends)
        return (latents[1] - latents[0]) / (span[1] - span[0])

    print(f"{'attribute':20s} {'mean_shift':>10s} {'best_global':>11s} {'own_change':>10s} {'autoencoder':>11s}")
    for spec in SPECS:
        confounders = factors[list(spec.confounders)].to_numpy() if spec.confounders else None
        direction = fit_direction("mean_shift", latents, factors[spec.factor].to_numpy(), confounders,
                                  attribute=spec.name, confounder_names=spec.confounders)
        half = 0.5 if spec.binary else direction.scale
        people = range(min(args.people, args.fit))
        best_global = np.mean([true_change_per_unit(true_ends(FIT_SEED, j, row, fit_windows[j], spec, half),
                                                    spec.span(row, half))
                               for j, row in ((j, fit_table.iloc[j]) for j in people)], axis=0)
        scores = {"mean_shift": [], "best_global": [], "own_change": [], "autoencoder": []}
        for k in range(args.patients):
            ends = true_ends(PATIENT_SEED, k, table.iloc[k], windows[k], spec, half)
            truth, span = ends[1] - ends[0], spec.span(table.iloc[k], half)
            own = true_change_per_unit(ends, span)
            scores["mean_shift"].append(_pearson(decoded_change(w0[k], direction.vector, span), truth))
            scores["best_global"].append(_pearson(decoded_change(w0[k], best_global, span), truth))
            scores["own_change"].append(_pearson(decoded_change(w0[k], own, span), truth))
            frames = model.decode(torch.from_numpy(_encode(model, ends)), noise=0)[:, 0].cpu().numpy()
            scores["autoencoder"].append(_pearson(frames[1] - frames[0], truth))
        print(f"{spec.name:20s} " + " ".join(f"{np.mean(v):>{len(n)}.2f}" for n, v in scores.items()))


if __name__ == "__main__":
    main()
