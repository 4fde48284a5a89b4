"""Traversals: one patient's latent moved along an attribute direction, decoded with fixed noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..model.seegaan import SeeGaan
from .directions import Direction


@dataclass(frozen=True, eq=False)
class Traversal:
    """``frames[k]`` decodes ``w0 + amounts[k] * direction``; ``differences[k] = frames[k] - reconstruction``.

    Noise is the same for every frame and for the reconstruction, so a difference map shows only
    what the latent step changed."""

    amounts: np.ndarray  # [K], attribute units (or SDs when ``in_sd``)
    in_sd: bool
    latents: np.ndarray  # [K, w_dim]
    reconstruction: np.ndarray  # [R, R], the patient decoded at w0
    frames: np.ndarray  # [K, R, R]
    differences: np.ndarray  # [K, R, R]
    direction: Direction

    @property
    def summary_map(self) -> np.ndarray:
        """Where the traversal changes the image: the largest absolute change over all frames."""
        return np.abs(self.differences).max(axis=0)


def stepped(model: SeeGaan, w0: torch.Tensor | np.ndarray, direction: Direction, amounts, *,
            in_sd: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The patient's latent ``w0`` ([w_dim] or [1, w_dim]) as [1, w_dim], and stepped by ``amounts``
    along ``direction`` (its warp applied) [K, w_dim]; both checked against ``model``. For decoding
    the frames without the reconstruction (what a calibration reads)."""
    w0 = torch.as_tensor(np.asarray(w0, dtype=np.float32)).reshape(1, -1)
    if w0.shape[1] != model.config.w_dim:
        raise ValueError(f"latent has {w0.shape[1]} dimensions, the model expects {model.config.w_dim}")
    if len(direction.vector) != model.config.w_dim:
        raise ValueError(f"direction for {direction.attribute!r} has {len(direction.vector)} dimensions, "
                         f"the model expects {model.config.w_dim}")
    return w0, w0 + torch.from_numpy(direction.offsets(np.asarray(amounts, dtype=np.float64), in_sd=in_sd))


def traverse(model: SeeGaan, w0: torch.Tensor | np.ndarray, direction: Direction, amounts, *,
             in_sd: bool = False, noise_seed: int = 0) -> Traversal:
    """Decode the patient's latent ``w0`` ([w_dim] or [1, w_dim]) stepped by ``amounts``."""
    amounts = np.asarray(amounts, dtype=np.float64)
    w0, latents = stepped(model, w0, direction, amounts, in_sd=in_sd)
    decoded = model.decode(torch.cat([w0, latents]), noise=noise_seed)[:, 0].cpu().numpy()
    reconstruction, frames = decoded[0], decoded[1:]
    return Traversal(amounts, in_sd, latents.numpy(), reconstruction, frames, frames - reconstruction[None],
                     direction)
