"""Building blocks of the style-based networks: equalized learning rate and modulated convolution.

Every weight is stored at unit variance and scaled at run time (equalized learning rate), so Adam
updates all layers at the same speed regardless of fan-in. Modulation is applied to activations
rather than to a per-sample copy of the weight: the convolution then has one shared weight for
the whole batch, which runs as a plain (fast, CPU- and GPU-friendly) batched convolution instead
of the grouped convolution of the original code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """LeakyReLU(0.2) scaled to keep unit variance."""
    return F.leaky_relu(x, LRELU_SLOPE) * LRELU_GAIN


class EqualizedLinear(nn.Module):
    def __init__(self, in_features: int, out_features: int, *, bias: bool = True,
                 bias_init: float = 0.0, lr_multiplier: float = 1.0, activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init) / lr_multiplier)) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias * self.bias_gain if self.bias is not None else None
        x = F.linear(x, self.weight * self.weight_gain, bias)
        return lrelu(x) if self.activation else x


class EqualizedConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True,
                 activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        return lrelu(x) if self.activation else x


# Bilinear 2x upsampling (align_corners=False) followed by a 3x3 conv equals, per output phase
# (row parity a, column parity b), a 3x3 conv at the input resolution with kernel M[a] W M[b]^T.
# Running the four phases as one conv with 4x the output channels and a pixel shuffle skips the
# upsampled intermediate and keeps every FLOP in one dense convolution.
_BILINEAR_PHASES = torch.tensor([
    [[0.75, 0.25, 0.00], [0.25, 0.75, 0.75], [0.00, 0.00, 0.25]],
    [[0.25, 0.00, 0.00], [0.75, 0.75, 0.25], [0.00, 0.25, 0.75]],
])


def upsampling_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """[O, I, 3, 3] -> [4*O, I, 3, 3] polyphase weight of "bilinear 2x upsample, then conv"."""
    m = _BILINEAR_PHASES.to(weight.device, weight.dtype)
    out_channels, in_channels = weight.shape[:2]
    return torch.einsum("apk,oikl,bql->oabipq", m, weight, m).reshape(4 * out_channels, in_channels, 3, 3)


def upsampling_conv2d(x: torch.Tensor, polyphase_weight: torch.Tensor) -> torch.Tensor:
    """Bilinear 2x upsampling then a 3x3 conv, in one conv. Outside the feature map counts as
    zero, as in any zero-padded conv: exactly, upsample(pad(x, 1)), valid conv, crop 1 pixel."""
    return F.pixel_shuffle(F.conv2d(x, polyphase_weight, padding=1), 2)


class ModulatedConv2d(nn.Module):
    """3x3 conv whose input channels are scaled by a style computed from w, then demodulated.

    Mathematically identical to modulating the weight per sample, as StyleGAN2 does, but the
    convolution itself uses one weight for the whole batch. ``input_gain`` folds a constant
    scale of the input (the LeakyReLU gain of the previous layer) into the style.
    """

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, *, upsample: bool = False,
                 input_gain: float = 1.0):
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 3, 3))
        self.weight_gain = 1.0 / math.sqrt(in_channels * 9)
        self.input_gain = input_gain
        self.upsample = upsample

        self._cache: tuple | None = None

    def _weights(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The conv weight (polyphase when upsampling) in ``dtype`` and sum_k W_oik^2 [out, in].

        Both depend on the parameters only, so without autograd they are computed once and kept
        until the parameter changes (optimizer step, load_state_dict, .to()).
        """
        key = (self.weight._version, self.weight.data_ptr(), dtype)
        if not torch.is_grad_enabled() and self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        weight = self.weight * self.weight_gain
        conv_weight = upsampling_conv_weight(weight) if self.upsample else weight
        conv_weight = conv_weight.to(dtype).contiguous(memory_format=torch.channels_last)
        result = (conv_weight, weight.float().square().sum(dim=(2, 3)))
        self._cache = (key, result) if not torch.is_grad_enabled() else None
        return result

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the undemodulated conv output and the demodulation coefficients [B, out]."""
        styles = self.affine(w).float() * self.input_gain  # [B, in]
        conv_weight, weight_sq = self._weights(x.dtype)
        x = x * styles.to(x.dtype)[:, :, None, None]
        x = upsampling_conv2d(x, conv_weight) if self.upsample else F.conv2d(x, conv_weight, padding=1)
        # Norm of the per-sample modulated weight: sum_{i,k} (W_oik s_i)^2 = (s^2) @ (sum_k W_oik^2).
        dcoefs = torch.rsqrt(styles.square() @ weight_sq.t() + 1e-8)
        return x, dcoefs


class ModulatedToImage(nn.Module):
    """1x1 modulated conv without demodulation: one scale's contribution to the output image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, *, input_gain: float = 1.0):
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = input_gain / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # Few output channels: modulate the tiny weight per sample instead of the big activation.
        weight = self.weight[:, :, 0, 0] * self.weight_gain * self.affine(w).float()[:, None, :]  # [B, O, I]
        b, c, h, w_ = x.shape
        # [B, H*W, C] is a free view of channels-last activations: no copy of the big tensor.
        pixels = x.permute(0, 2, 3, 1).reshape(b, h * w_, c)
        y = torch.bmm(pixels, weight.to(x.dtype).transpose(1, 2)).reshape(b, h, w_, -1).permute(0, 3, 1, 2)
        return y + self.bias.to(y.dtype)[:, None, None]


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
