"""Networks, presets, precision and checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from seegaan_explore.cli import main
from seegaan_explore.device import cpu_has_fast_bf16
from seegaan_explore.model import CheckpointError, SeeGaan, load_model, preset_config, save_model
from seegaan_explore.model.config import ModelConfig
from seegaan_explore.model.layers import ModulatedConv2d, upsampling_conv2d, upsampling_conv_weight

PAPER_COUNTS = {"mapping": 2_101_248, "generator": 22_661_204, "encoder": 16_694_784, "discriminator": 16_437_249}


def test_paper_parameter_counts_via_cli(capsys):
    assert main(["info", "--preset", "paper", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for name, reference in PAPER_COUNTS.items():
        assert abs(counts[name] - reference) / reference <= 0.005, (name, counts[name], reference)


def test_info_on_a_checkpoint_says_how_long_it_was_trained(capsys):
    from seegaan_explore.demo import WEIGHTS_DIR
    from seegaan_explore.model import read_metadata

    checkpoint = WEIGHTS_DIR / "demo-seegaan.safetensors"
    step = read_metadata(checkpoint)["step"]
    assert main(["info", "--checkpoint", str(checkpoint)]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(f", trained {step:,} steps")
    assert main(["info", "--checkpoint", str(checkpoint), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["step"] == step


@pytest.mark.parametrize("resolution", [32, 64, 128, 256])
def test_any_power_of_two_resolution_round_trips_shapes(resolution):
    model = SeeGaan(preset_config("tiny", resolution), with_training_networks=True)
    x = torch.rand(2, 1, resolution, resolution) * 2 - 1
    w = model.encoder(x)
    assert w.shape == (2, model.config.w_dim)
    assert model.generator(w).shape == x.shape
    assert model.discriminator(x).shape == (2,)


@pytest.mark.parametrize("resolution", [16, 48, 2048])
def test_resolution_must_be_power_of_two_in_range(resolution):
    with pytest.raises(ValueError, match="power of two"):
        ModelConfig(resolution=resolution)


def test_1024_config_has_a_block_per_octave():
    config = preset_config("demo", 1024)
    from seegaan_explore.model.networks import Generator

    generator = Generator(config)
    assert generator.noise_resolutions()[-1] == 1024
    assert len(generator.blocks) == 9  # 4, 8, ..., 1024


def test_upsampling_conv_is_bilinear_upsample_then_conv():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 9)
    weight = torch.randn(4, 5, 3, 3)
    up = F.interpolate(F.pad(x, (1, 1, 1, 1)), scale_factor=2, mode="bilinear", align_corners=False)
    reference = F.conv2d(up, weight)[..., 1:-1, 1:-1]
    fused = upsampling_conv2d(x, upsampling_conv_weight(weight))
    torch.testing.assert_close(fused, reference, atol=1e-5, rtol=1e-5)


def test_modulated_conv_equals_per_sample_weight_modulation():
    torch.manual_seed(0)
    layer = ModulatedConv2d(6, 4, w_dim=8)
    x, w = torch.randn(3, 6, 5, 5), torch.randn(3, 8)
    out, dcoefs = layer(x, w)
    out = out * dcoefs[:, :, None, None]
    styles = layer.affine(w)
    for i in range(3):  # StyleGAN2's formulation: modulate, demodulate the weight of each sample
        wi = layer.weight * layer.weight_gain * styles[i][None, :, None, None]
        wi = wi * torch.rsqrt(wi.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        torch.testing.assert_close(out[i], F.conv2d(x[i:i + 1], wi, padding=1)[0], atol=1e-5, rtol=1e-4)


def _with_noise_strength(model: SeeGaan) -> SeeGaan:
    with torch.no_grad():
        for block in model.generator_ema.blocks:
            for layer in block.layers:
                layer.noise_strength.fill_(0.5)
    return model


def test_fixed_noise_makes_frames_differ_only_through_w():
    torch.manual_seed(0)
    model = _with_noise_strength(SeeGaan(preset_config("tiny"), with_training_networks=False))
    model.precision = "fp32"
    w = model.sample_w(1, seed=3)
    same = model.decode(torch.cat([w, w]), noise=7)
    torch.testing.assert_close(same[0], same[1])
    assert not torch.equal(model.decode(w, noise=7), model.decode(w, noise=8))
    fresh = model.decode(torch.cat([w, w]), noise=None)
    assert (fresh[0] - fresh[1]).abs().max() > 1e-3  # noise is really used


def test_decode_is_batch_invariant():
    """Frames decoded in one batch equal frames decoded one at a time (no cross-sample leakage)."""
    torch.manual_seed(0)
    model = _with_noise_strength(SeeGaan(preset_config("tiny"), with_training_networks=False))
    model.precision = "fp32"
    w = model.sample_w(4, seed=1)
    batched = model.decode(w, noise=0, batch_size=4)
    single = model.decode(w, noise=0, batch_size=1)
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-4)


def test_float16_images_and_latents_are_read_in_fp32():
    """A cohort's image cache holds float16; in fp32 (a CPU without native bf16) the networks must
    still take it, as they do under bf16 autocast, and read the same values."""
    from seegaan_explore.model.cnn import CnnConfig, RadiographCNN
    from seegaan_explore.model.oracle import Oracle, OracleConfig

    torch.manual_seed(0)
    model = SeeGaan(preset_config("tiny"), with_training_networks=False)
    model.precision = "fp32"
    images = torch.rand(3, 1, 32, 32).mul(2).sub(1).half()
    torch.testing.assert_close(model.encode(images), model.encode(images.float()))
    w = model.sample_w(2, seed=0)
    torch.testing.assert_close(model.decode(w.half()), model.decode(w.half().float()))
    cnn = RadiographCNN(CnnConfig(resolution=32))
    torch.testing.assert_close(cnn.predict(images), cnn.predict(images.float()))
    oracle = Oracle(OracleConfig(resolution=32, factors=("age", "sex"), kinds=("regression", "binary"),
                                 means=(60.0, 0.0), stds=(15.0, 1.0)))
    assert oracle.predict(images).equals(oracle.predict(images.float()))


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no native bf16")
def test_bf16_decoding_matches_fp32():
    torch.manual_seed(0)
    model = SeeGaan(preset_config("tiny", 64), with_training_networks=False)
    w = model.sample_w(4, seed=0)
    model.precision = "fp32"
    reference = model.decode(w)
    model.precision = "bf16"
    fast = model.decode(w)
    assert fast.dtype == torch.float32
    assert (fast - reference).abs().mean() < 0.02 * reference.abs().mean() + 1e-3


def test_checkpoint_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    model = SeeGaan(preset_config("tiny"))
    model.precision = "fp32"
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    full, ema = tmp_path / "full.safetensors", tmp_path / "ema.safetensors"
    save_model(full, model)
    save_model(ema, model, ema_only=True)
    assert ema.stat().st_size < 0.7 * full.stat().st_size
    for path, has_training in ((full, True), (ema, False)):
        loaded = load_model(path)
        loaded.precision = "fp32"
        assert loaded.has_training_networks is has_training
        torch.testing.assert_close(loaded.reconstruct(x), model.reconstruct(x), atol=0, rtol=0)


def test_latent_prior_samples_the_gaussian_it_was_fitted_to():
    from seegaan_explore.model.seegaan import LatentPrior

    g = torch.Generator().manual_seed(0)
    mixing, mean = torch.randn(6, 6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    prior = LatentPrior(6)
    assert not prior.fitted
    prior.fit(mean + torch.randn(50_000, 6, generator=g, dtype=torch.float64) @ mixing.T)
    assert prior.fitted
    drawn = prior.sample(torch.randn(50_000, 6, generator=g)).double()
    torch.testing.assert_close(drawn.mean(0), mean, atol=0.05, rtol=0)
    covariance = mixing @ mixing.T
    torch.testing.assert_close(torch.cov(drawn.T), covariance, atol=0.05 * covariance.abs().max().item(), rtol=0)
    with pytest.raises(ValueError, match=r"needs \[N >= 2, 6\] latents, got \[10, 5\]"):
        prior.fit(torch.zeros(10, 5))


def test_samples_come_from_the_fitted_latent_prior_which_checkpoints_keep(tmp_path):
    from seegaan_explore.model.checkpoint import _metadata, atomic_save_tensors

    torch.manual_seed(0)
    model = SeeGaan(preset_config("tiny"), with_training_networks=False)
    model.precision = "fp32"
    z = torch.randn(4, model.config.z_dim, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(model.sample_w(4, seed=1), model.mapping_ema(z))  # no prior yet: the mapping network
    images = torch.rand(100, 1, 32, 32) * 2 - 1
    model.fit_latent_prior(images)
    w = model.encode(images)
    torch.testing.assert_close(model.latent_prior.mean, w.mean(0), atol=1e-5, rtol=0)
    drawn = model.sample_w(4, seed=1)
    assert not torch.allclose(drawn, model.mapping_ema(z))
    path = tmp_path / "model.safetensors"
    save_model(path, model, ema_only=True)
    torch.testing.assert_close(load_model(path).sample_w(4, seed=1), drawn)
    # a checkpoint written before the prior existed loads, and samples through the mapping network
    old = tmp_path / "old.safetensors"
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("latent_prior.")}
    atomic_save_tensors(old, state, _metadata(model, "inference", None))
    loaded = load_model(old)
    assert not loaded.latent_prior.fitted
    torch.testing.assert_close(loaded.sample_w(4, seed=1), model.mapping_ema(z))


def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path):
    path = tmp_path / "m.safetensors"
    save_model(path, SeeGaan(preset_config("tiny", 64), with_training_networks=False), ema_only=True)
    with pytest.raises(CheckpointError, match="resolution: expected 32, checkpoint has 64"):
        load_model(path, expect=preset_config("tiny"))


def test_foreign_and_damaged_files_are_rejected(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a seegaan-explore checkpoint"):
        load_model(foreign)
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(damaged)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_model(tmp_path / "missing.safetensors")


def test_checkpoint_with_mismatched_weight_shape_names_the_weight(tmp_path):
    from seegaan_explore.model.checkpoint import _metadata, atomic_save_tensors

    model = SeeGaan(preset_config("tiny"), with_training_networks=False)
    state = model.state_dict()
    state["encoder_ema.out.weight"] = torch.zeros(3, 3)
    path = tmp_path / "bad.safetensors"
    atomic_save_tensors(path, state, _metadata(model, "inference", None))
    with pytest.raises(CheckpointError, match="encoder_ema.out.weight has shape"):
        load_model(path)


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    import seegaan_explore.model.checkpoint as ckpt

    path = tmp_path / "m.safetensors"
    model = SeeGaan(preset_config("tiny"), with_training_networks=False)
    save_model(path, model, ema_only=True)
    before = path.read_bytes()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_file", killed)
    with pytest.raises(KeyboardInterrupt):
        save_model(path, model, ema_only=True)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]


def test_written_files_get_the_usual_permissions(tmp_path):
    """Temporary files are owner-only; the finished checkpoint must not stay that way."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    path = tmp_path / "m.safetensors"
    save_model(path, SeeGaan(preset_config("tiny"), with_training_networks=False), ema_only=True)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
