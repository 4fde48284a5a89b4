"""Can the autoencoder draw fine detail (ribs, vessels) at all? Let it memorize a few phantoms.

Fine-tunes a checkpoint's EMA encoder and generator with plain L1 on ``--images`` fixed noisy
phantoms of the training cohort (seed 0) and reports the PSNR of their reconstructions against the
noise-free renders, with a panel (noise-free row over reconstruction row) every ``--every`` steps:
can the model draw the ribs when it only has to memorize a handful of images? ``--detail-weight W``
adds W times the L1 of a 5x5 binomial high-pass: whether weighting the fine detail in the loss
brings it in. ``--preset demo-wide`` grows the checkpoint to that preset first (``model.widen``: the
same function, more filters): whether width brings it in. ``--free-latents --clean`` takes the
encoder out: the generator and one free latent per image (started at its encoding) are fitted to the
noise-free renders, so the only question left is whether the generator can draw them.

    python benchmarks/memorize_detail.py [--checkpoint CKPT] [--preset NAME] [--images 16] [--steps 600]
                                         [--lr 5e-4] [--detail-weight 0] [--free-latents] [--clean] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from seegaan_explore.demo import FILES, WEIGHTS_DIR
from seegaan_explore.explore.quality import psnr_db
from seegaan_explore.model import load_model, preset_config
from seegaan_explore.model.widen import widen
from seegaan_explore.phantoms import generate_cohort
from seegaan_explore.phantoms.evaluation import as_read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=WEIGHTS_DIR / FILES["autoencoder"])
    parser.add_argument("--preset", help="grow the checkpoint to this wider preset first")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--every", type=int, default=150)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--detail-weight", type=float, default=0.0)
    parser.add_argument("--free-latents", action="store_true", help="fit one latent per image, not the encoder")
    parser.add_argument("--clean", action="store_true", help="fit the noise-free renders, not the noisy exams")
    parser.add_argument("--out", type=Path, default=Path("memorize-detail"))
    args = parser.parse_args()
    model = load_model(args.checkpoint).float()
    if args.preset:
        model = widen(model, preset_config(args.preset, model.config.resolution))
    encoder, generator = model.encoder_ema, model.generator_ema
    for network in (encoder, generator):
        network.requires_grad_(True).train()
    noise = generator.make_noise(0, device=model.device)
    size = model.config.resolution
    exams, _ = generate_cohort(args.images, size, seed=0)
    clean = as_read(generate_cohort(args.images, size, seed=0, noise=False)[0])
    x = torch.from_numpy(clean if args.clean else as_read(exams))[:, None].to(model.device)
    if args.free_latents:
        latents = torch.nn.Parameter(encoder(x).detach())
        trained, encode = [latents, *generator.parameters()], lambda: latents
    else:
        trained, encode = [*encoder.parameters(), *generator.parameters()], lambda: encoder(x)
    optimizer = torch.optim.Adam(trained, lr=args.lr, betas=(0.9, 0.99))
    args.out.mkdir(parents=True, exist_ok=True)

    def report(step: int, seconds_per_step: float) -> None:
        with torch.no_grad():
            reconstructions = generator(encode(), noise)[:, 0].float().cpu().numpy()
        psnr = np.mean([psnr_db(r, c) for r, c in zip(reconstructions, clean)])
        print(f"step {step:5d}  PSNR {psnr:.2f} dB  {seconds_per_step:.2f} s/step", flush=True)
        shown = min(6, args.images)
        panel = np.concatenate([np.concatenate(list(rows[:shown]), 1) for rows in (clean, reconstructions)])
        Image.fromarray((np.clip((panel + 1) / 2, 0, 1) * 255).round().astype(np.uint8)).save(
            args.out / f"step-{step:05d}.png")

    binomial = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=model.device)
    blur = (binomial[:, None] * binomial[None] / 256)[None, None]

    def high_pass(images: torch.Tensor) -> torch.Tensor:
        return images - torch.nn.functional.conv2d(torch.nn.functional.pad(images, (2, 2, 2, 2), mode="reflect"), blur)

    report(0, 0.0)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        reconstructions = generator(encode(), noise)
        loss = (reconstructions - x).abs().mean()
        if args.detail_weight:
            loss = loss + args.detail_weight * (high_pass(reconstructions) - high_pass(x)).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % args.every == 0 or step == args.steps:
            report(step, (time.perf_counter() - start) / step)


if __name__ == "__main__":
    main()
