"""The SEE-GAAN objectives: logistic GAN loss, lazy R1, perceptual distance.

Reconstruction and latent consistency are one line each in :meth:`~seegaan_explore.train.loop.Trainer.train_step`,
the latter with its means taken over all processes."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


def generator_adversarial(fake_logits: torch.Tensor) -> torch.Tensor:
    """Non-saturating logistic loss for the generator side."""
    return F.softplus(-fake_logits).mean()


def discriminator_adversarial(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def r1_penalty(discriminator: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """Mean squared gradient norm of D at real images (computed in fp32)."""
    real = real.detach().float().requires_grad_(True)
    logits = discriminator(real)
    (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)).mean()


def _normalize_channels(f: torch.Tensor) -> torch.Tensor:
    return f / (f.norm(dim=1, keepdim=True) + 1e-8)


class DiscriminatorPerceptual(nn.Module):
    """Perceptual distance from the discriminator's own trunk features: works offline with no
    pretrained weights. Each layer's features are unit-normalised per position (as in LPIPS),
    so every layer contributes on the same scale."""

    def forward(self, discriminator: nn.Module, target: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_features: list[torch.Tensor] = []
            discriminator.trunk(target, target_features)
        output_features: list[torch.Tensor] = []
        discriminator.trunk(output, output_features)
        terms = [(_normalize_channels(a.float()) - _normalize_channels(b.float())).square().sum(1).mean()
                 for a, b in zip(output_features, target_features)]
        return torch.stack(terms).mean()


_VGG16_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_VGG16_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 in torchvision numbering


class VGG16Perceptual(nn.Module):
    """The reference's VGG16 perceptual term, for users who have VGG16 weights on disk.

    ``weights``: a torchvision-layout ``features.*`` state dict as .safetensors or .pt/.pth (loaded
    with ``weights_only=True``). Nothing is downloaded.
    """

    def __init__(self, weights: str | Path):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in _VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU(inplace=False)]
                channels = item
        self.features = nn.Sequential(*layers)
        self.features.load_state_dict(_load_vgg_state(Path(weights)))
        self.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406])[None, :, None, None])
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225])[None, :, None, None])

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = ((x + 1) / 2).expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _VGG16_TAPS:
                out.append(x)
        return out

    def forward(self, discriminator: nn.Module, target: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target_features = self._taps(target.float())
        terms = [(_normalize_channels(a) - _normalize_channels(b)).square().sum(1).mean()
                 for a, b in zip(self._taps(output.float()), target_features)]
        return torch.stack(terms).mean()


def _load_vgg_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise FileNotFoundError(f"VGG16 weights not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k.removeprefix("features."): v for k, v in state.items() if not k.startswith("classifier.")}
    return state


def make_perceptual(spec: str) -> nn.Module:
    """``discriminator`` (default, offline) or ``vgg16:PATH``."""
    if spec == "discriminator":
        return DiscriminatorPerceptual()
    if spec.startswith("vgg16:"):
        return VGG16Perceptual(spec.split(":", 1)[1])
    raise ValueError(f"perceptual must be 'discriminator' or 'vgg16:PATH', got {spec!r}")
