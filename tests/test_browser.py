"""The dashboard in a real browser (Debian's chromium driven by Playwright), served by
``seegaan-explore demo`` through Voila and, as a widget, in JupyterLab: pick an attribute, click a
patient, press play, and check that frames, prediction curve and attribution panel respond, with
no request leaving the machine but Voila's Font Awesome CSS.

Skipped where /usr/bin/chromium or playwright is missing (``apt-get install chromium``; never
``playwright install``). Served: a notebook with the tiny setup of ``ui_cohort.py``, and the bundled
dashboard where the demo weights are installed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image
from ports import free_port, listening

from seegaan_explore.data.images import to_uint8
from seegaan_explore.phantoms import render, sample_individual

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")]
sync_api = pytest.importorskip("playwright.sync_api")

TESTS = Path(__file__).resolve().parent
LOCAL = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")
VOILA_ALLOWED = {"https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@%5E5/css/all.min.css",
                 "https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@%5E5/css/v4-shims.min.css"}
# anywidget rejects a promise when a widget's module takes over 2 s to initialise; plotly's 5 MB bundle
# can, on a loaded machine. That map never applies an edit: the Explorer replaces it (the tests check that
# the map recolours and answers clicks).
ANYWIDGET_SLOW_START = "[anywidget] Failed to initialize model."
START_S = 180  # kernel start, building the cohort and the first render, on a loaded 2-core machine


@contextmanager
def _server(command: list[str], port: int, log: Path):
    """Run a server until the test ends; its output goes to ``log`` (shown when it fails to start)."""
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ,
                                                                                       "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + START_S
        while not listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {' '.join(command)}\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield process
    finally:
        process.terminate()
        process.wait(60)


@pytest.fixture(scope="module")
def notebook(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("served")
    source = ("import sys\n"
              f"sys.path.insert(0, {str(TESTS)!r})\n"
              "from ui_cohort import small_setup\n"
              "from seegaan_explore.ui.explorer import Explorer\n\n"
              "model, latents, table, cnn, oracle, images = small_setup(40)\n"
              "Explorer(model, latents, table, cnn=cnn, oracle=oracle, images=images)")
    path = folder / "tiny_dashboard.ipynb"
    path.write_text(json.dumps({
        "cells": [{"cell_type": "code", "execution_count": None, "id": "dashboard", "metadata": {}, "outputs": [],
                   "source": source}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5}))
    return path


@pytest.fixture
def browser(tmp_path):
    """A headless chromium whose non-local requests are blocked and recorded."""
    blocked: list[str] = []

    def route(r):
        if r.request.url.startswith(LOCAL):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tmp_path / "profile", executable_path=str(CHROMIUM), headless=True,
            viewport={"width": 1400, "height": 1300},
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        context.route("**/*", route)
        page = context.pages[0] if context.pages else context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)) if str(e) != ANYWIDGET_SLOW_START else None)
        yield page, blocked, errors
        context.close()


PLAYER = """() => {
    const player = document.querySelector('.seegaan-player');
    const image = player && player.querySelector('image');
    const curve = player && player.querySelector('.scatterlayer path.js-line');
    return {image: image ? (image.getAttribute('href') || image.getAttribute('xlink:href')) : null,
            curve: curve ? curve.getAttribute('d') : null, text: player ? player.textContent : ''};
}"""


def _click_centre(page, locator) -> None:
    """Move there first: plotly fires click events for the point under a hover."""
    box = locator.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.click(x, y)


def _wait_until_drawn(page) -> None:
    """The page is ready when the traversal player and the cohort map are drawn."""
    for drawn in (".seegaan-player .main-svg", ".seegaan-scatter .main-svg"):
        page.wait_for_selector(drawn, timeout=START_S * 1000)


def _exercise(page, tmp_path: Path, label: str) -> dict:
    """Pick an attribute, click a patient, play; returns the timings measured on the way."""
    timings = {}
    _wait_until_drawn(page)
    page.wait_for_function("() => document.querySelector('.seegaan-status').textContent.includes('Ready')")
    first = page.evaluate(PLAYER)
    assert first["image"].startswith("data:image/png;base64,") and first["curve"]

    started = time.perf_counter()
    page.select_option(".seegaan-attribute select", label="ctr")
    # a new figure: its slider names the attribute (a redraw on resize alone also changes the curve's path)
    page.wait_for_function(f"() => ({PLAYER})().text.includes('ctr: ')", timeout=60_000)
    timings["attribute_change_to_new_player_s"] = time.perf_counter() - started
    page.wait_for_function("() => document.querySelector('.seegaan-status').textContent.includes('Ready: ctr')")
    page.wait_for_function("() => document.querySelector('.seegaan-scatter .cbtitle').textContent === 'ctr'",
                           timeout=10_000)  # the cohort map is coloured by the new attribute
    second = page.evaluate(PLAYER)
    assert second["curve"] != first["curve"]

    # hover a point: its thumbnail shows (in a dense cohort the nearest of overlapping points answers)
    points = page.locator(".seegaan-scatter .scatterlayer .trace").first.locator("path.point")
    box = points.nth(5).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.wait_for_function("() => /\\(#\\d+\\)/.test(document.querySelector('.seegaan-thumbnail-caption').textContent)",
                           timeout=30_000)
    hovered = re.search(r"\(#(\d+)\)", page.inner_text(".seegaan-thumbnail-caption")).group(1)
    assert hovered != "0"  # patient 0 is selected already
    page.mouse.click(x, y)  # selects the hovered patient
    page.wait_for_function("(k) => document.querySelector('.seegaan-patient input').value === k", arg=hovered,
                           timeout=60_000)
    page.wait_for_function(f"(before) => ({PLAYER})().text !== before", arg=second["text"], timeout=60_000)
    page.wait_for_function("(k) => document.querySelector('.seegaan-patient-info').textContent.includes(`(#${k})`)",
                           arg=hovered)

    # playing steps the slider (its label names each frame's value) and swaps the frame images
    state = page.evaluate(PLAYER)
    labels, images = {state["text"]}, {state["image"]}
    started = time.perf_counter()
    _click_centre(page, page.locator(".seegaan-player .updatemenu-button", has_text="Play"))
    while time.perf_counter() - started < 5 and (len(labels) < 4 or len(images) < 2):
        state = page.evaluate(PLAYER)
        labels.add(state["text"])
        images.add(state["image"])
        if len(labels) == 2 and "play_to_second_frame_s" not in timings:
            timings["play_to_second_frame_s"] = time.perf_counter() - started
        page.wait_for_timeout(20)
    assert len(labels) >= 4 and len(images) >= 2, "pressing play did not step through the frames"

    widths = [page.eval_on_selector(hook, "img => img.naturalWidth")
              for hook in (".seegaan-attribution-original", ".seegaan-attribution-frame")]
    assert widths[0] == widths[1] > 0
    assert "rank correlation" in page.inner_text(".seegaan-attribution-caption")
    # the animation plays to its last frame and stops there. (Pausing it midway would reject plotly.js's
    # promise of the interrupted animation with no reason, an "Uncaught (in promise) undefined" on the page.)
    page.wait_for_function("""() => {
        const player = document.querySelector('.seegaan-player');
        const current = player.querySelector('.slider-label');  // "attribute: value", above the steps' labels
        const steps = player.querySelectorAll('.slider-label-group .slider-label');
        return steps.length > 0 && current.textContent.endsWith(': ' + steps[steps.length - 1].textContent);
    }""", timeout=30_000)
    page.wait_for_timeout(300)  # the last frame drawn
    page.screenshot(path=str(_screenshots(tmp_path) / f"{label}.png"), full_page=True)

    # a radiograph of one's own, uploaded: it is encoded, and the player shows its traversal
    upload = tmp_path / "mine.png"
    Image.fromarray(to_uint8(render(sample_individual(9, 0), 64).image)).save(upload)
    before = page.evaluate(PLAYER)["text"]
    with page.expect_file_chooser() as chooser:  # the upload button opens a file chooser
        page.click(".seegaan-upload")
    chooser.value.set_files(str(upload))
    page.wait_for_function("() => document.querySelector('.seegaan-patient-info').textContent"
                           ".includes('mine.png (uploaded)')", timeout=60_000)
    page.wait_for_function(f"(before) => ({PLAYER})().text !== before", arg=before, timeout=60_000)
    return timings


def _screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: $SEEGAAN_SCREENSHOTS (e.g. docs/, for the README), else the test's folder."""
    folder = Path(os.environ.get("SEEGAAN_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _demo_bundle_present() -> bool:
    from seegaan_explore import demo

    return all((demo.WEIGHTS_DIR / name).is_file() for name in demo.FILES.values())


@pytest.mark.parametrize("served", ["tiny notebook", "bundled dashboard"])
def test_demo_command_serves_a_dashboard_that_plays(served, notebook, browser, tmp_path):
    if served == "bundled dashboard" and not _demo_bundle_present():
        pytest.skip("the demo weights are not in seegaan_explore/weights")
    page, blocked, errors = browser
    port = free_port()
    command = [sys.executable, "-m", "seegaan_explore", "demo", "--no-browser", "--port", str(port)]
    command += ["--notebook", str(notebook)] if served == "tiny notebook" else []
    with _server(command, port, tmp_path / "voila.log"):
        started = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/", timeout=START_S * 1000)
        _wait_until_drawn(page)
        ready = time.perf_counter() - started
        timings = _exercise(page, tmp_path, f"voila-{served.replace(' ', '-')}")
        assert not errors, errors  # (before the server stops: a closing connection may raise in the page)
        # the cohort map's plotly module came from the server by URL, not inside the widget's state
        assert page.evaluate("() => performance.getEntriesByType('resource')"
                             ".some(r => r.name.includes('/voila/labextensions/widgetbundle.js'))")
    print(json.dumps({"served": served, "voila_first_page_ready_s": round(ready, 2),
                      **{k: round(v, 3) for k, v in timings.items()}}))
    assert set(blocked) <= VOILA_ALLOWED, f"requests left the machine: {sorted(set(blocked) - VOILA_ALLOWED)}"


def test_the_widget_works_in_jupyterlab(notebook, browser, tmp_path):
    page, blocked, errors = browser
    port = free_port()
    command = [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
               "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={notebook.parent}",
               f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
               f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"]
    with _server(command, port, tmp_path / "lab.log"):
        page.goto(f"http://127.0.0.1:{port}/lab/tree/{notebook.name}")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                               " && window.jupyterapp.shell.currentWidget.sessionContext"
                               " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                               " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
                               " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
                               " === 'idle'", timeout=START_S * 1000)
        started = time.perf_counter()
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        _wait_until_drawn(page)
        ready = time.perf_counter() - started
        timings = _exercise(page, tmp_path, "jupyterlab")
        assert not errors, errors
    print(json.dumps({"lab_run_to_ready_s": round(ready, 2), **{k: round(v, 3) for k, v in timings.items()}}))
    assert not blocked, f"requests left the machine: {blocked}"
