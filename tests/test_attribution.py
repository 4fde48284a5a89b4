"""Attributions find what a model depends on; agreement scores compare maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from seegaan_explore.explore.attribution import METHODS, agreement, attribute, gradcam_layer, mass_inside
from seegaan_explore.model.cnn import CnnConfig, RadiographCNN

R = 32
BOX = (slice(8, 16), slice(18, 28))


class BoxModel(nn.Module):
    """Output = squared brightness of one box: every honest attribution lives in that box."""

    def __init__(self):
        super().__init__()
        self.features = nn.Conv2d(1, 4, 3, padding=1)
        with torch.no_grad():
            self.features.weight.zero_()
            self.features.weight[:, 0, 1, 1] = 1.0
            self.features.bias.zero_()
        mask = torch.zeros(1, 1, R, R)
        mask[..., BOX[0], BOX[1]] = 1
        self.register_buffer("mask", mask)

    @property
    def gradcam_layer(self):
        return self.features

    def forward(self, x):
        return ((self.features(x) + 1) * self.mask).mean(dim=(1, 2, 3)).square() * 100


@pytest.fixture
def images():
    torch.manual_seed(0)
    return torch.rand(2, 1, R, R) * 2 - 1


def _box_mask():
    mask = np.zeros((R, R), bool)
    mask[BOX] = True
    return mask


@pytest.mark.parametrize("method", ["integrated_gradients", "saliency", "occlusion", "gradient_shap"])
def test_pixel_attributions_land_on_what_the_output_depends_on(method, images):
    maps = attribute(BoxModel(), images, method)
    assert maps.shape == (2, R, R)
    share = mass_inside(maps[0], _box_mask())
    assert share > (0.6 if method == "occlusion" else 0.99), share  # occlusion windows straddle the edge


def test_integrated_gradients_satisfy_completeness(images):
    model = BoxModel()
    maps = attribute(model, images, "integrated_gradients", n_steps=200, internal_batch_size=64)
    with torch.no_grad():
        gap = model(images) - model(torch.full_like(images, -1.0))
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), gap.numpy(), rtol=0.02)


def test_gradcam_on_the_project_cnn_is_upsampled_and_nonnegative(images):
    torch.manual_seed(0)
    cnn = RadiographCNN(CnnConfig(resolution=R, widths=(8, 16)))
    maps = attribute(cnn, images, "gradcam")
    assert maps.shape == (2, R, R) and (maps >= 0).all()
    assert cnn.training  # the caller's mode is restored


def test_gradcam_finds_the_last_conv_of_any_module(images):
    torch.manual_seed(0)
    first, last = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 2, 3, padding=1)
    plain = nn.Sequential(first, nn.ReLU(), last, nn.Flatten(), nn.LazyLinear(1))
    plain(images)  # materialise the lazy layer
    assert gradcam_layer(plain) is last
    found = attribute(plain, images, "gradcam")
    named = attribute(plain, images, "gradcam", layer=last)
    np.testing.assert_allclose(found, named)
    assert not np.allclose(found, attribute(plain, images, "gradcam", layer=first))
    with pytest.raises(ValueError, match="has none: pass layer="):
        attribute(nn.Sequential(nn.Flatten(), nn.LazyLinear(1)), images, "gradcam")
    with pytest.raises(ValueError, match="choose one of"):
        attribute(plain, images, "lime")
    assert set(METHODS) == {"gradcam", "integrated_gradients", "saliency", "occlusion", "gradient_shap"}


def test_agreement_scores():
    rng = np.random.default_rng(0)
    a = rng.random((R, R))
    same = agreement(a, a * 3)
    assert same["spearman"] == pytest.approx(1.0) and same["top_overlap"] == 1.0
    opposite = agreement(a, 1 - a)
    assert opposite["spearman"] == pytest.approx(-1.0) and opposite["top_overlap"] == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        agreement(a, a[:4])
