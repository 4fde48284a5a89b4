"""The four SEE-GAAN networks: mapping, style-based generator, residual encoder, discriminator.

Shapes follow the reference design (see README): images are [B, 1, R, R] in [-1, 1]; one latent
w of ``w_dim`` feeds every generator layer (W space); style mixing is a training-time option.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import ModelConfig
from .layers import (
    LRELU_GAIN,
    LRELU_SLOPE,
    EqualizedConv2d,
    EqualizedLinear,
    ModulatedConv2d,
    ModulatedToImage,
    upsample2x,
)

NoiseArg = Sequence[torch.Tensor] | None


class MappingNetwork(nn.Module):
    """z -> w: pixel norm, then dense layers with a reduced learning rate."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        dims = [config.z_dim] + [config.w_dim] * config.mapping_layers
        self.layers = nn.ModuleList(
            EqualizedLinear(i, o, lr_multiplier=config.mapping_lr_multiplier, activation=True)
            for i, o in zip(dims[:-1], dims[1:])
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        for layer in self.layers:
            x = layer(x)
        return x


class StyleLayer(nn.Module):
    """Modulated 3x3 conv, per-pixel noise with a learned strength, bias, LeakyReLU.

    The output is LeakyReLU *without* its variance-preserving gain; consumers fold the gain into
    their styles, which saves one full pass over the activations.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, *,
                 upsample: bool, input_gain: float):
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, w_dim, upsample=upsample, input_gain=input_gain)
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.resolution = resolution

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        x, dcoefs = self.conv(x, w)
        if noise is None:
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device)
        offset = noise.to(x.dtype) * self.noise_strength.to(x.dtype) + self.bias.to(x.dtype)[:, None, None]
        offset = offset.contiguous(memory_format=torch.channels_last)
        dcoefs = dcoefs.to(x.dtype)[:, :, None, None]
        # In place when no gradient is needed: the conv output is a fresh tensor, and writing into
        # it keeps its channels-last layout and saves a pass over memory.
        x = x * dcoefs + offset if x.requires_grad else torch.addcmul(offset, x, dcoefs, out=x)
        return F.leaky_relu_(x, LRELU_SLOPE)


class SynthesisBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, img_channels: int, resolution: int):
        super().__init__()
        first = resolution == 4
        self.layers = nn.ModuleList([StyleLayer(in_channels, out_channels, w_dim, resolution, upsample=not first,
                                                input_gain=1.0 if first else LRELU_GAIN)])
        if not first:
            self.layers.append(StyleLayer(out_channels, out_channels, w_dim, resolution, upsample=False,
                                          input_gain=LRELU_GAIN))
        self.to_image = ModulatedToImage(out_channels, img_channels, w_dim, input_gain=LRELU_GAIN)
        self.resolution = resolution

    def forward(self, x, image, ws, noises):
        for layer, w, noise in zip(self.layers, ws, noises):
            x = layer(x, w, noise)
        y = self.to_image(x, ws[len(self.layers)])
        image = y if image is None else upsample2x(image) + y
        return x, image


class Generator(nn.Module):
    """w -> image. Skip architecture: each scale adds its toImage output to the upsampled sum."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        resolutions = [2**k for k in range(2, int(math.log2(config.resolution)) + 1)]
        c4 = config.generator_channels(4)
        self.const = nn.Parameter(torch.randn(c4, 4, 4))
        self.blocks = nn.ModuleList()
        in_channels = c4
        for res in resolutions:
            out_channels = config.generator_channels(res)
            self.blocks.append(SynthesisBlock(in_channels, out_channels, config.w_dim, config.img_channels, res))
            in_channels = out_channels
        self.num_layers = sum(len(b.layers) for b in self.blocks)
        # One w per style layer plus one for the last toImage: the indices style mixing cuts at.
        self.num_ws = self.num_layers + 1

    def noise_resolutions(self) -> list[int]:
        return [layer.resolution for block in self.blocks for layer in block.layers]

    def make_noise(self, seed: int, batch: int = 1, device=None) -> list[torch.Tensor]:
        """Fixed noise maps: shared by all frames of a traversal, so frames differ only through w."""
        gen = torch.Generator().manual_seed(int(seed))
        return [torch.randn(batch, 1, r, r, generator=gen).to(device) for r in self.noise_resolutions()]

    def forward(self, w: torch.Tensor, noise: NoiseArg = None) -> torch.Tensor:
        """``w``: [B, w_dim] (one w for every layer) or [B, num_ws, w_dim] (style mixing).

        ``noise``: None draws fresh noise per call; a list (see ``make_noise``) fixes it.
        """
        ws = w.unsqueeze(1).expand(-1, self.num_ws, -1) if w.dim() == 2 else w
        if noise is None:
            noise = [None] * self.num_layers
        elif len(noise) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} noise maps, got {len(noise)}")
        # Channels-last activations let oneDNN (CPU) and cuDNN run convs without layout reorders.
        x = self.const.to(ws.dtype).unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        x = x.contiguous(memory_format=torch.channels_last)
        image = None
        index = 0
        for block in self.blocks:
            n = len(block.layers)
            x, image = block(x, image, ws.unbind(1)[index:index + n + 1], noise[index:index + n])
            index += n
        return torch.tanh(image)


class ResidualDown(nn.Module):
    """Two 3x3 convs with a 2x average-pool between them, plus a 1x1 skip; sum scaled by 1/sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, activation=True)
        self.conv2 = EqualizedConv2d(out_channels, out_channels, 3, activation=True)
        self.skip = EqualizedConv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.avg_pool2d(self.conv1(x), 2))
        s = self.skip(F.avg_pool2d(x, 2))
        return (y + s) * (1.0 / math.sqrt(2.0))


class ResidualTrunk(nn.Module):
    """Shared by encoder and discriminator: fromImage, then residual blocks down to 4x4."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        res = config.resolution
        channels = config.encoder_channels(res)
        self.from_image = EqualizedConv2d(config.img_channels, channels, 1, activation=True)
        self.blocks = nn.ModuleList()
        while res > 4:
            out_channels = config.encoder_channels(res)
            self.blocks.append(ResidualDown(channels, out_channels))
            channels = out_channels
            res //= 2
        self.out_channels = channels

    def forward(self, x: torch.Tensor, features: list | None = None) -> torch.Tensor:
        x = self.from_image(x)
        for block in self.blocks:
            x = block(x)
            if features is not None:
                features.append(x)
        return x


class Encoder(nn.Module):
    """image -> w."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.trunk = ResidualTrunk(config)
        c = self.trunk.out_channels
        self.conv = EqualizedConv2d(c, c, 3, activation=True)
        self.fc = EqualizedLinear(c * 16, config.w_dim, activation=True)
        self.out = EqualizedLinear(config.w_dim, config.w_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.trunk(x))
        return self.out(self.fc(x.flatten(1)))


class MinibatchStd(nn.Module):
    """Appends the mean std over groups of consecutive samples as one feature map.

    Groups are consecutive (not strided) so that a batch split across processes forms the
    same groups as on one process.
    """

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        g = min(self.group_size, b)
        while b % g:
            g -= 1
        y = x.float().reshape(b // g, g, c, h, w)
        y = (y.var(dim=1, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # [b/g]
        y = y.repeat_interleave(g).reshape(b, 1, 1, 1).expand(b, 1, h, w)
        return torch.cat([x, y.to(x.dtype)], dim=1)


class Discriminator(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.trunk = ResidualTrunk(config)
        c = self.trunk.out_channels
        self.mbstd = MinibatchStd(config.mbstd_group_size)
        self.conv = EqualizedConv2d(c + 1, c, 3, activation=True)
        self.fc = EqualizedLinear(c * 16, c, activation=True)
        self.out = EqualizedLinear(c, 1)

    def forward(self, x: torch.Tensor, features: list | None = None) -> torch.Tensor:
        """Logits [B]; when ``features`` is a list, the trunk's block outputs are appended to it."""
        x = self.conv(self.mbstd(self.trunk(x, features)))
        return self.out(self.fc(x.flatten(1))).squeeze(1)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
