"""Why the age traversal barely moves the oracle's age: where the oracle reads age, and what the
autoencoder keeps of it.

For held-out patients (``evaluate``'s seeds, units, interventions and steps from the patient's own
value), the oracle's change in age per year of intended change (``achieved_over_intended``) on:

* ``truth``: the two true re-renders under do(age -/+ 1 SD), what a perfect traversal would show;
* ``truth, blurred``: the same pair after a Gaussian blur of sigma px: how much of the age the oracle
  reads lies in fine detail (the bundled model is about as sharp as a 1.4 px blur,
  ``benchmarks/blur_psnr.py``);
* ``autoencoder``: the pair encoded and decoded: what the autoencoder keeps of it;
* ``mean shift``: the traversal ``evaluate`` scores;
* ``best single direction``: the mean of the true latent changes per year of ``--people`` phantoms of
  the fit set (as in ``benchmarks/diffmap_ceiling.py``): whether a better direction would draw more.

    python benchmarks/age_detail.py [--checkpoint CKPT] [--patients 16] [--fit 1000] [--people 40]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from seegaan_explore.demo import FILES, WEIGHTS_DIR
from seegaan_explore.explore.directions import fit_direction
from seegaan_explore.model import load_model
from seegaan_explore.model.oracle import load_oracle
from seegaan_explore.phantoms import sample_individual
from seegaan_explore.phantoms.evaluation import (
    FIT_SEED,
    PATIENT_SEED,
    encode_held_out,
    encode_images,
    true_ends,
    true_latent_change,
)
from seegaan_explore.phantoms.specs import SPECS

SIGMAS = (0.7, 1.0, 1.4, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=WEIGHTS_DIR / FILES["autoencoder"])
    parser.add_argument("--oracle", default=WEIGHTS_DIR / FILES["oracle"])
    parser.add_argument("--patients", type=int, default=16)
    parser.add_argument("--fit", type=int, default=1000)
    parser.add_argument("--people", type=int, default=40)
    args = parser.parse_args()
    model = load_model(args.checkpoint).eval()
    oracle = load_oracle(args.oracle)
    spec = next(s for s in SPECS if s.name == "age")
    held = encode_held_out(model, args.fit, args.patients, oracle.config.factors)
    direction = fit_direction("mean_shift", held.fit_latents, held.fit_factors["age"].to_numpy(), attribute="age")

    size = model.config.resolution
    best_single = np.mean([true_latent_change(model, sample_individual(FIT_SEED, j), spec, held.fit_table.iloc[j],
                                              direction.scale, held.fit_windows[j])
                           for j in range(min(args.people, args.fit))], axis=0)

    def decoded(latents: np.ndarray) -> np.ndarray:
        return model.decode(torch.from_numpy(np.asarray(latents, np.float32)), noise=0)[:, 0].cpu().numpy()

    def age_change(images: np.ndarray) -> float:
        read = oracle.predict(torch.from_numpy(np.ascontiguousarray(images, np.float32))[:, None])["age"]
        return float(read.iloc[-1] - read.iloc[0])

    rows: dict[str, list[float]] = {}
    for k in range(args.patients):
        row = held.table.iloc[k]
        low, high = spec.span(row, direction.scale)
        truth = true_ends(sample_individual(PATIENT_SEED, k), spec.interventions(row, direction.scale), size,
                          held.windows[k])
        w0 = held.w0[k]
        pairs = {
            "truth": truth,
            **{f"truth, blurred sigma {s} px": np.stack([gaussian_filter(t, s) for t in truth]) for s in SIGMAS},
            "autoencoder": decoded(encode_images(model, truth)),
            "mean shift": decoded([w0 + low * direction.vector, w0 + high * direction.vector]),
            "best single direction": decoded([w0 + low * best_single, w0 + high * best_single]),
        }
        for name, images in pairs.items():
            rows.setdefault(name, []).append(age_change(images) / (high - low))
    print(f"oracle's age change per intended year, {args.patients} patients (mean, SD between patients)")
    for name, values in rows.items():
        print(f"{name:28s} {np.mean(values):5.2f}  {np.std(values):5.2f}")


if __name__ == "__main__":
    main()
