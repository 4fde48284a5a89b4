"""Memory and latency of the dashboard with several concurrent viewers.

Starts ``seegaan-explore demo`` (the bundled dashboard, or ``--notebook``), waits until the
preheated kernel is idle (or, with ``--arrive start``, only until the server listens and has started
that kernel, as the page that ``seegaan-explore demo`` opens arrives), opens ``--viewers`` pages at
once in headless chromium, and reports per-kernel memory (RSS, USS, PSS) once every kernel is
idle, each page's time to a painted film and cohort map, and on one page (1280x800) the time from
picking another attribute, with an attribution method selected (default integrated gradients), to
the new film painted, and from pressing Play to the second frame. With ``--look S`` that viewer
looks at the opening film for S seconds first, while the kernel prepares the other attributes'
films. Each Voila page holds its own kernel until it is culled.

    python benchmarks/dashboard_memory.py [--viewers 4] [--preheated 1] [--arrive idle|start] [--notebook NB]
                                          [--attribute A] [--method M] [--look S] [--json]

Needs /usr/bin/chromium (apt-get install chromium). Without the bundled demo
(``seegaan_explore.demo``) and without ``--notebook``, it serves an untrained tiny model on 64
phantoms: the memory floor of a kernel (Python, torch, widgets), not of the demo model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from playwright.async_api import async_playwright

CHROMIUM = "/usr/bin/chromium"
LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")
FALLBACK = """import torch
from seegaan_explore.model import SeeGaan, preset_config
from seegaan_explore.model.cnn import CnnConfig, RadiographCNN
from seegaan_explore.phantoms import generate_cohort
from seegaan_explore.ui.explorer import Explorer

torch.manual_seed(0)
images, table = generate_cohort(64, size=64, seed=0)
model = SeeGaan(preset_config("tiny", 64), with_training_networks=False)
latents = model.encode(torch.from_numpy(images)[:, None])
cnn = RadiographCNN(CnnConfig(resolution=64, widths=(16, 32, 64), attribute="nt_probnp_pg_ml", log_transform=True))
Explorer(model, latents, table, cnn=cnn.eval(), images=images)"""


def _fallback_notebook(folder: Path) -> Path:
    path = folder / "tiny_dashboard.ipynb"
    path.write_text(json.dumps({
        "cells": [{"cell_type": "code", "execution_count": None, "id": "dashboard", "metadata": {}, "outputs": [],
                   "source": FALLBACK}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5}))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kernels(server: psutil.Process) -> list[psutil.Process]:
    return [p for p in server.children(recursive=True) if "ipykernel" in " ".join(p.cmdline())]


def _wait_idle(server: psutil.Process, expected: int, timeout: float = 600) -> None:
    """Until ``expected`` kernels exist and none used more than 3 % CPU over two seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kernels = _kernels(server)
        if len(kernels) >= expected:
            for k in kernels:
                k.cpu_percent(None)
            time.sleep(2)
            if all(k.cpu_percent(None) < 3 for k in kernels if k.is_running()):
                return
        else:
            time.sleep(0.5)
    raise TimeoutError(f"kernels did not settle within {timeout} s")


def _wait_started(port: int, log: Path, timeout: float = 120) -> None:
    """Until the server accepts a connection (a bare TCP connect: a page request would take the
    preheated kernel) and its preheated kernel has started, as for the browser that ``demo`` opens
    through Voila's redirect page a second later (a page before that gets a kernel of its own)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0 and "Kernel started" in log.read_text():
                return
        time.sleep(0.2)
    raise TimeoutError(f"the server on port {port} did not start a kernel within {timeout} s")


def _memory(process: psutil.Process) -> dict:
    info = process.memory_full_info()
    return {"pid": process.pid, "rss_mb": info.rss / 2**20, "uss_mb": info.uss / 2**20,
            "pss_mb": getattr(info, "pss", float("nan")) / 2**20}


FILM = """() => { const f = document.querySelector('.seegaan-film-player');
  const i = f && f.querySelector('.seegaan-film-frame');
  return {painted: f ? f.dataset.painted : null, shown: !!(i && i.complete && i.naturalWidth),
          label: f ? f.querySelector('.seegaan-film-label').textContent : ''}; }"""


async def _open(context, url: str) -> tuple:
    page = await context.new_page()
    started = time.perf_counter()
    await page.goto(url, timeout=600_000)
    await page.wait_for_function(f"() => ({FILM})().shown", timeout=600_000)  # ready: a frame painted...
    await page.wait_for_selector(".seegaan-scatter .main-svg", timeout=600_000)  # ...and the cohort map
    return page, time.perf_counter() - started


async def _interact(page, attribute: str, method: str, look: float) -> dict:
    await asyncio.sleep(look)
    await page.select_option(".seegaan-method select", label=method)
    await page.wait_for_function("(m) => document.querySelector('.seegaan-attribution-caption').textContent"
                                 ".includes(m)", arg=method, timeout=120_000)
    started = time.perf_counter()
    await page.select_option(".seegaan-attribute select", label=attribute)
    # the new film's frames are painted when its label names the attribute
    await page.wait_for_function(f"(a) => ({FILM})().shown && ({FILM})().label.startsWith(a + ': ')", arg=attribute,
                                 timeout=120_000)
    changed = time.perf_counter() - started
    first = (await page.evaluate(FILM))["painted"]
    started = time.perf_counter()
    await page.click(".seegaan-film-play")
    await page.wait_for_function(f"(f) => ({FILM})().painted !== f", arg=first, timeout=30_000)
    return {"attribute_change_to_new_film_s": changed, "play_to_second_frame_s": time.perf_counter() - started,
            "attribution_selected": method}


async def _viewers(url: str, n: int, attribute: str, method: str, look: float) -> dict:
    blocked: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        context = await browser.new_context(viewport={"width": 1280, "height": 800})

        async def route(r):
            if r.request.url.startswith(LOCAL):
                await r.continue_()
            else:
                blocked.append(r.request.url)
                await r.abort()

        await context.route("**/*", route)
        opened = await asyncio.gather(*[_open(context, url) for _ in range(n)])
        timing = await _interact(opened[0][0], attribute, method, look)
        await browser.close()
        return {"page_ready_s": [t for _, t in opened], **timing, "blocked": sorted(set(blocked))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=4)
    parser.add_argument("--preheated", type=int, default=1, help="passed to `seegaan-explore demo`")
    parser.add_argument("--arrive", choices=("idle", "start"), default="idle",
                        help="open the pages once the preheated kernels are idle, or as soon as the server has "
                             "started its preheated kernel (as the browser `demo` opens does)")
    parser.add_argument("--notebook", type=Path, help="default: the bundled dashboard (needs seegaan_explore.demo)")
    parser.add_argument("--attribute", default="age", help="the attribute picked on the first page (as listed)")
    parser.add_argument("--method", default="integrated gradients",
                        help="the attribution selected before the attribute is picked (as listed)")
    parser.add_argument("--look", type=float, default=0.0,
                        help="seconds the first viewer looks at the opening film before picking the attribute")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="seegaan-bench-"))
    notebook, what = args.notebook, "the given notebook"
    if notebook is None:
        try:
            import seegaan_explore.demo  # noqa: F401
            what = "the bundled dashboard"
        except ImportError:
            notebook, what = _fallback_notebook(folder), "an untrained tiny model on 64 phantoms (no demo bundle)"
    port = _free_port()
    command = [sys.executable, "-m", "seegaan_explore", "demo", "--no-browser", "--port", str(port),
               "--preheated", str(args.preheated)]
    command += ["--notebook", str(notebook)] if notebook else []
    with open(folder / "voila.log", "w") as log:
        started = time.perf_counter()
        server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        voila = psutil.Process(server.pid)
        if args.arrive == "start":
            _wait_started(port, folder / "voila.log")
            preheated = []
        else:
            _wait_idle(voila, args.preheated)
            preheated = [_memory(k) for k in _kernels(voila)]
        arrived = time.perf_counter() - started
        result = asyncio.run(_viewers(f"http://127.0.0.1:{port}/", args.viewers, args.attribute, args.method,
                                     args.look))
        _wait_idle(voila, args.viewers)
        kernels = [_memory(k) for k in _kernels(voila)]
        out = {"served": what, "viewers": args.viewers, "preheated": args.preheated, "arrived_after_start_s": arrived,
               "preheated_kernels": preheated,
               "kernels": kernels, "voila_server": _memory(voila),
               **result}
    finally:
        server.terminate()
        server.wait(60)
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"{what}; {args.viewers} viewers at once, {args.preheated} kernel(s) preheated; "
          f"pages opened {out['arrived_after_start_s']:.1f} s after the server started")
    print("page ready (s): " + ", ".join(f"{t:.1f}" for t in out["page_ready_s"]))
    print(f"attribute change to the new film painted ({out['attribution_selected']} selected): "
          f"{out['attribute_change_to_new_film_s']:.2f} s; play to second frame: {out['play_to_second_frame_s']:.2f} s")
    print(f"{len(kernels)} kernels ({args.viewers} viewers + {args.preheated} preheated for the next):")
    for k in kernels:
        print(f"  pid {k['pid']}: RSS {k['rss_mb']:.0f} MB, USS {k['uss_mb']:.0f} MB, PSS {k['pss_mb']:.0f} MB")
    print(f"voila server: RSS {out['voila_server']['rss_mb']:.0f} MB; requests blocked: {out['blocked']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
