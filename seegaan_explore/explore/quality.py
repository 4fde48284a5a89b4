"""How far a traversal does what it was asked: scores computed from predictions on its frames.

The predictions come from a model that is not the one under explanation (the phantom oracle, or
a CNN), measured on the decoded frames. A traversal can look convincing and still fall short of the
intended change, change other attributes along the way, or change the whole image; these scores
say so in numbers.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ..metrics import psnr_db


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y on x (NaN when x does not vary)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    dx = x - x.mean()
    denominator = float(dx @ dx)
    return float(dx @ (y - y.mean()) / denominator) if denominator > 0 else math.nan


def proximity(differences: np.ndarray, changed_fraction: float = 0.1) -> float:
    """1 when all change stays in the most-changed ``changed_fraction`` of the pixels, lower as
    change spreads: 1 - (mean |change| elsewhere) / (mean |change| there)."""
    change = np.abs(np.asarray(differences, np.float64)).max(axis=0).ravel()
    k = max(1, int(round(changed_fraction * change.size)))
    order = np.argsort(change)
    inside, outside = change[order[-k:]].mean(), change[order[:-k]].mean()
    return float(1 - outside / inside) if inside > 0 else 1.0


def assess(amounts, target_predictions, *, intended=None, others: dict | None = None,
           differences: np.ndarray | None = None, reconstruction: np.ndarray | None = None,
           original: np.ndarray | None = None) -> dict:
    """Scores of one traversal.

    ``amounts``: the step of each frame; ``target_predictions``: the measured target on each frame;
    ``intended``: the intended target value per frame (default: ``amounts``, i.e. steps in the
    target's units); ``others``: name -> measured value per frame of attributes that should stay.

    Returns ``monotonicity`` (Spearman of step vs measured target), ``achieved_over_intended``
    (slope of measured on intended change), ``calibrated_scale`` (multiply the steps by it to reach
    the intended change), ``leakage`` (name -> change per unit of intended target change),
    ``proximity`` and ``reconstruction_psnr_db`` when the images are given.
    """
    amounts = np.asarray(amounts, np.float64)
    measured = np.asarray(target_predictions, np.float64)
    intended = amounts if intended is None else np.asarray(intended, np.float64)
    if not (len(amounts) == len(measured) == len(intended)):
        raise ValueError(f"{len(amounts)} steps, {len(measured)} predictions and {len(intended)} intended "
                         "values: one of each per frame is needed")
    if len(amounts) < 3:
        raise ValueError(f"a traversal of {len(amounts)} frames is too short to score (3 or more)")
    achieved = slope(intended, measured)
    scores = {
        "monotonicity": float(spearmanr(amounts, measured)[0]) if np.ptp(measured) > 0 else 0.0,
        "achieved_over_intended": achieved,
        "calibrated_scale": 1 / achieved if achieved and math.isfinite(achieved) and achieved > 0 else math.nan,
        "leakage": {name: slope(intended, values) for name, values in (others or {}).items()},
    }
    if differences is not None:
        scores["proximity"] = proximity(differences)
    if reconstruction is not None and original is not None:
        scores["reconstruction_psnr_db"] = psnr_db(reconstruction, original)
    return scores


def score(traversal, measured=None, *, others: dict | None = None, original: np.ndarray | None = None) -> dict:
    """The scores of a :class:`~seegaan_explore.explore.traversal.Traversal`: everything :func:`assess`
    gives where ``measured`` (the target measured on each frame, in the direction's units) is known;
    otherwise what the images alone tell: proximity, and reconstruction error where ``original`` is given,
    with the leakage into ``others`` where they were read. The intended change per frame is the
    traversal's step in the direction's units."""
    intended = traversal.amounts * (traversal.direction.scale if traversal.in_sd else 1.0)
    if measured is not None:
        return assess(traversal.amounts, measured, intended=intended, others=others,
                      differences=traversal.differences, reconstruction=traversal.reconstruction, original=original)
    scores = {"proximity": proximity(traversal.differences)}
    if others:
        scores["leakage"] = {name: slope(intended, values) for name, values in others.items()}
    if original is not None:
        scores["reconstruction_psnr_db"] = psnr_db(traversal.reconstruction, original)
    return scores


COHORT_PSNR_IMAGES = 64
BLUR_PX = np.array([0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24])  # Gaussian blurs (SD in pixels) a PSNR is put in


class CohortPsnr(NamedTuple):
    """How well the model reconstructs the cohort: the PSNR in dB (``median``, 5th percentile ``low``),
    and ``blur_px``, the median Gaussian blur (SD in pixels of ``resolution``) that takes an image as
    far from itself as its reconstruction is: a number a clinician can picture (NaN: not measured)."""

    median: float
    low: float
    blur_px: float = math.nan
    resolution: int = 0


def equivalent_blur(image: np.ndarray, psnr: float) -> float:
    """The Gaussian blur (SD in pixels, within :data:`BLUR_PX`) whose PSNR against ``image`` is ``psnr``."""
    from scipy.ndimage import gaussian_filter

    blurred = [psnr_db(gaussian_filter(image, sd, mode="nearest"), image) for sd in BLUR_PX]
    return float(np.interp(-psnr, -np.asarray(blurred), BLUR_PX))  # the PSNR falls as the blur grows


def cohort_psnr(model, latents, images_of, cache_dir=None) -> CohortPsnr:
    """The cohort's reconstruction PSNR over up to :data:`COHORT_PSNR_IMAGES` of its images spread
    evenly: what a film's starting point is judged against (:func:`~seegaan_explore.explore.verdict.judge`),
    and the blur it equals. ``images_of(rows)`` returns the images of those rows of ``latents``.
    Remembered in ``cache_dir`` (:mod:`~seegaan_explore.explore.memo`)."""
    import torch

    from .memo import array_digest, decoder_digest, remembered

    rows = np.unique(np.linspace(0, len(latents) - 1, min(COHORT_PSNR_IMAGES, len(latents))).astype(int))
    images = np.asarray(images_of(rows), np.float32)
    chosen = np.asarray(latents[rows], np.float32)

    def each_psnr() -> pd.DataFrame:
        decoded = model.decode(torch.from_numpy(chosen))[:, 0].cpu().numpy()
        psnr = [psnr_db(d, image) for d, image in zip(decoded, images)]
        return pd.DataFrame({"psnr_db": psnr, "blur_px": [equivalent_blur(i, p) for i, p in zip(images, psnr)]})

    each = remembered(cache_dir, ["cohort psnr and blur", decoder_digest(model), array_digest(chosen),
                                  array_digest(images)], each_psnr)
    return CohortPsnr(float(np.median(each["psnr_db"])), float(np.percentile(each["psnr_db"], 5)),
                      float(np.median(each["blur_px"])), images.shape[-1])
