"""The radiograph of one phantom: its factors and anatomy through the beam onto the detector.

:func:`render` is the third stage of the phantom generator (:mod:`.causal` draws the individual and
evaluates its factors): it renders an individual, under an intervention or not. :func:`render_arrays`
makes the image the way an exam does, in stages:

1. the patient frame: the image grid in patient coordinates (:func:`~.anatomy.patient_frame`: pose);
2. the attenuation map (:func:`~.attenuation.attenuation_map`): soft tissue, lungs, heart, effusions,
   lung markings, edema, hila, bones, air columns, a cardiac device and the side marker;
3. the detector: blur, signal-dependent quantum noise and a film-like characteristic curve into
   ``[-1, 1]`` (MONOCHROME2: bright = attenuating);
4. a burned-in text label (AP exams), then the ground-truth masks (:data:`MASK_NAMES`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from .anatomy import Frame, RenderInputs, patient_frame
from .attenuation import attenuation_map
from .causal import Individual, factors, id_row
from .drawing import annotation_margin, text_bitmap

__all__ = ["AP_LABELS", "MASK_NAMES", "Phantom", "render", "render_arrays", "render_noise_free"]

MASK_NAMES = (
    "heart",
    "lungs",
    "effusion",
    "effusion_left",
    "effusion_right",
    "edema",
    "device",
    "text_label",
    "marker",
)

#: burned-in labels of AP exams (one is picked per individual from its exogenous draws)
AP_LABELS = ("AP", "AP", "AP SUPINE", "PORTABLE")

_F32 = np.float32


# --------------------------------------------------------------------------------------------
# an individual's radiograph
# --------------------------------------------------------------------------------------------
@dataclass
class Phantom:
    """One rendered phantom: ``image`` float32 ``[size, size]`` in ``[-1, 1]`` (bright = dense),
    ``row`` the clinical-table row (plus ids), ``masks`` boolean ``[size, size]`` arrays."""

    image: np.ndarray
    row: dict
    masks: dict = field(default_factory=dict)


def _render_inputs(individual: Individual, row: Mapping[str, Any]) -> RenderInputs:
    return RenderInputs(
        age=float(row["age"]),
        sex=str(row["sex"]),
        bmi=float(row["bmi"]),
        ctr=float(row["ctr"]),
        edema_score=float(row["edema_score"]),
        effusion_left_ml=float(row["effusion_left"]),
        effusion_right_ml=float(row["effusion_right"]),
        view=str(row["view"]),
        device=bool(row["device"]),
        bone_density=float(row["bone_density"]),
        anatomy=individual.anatomy,
        render_seed=individual.render_seed,
    )


def render(individual: Individual, size: int = 256, do: Mapping[str, Any] | None = None, noise: bool = True) -> Phantom:
    """Render ``individual`` (under intervention ``do``) at ``size`` x ``size`` pixels.

    ``noise=False`` leaves out the quantum noise (the clean image, e.g. to score reconstructions).
    The noise field itself is part of the individual's exogenous noise: counterfactual renders of
    the same individual share it, so they differ only where the anatomy differs.
    """
    if int(size) < 32:
        raise ValueError("size must be at least 32 pixels")
    row = factors(individual, do)
    img, masks = render_arrays(_render_inputs(individual, row), int(size), noise=noise)
    return Phantom(img, id_row(individual, row), masks)


def render_noise_free(individual: Individual, size: int = 256, do: Mapping[str, Any] | None = None) -> Phantom:
    """:func:`render` without quantum noise."""
    return render(individual, size, do=do, noise=False)


# --------------------------------------------------------------------------------------------
# the detector and the annotations
# --------------------------------------------------------------------------------------------
def _detector(f: Frame, attn: np.ndarray, render_seed: int, noise: bool) -> np.ndarray:
    """Stage 6a: blur, log-domain quantum noise (fewer photons behind dense structures: more noise
    there) and the characteristic curve into (-1, 1)."""
    P = f.P
    sig_px = P["blur"] / f.px
    if sig_px > 0.3:
        attn = ndimage.gaussian_filter(attn, sig_px, truncate=3.0)
    if noise:
        rng = np.random.default_rng([int(render_seed) % (2**63), f.size, 3])
        z = rng.standard_normal(f.shape, dtype=_F32)
        sd = _F32(P["noise"]) * np.exp(_F32(0.8) * (np.clip(attn, 0.0, 2.0) - _F32(0.6)))
        attn = attn + sd * z
    center = _F32(0.70 + P["exposure"])
    width = _F32(0.62 / P["contrast"])
    return np.tanh((attn - center) / width)


def _burned_in_label(f: Frame, img: np.ndarray, letter: str) -> tuple[np.ndarray, np.ndarray]:
    """Stage 6b: the text label of AP exams, burned into the image after the detector: ``(image, mask)``."""
    size, A = f.size, f.A
    label_mask = np.zeros(f.shape, dtype=bool)
    if not f.P["ap"]:
        return img, label_mask
    margin = annotation_margin(size)
    text = AP_LABELS[int(A["u_label"] * len(AP_LABELS)) % len(AP_LABELS)]
    bm = text_bitmap(text, max(1, round(size / 128)))
    lh, lw = bm.shape
    lw = min(lw, size - 2 * margin)
    ly = max(1, int(size * 0.025))
    lx = margin if (letter == "L" or A["u_label_side"] < 0.6) else size - margin - lw
    label_mask[ly : ly + lh, lx : lx + lw] = bm[:, :lw]
    return np.where(label_mask, _F32(0.97), img), label_mask


def render_arrays(inp: RenderInputs, size: int, noise: bool = True):
    """Render one phantom.

    Returns ``(image, masks)``: ``image`` float32 ``[size, size]`` in ``[-1, 1]`` (MONOCHROME2,
    bright = attenuating), ``masks`` a dict of boolean ``[size, size]`` arrays (:data:`MASK_NAMES`).
    """
    f = patient_frame(inp, int(size))
    attn, body = attenuation_map(f, inp)
    img, label = _burned_in_label(f, _detector(f, attn, inp.render_seed, noise), body.letter)
    img = np.clip(img, -1.0, 1.0).astype(_F32, copy=False)

    heart_m = body.heart_distance < 0
    lungs_m = ((body.lung_distance[-1] < 0) | (body.lung_distance[1] < 0)) & ~heart_m
    eff_r = (body.effusion[-1] > 0.5) & (body.lung_distance[-1] < 0)
    eff_l = (body.effusion[1] > 0.5) & (body.lung_distance[1] < 0)
    masks = {
        "heart": heart_m,
        "lungs": lungs_m,
        "effusion": eff_r | eff_l,
        "effusion_left": eff_l,
        "effusion_right": eff_r,
        "edema": (body.edema > 0.05) & lungs_m,
        "device": (body.device > 0.35) if body.device is not None else np.zeros(f.shape, dtype=bool),
        "text_label": label,
        "marker": body.marker,
    }
    return img, masks
