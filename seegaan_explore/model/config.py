"""Architecture configuration and the named presets.

Channel counts are ``min(channel_max, channel_base // resolution)`` per scale, so one preset
works at any power-of-two resolution from 32 to 1024.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ModelConfig:
    preset: str = "custom"
    resolution: int = 256
    img_channels: int = 1
    z_dim: int = 512
    w_dim: int = 512
    mapping_layers: int = 8
    mapping_lr_multiplier: float = 0.01
    generator_channel_base: int = 16384
    generator_channel_max: int = 512
    encoder_channel_base: int = 8192
    encoder_channel_max: int = 512
    mbstd_group_size: int = 4

    def __post_init__(self):
        r = self.resolution
        if not (32 <= r <= 1024 and r == 2 ** int(math.log2(r))):
            raise ValueError(f"resolution must be a power of two from 32 to 1024, got {r}")

    def generator_channels(self, resolution: int) -> int:
        return max(1, min(self.generator_channel_max, self.generator_channel_base // resolution))

    def encoder_channels(self, resolution: int) -> int:
        return max(1, min(self.encoder_channel_max, self.encoder_channel_base // resolution))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
        return cls(**values)


PRESETS: dict[str, ModelConfig] = {
    # The published configuration: 256 px, 512-d W, 512..64 generator filters.
    "paper": ModelConfig(preset="paper"),
    # CPU-friendly, the bundled model: 128 px, generator 256..32 filters, encoder 16..256.
    # Half the width of the paper's at each scale above 16 px, so that training it on a 2-core CPU is
    # feasible (the step times: docs/results/speed.md).
    "demo": ModelConfig(
        preset="demo", resolution=128, z_dim=256, w_dim=256, mapping_layers=4,
        generator_channel_base=4096, generator_channel_max=256,
        encoder_channel_base=2048, encoder_channel_max=256,
    ),
    # The demo preset with twice its filters from 32 px up (generator 256 / 128 / 64 at 32 / 64 /
    # 128 px, encoder 32 / 64 / 128 / 256 from 128 px down), for learning fine detail (ribs) faster
    # (docs/results/studies.md, "Can the generator draw ribs at all?"). Grown from demo weights with
    # `train --init ... --preset demo-wide`.
    "demo-wide": ModelConfig(
        preset="demo-wide", resolution=128, z_dim=256, w_dim=256, mapping_layers=4,
        generator_channel_base=8192, generator_channel_max=256,
        encoder_channel_base=4096, encoder_channel_max=256,
    ),
    # For tests: seconds to train on a CPU.
    "tiny": ModelConfig(
        preset="tiny", resolution=32, z_dim=64, w_dim=64, mapping_layers=2,
        generator_channel_base=1024, generator_channel_max=64,
        encoder_channel_base=512, encoder_channel_max=64, mbstd_group_size=2,
    ),
}


def preset_config(name: str, resolution: int | None = None) -> ModelConfig:
    """The named preset, optionally at another resolution."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    config = PRESETS[name]
    return dataclasses.replace(config, resolution=resolution) if resolution else config
