"""Per-sample geometric and brightness augmentation of real radiographs (reference: p = 0.2)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Augmentation:
    probability: float = 0.2
    translate: float = 0.05  # fraction of the image size
    rotate_degrees: float = 7.0
    zoom: float = 0.15
    brightness: float = 0.25  # additive, in [-1, 1] pixel units

    def draw(self, batch: int, generator: torch.Generator, probability: float | None = None) -> torch.Tensor:
        """Random parameters [batch, 6] (apply, tx, ty, angle, scale, brightness), drawn on the CPU
        from ``generator`` so that every process of a distributed run draws the same ones.
        ``probability`` overrides :attr:`probability` (the draws, and so the random stream, stay the same)."""
        u = torch.rand(batch, 6, generator=generator)
        apply = (u[:, 0] < (self.probability if probability is None else probability)).float()
        tx = (u[:, 1] * 2 - 1) * self.translate * 2  # affine_grid coordinates span 2
        ty = (u[:, 2] * 2 - 1) * self.translate * 2
        angle = (u[:, 3] * 2 - 1) * math.radians(self.rotate_degrees)
        scale = 1 + (u[:, 4] * 2 - 1) * self.zoom
        bright = (u[:, 5] * 2 - 1) * self.brightness
        return torch.stack([apply, tx, ty, angle, scale, bright], dim=1)

    @staticmethod
    def apply(images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Warp and brighten the samples whose ``apply`` flag is set; the rest pass unchanged."""
        params = params.to(images.device, images.dtype)
        apply, tx, ty, angle, scale, bright = params.unbind(1)
        if not bool(apply.any()):
            return images
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        # Outside the image is background (-1), as in a radiograph's collimated border.
        warped = F.grid_sample(images + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1
        warped = (warped + bright[:, None, None, None]).clamp(-1, 1)
        mask = apply[:, None, None, None] > 0
        return torch.where(mask, warped, images)
