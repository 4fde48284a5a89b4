"""Image-quality numbers shared by training (tensors) and exploration (arrays).

Kept below both ``train`` and ``explore`` so that each imports it without importing the other.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["psnr_db"]


def psnr_db(a, b, peak_to_peak: float = 2.0) -> float:
    """PSNR in dB of two images (or batches) whose values span ``peak_to_peak`` (2 for the package's
    [-1, 1]): ``10 log10(peak_to_peak^2 / MSE)``, the MSE floored at 1e-12 (equal images: 126 dB, not infinity).

    Numpy arrays (and anything array-like) are compared in float64; torch tensors in float32 on
    their own device, so that a training batch is not copied off the GPU to log its PSNR.
    """
    if hasattr(a, "detach"):  # a torch tensor: no torch import here for the numpy callers
        mse = (a.detach().float() - b.detach().float()).square().mean().item()
    else:
        mse = float(np.mean(np.square(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
    return 10 * math.log10(peak_to_peak**2 / max(mse, 1e-12))
