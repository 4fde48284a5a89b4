"""Sample grids written during training: held-out images, their reconstructions, random samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.images import to_uint8
from ..fileio import atomic_write


def image_grid(rows: list[torch.Tensor], pad: int = 2) -> np.ndarray:
    """Rows of images (each [B, 1, R, R]) tiled into one uint8 array with a dark gutter."""
    rows = [to_uint8(r.detach()[:, 0].float().cpu().numpy()) for r in rows]
    r = rows[0].shape[-1]
    cols = max(len(x) for x in rows)
    grid = np.zeros((len(rows) * (r + pad) - pad, cols * (r + pad) - pad), dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            grid[i * (r + pad):i * (r + pad) + r, j * (r + pad):j * (r + pad) + r] = img
    return grid


def save_png_atomic(path: str | Path, array: np.ndarray) -> None:
    with atomic_write(path, suffix=".png") as tmp:
        Image.fromarray(array).save(tmp)


def save_sample_grid(path: str | Path, real: torch.Tensor | None, reconstructions: torch.Tensor | None,
                     samples: torch.Tensor) -> None:
    rows = [x for x in (real, reconstructions) if x is not None] + [samples]
    save_png_atomic(path, image_grid(rows))
