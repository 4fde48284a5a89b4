"""Speed of the decoder and encoder on this machine, against a plain convolution's peak.

The decoder's efficiency is its achieved FLOP/s divided by that of one large dense convolution
timed in the same run, dtype and memory layout: the fraction of this machine's conv throughput
that a traversal actually gets.

Peak and decoder are timed in alternation and the ratio is taken per pair. On a virtual or shared
CPU the throughput of both drifts by 2-3x within seconds (bursts, then sustained-load clocks and
neighbours); a ratio of two measurements taken at different moments would measure the drift.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from .device import autocast, compute_dtype, default_device
from .model import SeeGaan, preset_config


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


class ConvPeak:
    """One large 3x3 convolution (batch 16, 256 -> 256 channels, 64x64), channels-last."""

    def __init__(self, device: torch.device, dtype: torch.dtype):
        fmt = torch.channels_last
        self.x = torch.randn(16, 256, 64, 64, device=device, dtype=dtype).contiguous(memory_format=fmt)
        self.w = torch.randn(256, 256, 3, 3, device=device, dtype=dtype).contiguous(memory_format=fmt)
        self.device = device
        with torch.inference_mode():
            self.flops = _flops(self._run)

    def _run(self) -> None:
        F.conv2d(self.x, self.w, padding=1)

    def flops_per_s(self, calls: int = 3) -> float:
        """Best of a few back-to-back calls: the one least slowed by the machine's drift."""
        with torch.inference_mode():
            return self.flops / min(_seconds(self._run, self.device) for _ in range(calls))


def decoder_flops_per_image(model: SeeGaan) -> int:
    w = model.sample_w(1, seed=0)
    noise = model.generator_ema.make_noise(0, device=model.device)
    with torch.inference_mode(), autocast(model.device, compute_dtype(model.device, model.precision)):
        return _flops(lambda: model.generator_ema(w, noise))


def time_traversal(model: SeeGaan, frames: int, rounds: int, peak: ConvPeak | None = None) -> dict:
    """Decode one traversal of ``frames`` frames, as one batch and one frame at a time.

    With ``peak``, each batched decode is paired with a conv-peak measurement just before it.
    Returns median times (s) and, with ``peak``, the median per-pair FLOP/s ratio.
    """
    device = model.device
    w = model.sample_w(frames, seed=0)
    noise = model.generator_ema.make_noise(0, device=device)
    flops = decoder_flops_per_image(model) * frames

    def batched():
        model.decode(w, noise=noise, batch_size=frames)

    def one_at_a_time():
        model.decode(w, noise=noise, batch_size=1)

    first = _seconds(batched, device)  # includes one-off kernel selection and weight preparation
    batched_s, single_s, ratios, peaks = [], [], [], []
    for _ in range(rounds):
        if peak is not None:
            peaks.append(peak.flops_per_s())
        batched_s.append(_seconds(batched, device))
        if peak is not None:
            ratios.append(flops / batched_s[-1] / peaks[-1])
        single_s.append(_seconds(one_at_a_time, device))
    out = {"first_call_s": first, "batched_s": statistics.median(batched_s),
           "one_at_a_time_s": statistics.median(single_s), "flops_per_image": flops / frames}
    if peak is not None:
        out["peak_fraction"] = statistics.median(ratios)
        out["peak_flops_per_s"] = statistics.median(peaks)
    return out


def time_direction(n: int, w_dim: int = 512, confounders: int = 2, rounds: int = 3) -> float:
    """Seconds for the default direction (mean shift with confounders) on n random latents."""
    from .explore.directions import fit_direction

    rng = np.random.default_rng(0)
    latents = rng.standard_normal((n, w_dim), dtype=np.float32)
    values, covariates = rng.standard_normal(n), rng.standard_normal((n, confounders))
    names = tuple(f"c{i}" for i in range(confounders))
    fit_direction("mean_shift", latents, values, covariates, confounder_names=names)
    return min(_seconds(lambda: fit_direction("mean_shift", latents, values, covariates, confounder_names=names),
                        torch.device("cpu")) for _ in range(rounds))


def time_interactive(model: SeeGaan, rounds: int = 5, n_latents: int = 400, frames: int = 9) -> dict:
    """The dashboard's path from "attribute picked" to all frames, their CNN and oracle predictions
    and one Grad-CAM ready, through the same renderer the widgets call. Every round picks an
    attribute not seen before, so nothing comes from the renderer's caches. Random weights: the
    time does not depend on what the networks learned."""
    import pandas as pd

    from .model.cnn import CnnConfig, RadiographCNN
    from .model.oracle import FACTORS, Oracle, OracleConfig
    from .ui.renderer import Renderer

    rng = np.random.default_rng(0)
    r = model.config.resolution
    latents = rng.standard_normal((n_latents, model.config.w_dim)).astype(np.float32)
    table = pd.DataFrame({f"attribute_{k}": rng.standard_normal(n_latents) for k in range(rounds + 1)})
    cnn = RadiographCNN(CnnConfig(resolution=r)).to(model.device).eval()
    oracle = Oracle(OracleConfig(resolution=r, means=(0.0,) * len(FACTORS), stds=(1.0,) * len(FACTORS)))
    oracle = oracle.to(model.device).eval()
    renderer = Renderer(model, latents, table, cnn=cnn, oracle=oracle)
    totals, stages = [], []
    for k in range(rounds + 1):  # the first round warms up
        result = renderer.render({"attribute": f"attribute_{k}", "n_frames": frames, "method": "gradcam", "patient": k})
        if result.get("error"):
            raise RuntimeError(f"interactive benchmark: {result['error']}")
        if k:
            totals.append(result["timings"]["total"])
            stages.append(result["timings"])
    breakdown = {name: statistics.median(t.get(name, 0.0) for t in stages) for name in stages[0] if name != "total"}
    return {"interactive_s": statistics.median(totals), "breakdown": breakdown}


def time_integrated_gradients(resolution: int = 128, rounds: int = 5, n_steps: int = 50,
                              device: torch.device = torch.device("cpu")) -> dict:
    """Integrated gradients (50 steps) on one image through :func:`explore.attribution.attribute`
    against Captum's own call with the same arguments, interleaved so that drift hits both alike."""
    from captum.attr import IntegratedGradients

    from .explore.attribution import BACKGROUND, attribute
    from .model.cnn import CnnConfig, RadiographCNN

    torch.manual_seed(0)
    cnn = RadiographCNN(CnnConfig(resolution=resolution)).to(device).eval()
    x = torch.rand(1, 1, resolution, resolution, device=device) * 2 - 1

    def captum_call():
        IntegratedGradients(cnn).attribute(x.clone().requires_grad_(True), baselines=torch.full_like(x, BACKGROUND),
                                           n_steps=n_steps, internal_batch_size=16)

    def ours():
        attribute(cnn, x, "integrated_gradients", n_steps=n_steps)

    ours(), captum_call()
    pairs = [(_seconds(ours, device), _seconds(captum_call, device)) for _ in range(rounds)]
    return {"ig_s": statistics.median(a for a, _ in pairs), "captum_ig_s": statistics.median(b for _, b in pairs),
            "ig_overhead": statistics.median(a / b for a, b in pairs) - 1}


def run_benchmark(preset: str = "demo", device: str | None = None, precision: str = "auto", batch: int = 16,
                  rounds: int = 7, traversal_256: bool = True, log: Callable[[str], None] = print) -> dict:
    dev = default_device(device)
    torch.manual_seed(0)
    model = SeeGaan(preset_config(preset), with_training_networks=False).to(dev)
    model.precision = precision
    dtype = compute_dtype(dev, precision)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else (platform.processor() or "cpu")
    log(f"device {dev} ({name}), {torch.get_num_threads()} threads, {str(dtype).removeprefix('torch.')}, "
        f"preset {preset} at {model.config.resolution} px, {batch} frames, median of {rounds} rounds")

    peak = ConvPeak(dev, dtype)
    dec = time_traversal(model, batch, rounds, peak)
    log(f"conv peak            {dec['peak_flops_per_s'] / 1e9:8.1f} GFLOP/s (3x3 conv, 16x256x64x64)")
    log(f"decoder              {dec['flops_per_image'] / 1e9:8.2f} GFLOP/image; {batch} frames "
        f"{dec['batched_s']:.3f} s batched, {dec['one_at_a_time_s']:.3f} s one at a time "
        f"(first call {dec['first_call_s']:.3f} s)")
    log(f"decoder efficiency   {dec['peak_fraction']:8.0%} of conv peak (median of paired measurements)")

    x = torch.rand(batch, 1, model.config.resolution, model.config.resolution, device=dev) * 2 - 1
    with torch.inference_mode(), autocast(dev, dtype):
        encoder_flops = _flops(lambda: model.encoder_ema(x[:1]))
    model.encode(x, batch_size=batch)
    enc_s = statistics.median(_seconds(lambda: model.encode(x, batch_size=batch), dev) for _ in range(rounds))
    log(f"encoder              {encoder_flops / 1e9:8.2f} GFLOP/image; {batch / enc_s:.1f} images/s")

    result = {
        "device": str(dev), "device_name": name, "dtype": str(dtype).removeprefix("torch."), "preset": preset,
        "resolution": model.config.resolution, "batch": batch, "threads": torch.get_num_threads(),
        "conv_peak_gflops": dec["peak_flops_per_s"] / 1e9,
        "decoder_gflop_per_image": dec["flops_per_image"] / 1e9,
        "decoder_images_per_s": batch / min(dec["batched_s"], dec["one_at_a_time_s"]),
        "decoder_batched_s": dec["batched_s"], "decoder_one_at_a_time_s": dec["one_at_a_time_s"],
        "decoder_peak_fraction": dec["peak_fraction"],
        "encoder_gflop_per_image": encoder_flops / 1e9,
        "encoder_images_per_s": batch / enc_s,
    }
    interactive = time_interactive(model, rounds=max(3, rounds // 2))
    result["interactive_s"] = interactive["interactive_s"]
    log(f"interactive          attribute picked -> {model.config.resolution} px frames, predictions and a "
        f"Grad-CAM: {interactive['interactive_s']:.2f} s (median); "
        + ", ".join(f"{name} {sec * 1e3:.0f} ms" for name, sec in interactive["breakdown"].items()))
    ig = time_integrated_gradients(model.config.resolution, rounds=max(3, rounds // 2), device=dev)
    result.update(ig)
    log(f"integrated gradients 50 steps, one {model.config.resolution} px image: {ig['ig_s']:.2f} s "
        f"(Captum's own call {ig['captum_ig_s']:.2f} s, overhead {ig['ig_overhead']:+.1%})")
    result["direction_26664_s"] = time_direction(26_664)
    result["direction_1m_s"] = time_direction(1_000_000)
    log(f"direction            mean shift with 2 confounders, 512-d: {result['direction_26664_s'] * 1e3:.0f} ms "
        f"on 26,664 latents, {result['direction_1m_s']:.2f} s on 1M")
    if traversal_256:
        paper = SeeGaan(preset_config("paper"), with_training_networks=False).to(dev)
        paper.precision = precision
        t = time_traversal(paper, 16, max(3, rounds // 2))
        result["traversal_256_s"] = min(t["batched_s"], t["one_at_a_time_s"])
        result["traversal_256_first_call_s"] = t["first_call_s"]
        result["decoder_256_gflop_per_image"] = t["flops_per_image"] / 1e9
        log(f"traversal 256 px     16 frames at the paper preset ({t['flops_per_image'] / 1e9:.1f} GFLOP/image): "
            f"{t['batched_s']:.3f} s batched, {t['one_at_a_time_s']:.3f} s one at a time "
            f"(first call {t['first_call_s']:.3f} s)")
    return result
