"""Grow a trained autoencoder into a wider one that computes the same function.

Training a wider model from scratch costs hours on a GPU and days on a CPU; starting it from a
narrower trained one keeps everything that one has learned. Each layer keeps its trained filters;
the new filters start from the wider model's own random initialisation, and every weight that
reads a new filter starts at zero. So until training moves those zeros, the wider networks
compute exactly what the narrow ones did (Net2Net's idea, with zeros instead of copies).
"""

from __future__ import annotations

import math

import torch

from .config import ModelConfig
from .seegaan import SeeGaan

# Architecture fields that widening cannot change: only the channel counts may grow.
_FIXED = ("resolution", "img_channels", "z_dim", "w_dim", "mapping_layers", "mapping_lr_multiplier",
          "mbstd_group_size")


def widen(model: SeeGaan, config: ModelConfig, seed: int = 0) -> SeeGaan:
    """``model``'s EMA networks (and latent prior) grown to ``config``'s channel counts.

    Returns an inference model (EMA networks only), ready for
    :func:`~.checkpoint.training_copy` or for saving. ``seed`` draws the new filters.
    """
    changed = [name for name in _FIXED if getattr(config, name) != getattr(model.config, name)]
    if changed:
        raise ValueError("widening changes channel counts only; these differ: "
                         + ", ".join(f"{n} {getattr(model.config, n)} -> {getattr(config, n)}" for n in changed))
    resolutions = [2**k for k in range(2, int(math.log2(config.resolution)) + 1)]
    for what in ("generator", "encoder"):
        narrower = [r for r in resolutions if getattr(config, f"{what}_channels")(r)
                    < getattr(model.config, f"{what}_channels")(r)]
        if narrower:
            raise ValueError(f"the new {what} is narrower at {narrower[0]} px; widening only adds filters")
    # The encoder flattens its 4x4 features into a linear layer: their count must stay.
    if config.encoder_channels(4) != model.config.encoder_channels(4):
        raise ValueError("the encoder's 4x4 features feed a linear layer; their channel count must stay "
                         f"{model.config.encoder_channels(4)}")
    torch.manual_seed(seed)
    wide = SeeGaan(config, with_training_networks=False)
    narrow_state = model.state_dict()
    with torch.no_grad():
        for key, target in wide.state_dict().items():
            target.copy_(_grown(narrow_state[key].to(target.dtype), target))
    return wide.to(model.device)


def _grown(source: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
    """``source`` in the leading corner of ``initial``'s shape.

    Weights are [out, in, ...]: new outputs keep ``initial``'s random values, new inputs are zero.
    Every weight here is scaled at run time by 1/sqrt(fan-in), so the trained part is scaled up by
    sqrt(new fan-in / old fan-in) to keep its effective value (modulated convolutions demodulate
    and would not mind; the toImage layers and the encoder's convolutions would).
    """
    if source.shape == initial.shape:
        return source
    grown = initial.clone()
    if source.dim() >= 2:
        grown[:, source.shape[1]:] = 0
        source = source * math.sqrt(initial.shape[1] / source.shape[1])
    grown[tuple(slice(0, n) for n in source.shape)] = source
    return grown
