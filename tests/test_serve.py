"""`seegaan-explore demo` finds the bundled dashboard and serves it with Voila, with a token off loopback."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from ports import free_port, listening

from seegaan_explore.cli import build_parser
from seegaan_explore.ui.serve import REFILL_DELAY_S, dashboard_notebook, plotly_widget_module, voila_command

ROOT = Path(__file__).resolve().parents[1]


def test_the_notebook_in_notebooks_is_the_one_the_package_ships():
    assert (ROOT / "notebooks" / "dashboard.ipynb").samefile(dashboard_notebook())
    notebook = json.loads(dashboard_notebook().read_text())
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)  # committed without outputs
    assert "Explorer(**dashboard_kwargs())" in "".join(code[0]["source"])  # the demo, or what `serve` names


def test_voila_command_preheats_culls_and_times_out(tmp_path):
    command = voila_command(tmp_path / "x.ipynb", port=9001, idle_minutes=2, timeout_s=30, open_browser=False)
    assert Path(command[0]).name == "voila" and command[1] == str(tmp_path / "x.ipynb")
    for flag in ("--port=9001", "--Voila.ip=127.0.0.1", "--preheat_kernel=True", "--pool_size=1",
                 "--MappingKernelManager.cull_idle_timeout=120", "--MappingKernelManager.cull_interval=60",
                 "--MappingKernelManager.cull_connected=False",
                 "--NotebookClient.timeout=30", "--Voila.open_browser=False"):
        assert flag in command
    assert not any(c.startswith("--Voila.token") for c in command)


def test_a_taken_kernel_is_replaced_later_by_the_setting_voila_reads():
    """A misspelt setting is only a warning in Voila's log: check that its kernel manager has it."""
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
    from voila.voila_kernel_manager import voila_kernel_manager_factory

    flag = next(c for c in voila_command(Path("x.ipynb")) if ".fill_delay=" in c)
    section, value = flag.removeprefix("--").split(".fill_delay=")
    manager = voila_kernel_manager_factory(AsyncMappingKernelManager, True, 1)
    assert section == manager.__name__ and "fill_delay" in manager.class_trait_names()
    assert float(value) == REFILL_DELAY_S
    assert 15 <= REFILL_DELAY_S <= 60  # after the first film is drawn; not minutes for whoever reloads


def test_voila_serves_plotlys_widget_module_so_that_cohort_maps_need_not_carry_it(tmp_path, monkeypatch):
    folder, path = plotly_widget_module()
    assert (folder / "widgetbundle.js").stat().st_size > 1_000_000  # plotly.js inside
    assert f"--VoilaConfiguration.extra_labextensions_path={folder}" in voila_command(tmp_path / "x.ipynb")
    assert path == f"voila/labextensions/widgetbundle.js?v={importlib.metadata.version('plotly')}"

    import plotly.graph_objects as go

    from seegaan_explore.ui.cohort_map import CohortMap
    from seegaan_explore.ui.serve import PLOTLY_MODULE_ENV

    carried = CohortMap(go.Figure(go.Scatter(x=[1], y=[2])), threading.RLock())._esm
    monkeypatch.setenv(PLOTLY_MODULE_ENV, path)
    loader = CohortMap(go.Figure(go.Scatter(x=[1], y=[2])), threading.RLock())._esm
    assert len(carried) > 1_000_000 and len(loader) < 1000
    assert json.dumps(path) in loader and "export default" in loader


def test_more_kernels_can_be_preheated_or_none(tmp_path):
    assert "--pool_size=4" in voila_command(tmp_path / "x.ipynb", preheated=4)
    assert "--preheat_kernel=False" in voila_command(tmp_path / "x.ipynb", preheated=0)
    with pytest.raises(ValueError, match="--preheated must be 0 or more, got -1"):
        voila_command(tmp_path / "x.ipynb", preheated=-1)


def test_any_address_but_loopback_needs_a_token(tmp_path):
    with pytest.raises(ValueError, match="serving on 0.0.0.0 lets other machines connect: a token is required"):
        voila_command(tmp_path / "x.ipynb", ip="0.0.0.0")
    assert "--Voila.token=s3cret" in voila_command(tmp_path / "x.ipynb", ip="0.0.0.0", token="s3cret")
    with pytest.raises(ValueError, match="--ip 'my-laptop' is not an IP address"):
        voila_command(tmp_path / "x.ipynb", ip="my-laptop")
    args = build_parser().parse_args(["demo", "--no-browser", "--port", "9002"])
    assert (args.ip, args.port, args.no_browser, args.token) == ("127.0.0.1", 9002, True, None)


def _get(url: str) -> tuple[int, str]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(url, timeout=120) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


@pytest.mark.slow
def test_off_loopback_the_generated_token_is_printed_and_required(tmp_path):
    notebook = tmp_path / "hello.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "execution_count": None, "id": "a",
                                               "metadata": {}, "outputs": [], "source": "print('hello voila')"}],
                                    "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "seegaan_explore", "demo", "--ip", "0.0.0.0", "--port", str(port),
                                "--no-browser", "--notebook", str(notebook)], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = process.stdout.readline()
        token = re.search(r"\?token=(\S+)", line).group(1)
        assert line.startswith(f"Dashboard: http://127.0.0.1:{port}/?token=")
        deadline = time.monotonic() + 120
        while not listening(port):
            assert time.monotonic() < deadline and process.poll() is None, "voila did not start"
            time.sleep(0.3)
        assert _get(f"http://127.0.0.1:{port}/")[0] in (302, 403)
        assert _get(f"http://127.0.0.1:{port}/?token=wrong")[0] in (302, 403)
        status, body = _get(f"http://127.0.0.1:{port}/?token={token}")
        assert status == 200 and "hello voila" in body
        module = plotly_widget_module()[1]
        status, body = _get(f"http://127.0.0.1:{port}/{module}&token={token}")
        assert status == 200 and "window.Plotly" in body  # what the cohort maps import
    finally:
        process.terminate()
        process.wait(30)


@pytest.mark.slow
def test_the_url_printed_is_the_one_served_and_the_page_asks_for_nothing_outside(tmp_path):
    """Nor does the page Voila opens first, which sends the browser on (here a "browser" that keeps it)."""
    opened = tmp_path / "opened.html"
    browser = tmp_path / "browser"
    browser.write_text(f"#!{sys.executable}\nimport os, shutil, sys, urllib.parse, urllib.request\n"
                       "page = urllib.request.url2pathname(urllib.parse.urlparse(sys.argv[1]).path)\n"
                       f"shutil.copy(page, {str(opened)!r} + '.part')\n"  # whole, or not there: the test polls
                       f"os.replace({str(opened)!r} + '.part', {str(opened)!r})\n")
    browser.chmod(0o755)
    notebook = tmp_path / "hello.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "execution_count": None, "id": "a",
                                               "metadata": {}, "outputs": [], "source": "print('hello voila')"}],
                                    "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = subprocess.Popen([sys.executable, "-m", "seegaan_explore", "demo", "--port", str(port),
                                    "--notebook", str(notebook)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                   text=True, env={**os.environ, "PYTHONUNBUFFERED": "1", "BROWSER": f"{browser} %s"})
        try:
            assert process.stdout.readline().startswith(f"port {port} is taken; serving on ")
            served = int(re.match(r"Dashboard: http://127\.0\.0\.1:(\d+)/", process.stdout.readline()).group(1))
            assert served != port
            deadline = time.monotonic() + 120
            while not listening(served):
                assert time.monotonic() < deadline and process.poll() is None, "voila did not start"
                time.sleep(0.3)
            status, body = _get(f"http://127.0.0.1:{served}/")
            assert status == 200 and "hello voila" in body
            assert "https://" not in re.sub(r"<script.*?</script>", "", body, flags=re.S)  # no CDN stylesheet
            while not opened.is_file():
                assert time.monotonic() < deadline, "voila opened no browser"
                time.sleep(0.3)
            first = opened.read_text()
            assert f'content="1;url=http://127.0.0.1:{served}/"' in first
            assert not re.findall(r"https?://(?!127\.0\.0\.1:)", first)  # nothing outside, before the page
        finally:
            process.terminate()
            process.wait(30)
