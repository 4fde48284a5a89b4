"""The dashboard in a real browser (Debian's chromium driven by Playwright), served by
``seegaan-explore demo`` through Voila and, as a widget, in JupyterLab: pick an attribute, click a
patient, press play, and check that the frames are painted while the film plays, that the prediction
curve and attribution panel respond, that the film, Play and the cohort map fit a 1280x800 laptop
screen, and that no request leaves the machine.

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

import numpy as np
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
# anywidget rejects a promise when a widget's module takes over 2 s to initialise; plotly's 5 MB bundle
# can, on a loaded machine. That map never applies an edit: the Explorer replaces it (the tests check that
# the map recolours and answers clicks).
ANYWIDGET_SLOW_START = "[anywidget] Failed to initialize model."
START_S = 180  # kernel start, building the cohort and the first render, on a loaded 2-core machine


PREHEATED_STARTED = "Kernel started"  # Voila's log line once its preheated kernel is in the pool


@contextmanager
def _server(command: list[str], port: int, log: Path, ready: str | None = PREHEATED_STARTED):
    """Run a server until the test ends; its output goes to ``log`` (shown when it fails to start).
    Waits until it listens and its log has the line ``ready``: Voila gives a page asked for before its
    preheated kernel has started a kernel of its own (two dashboards loading on 2 cores), and the
    browser that ``demo`` opens comes a second later, through Voila's redirect page."""
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ,
                                                                                       "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + START_S
        while not listening(port) or (ready and ready not in log.read_text()):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {' '.join(command)}\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield process
    finally:
        process.terminate()
        process.wait(60)


def _tiny_dashboard(path: Path, change: str = "", after: str = "") -> Path:
    """A notebook serving the tiny setup of ``ui_cohort.py``; ``change`` edits its table first, ``after``
    runs once the dashboard (``explorer``) is made, before it is shown."""
    source = ("import sys\n"
              f"sys.path.insert(0, {str(TESTS)!r})\n"
              "from ui_cohort import small_setup\n"
              "from seegaan_explore.ui.explorer import Explorer\n\n"
              f"model, latents, table, cnn, oracle, images = small_setup(40)\n{change}\n"
              f"explorer = Explorer(model, latents, table, cnn=cnn, oracle=oracle, images=images)\n{after}\n"
              "explorer")
    path.write_text(json.dumps({
        "cells": [{"cell_type": "code", "execution_count": None, "id": "dashboard", "metadata": {}, "outputs": [],
                   "source": source}],
        "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5}))
    return path


@contextmanager
def _opened(page, notebook: Path, log: Path):
    """``notebook`` served by ``seegaan-explore demo --notebook``, open in ``page`` and drawn."""
    port = free_port()
    command = [sys.executable, "-m", "seegaan_explore", "demo", "--no-browser", "--port", str(port),
               "--notebook", str(notebook)]
    with _server(command, port, log):
        page.goto(f"http://127.0.0.1:{port}/", timeout=START_S * 1000)
        _wait_until_drawn(page)
        yield


@pytest.fixture(scope="module")
def notebook(tmp_path_factory) -> Path:
    return _tiny_dashboard(tmp_path_factory.mktemp("served") / "tiny_dashboard.ipynb")


LAPTOP = {"width": 1280, "height": 800}
DESKTOP = {"width": 1600, "height": 1200}


@pytest.fixture(params=[LAPTOP], ids=["1280x800"])
def viewport(request):
    return request.param


@pytest.fixture
def browser(tmp_path, viewport):
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
            viewport=viewport,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        context.route("**/*", route)
        page = context.pages[0] if context.pages else context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)) if str(e) != ANYWIDGET_SLOW_START else None)
        yield page, blocked, errors
        context.close()


FILM = """() => {
    const film = document.querySelector('.seegaan-film-player');
    if (!film) return null;
    const spread = (image) => {  // the standard deviation of the painted grey levels: 0 for a blank panel
        if (!image || !image.complete || !image.naturalWidth) return -1;
        const canvas = document.createElement('canvas');
        canvas.width = canvas.height = 32;
        const context = canvas.getContext('2d');
        context.drawImage(image, 0, 0, 32, 32);
        const data = context.getImageData(0, 0, 32, 32).data;
        let sum = 0, squares = 0;
        for (let i = 0; i < data.length; i += 4) {
            const v = (data[i] + data[i + 1] + data[i + 2]) / 3; sum += v; squares += v * v;
        }
        const mean = sum / 1024;
        return Math.sqrt(Math.max(0, squares / 1024 - mean * mean));
    };
    const line = film.querySelector('.seegaan-film-chart polyline');
    return {painted: film.dataset.painted, label: film.querySelector('.seegaan-film-label').textContent,
            frame: film.querySelector('.seegaan-film-frame').getAttribute('src'),
            frameSpread: spread(film.querySelector('.seegaan-film-frame')),
            changeSpread: spread(film.querySelector('.seegaan-film-change')),
            curve: line ? line.getAttribute('points') : null,
            // where the leftmost label beside the chart starts: below 0 it runs off the chart's edge
            tickLeft: Math.min(...[...film.querySelectorAll('.seegaan-film-chart .tick')].map((t) => t.getBBox().x)),
            title: film.querySelector('.seegaan-film-title-curve').textContent};
}"""


def _wait_until_drawn(page) -> None:
    """The page is ready when the film shows a frame and the cohort map is drawn."""
    page.wait_for_function(f"() => {{ const s = ({FILM})(); return s && s.frameSpread > 0; }}",
                           timeout=START_S * 1000)
    page.wait_for_selector(".seegaan-scatter .main-svg", timeout=START_S * 1000)


def _on_screen(page, selector: str, viewport: dict) -> bool:
    box = page.locator(selector).first.bounding_box()
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= viewport["height"] \
        and box["x"] + box["width"] <= viewport["width"]


def _play_and_sample(page) -> tuple[list[dict], float | None]:
    """Press Play and read the painted pixels of both panels every 20 ms until the film stops."""
    samples, second = [], None
    started = time.perf_counter()
    page.click(".seegaan-film-play")
    while time.perf_counter() - started < 6:
        state = page.evaluate(FILM)
        samples.append(state)
        if second is None and len({s["painted"] for s in samples}) >= 2:
            second = time.perf_counter() - started
        if "Play" in page.inner_text(".seegaan-film-play") and len(samples) > 5:
            break  # the film reached its last frame and stopped
        page.wait_for_timeout(20)
    return samples, second


def _check_layout(page, viewport: dict) -> None:
    """The dashboard's page: one title; the film, its change map with a colour bar, Play and the cohort
    map on screen without scrolling; the upload beside the patient it replaces."""
    assert page.inner_text("body").count("SEE-GAAN explorer") == 1
    for hook in (".seegaan-film-frame", ".seegaan-film-change", ".seegaan-film-colourbar", ".seegaan-film-play",
                 ".seegaan-scatter"):
        assert _on_screen(page, hook, viewport), f"{hook} is not on a {viewport} screen without scrolling"
    assert page.locator(".seegaan-film-colourbar").first.bounding_box()["height"] >= 4
    patient, upload = (page.locator(hook).first.bounding_box() for hook in (".seegaan-patient", ".seegaan-upload"))
    beside = patient["x"] + patient["width"] <= upload["x"] and abs(
        (patient["y"] + patient["height"] / 2) - (upload["y"] + upload["height"] / 2)) < patient["height"]
    assert beside, f"the upload ({upload}) is not beside the patient picker ({patient})"


def _check_within_the_cell(page) -> None:
    """In a notebook, narrower than Voila's page (JupyterLab's file browser beside it), the film's panels
    wrap rather than run past the notebook's right edge, where nothing scrolls to them."""
    cell = page.locator(".jp-Notebook").first.bounding_box()  # what the notebook shows; its cells may be wider
    for hook in (".seegaan-film-frame", ".seegaan-film-change", ".seegaan-film-colourlabels", ".seegaan-film-chart"):
        box = page.locator(hook).first.bounding_box()
        assert box["x"] >= cell["x"] and box["x"] + box["width"] <= cell["x"] + cell["width"] + 1, \
            f"{hook} ({box}) runs past the notebook ({cell})"


def _check_a_falling_film_starts_at_the_left(page) -> None:
    """A film asked from +2 to -2 SD runs downwards: its curve's first frame is drawn at the left, where
    its slider starts, and the axis's left label is its high end."""
    before = page.evaluate(FILM)["curve"]
    for hook, value in ((".seegaan-start input", "2"), (".seegaan-stop input", "-2")):
        page.fill(hook, value)
        page.press(hook, "Enter")
    page.wait_for_function(f"(before) => ({FILM})().curve !== before", arg=before, timeout=60_000)
    points = [[float(v) for v in p.split(",")] for p in page.evaluate(FILM)["curve"].split()]
    assert points[0][0] < points[-1][0], f"a falling film's first frame is drawn right of its last: {points}"


def _played_in(page, speed: str) -> float:
    """Seconds the film takes to play through at ``speed`` (as the speed control lists it)."""
    page.select_option(".seegaan-film-speed", label=speed)
    started = time.perf_counter()
    page.click(".seegaan-film-play")
    page.wait_for_function("() => document.querySelector('.seegaan-film-play').textContent.includes('Play')",
                           timeout=30_000)
    return time.perf_counter() - started


def _exercise(page, tmp_path: Path, label: str, viewport: dict, layout: bool = True, bundled: bool = False) -> dict:
    """Pick an attribute, click a patient, play; returns the timings measured on the way. On the bundled
    dashboard the attribute is changed with integrated gradients selected (the film must not wait for it)."""
    timings = {}
    _wait_until_drawn(page)
    page.wait_for_function("() => document.querySelector('.seegaan-status').textContent.includes('Shown')")
    if layout:
        _check_layout(page, viewport)
    if bundled:
        page.select_option(".seegaan-method select", label="integrated gradients")
        page.wait_for_function("() => document.querySelector('.seegaan-attribution-caption').textContent"
                               ".includes('integrated gradients')", timeout=60_000)
    first = page.evaluate(FILM)
    assert first["frame"].startswith("data:image/png;base64,") and first["curve"]
    assert page.locator(".seegaan-verdict").count() == 1  # the verdict heads "What this shows"

    started = time.perf_counter()
    names = page.eval_on_selector(".seegaan-attribute select", "s => [...s.options].map(o => o.textContent)")
    ctr = next(k for k, n in enumerate(names) if n.replace("\xa0", " ") in ("ctr", "cardiothoracic ratio"))
    page.select_option(".seegaan-attribute select", index=ctr)  # (its label where a dictionary names it)
    page.wait_for_function(f"(before) => ({FILM})().curve !== before", arg=first["curve"], timeout=60_000)
    timings["attribute_change_to_new_film_s" + ("_integrated_gradients_selected" if bundled else "")] = \
        time.perf_counter() - started
    page.wait_for_function("() => /Shown: (ctr|cardiothoracic ratio)/.test("
                           "document.querySelector('.seegaan-status').textContent)")
    page.wait_for_function("() => /ctr|cardiothoracic/.test("
                           "document.querySelector('.seegaan-scatter .cbtitle').textContent)",
                           timeout=10_000)  # the cohort map is coloured by the new attribute

    # hover a point: its thumbnail shows (in a dense cohort the nearest of overlapping points answers)
    points = page.locator(".seegaan-scatter .scatterlayer .trace").first.locator("path.point")
    points.nth(5).scroll_into_view_if_needed()  # in a notebook at 1280x800 the map starts below the fold
    box = points.nth(5).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.wait_for_function("() => /\\(#\\d+\\)/.test("
                           "document.querySelector('.seegaan-thumbnail-caption').textContent)", timeout=30_000)
    hovered = re.search(r"\(#(\d+)\)", page.inner_text(".seegaan-thumbnail-caption")).group(1)
    assert hovered != "0"  # patient 0 is selected already
    before = page.evaluate(FILM)["frame"]
    page.mouse.click(x, y)  # selects the hovered patient
    page.wait_for_function("(k) => document.querySelector('.seegaan-patient input').value === k", arg=hovered,
                           timeout=60_000)
    page.wait_for_function(f"(before) => ({FILM})().frame !== before", arg=before, timeout=60_000)
    page.wait_for_function("(k) => document.querySelector('.seegaan-patient-info').textContent.includes(`(#${k})`)",
                           arg=hovered)

    # playing paints every frame: no sample may find a blank panel, and the film moves through its frames
    samples, second = _play_and_sample(page)
    timings["play_to_second_frame_s"] = second
    assert len({s["painted"] for s in samples}) >= 4, "pressing play did not step through the frames"
    blank = [s for s in samples if s["frameSpread"] <= 1 or s["changeSpread"] < 0]
    assert not blank, f"{len(blank)} of {len(samples)} samples during play found an empty panel"
    assert len({s["label"] for s in samples}) >= 4

    # where the film stopped, the attribution follows: one slider
    last = page.evaluate(FILM)["painted"]
    page.wait_for_function("(k) => document.querySelector('.seegaan-attribution-caption').textContent"
                           ".includes(`on frame ${k} `)", arg=last, timeout=60_000)
    # both maps painted, at one size (an image is decoded a moment after its caption changes)
    page.wait_for_function("() => { const w = ['.seegaan-attribution-original', '.seegaan-attribution-frame']"
                           ".map(h => document.querySelector(h).naturalWidth); return w[0] > 0 && w[0] === w[1]; }",
                           timeout=30_000)
    assert "rank correlation" in page.inner_text(".seegaan-attribution-caption")
    if not bundled:  # the speed control: 9 frames at 4 and at 16 frames a second
        slow, fast = _played_in(page, "½×"), _played_in(page, "2×")
        assert slow > 1.5 and fast < slow / 2, f"½× played in {slow:.2f} s, 2× in {fast:.2f} s"
    page.screenshot(path=str(_screenshots(tmp_path) / f"{label}-{viewport['width']}x{viewport['height']}.png"))

    # a radiograph of one's own, uploaded: it is encoded, and the film shows its traversal
    upload = tmp_path / "mine.png"
    Image.fromarray(to_uint8(render(sample_individual(9, 0), 64).image)).save(upload)
    before = page.evaluate(FILM)["frame"]
    with page.expect_file_chooser() as chooser:  # the upload button opens a file chooser
        page.click(".seegaan-upload")
    chooser.value.set_files(str(upload))
    page.wait_for_function("() => document.querySelector('.seegaan-patient-info').textContent"
                           ".includes('your image (mine.png)')", timeout=60_000)
    page.wait_for_function(f"(before) => ({FILM})().frame !== before", arg=before, timeout=60_000)
    if bundled:  # an image the bundled model cannot represent is flagged in the page, not shown as fine
        odd = tmp_path / "odd.png"
        Image.fromarray(((np.indices((128, 128)).sum(0) % 2) * 255).astype(np.uint8)).save(odd)
        with page.expect_file_chooser() as chooser:
            page.click(".seegaan-upload")
        chooser.value.set_files(str(odd))
        page.wait_for_selector(".seegaan-verdict-stop", timeout=60_000)
        assert "does not represent this image" in page.inner_text(".seegaan-verdict")
        assert "Do not interpret" in page.inner_text(".seegaan-status")
        # the verdict of a good film, on cohort patient 0: the bundled model's BMI film reaches what it
        # promises (a wrong-way film: test_a_film_whose_target_moves_the_wrong_way_says_do_not_interpret)
        page.select_option("select:has(option:text-is('a cohort patient (by #)'))", index=0)
        page.fill(".seegaan-patient input", "0")
        page.press(".seegaan-patient input", "Enter")
        _select(page, "BMI")
        page.wait_for_selector(".seegaan-verdict-trust", timeout=60_000)
        assert "The film can be trusted" in page.inner_text(".seegaan-verdict")
    return timings


def _screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: $SEEGAAN_SCREENSHOTS (e.g. docs/, for the README), else the test's folder."""
    folder = Path(os.environ.get("SEEGAAN_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _demo_bundle_present() -> bool:
    from seegaan_explore import demo

    return all((demo.WEIGHTS_DIR / name).is_file() for name in demo.FILES.values())


@pytest.mark.parametrize("served", ["tiny notebook", "bundled dashboard"], ids=["tiny", "bundled"])
def test_demo_command_serves_a_dashboard_that_plays(served, viewport, notebook, browser, tmp_path):
    """At laptop size (1280x800): the whole round; then, the window made desktop size (1600x1200), the
    layout again (the page reflows: the same checks without a second server)."""
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
        timings = _exercise(page, tmp_path, f"voila-{served.replace(' ', '-')}", viewport,
                            bundled=served == "bundled dashboard")
        page.set_viewport_size(DESKTOP)
        page.evaluate("() => window.scrollTo(0, 0)")
        _check_layout(page, DESKTOP)
        _check_a_falling_film_starts_at_the_left(page)
        assert not errors, errors  # (before the server stops: a closing connection may raise in the page)
        # the cohort map's plotly module came from the server by URL, not inside the widget's state
        assert page.evaluate("() => performance.getEntriesByType('resource')"
                             ".some(r => r.name.includes('/voila/labextensions/widgetbundle.js'))")
    log = (tmp_path / "voila.log").read_text()
    assert "Using pre-heated kernel" in log  # the page took the preheated one
    assert "over TCP without encryption" not in log  # the kernels talk over Unix sockets, no port to reach
    print(json.dumps({"served": served, "voila_first_page_ready_s": round(ready, 2),
                      **{k: round(v, 3) for k, v in timings.items()}}))
    assert not blocked, f"requests left the machine: {sorted(set(blocked))}"


def test_the_widget_works_in_jupyterlab(viewport, notebook, browser, tmp_path):
    page, blocked, errors = browser
    port = free_port()
    command = [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", f"--port={port}",
               "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=", "--ServerApp.password=",
               "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={notebook.parent}",
               f"--LabApp.user_settings_dir={tmp_path / 'settings'}",
               f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}"]
    with _server(command, port, tmp_path / "lab.log", ready=None):
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
        timings = _exercise(page, tmp_path, "jupyterlab", viewport, layout=False)
        _check_within_the_cell(page)
        assert not errors, errors
    print(json.dumps({"lab_run_to_ready_s": round(ready, 2), **{k: round(v, 3) for k, v in timings.items()}}))
    assert not blocked, f"requests left the machine: {blocked}"


def _select(page, label: str) -> None:
    """Pick the attribute shown as ``label`` and wait for its film."""
    before = page.evaluate(FILM)["frame"]
    names = page.eval_on_selector(".seegaan-attribute select", "s => [...s.options].map(o => o.textContent)")
    page.select_option(".seegaan-attribute select", index=[n.replace("\xa0", " ") for n in names].index(label))
    page.wait_for_function(f"(before) => ({FILM})().frame !== before", arg=before, timeout=START_S * 1000)
    page.wait_for_function("(l) => document.querySelector('.seegaan-status').textContent.includes(l)", arg=label,
                           timeout=START_S * 1000)


def test_a_film_whose_target_moves_the_wrong_way_says_do_not_interpret(viewport, browser, tmp_path):
    """A column whose sign is flipped (as a mislabelled export would be) gives a direction that moves the
    oracle's reading of it the wrong way: the page must say so in red, not as fine. (The tiny setup's
    oracle reads the brightness of any image.)"""
    page, blocked, errors = browser
    notebook = _tiny_dashboard(tmp_path / "flipped.ipynb", 'table["brightness"] = -table["brightness"]')
    with _opened(page, notebook, tmp_path / "voila.log"):
        _select(page, "upper_brightness")  # not flipped: the tiny model moves it the right way, if barely
        page.wait_for_selector(".seegaan-verdict-care", timeout=60_000)
        assert "wrong way" not in page.inner_text(".seegaan-verdict")
        _select(page, "brightness")
        page.wait_for_selector(".seegaan-verdict-stop", timeout=60_000)
        assert "Brightness moved the wrong way" in page.inner_text(".seegaan-verdict")
        assert "Do not interpret" in page.inner_text(".seegaan-status")
        assert not errors, errors
    assert not blocked, f"requests left the machine: {sorted(set(blocked))}"


def test_the_kernel_learns_when_a_browser_shows_the_film(viewport, browser, tmp_path):
    """The film's JavaScript tells the kernel that it has drawn the player (``Film.seen``): what starts the
    films prepared ahead of the viewer's next click, and what a kernel Voila preheats for the next viewer
    waits for instead of taking the cores from the viewers already there. A label on the page shows the
    kernel's value."""
    page, blocked, errors = browser
    probe = ("import ipywidgets\n"
             "probe = ipywidgets.Label()\n"
             "probe.add_class('seen-probe')\n"
             "ipywidgets.dlink((explorer.film, 'seen'), (probe, 'value'), lambda seen: 'yes' if seen else 'no')\n"
             "display(probe)")
    notebook = _tiny_dashboard(tmp_path / "seen.ipynb", after=probe)
    with _opened(page, notebook, tmp_path / "voila.log"):
        page.wait_for_function("() => document.querySelector('.seen-probe')?.textContent.includes('yes')",
                               timeout=30_000)
        assert not errors, errors
    assert not blocked, f"requests left the machine: {sorted(set(blocked))}"


HANNOVER_DICTIONARY = """\
sex: {label: Sex, levels: {f: female, m: male}}
projection: {label: View, levels: {ap: AP, pa: PA}}
outcome: {label: Outcome, levels: {ward: ward only, icu: intensive care, died: died}}
crp_val: {label: CRP, unit: mg/L, log: true, low: 0.1, high: 500, anchors: {5: upper normal limit}}
"""


def _hannover_cohort(hannover_dir: Path, folder: Path) -> Path:
    """The Hannover table with two columns a study would add: the outcome (a category of three: ward only,
    intensive care, died) and a split by patient (the first 80% of patient ids train)."""
    import pandas as pd

    table = pd.read_csv(hannover_dir / "data.csv")
    table["outcome"] = np.where(table["death_offset"].notna(), "died",
                                np.where(table["icu_admission_offset"].notna(), "icu", "ward"))
    patients = sorted(table["patient_id"].unique())
    train = set(patients[: int(0.8 * len(patients))])
    table["split"] = np.where(table["patient_id"].isin(train), "train", "test")
    path = folder / "cohort.csv"
    table.to_csv(path, index=False)
    return path


def test_your_own_cohort_end_to_end_from_check_to_a_served_film(hannover_dir, browser, tmp_path, capsys):
    """The path a data scientist takes with the real Hannover radiographs: check, fine-tune the bundled
    model a few steps, encode, fit directions of a category and a two-level column on the training
    patients, traverse a held-out patient, export, and serve the dashboard in the dictionary's words;
    in the browser a film is painted and plays, and the server-path box reads only the data folder."""
    import pandas as pd

    from seegaan_explore.cli import main
    from seegaan_explore.demo import FILES, WEIGHTS_DIR

    page, blocked, errors = browser
    csv = _hannover_cohort(hannover_dir, tmp_path)
    words = tmp_path / "words.yaml"  # as `dictionary` writes it, filled in
    assert main(["dictionary", "--data", str(csv), "--out", str(words)]) == 0
    words.write_text(HANNOVER_DICTIONARY)
    cohort = ["--data", str(csv), "--image-root", str(hannover_dir / "png"), "--patient-column", "patient_id",
              "--cache-dir", str(tmp_path / "cache"), "--no-progress"]

    assert main(["check", *cohort[:6], "--no-progress", "--attribute", "sex", "projection",
                 "--report", str(tmp_path / "report.csv")]) == 0
    report = pd.read_csv(tmp_path / "report.csv")
    assert len(report) == 243 and (report["status"] == "imported").all()

    run = tmp_path / "run"
    assert main(["train", *cohort, "--init", str(WEIGHTS_DIR / FILES["autoencoder"]), "--steps", "4",
                 "--batch-size", "8", "--out", str(run)]) == 0
    checkpoint = ["--checkpoint", str(run / "model.safetensors"), "--precision", "fp32"]
    capsys.readouterr()
    assert main(["encode", *checkpoint, *cohort]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["images"] == 243

    assert main(["direction", *checkpoint, *cohort, "--attribute", "sex", "outcome=died", "--confounders",
                 "projection", "--where", "split=train", "--dictionary", str(words), "--out",
                 str(tmp_path / "directions")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [line["ends"] for line in lines] == [["female", "male"], ["not died", "died"]]  # what - and + mean
    assert all(line["fitted_on"] == "split = train" for line in lines)
    held_out = pd.read_csv(csv).query("split == 'test'")["image_id"].iloc[0]
    assert main(["traverse", *checkpoint, *cohort, "--id", held_out, "--attribute", "outcome=died",
                 "--where", "split=train", "--range", "-2", "2", "--sd", "--dictionary", str(words), "--frames", "5",
                 "--format", "npz", "gif", "--out", str(tmp_path / "films")]) == 0
    saved = sorted((tmp_path / "films").glob("*.npz"))
    assert len(saved) == 1 and saved[0].with_suffix(".gif").is_file()
    assert main(["export", str(saved[0]), "--format", "png", "html"]) == 0
    assert "died" in saved[0].with_suffix(".html").read_text()

    port = free_port()
    command = [sys.executable, "-m", "seegaan_explore", "serve", "--no-browser", "--port", str(port), *checkpoint,
               *cohort, "--dictionary", str(words), "--data-root", str(hannover_dir / "png")]
    with _server(command, port, tmp_path / "serve.log"):
        page.goto(f"http://127.0.0.1:{port}/", timeout=START_S * 1000)
        _wait_until_drawn(page)
        names = [n.replace("\xa0", " ") for n in
                 page.eval_on_selector(".seegaan-attribute select", "s => [...s.options].map(o => o.textContent)")]
        assert names[:2] == ["Sex", "View"] and "CRP" in names and any(n.startswith("Outcome") for n in names)
        _select(page, "View")
        samples, _ = _play_and_sample(page)
        assert len({s["painted"] for s in samples}) >= 4
        assert not [s for s in samples if s["frameSpread"] <= 1], "a blank frame while the film played"
        assert min(s["tickLeft"] for s in samples) >= 0, samples[0]  # "20% towards PA" whole beside the chart
        assert page.locator(".seegaan-verdict").count() == 1
        page.fill(".seegaan-server-path input", "../data.csv")
        page.click(".seegaan-server-load")
        # beside the film's status, which a render of the played film's last frame may replace meanwhile
        page.wait_for_function("() => document.querySelector('.seegaan-notice').textContent"
                               ".includes('only files in the data folder')", timeout=60_000)
        one = sorted((hannover_dir / "png").glob("*.png"))[0].name
        page.fill(".seegaan-server-path input", one)
        page.click(".seegaan-server-load")
        page.wait_for_function("(n) => document.querySelector('.seegaan-patient-info').textContent"
                               ".includes(`your image (${n})`)", arg=one, timeout=60_000)
        page.screenshot(path=str(_screenshots(tmp_path) / "serve-hannover-1280x800.png"))
        assert not errors, errors
    assert "Using pre-heated kernel" in (tmp_path / "serve.log").read_text()
    assert not blocked, f"requests left the machine: {sorted(set(blocked))}"
