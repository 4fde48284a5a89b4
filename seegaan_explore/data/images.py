"""Preprocessing: a decoded radiograph as the model's input, a square in [-1, 1], and back to grey levels.

Every image reaches the model through :func:`preprocess` (intensity window, then letterbox or centre
crop to a square), whether it is trained on, encoded or uploaded to the dashboard, so that an image
looks the same to the model wherever it comes from; :func:`to_uint8` is the one way back to grey
levels. It is separate from decoding (:mod:`~seegaan_explore.data.readers`) because preprocessing
applies to arrays from anywhere (phantoms, renders, uploads), and it owns :data:`PREPROCESS_VERSION`,
which versions the caches of both. The worker functions that decode and preprocess one file
(:func:`load_preprocessed_info`) live here too: spawned workers import this module, not torch.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .formats import ImageInfo, ImageReadError
from .readers import read_image, read_image_info

__all__ = [
    "FRAMINGS",
    "PERCENTILES",
    "PIXEL_DIGEST_BYTES",
    "PREPROCESS_VERSION",
    "intensity_window",
    "load_preprocessed",
    "load_preprocessed_info",
    "pixel_digest",
    "preprocess",
    "to_uint8",
]

#: Bump whenever :func:`~seegaan_explore.data.readers.read_image` or :func:`preprocess` output changes,
#: so that cached preprocessed tensors are rebuilt instead of silently reused.
PREPROCESS_VERSION = 1

#: How :func:`preprocess` makes a square of a rectangular image: ``"pad"`` (letterbox: the whole image,
#: the short side padded with the background; the default) or ``"crop"`` (the centred square of the short
#: side, as torchxrayvision's XRayCenterCrop: no padding, the ends of the long side are lost).
FRAMINGS = ("pad", "crop")

#: Intensity percentiles mapped to -1 and +1 by :func:`preprocess`.
PERCENTILES = (0.5, 99.5)

# Percentiles are estimated on a regular grid of at most about this many pixels:
# exact enough for normalisation and 10x faster than on a full 2000x2000 image.
_PERCENTILE_SAMPLE = 2**18


def _resample_filter(scale: float) -> Image.Resampling:
    # Area averaging when shrinking (antialiased, no overshoot); bilinear when enlarging.
    return Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR


def intensity_window(image: np.ndarray) -> tuple[float, float]:
    """The intensities :func:`preprocess` maps to -1 and +1: the 0.5th and 99.5th percentiles
    (estimated on a regular grid of at most 2**18 pixels; min/max if those coincide)."""
    image = np.asarray(image, dtype=np.float32)
    stride = max(1, math.isqrt(image.size // _PERCENTILE_SAMPLE))
    lo, hi = (float(v) for v in np.percentile(image[::stride, ::stride], PERCENTILES))
    if hi <= lo:
        lo, hi = float(image.min()), float(image.max())
    if hi <= lo:
        raise ValueError(f"preprocess: constant image (every pixel is {lo:g})")
    return lo, hi


def preprocess(image: np.ndarray, resolution: int, window: tuple[float, float] | None = None, *,
               framing: str = "pad") -> np.ndarray:
    """Normalise and fit a 2-D image into a float32 [resolution, resolution] square in [-1, 1].

    1. Intensities are clipped to their :func:`intensity_window` and mapped linearly to [-1, 1],
       so burned-in labels and dead pixels do not set the contrast. A given ``window`` replaces the
       image's own: a noise-free render under its noisy exam's window is in the units the model
       saw that exam in.
    2. ``framing="pad"`` (default): the image is resized, keeping its aspect ratio, so the long side
       equals `resolution` (area averaging when shrinking, bilinear when enlarging), and the short side
       is padded symmetrically with the background value -1 (letterbox). ``framing="crop"``: the
       centred square of the short side is cut out and resized to `resolution` (no padding; the ends
       of the long side are lost).

    Deterministic.
    """
    if framing not in FRAMINGS:
        raise ValueError(f"framing must be one of {FRAMINGS}, got {framing!r}")
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"preprocess expects a non-empty 2-D image, got shape {image.shape}")
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if not np.isfinite(image).all():
        raise ValueError("preprocess: image contains NaN or infinite values")
    lo, hi = intensity_window(image) if window is None else window
    if hi <= lo:
        raise ValueError(f"preprocess: the window {lo:g} to {hi:g} is empty")
    clipped = np.clip(image, lo, hi)

    rows, cols = image.shape
    if framing == "crop":
        side = min(rows, cols)
        top, left = (rows - side) // 2, (cols - side) // 2
        clipped = clipped[top:top + side, left:left + side]
        rows = cols = side
    scale = resolution / max(rows, cols)
    height = max(1, round(rows * scale))
    width = max(1, round(cols * scale))
    resized = Image.fromarray(np.ascontiguousarray(clipped)).resize((width, height), _resample_filter(scale))
    scaled = (np.asarray(resized, dtype=np.float32) - np.float32(lo)) * np.float32(2 / (hi - lo)) - 1
    out = np.full((resolution, resolution), -1.0, dtype=np.float32)
    top, left = (resolution - height) // 2, (resolution - width) // 2
    out[top:top + height, left:left + width] = np.clip(scaled, -1, 1)
    return out


def load_preprocessed(path: str | os.PathLike, resolution: int, *, colour: str = "refuse",
                      framing: str = "pad") -> np.ndarray:
    """:func:`~seegaan_explore.data.readers.read_image` followed by :func:`preprocess`."""
    return preprocess(read_image(path, colour=colour), resolution, framing=framing)


PIXEL_DIGEST_BYTES = 16  # the length of :func:`pixel_digest`, as the latent store keeps it


def pixel_digest(image: np.ndarray) -> bytes:
    """A preprocessed image's content hash (16 bytes): equal for two files that decode to the same
    pixels (a copy, an export made twice), which the latent store keeps once and a split must not
    put on both sides."""
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=PIXEL_DIGEST_BYTES).digest()


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Images in [-1, 1] (any shape) -> 0..255 grey uint8, the inverse of :func:`preprocess`'s scale:
    clipped to [-1, 1], then rounded to the nearest grey level (ties to even). Computed in float32,
    the models' precision, so that every image, frame and file of the package shows the same grey."""
    return np.rint((np.clip(np.asarray(images, np.float32), -1, 1) + 1) * 127.5).astype(np.uint8)


def load_preprocessed_info(path: str | os.PathLike, resolution: int, colour: str = "refuse",
                           framing: str = "pad") -> tuple[np.ndarray | None, ImageInfo]:
    """:func:`load_preprocessed` as ``(image, info)``, or ``(None, info)`` with ``info.reason`` for an
    unusable file: what :meth:`~seegaan_explore.data.cohort.Cohort.images` runs in its worker
    processes (this module and those it imports do not import torch, so the workers start quickly);
    ``info`` carries the notes and warnings of the decode (near-grey colour, a header window replaced)."""
    try:
        image, info = read_image_info(path, colour=colour)
    except ImageReadError as e:
        return None, ImageInfo(Path(path), reason=e.reason)
    try:
        return preprocess(image, resolution, framing=framing), info
    except ValueError as e:
        info.reason = str(e)
        return None, info
