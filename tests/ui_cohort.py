"""A small real setup for the renderer and explorer tests: phantoms at 32 px, an untrained tiny
SEE-GAAN and CNN, and an oracle that measures image statistics on any image."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from seegaan_explore.model import SeeGaan, preset_config
from seegaan_explore.model.cnn import CnnConfig, RadiographCNN
from seegaan_explore.phantoms import generate_cohort

N = 24


def brightness(images: np.ndarray) -> dict[str, np.ndarray]:
    """Mean intensity of the whole image and of its upper half: measurable on any radiograph."""
    images = np.asarray(images, np.float64)
    upper = images[..., : images.shape[-2] // 2, :]
    return {"brightness": images.mean(axis=(-2, -1)), "upper_brightness": upper.mean(axis=(-2, -1))}


class BrightnessOracle:
    """Measures :func:`brightness` on frames, so the quality scores have a ground truth to compare with."""

    def predict(self, images: torch.Tensor) -> pd.DataFrame:
        return pd.DataFrame(brightness(images[:, 0].numpy()))


def small_setup(n: int = N):
    """(model, latents, table, cnn, oracle, images); the table carries the phantom factors and ``brightness``."""
    torch.manual_seed(0)
    images, table = generate_cohort(n, size=32, seed=0)
    table = table.assign(**brightness(images))
    model = SeeGaan(preset_config("tiny"), with_training_networks=False)
    model.precision = "fp32"
    latents = model.encode(torch.from_numpy(images)[:, None]).numpy()
    # at 64 px, so that the renderer's resizing to and from the CNN's resolution is exercised
    config = CnnConfig(resolution=64, widths=(8, 16), attribute="nt_probnp_pg_ml", log_transform=True)
    cnn = RadiographCNN(config).eval()
    return model, latents, table, cnn, BrightnessOracle(), images
