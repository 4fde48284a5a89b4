"""How fast phantoms are made on this machine: one render in one process (best of 4 runs of 50), and
the ``phantoms`` command writing PNGs with all cores, start to end. docs/phantoms.md#speed quotes it.

    python benchmarks/phantom_speed.py [--sizes 128 256] [--cli-n 4000 2000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

from seegaan_explore.phantoms import render, sample_individual


def render_ms(size: int, repeats: int = 4, images: int = 50) -> float:
    """Milliseconds per render at ``size`` px, best of ``repeats`` loops (after one render builds the
    texture bank for that size)."""
    render(sample_individual(seed=0, index=0), size)
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for index in range(images):
            render(sample_individual(seed=1, index=index), size)
        best = min(best, (time.perf_counter() - started) / images)
    return 1000 * best


def cli_seconds(size: int, n: int) -> float:
    """Seconds ``seegaan-explore phantoms --n N --size S`` takes, start to end, into a new folder."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "seegaan_explore", "phantoms", "--n", str(n), "--size", str(size),
                        "--out", folder, "--no-progress"], check=True, capture_output=True)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--cli-n", type=int, nargs="+", default=[4000, 2000], help="images per size for the CLI")
    args = parser.parse_args()
    for size, n in zip(args.sizes, args.cli_n):
        ms, seconds = render_ms(size), cli_seconds(size, n)
        print(json.dumps({"size": size, "render_ms": round(ms, 2), "render_per_min_per_core": round(60_000 / ms),
                          "cli_images": n, "cli_s": round(seconds, 1), "cli_per_min": round(60 * n / seconds)}))


if __name__ == "__main__":
    main()
