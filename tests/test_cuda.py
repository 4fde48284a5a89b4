"""On a CUDA device the toolkit gives what it gives on the CPU, and inputs that arrive on the other
device are moved. CI has no GPU, so these are skipped there; run them on a GPU machine with
``python -m pytest tests/test_cuda.py``."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from test_train import _reconstruction_mse, _smooth_images
from ui_cohort import small_setup

from seegaan_explore.demo import FILES, WEIGHTS_DIR
from seegaan_explore.explore.attribution import attribute
from seegaan_explore.model import SeeGaan, load_model, preset_config
from seegaan_explore.model.cnn import CnnConfig, RadiographCNN
from seegaan_explore.train.distributed import ProcessGroup
from seegaan_explore.train.loop import TrainConfig, Trainer
from seegaan_explore.ui.renderer import Renderer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
CUDA = torch.device("cuda")


def test_the_bundled_autoencoder_reconstructs_on_cuda_as_on_the_cpu():
    """fp32 on both: only TF32 and kernel order differ. bf16 (the CUDA default) stays close too."""
    path = WEIGHTS_DIR / FILES["autoencoder"]
    cpu, gpu = load_model(path, device="cpu").eval(), load_model(path, device="cuda").eval()
    cpu.precision = gpu.precision = "fp32"
    images = cpu.decode(cpu.sample_w(4, seed=0), noise=0)
    w_cpu, w_gpu = cpu.encode(images), gpu.encode(images).cpu()
    assert (w_cpu - w_gpu).abs().max() < 0.02 * w_cpu.abs().max()
    x_cpu, x_gpu = cpu.decode(w_cpu, noise=0), gpu.decode(w_cpu, noise=0).cpu()
    assert (x_cpu - x_gpu).abs().mean() < 5e-3
    gpu.precision = "auto"
    assert (gpu.decode(w_cpu, noise=0).cpu() - x_cpu).abs().mean() < 0.03


@pytest.mark.parametrize("method", ["gradcam", "integrated_gradients", "saliency"])
def test_a_cuda_cnn_attributes_frames_that_live_on_the_cpu(method, monkeypatch):
    """Same maps as on the CPU, up to float order and the odd ReLU that flips near zero."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    cnn = RadiographCNN(CnnConfig(resolution=64, widths=(8, 16))).eval()
    frames = torch.rand(2, 1, 64, 64) * 2 - 1
    on_cpu = attribute(cnn, frames, method)
    on_gpu = attribute(copy.deepcopy(cnn).to(CUDA), frames, method)
    assert on_gpu.shape == on_cpu.shape == (2, 64, 64)
    r = np.corrcoef(on_gpu.ravel(), on_cpu.ravel())[0, 1]
    relative_error = np.abs(on_gpu - on_cpu).mean() / np.abs(on_cpu).mean()
    assert r > 0.999 and relative_error < 0.01, (r, relative_error)


def test_the_renderer_with_every_network_on_cuda_matches_the_cpu():
    model, latents, table, cnn, oracle, images = small_setup()
    args = {"attribute": "brightness", "n_frames": 5, "patient": 3, "method": "gradcam"}
    cpu = Renderer(model, latents, table, cnn=cnn, oracle=oracle, images=images).render(args)
    gpu_model = copy.deepcopy(model).to(CUDA)
    gpu = Renderer(gpu_model, latents, table, cnn=copy.deepcopy(cnn).to(CUDA), oracle=oracle,
                   images=images).render(args)
    assert cpu["error"] is None and gpu["error"] is None, (cpu["error"], gpu["error"])
    assert np.abs(gpu["frames"].astype(int) - cpu["frames"].astype(int)).mean() < 1.0  # 8-bit grey levels
    np.testing.assert_allclose(gpu["cnn_predictions"], cpu["cnn_predictions"], rtol=1e-3, atol=1e-3)
    assert gpu["attribution_frame"].shape == cpu["attribution_frame"].shape
    assert np.corrcoef(gpu["attribution_frame"].ravel(), cpu["attribution_frame"].ravel())[0, 1] > 0.99


def test_bf16_training_on_cuda_learns_and_its_checkpoint_loads_on_the_cpu(tmp_path):
    """The CUDA default (bf16 autocast) trains the tiny preset on 32 px images: the reconstruction
    error falls, and the saved model decodes the same on the CPU."""
    images = _smooth_images(16)
    torch.manual_seed(0)
    model = SeeGaan(preset_config("tiny"))
    config = TrainConfig(steps=200, batch_size=8, sample_every=10**9, checkpoint_every=100, log_every=10**9)
    trainer = Trainer(model, images, tmp_path, config, group=ProcessGroup(device=CUDA))  # moves the model
    before = _reconstruction_mse(model, images)
    trainer.run(progress=False)
    assert _reconstruction_mse(model, images) < before / 3
    saved = load_model(tmp_path / "model.safetensors", device="cpu")
    saved.precision = trainer.model.precision = "fp32"
    w = torch.from_numpy(np.random.default_rng(1).standard_normal((2, saved.config.w_dim), dtype=np.float32))
    assert (saved.decode(w, noise=0) - trainer.model.decode(w, noise=0).cpu()).abs().mean() < 5e-3
