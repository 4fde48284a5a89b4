"""Growing a trained autoencoder into a wider one keeps its function and lets training use the new filters."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from seegaan_explore.model import SeeGaan, load_model, preset_config, save_model
from seegaan_explore.model.checkpoint import training_copy
from seegaan_explore.model.widen import widen

TINY = preset_config("tiny")
WIDER_TINY = dataclasses.replace(TINY, preset="tiny-wide", generator_channel_base=2048, encoder_channel_base=1024)


def _trained_looking(config) -> SeeGaan:
    """Random weights everywhere, biases and noise strengths included (zero at initialisation, so a
    fresh model would not show a widening that drops them)."""
    torch.manual_seed(0)
    model = SeeGaan(config, with_training_networks=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def test_the_wider_model_computes_what_the_narrow_one_did():
    narrow = _trained_looking(TINY)
    wide = widen(narrow, WIDER_TINY, seed=3)
    assert wide.config == WIDER_TINY
    assert wide.parameter_counts()["generator"] > narrow.parameter_counts()["generator"]
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    w = torch.randn(4, TINY.w_dim)
    noise = narrow.generator_ema.make_noise(0, batch=4)
    with torch.no_grad():
        torch.testing.assert_close(wide.encoder_ema(x), narrow.encoder_ema(x), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(wide.generator_ema(w, noise), narrow.generator_ema(w, noise), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(wide.mapping_ema(w), narrow.mapping_ema(w))


def test_training_reaches_the_new_filters():
    """The weights that read a new filter start at zero; one step of reconstruction moves them."""
    wide = training_copy(widen(_trained_looking(TINY), WIDER_TINY))
    reader = wide.generator.blocks[-1].layers[1].conv.weight  # reads the 32 px layer's 64 filters, 32 of them new
    assert reader.shape[1] == 64 and torch.count_nonzero(reader[:, 32:]) == 0 and torch.count_nonzero(reader[:, :32])
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    loss = (wide.generator(wide.encoder(x), wide.generator.make_noise(0, batch=4)) - x).abs().mean()
    loss.backward()
    assert reader.grad[:, 32:].abs().sum() > 0


@pytest.mark.parametrize("change, message", [
    (dict(w_dim=128), "w_dim 64 -> 128"),
    (dict(generator_channel_base=512), "generator is narrower at 16 px"),
    (dict(encoder_channel_base=4096, encoder_channel_max=128), "4x4 features"),
])
def test_what_widening_cannot_do_is_a_clear_error(change, message):
    with pytest.raises(ValueError, match=message):
        widen(_trained_looking(TINY), dataclasses.replace(TINY, **change))


def test_train_grows_an_init_checkpoint_to_a_wider_preset(tmp_path):
    """``train --init demo-weights --preset demo-wide``: the run trains the wider preset, resumes as it."""
    narrow = _trained_looking(preset_config("demo", 32))
    save_model(tmp_path / "narrow.safetensors", narrow, ema_only=True)
    (tmp_path / "pngs").mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray(rng.integers(0, 255, (32, 32), dtype=np.uint8)).save(tmp_path / "pngs" / f"{i}.png")
    cmd = [sys.executable, "-m", "seegaan_explore", "train", "--data", str(tmp_path / "pngs"), "--out",
           str(tmp_path / "run"), "--init", str(tmp_path / "narrow.safetensors"), "--preset", "demo-wide",
           "--steps", "1", "--batch-size", "4", "--precision", "fp32", "--device", "cpu", "--no-progress",
           "--checkpoint-every", "1", "--sample-every", "100", "--cache-dir", str(tmp_path / "cache")]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "grew" in result.stderr
    trained = load_model(tmp_path / "run" / "model.safetensors")
    assert trained.config == preset_config("demo-wide", 32)
    assert trained.generator_ema.blocks[-1].layers[0].conv.weight.shape[0] == 256  # 128 in the demo preset
