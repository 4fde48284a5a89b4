"""Traversals decode the patient stepped along a direction, with noise shared by every frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seegaan_explore.explore.directions import Direction
from seegaan_explore.explore.traversal import traverse
from seegaan_explore.model import SeeGaan, preset_config


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = SeeGaan(preset_config("tiny"), with_training_networks=False)
    with torch.no_grad():  # make noise matter, so that sharing it is what the test checks
        for block in m.generator_ema.blocks:
            for layer in block.layers:
                layer.noise_strength.fill_(0.3)
    m.precision = "fp32"
    return m


def _direction(model, scale=2.0):
    vector = np.random.default_rng(0).normal(size=model.config.w_dim).astype(np.float32) * 0.2
    return Direction("a", "mean_shift", "generative", vector, scale)


def test_frames_are_the_decoded_steps_and_zero_step_is_the_reconstruction(model):
    image = torch.rand(1, 1, 32, 32) * 2 - 1
    w0 = model.encode(image)[0]
    d = _direction(model)
    t = traverse(model, w0, d, [0.0, 1.0, 2.0], noise_seed=4)
    np.testing.assert_allclose(t.frames[0], model.decode(w0[None], noise=4)[0, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(t.differences[0], 0.0, atol=1e-6)
    np.testing.assert_allclose(t.latents[2] - t.latents[0], 2 * d.vector, rtol=1e-5, atol=1e-6)
    expected = model.decode(torch.from_numpy(t.latents[2:3]), noise=4)[0, 0].numpy()
    np.testing.assert_allclose(t.frames[2], expected, atol=1e-6)
    assert np.abs(t.differences[2]).max() > 1e-3
    np.testing.assert_allclose(t.summary_map, np.abs(t.differences).max(axis=0))


def test_steps_in_sd_use_the_attribute_scale(model):
    w0 = model.sample_w(1, seed=1)
    d = _direction(model, scale=3.0)
    native = traverse(model, w0, d, [3.0])
    in_sd = traverse(model, w0, d, [1.0], in_sd=True)
    np.testing.assert_allclose(native.latents, in_sd.latents, rtol=1e-5)
    np.testing.assert_allclose(native.frames, in_sd.frames, atol=1e-5)


def test_mismatched_dimensions_are_named(model):
    bad = Direction("nt_probnp", "mean_shift", "generative", np.ones(7, np.float32), 1.0)
    with pytest.raises(ValueError, match="direction for 'nt_probnp' has 7 dimensions"):
        traverse(model, model.sample_w(1), bad, [1.0])
    with pytest.raises(ValueError, match="latent has 3 dimensions"):
        traverse(model, np.zeros(3), _direction(model), [1.0])
