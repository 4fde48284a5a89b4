"""Speed of the decoder and encoder on this machine, against a plain convolution's peak.

The decoder's efficiency is its achieved FLOP/s divided by that of one large dense convolution
timed in the same run, dtype and memory layout: the fraction of this machine's conv throughput
that a traversal actually gets.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from .device import autocast, compute_dtype, default_device
from .model import SeeGaan, preset_config


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], object], device: torch.device, repeats: int,
           warmup_s: float = 1.0) -> tuple[float, float]:
    """(first call, fastest of ``repeats`` calls after ``warmup_s`` of warm-up) in seconds.

    Warm-up matters: this CPU runs bf16 convs several times faster after about half a second of
    sustained load (the matrix units' power state). The fastest run, not the median: on a shared
    or virtual machine slow runs measure the neighbours, and peak and decoder are measured the
    same way so that their ratio means something.
    """
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    first = time.perf_counter() - t0
    while time.perf_counter() - t0 < warmup_s:
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return first, min(times)


def _flops(fn: Callable[[], object]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def conv_peak_flops(device: torch.device, dtype: torch.dtype, repeats: int) -> float:
    """FLOP/s of one large 3x3 convolution (batch 16, 256 -> 256 channels, 64x64), channels-last."""
    x = torch.randn(16, 256, 64, 64, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    w = torch.randn(256, 256, 3, 3, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        flops = _flops(lambda: F.conv2d(x, w, padding=1))
        _, seconds = _timed(lambda: F.conv2d(x, w, padding=1), device, repeats)
    return flops / seconds


def time_decoder(model: SeeGaan, batch: int, repeats: int) -> dict:
    """Decode one traversal of ``batch`` frames, as one batch and one frame at a time."""
    device = model.device
    w = model.sample_w(batch, seed=0)
    noise = model.generator_ema.make_noise(0, device=device)
    dtype = compute_dtype(device, model.precision)

    def one_frame():
        with torch.inference_mode(), autocast(device, dtype):
            model.generator_ema(w[:1], noise)

    with torch.inference_mode(), autocast(device, dtype):
        flops_per_image = _flops(one_frame)
    first, batched = _timed(lambda: model.decode(w, noise=noise, batch_size=batch), device, repeats)
    _, single = _timed(lambda: model.decode(w, noise=noise, batch_size=1), device, repeats)
    return {"flops_per_image": flops_per_image, "first_call_s": first, "batched_s": batched,
            "one_at_a_time_s": single}


def run_benchmark(preset: str = "demo", device: str | None = None, precision: str = "auto", batch: int = 16,
                  repeats: int = 5, rounds: int = 3, traversal_256: bool = True,
                  log: Callable[[str], None] = print) -> dict:
    dev = default_device(device)
    torch.manual_seed(0)
    model = SeeGaan(preset_config(preset), with_training_networks=False).to(dev)
    model.precision = precision
    dtype = compute_dtype(dev, precision)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{platform.processor() or 'cpu'}"
    log(f"device {dev} ({name}), {torch.get_num_threads()} threads, {str(dtype).removeprefix('torch.')}, "
        f"preset {preset} at {model.config.resolution} px, batch {batch}")

    # Peak and decoder alternate for a few rounds and the best of each counts, so that a slow
    # spell of a shared machine cannot land on one side of the ratio only.
    peak, dec = 0.0, None
    for _ in range(rounds):
        peak = max(peak, conv_peak_flops(dev, dtype, repeats))
        d = time_decoder(model, batch, repeats)
        dec = d if dec is None else {k: min(v, dec[k]) if k.endswith("_s") else v for k, v in d.items()}
    log(f"conv peak            {peak / 1e9:8.1f} GFLOP/s (3x3 conv, 16x256x64x64)")
    best = min(dec["batched_s"], dec["one_at_a_time_s"])
    decoder_flops = dec["flops_per_image"] * batch / dec["batched_s"]
    log(f"decoder              {dec['flops_per_image'] / 1e9:8.2f} GFLOP/image; {batch} frames "
        f"{dec['batched_s']:.3f} s batched, {dec['one_at_a_time_s']:.3f} s one at a time "
        f"(first call {dec['first_call_s']:.3f} s)")
    log(f"decoder efficiency   {decoder_flops / 1e9:8.1f} GFLOP/s = {decoder_flops / peak:.0%} of conv peak")

    x = torch.rand(batch, 1, model.config.resolution, model.config.resolution, device=dev) * 2 - 1
    with torch.inference_mode(), autocast(dev, dtype):
        encoder_flops = _flops(lambda: model.encoder_ema(x[:1]))
    _, enc_s = _timed(lambda: model.encode(x, batch_size=batch), dev, repeats)
    log(f"encoder              {encoder_flops / 1e9:8.2f} GFLOP/image; {batch / enc_s:.1f} images/s")

    result = {
        "device": str(dev), "device_name": name, "dtype": str(dtype).removeprefix("torch."), "preset": preset,
        "resolution": model.config.resolution, "batch": batch, "threads": torch.get_num_threads(),
        "conv_peak_gflops": peak / 1e9,
        "decoder_gflop_per_image": dec["flops_per_image"] / 1e9,
        "decoder_images_per_s": batch / best,
        "decoder_batched_s": dec["batched_s"], "decoder_one_at_a_time_s": dec["one_at_a_time_s"],
        "decoder_peak_fraction": decoder_flops / peak,
        "encoder_gflop_per_image": encoder_flops / 1e9,
        "encoder_images_per_s": batch / enc_s,
    }
    if traversal_256:
        paper = SeeGaan(preset_config("paper"), with_training_networks=False).to(dev)
        paper.precision = precision
        t = time_decoder(paper, 16, repeats)
        result["traversal_256_s"] = min(t["batched_s"], t["one_at_a_time_s"])
        result["traversal_256_first_call_s"] = t["first_call_s"]
        log(f"traversal 256 px     16 frames at the paper preset: {t['batched_s']:.3f} s batched, "
            f"{t['one_at_a_time_s']:.3f} s one at a time (first call {t['first_call_s']:.3f} s)")
    return result
