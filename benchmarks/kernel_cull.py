"""How long after a viewer closes the dashboard its kernel is shut down (the culler of
``--idle-minutes``), and that the preheated kernel stays: ``demo`` with a short idle time, one page
opened in headless Chromium until it shows a film, then closed.

    python benchmarks/kernel_cull.py [--idle-minutes 0.5] [--port 8873]
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-minutes", type=float, default=0.5)
    parser.add_argument("--port", type=int, default=8873)
    parser.add_argument("--wait", type=float, default=180, help="seconds to wait for the cull")
    args = parser.parse_args()
    log = Path(tempfile.mkdtemp()) / "voila.log"
    server = subprocess.Popen([sys.executable, "-m", "seegaan_explore", "demo", "--no-browser", "--port",
                               str(args.port), "--idle-minutes", str(args.idle_minutes)],
                              stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", args.port), 1).close()
                break
            except OSError:
                time.sleep(0.2)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"http://127.0.0.1:{args.port}/", timeout=120_000)
            page.wait_for_function("() => document.querySelector('.seegaan-status')?.textContent.includes('Shown')",
                                   timeout=120_000)
            browser.close()
        closed, culled = time.perf_counter(), None
        while time.perf_counter() - closed < args.wait and culled is None:
            time.sleep(1)
            if "Culling '" in log.read_text():
                culled = time.perf_counter() - closed
    finally:
        server.terminate()
        server.wait(30)
    text = log.read_text()
    print(json.dumps({"idle_minutes": args.idle_minutes, "culled_after_close_s": None if culled is None
                      else round(culled, 1), "kernels_culled": text.count("Culling '"),
                      "preheated_kernel_used": "Using pre-heated kernel" in text}))


if __name__ == "__main__":
    main()
