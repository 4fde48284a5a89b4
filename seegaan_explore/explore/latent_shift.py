"""Latent Shift (Cohen et al., MIDL 2021): a per-patient direction, the gradient of the CNN's
prediction through the generator at the patient's latent.

Where the mean-shift direction says how the *cohort* differs with an attribute, this one asks what
change of *this* image the CNN is most sensitive to: it explains the CNN, not the data.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..model.cnn import at_resolution_of
from ..model.seegaan import SeeGaan
from .directions import Direction


def _prediction(cnn: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The CNN's output in its own units: the attribute for a regression RadiographCNN, the raw
    output (a logit) otherwise."""
    out = cnn(images).reshape(len(images), -1)[:, 0]
    config = getattr(cnn, "config", None)
    if getattr(config, "task", None) == "regression":
        out = out * config.target_std + config.target_mean
    return out


def latent_shift(model: SeeGaan, cnn: nn.Module, w0, *, noise_seed: int = 0, scale: float = math.nan,
                 attribute: str | None = None) -> Direction:
    """The direction whose step of one unit raises the CNN's prediction by one unit to first order
    (``gradient / |gradient|^2``), for the patient at ``w0`` ([w_dim]). ``scale``: the prediction's
    SD over the cohort, if known, so that steps can be asked in SDs."""
    w = torch.as_tensor(np.asarray(w0, dtype=np.float32)).reshape(1, -1).to(model.device).requires_grad_(True)
    noise = model.generator_ema.make_noise(noise_seed, device=model.device)
    was_training = cnn.training
    cnn.eval()
    try:
        with torch.enable_grad():
            prediction = _prediction(cnn, at_resolution_of(cnn, model.generator_ema(w, noise).float()))
            (gradient,) = torch.autograd.grad(prediction.sum(), w)
    finally:
        cnn.train(was_training)
    g = gradient[0].double().cpu().numpy()
    norm = float(np.linalg.norm(g))
    if norm == 0 or not math.isfinite(norm):
        raise ValueError("the CNN's prediction does not change with the latent here (zero gradient): no Latent Shift")
    name = attribute or getattr(getattr(cnn, "config", None), "attribute", "") or "cnn_prediction"
    return Direction(name, "latent_shift", "generative", (g / norm**2).astype(np.float32), float(scale), (),
                     {"gradient_norm": norm, "prediction_at_patient": float(prediction.item())})
