"""Is sex and age lost in the encoder or in the generator?

The bundled autoencoder's reconstructions of the 102 men of evaluate's fit set read as a median P(male) of 0.68
(``benchmarks/sex_reconstruction.py``), and it keeps a fifth of the age change the oracle reads on a
true counterfactual pair (``benchmarks/age_detail.py``). If the generator can draw the change from
some latent that the encoder does not find, a better encoder (cheap: the generator stays fixed)
would recover it; if no latent draws it, the generator must learn it (a GPU's job).

For each image, a latent is fitted to it directly (Adam on the pixels' squared error, from the
encoder's latent, the generator fixed, with the noise every film is drawn with), and the oracle
reads the encoder's reconstruction and the fitted one:

* sex: ``--men`` men of ``evaluate``'s fit set (seed 2), P(male);
* age: ``--patients`` of ``evaluate``'s patients (seed 3), their true pair under do(age -/+ 1 SD),
  the oracle's age change per intended year (as ``benchmarks/age_detail.py`` reads it).

``--per-layer`` fits one latent per style layer (w+), more freedom than any direction has: an upper
bound on what the generator can draw.

    python benchmarks/encoder_or_generator.py [--steps 200] [--men 32] [--patients 16] [--per-layer]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from seegaan_explore.data.images import intensity_window
from seegaan_explore.demo import FILES, WEIGHTS_DIR
from seegaan_explore.model.checkpoint import load_model
from seegaan_explore.model.oracle import load_oracle
from seegaan_explore.phantoms import sample_individual
from seegaan_explore.phantoms.cohort import generate_cohort
from seegaan_explore.phantoms.evaluation import FIT_SEED, PATIENT_SEED, as_read, true_ends
from seegaan_explore.phantoms.specs import SPECS


def fitted_latents(model, images: torch.Tensor, steps: int, per_layer: bool) -> tuple[torch.Tensor, list[float]]:
    """Latents whose decodings match ``images`` [B, 1, R, R]: Adam from the encoder's latents."""
    generator = model.generator_ema
    noise = generator.make_noise(0, device=model.device)
    start = model.encode(images).clone()
    if per_layer:
        start = start[:, None].repeat(1, generator.num_ws, 1)
    latents = start.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([latents], lr=0.02 * float(start.std()))
    psnr = []
    for step in range(steps + 1):
        error = ((generator(latents, noise) - images) ** 2).mean(dim=(1, 2, 3))
        if step in (0, steps):
            psnr.append(float((10 * torch.log10(4 / error.detach())).mean()))  # images span [-1, 1]
        if step == steps:
            break
        optimizer.zero_grad()
        error.sum().backward()
        optimizer.step()
    return latents.detach(), psnr


def decoded(model, latents: torch.Tensor) -> torch.Tensor:
    """In float32, the precision the latents were fitted in (``model.decode`` draws in the CPU's bfloat16)."""
    with torch.no_grad():
        return model.generator_ema(latents, model.generator_ema.make_noise(0, device=model.device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=WEIGHTS_DIR / FILES["autoencoder"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--men", type=int, default=32)
    parser.add_argument("--patients", type=int, default=16)
    parser.add_argument("--per-layer", action="store_true", help="fit one latent per style layer (w+)")
    args = parser.parse_args()
    model = load_model(args.checkpoint).eval()
    oracle = load_oracle(WEIGHTS_DIR / FILES["oracle"])
    size = model.config.resolution

    images, table = generate_cohort(4 * args.men, size, seed=FIT_SEED)
    men = np.flatnonzero(table["sex"].to_numpy() == "M")[:args.men]
    exams = torch.from_numpy(as_read(images[men], [intensity_window(i) for i in images[men]]))[:, None]

    age = next(s for s in SPECS if s.name == "age")
    patient_images, patients = generate_cohort(args.patients, size, seed=PATIENT_SEED)
    scale = float(np.std(table["age"]))
    pairs, intended = [], []
    for k in range(args.patients):
        row = patients.iloc[k]
        low, high = age.span(row, scale)
        window = intensity_window(patient_images[k])
        pairs.append(true_ends(sample_individual(PATIENT_SEED, k), age.interventions(row, scale), size, window))
        intended.append(high - low)
    pairs = torch.from_numpy(np.concatenate(pairs))[:, None]

    def age_per_year(images: torch.Tensor) -> float:
        read = oracle.predict(images)["age"].to_numpy().reshape(-1, 2)
        return float(np.mean((read[:, 1] - read[:, 0]) / np.asarray(intended)))

    started = time.perf_counter()
    men_latents, men_psnr = fitted_latents(model, exams, args.steps, args.per_layer)
    pair_latents, pair_psnr = fitted_latents(model, pairs, args.steps, args.per_layer)
    minutes = (time.perf_counter() - started) / 60
    fitted = "one latent per layer (w+)" if args.per_layer else "one latent (w)"
    print("| read by the oracle | men's P(male) (median, 10th-90th percentile) | PSNR | "
          "age per intended year | PSNR |")
    print("|---|---|---|---|---|")
    rows = (("the phantoms", exams, pairs, None, None),
            ("the encoder's reconstruction", model.reconstruct(exams), model.reconstruct(pairs),
             men_psnr[0], pair_psnr[0]),
            (f"fitted, {fitted}, {args.steps} steps", decoded(model, men_latents), decoded(model, pair_latents),
             men_psnr[1], pair_psnr[1]))
    for label, men_images, pair_images, psnr_men, psnr_pairs in rows:
        male = oracle.predict(men_images)["sex"].to_numpy()
        cells = [f"{np.median(male):.2f} ({np.percentile(male, 10):.2f}-{np.percentile(male, 90):.2f})",
                 "" if psnr_men is None else f"{psnr_men:.1f} dB", f"{age_per_year(pair_images):.2f}",
                 "" if psnr_pairs is None else f"{psnr_pairs:.1f} dB"]
        print(f"| {label} | {' | '.join(cells)} |")
    print(f"{len(men)} men (seed {FIT_SEED}), {args.patients} patients' age pairs (seed {PATIENT_SEED}); "
          f"fitting took {minutes:.1f} min")


if __name__ == "__main__":
    main()
