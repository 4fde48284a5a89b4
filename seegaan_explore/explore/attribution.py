"""Where a CNN looks: Captum attributions by name, and their agreement with a traversal's change.

Every method returns one map per image at the image's resolution, so maps from different methods
(and from a traversal's difference map) can be compared pixel by pixel.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from captum.attr import GradientShap, IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion, Saliency
from scipy.stats import spearmanr
from torch import nn

BACKGROUND = -1.0  # the value of an empty radiograph pixel: the baseline "nothing there"


def _gradcam(model, x, layer, **kw):
    maps = LayerGradCam(model, layer).attribute(x, relu_attributions=True)
    return LayerAttribution.interpolate(maps, tuple(x.shape[-2:]), interpolate_mode="bilinear")


def _integrated_gradients(model, x, layer, n_steps=50, internal_batch_size=16, **kw):
    return IntegratedGradients(model).attribute(x, baselines=torch.full_like(x, BACKGROUND), n_steps=n_steps,
                                                internal_batch_size=internal_batch_size)


def _saliency(model, x, layer, **kw):
    return Saliency(model).attribute(x, abs=True)


def _occlusion(model, x, layer, window=None, **kw):
    size = x.shape[-1]
    window = window or max(2, size // 8)
    return Occlusion(model).attribute(x, sliding_window_shapes=(1, window, window),
                                      strides=(1, max(1, window // 2), max(1, window // 2)), baselines=BACKGROUND)


def _gradient_shap(model, x, layer, n_samples=20, **kw):
    baselines = torch.cat([torch.full_like(x[:1], BACKGROUND), torch.zeros_like(x[:1])])
    return GradientShap(model).attribute(x, baselines=baselines, n_samples=n_samples, stdevs=0.1)


METHODS: dict[str, Callable] = {
    "gradcam": _gradcam,
    "integrated_gradients": _integrated_gradients,
    "saliency": _saliency,
    "occlusion": _occlusion,
    "gradient_shap": _gradient_shap,
}


def gradcam_layer(model: nn.Module) -> nn.Module:
    """The layer Grad-CAM hooks: the model's ``gradcam_layer`` if it names one, else its last
    convolution (the usual choice: the last spatial feature map before pooling)."""
    named = getattr(model, "gradcam_layer", None)
    if isinstance(named, nn.Module):
        return named
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"Grad-CAM needs a convolutional layer and {type(model).__name__} has none: "
                         "pass layer=...")
    return convs[-1]


def module_device(model: nn.Module) -> torch.device:
    """Where the model's weights live: images go there (a CUDA CNN with CPU frames, say)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def attribute(model: nn.Module, images: torch.Tensor, method: str = "gradcam", *,
              layer: nn.Module | None = None, **options) -> np.ndarray:
    """Attribution maps [B, R, R] for ``images`` [B, 1, R, R] and a single-output ``model``,
    computed on the model's device.

    ``layer``: the Grad-CAM layer (default: :func:`gradcam_layer`). ``options`` go to the method,
    e.g. ``n_steps`` and ``internal_batch_size`` for integrated gradients (the latter bounds memory).
    """
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "gradcam" and layer is None:
        layer = gradcam_layer(model)
    was_training = model.training
    model.eval()
    try:
        x = images.detach().to(module_device(model)).float().requires_grad_(True)
        maps = METHODS[method](model, x, layer, **options)
    finally:
        model.train(was_training)
    return maps.detach().sum(dim=1).cpu().numpy()


def agreement(change_map: np.ndarray, attribution_map: np.ndarray, top_fraction: float = 0.05) -> dict:
    """How far "where the CNN looks" matches "what the traversal changes", from magnitudes:
    Spearman rank correlation, and the overlap of the top ``top_fraction`` pixels of each."""
    a, b = np.abs(np.asarray(change_map, np.float64)).ravel(), np.abs(np.asarray(attribution_map, np.float64)).ravel()
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {np.shape(change_map)} vs {np.shape(attribution_map)}")
    k = max(1, int(round(top_fraction * a.size)))
    top_a, top_b = np.argpartition(-a, k - 1)[:k], np.argpartition(-b, k - 1)[:k]
    return {"spearman": float(spearmanr(a, b)[0]), "top_overlap": len(np.intersect1d(top_a, top_b)) / k}


def mass_inside(attribution_map: np.ndarray, mask: np.ndarray) -> float:
    """Share of the attribution's absolute mass inside a ground-truth mask (e.g. the heart)."""
    m = np.abs(np.asarray(attribution_map, np.float64))
    return float(m[np.asarray(mask, bool)].sum() / max(m.sum(), 1e-12))
