"""A small residual CNN that predicts one attribute from a radiograph: the model under explanation.

Kept separate from the autoencoder: it is what Grad-CAM and the other attributions explain, and what a
traversal is scored with. ``gradcam_layer`` names the module Grad-CAM should hook (the last stage).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from .. import __version__
from .checkpoint import atomic_save_tensors, read_header

FORMAT = "seegaan-explore-cnn/1"
TASKS = ("regression", "binary")


@dataclass(frozen=True)
class CnnConfig:
    resolution: int = 128
    widths: tuple[int, ...] = (32, 64, 128, 256)
    task: str = "regression"
    attribute: str = ""
    log_transform: bool = False  # the target is ln(attribute)
    target_mean: float = 0.0  # regression targets are standardised for training
    target_std: float = 1.0

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")


class _Block(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.skip = (nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                   nn.BatchNorm2d(out_channels))
                     if stride != 1 or in_channels != out_channels else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x))


def backbone(widths: tuple[int, ...]) -> tuple[nn.Module, nn.Sequential]:
    """Stem (stride 2) and one residual block per width (stride 2 from the second)."""
    stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
    stages = nn.Sequential(*[_Block(a, b, 1 if i == 0 else 2)
                             for i, (a, b) in enumerate(zip((widths[0],) + widths[:-1], widths))])
    return stem, stages


class RadiographCNN(nn.Module):
    """Stem (stride 2), one residual block per stage (stride 2 from the second), global pooling.

    ``forward`` returns one logit (binary) or one standardised value (regression) per image;
    ``predict`` returns the attribute's own scale: probability, or the value (log where trained so).
    """

    def __init__(self, config: CnnConfig):
        super().__init__()
        self.config = config
        self.stem, self.stages = backbone(config.widths)
        self.head = nn.Linear(config.widths[-1], 1)

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.stages[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.head(x.mean(dim=(2, 3))).squeeze(1)

    @torch.inference_mode()
    def predict(self, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        self.eval()
        device = next(self.parameters()).device
        out = torch.cat([self(chunk.to(device, torch.float32)).float() for chunk in images.split(batch_size)])
        if self.config.task == "binary":
            return torch.sigmoid(out)
        return out * self.config.target_std + self.config.target_mean


def at_resolution_of(network: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``images`` [B, 1, R, R] resized to what ``network`` (a CNN, the oracle) was trained on, where its
    config says; a fully convolutional network accepts any size but answers differently."""
    size = getattr(getattr(network, "config", None), "resolution", images.shape[-1])
    if images.shape[-1] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=size < images.shape[-1])


def save_image_model(path: str | Path, model: nn.Module, file_format: str, metrics: dict | None = None) -> None:
    """Weights plus the dataclass ``model.config`` and held-out metrics, as one safetensors file."""
    metadata = {"format": file_format, "config": json.dumps(asdict(model.config)),
                "version": json.dumps(__version__), "metrics": json.dumps(metrics or {})}
    atomic_save_tensors(Path(path), model.state_dict(), metadata)


def load_image_model(path: str | Path, file_format: str, what: str, build,
                     device: str | torch.device | None = None) -> nn.Module:
    """The model ``build(config_values)`` makes from the file's config (lists as tuples), with its
    weights and ``metrics``, in eval mode."""
    meta = read_header(path, file_format, what)
    model = build({k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()})
    model.load_state_dict(load_file(str(path)))
    model.metrics = meta.get("metrics", {})
    return model.to(device).eval() if device is not None else model.eval()


def save_cnn(path: str | Path, model: RadiographCNN, metrics: dict | None = None) -> None:
    save_image_model(path, model, FORMAT, metrics)


def load_cnn(path: str | Path, device: str | torch.device | None = None) -> RadiographCNN:
    return load_image_model(path, FORMAT, "CNN checkpoint", lambda c: RadiographCNN(CnnConfig(**c)), device)
