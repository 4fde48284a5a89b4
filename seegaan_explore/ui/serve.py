"""The clinician dashboard (``dashboard.ipynb``) served by Voila: what ``seegaan-explore demo`` runs
(its arguments are :mod:`seegaan_explore.cli.serve`'s).

The notebook ships inside the package (``seegaan_explore/ui/dashboard.ipynb``; ``notebooks/dashboard.ipynb``
is a link to it), so an installed package finds it. One kernel is started ahead of the first visitor
(preheated), idle kernels are shut down (each holds the model, a few hundred MB), and a token is
required whenever the server listens on anything but the loopback interface.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import ipaddress
import os
import shutil
import socket
import sys
from importlib import resources
from pathlib import Path

DEFAULT_PORT = 8866
IDLE_MINUTES = 5  # a closed (or disconnected) page's kernel is shut down after this long unused; an open
# page's never is (Voila culls only kernels without a connection, and never its preheated ones)
CULL_INTERVAL_S = 60
# A kernel taken by a viewer is replaced this long after, about when that viewer's first film is drawn
# (21-32 s on 2 cores): a replacement started at once (Voila's 1 s) made that first page 33-39 s instead
# of 21; a later one makes whoever reloads or arrives meanwhile wait for it, since Voila hands them the
# replacement still waiting to start (at 120 s, 209 s for the fourth of four viewers at once).
# benchmarks/dashboard_memory.py; docs/results/speed.md#the-dashboard.
REFILL_DELAY_S = 30
EXECUTION_TIMEOUT_S = 600  # loading the demo and the first render must finish within this
PLOTLY_MODULE_ENV = "SEEGAAN_EXPLORE_PLOTLY_MODULE"  # tells the kernels' cohort maps where to load plotly from
SERVER_PATHS_ENV = "SEEGAAN_EXPLORE_SERVER_PATHS"  # what the page may read by path: "0" nothing, "1" any, or a folder
TEMPLATE = "seegaan"  # Voila's lab page without its CDN stylesheets (ui/share/voila/templates/seegaan)


def dashboard_notebook() -> Path:
    """The dashboard notebook inside the installed package."""
    path = Path(str(resources.files("seegaan_explore.ui") / "dashboard.ipynb"))
    if not path.is_file():
        raise FileNotFoundError(f"the dashboard notebook is missing from the installation: {path}")
    return path


def voila_environment(environ: dict) -> dict:
    """``environ`` with this package's Voila template on the Jupyter data path, where Voila looks
    for :data:`TEMPLATE`: the page then asks for nothing outside this server."""
    share = str(Path(str(resources.files("seegaan_explore.ui") / "share")))
    paths = [share, *filter(None, environ.get("JUPYTER_PATH", "").split(os.pathsep))]
    return {**environ, "JUPYTER_PATH": os.pathsep.join(paths)}


def free_port(ip: str, port: int, tries: int = 50) -> int:
    """The first port from ``port`` on that nothing listens on at ``ip`` (as Voila would pick it), so
    that the URL printed is the one served."""
    for candidate in range(port, port + tries):
        with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET) as probe:
            try:
                probe.bind((ip, candidate))
            except OSError:
                continue
            return candidate
    raise ValueError(f"ports {port} to {port + tries - 1} on {ip} are all taken; choose another with --port")


def plotly_widget_module() -> tuple[Path, str] | None:
    """plotly's FigureWidget module, for Voila to serve beside the page: the folder to add to its
    labextensions path, and the module's URL below the server's base URL (versioned, so that a cached
    copy never outlives an upgrade). None when this plotly has no such file."""
    bundle = Path(importlib.util.find_spec("plotly").origin).parent / "package_data" / "widgetbundle.js"
    if not bundle.is_file():
        return None
    return bundle.parent, f"voila/labextensions/{bundle.name}?v={importlib.metadata.version('plotly')}"


def is_loopback(ip: str) -> bool:
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError as e:
        raise ValueError(f"--ip {ip!r} is not an IP address (use e.g. 127.0.0.1 or 0.0.0.0)") from e


def voila_command(notebook: Path, *, ip: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None,
                  open_browser: bool = True, idle_minutes: float = IDLE_MINUTES,
                  timeout_s: int = EXECUTION_TIMEOUT_S, preheated: int = 1) -> list[str]:
    """The Voila command line for ``notebook``; refuses a non-loopback address without a token.
    ``preheated`` kernels run the dashboard before anyone asks, so that many viewers at once get
    their page at once (each holds the models: a few hundred MB); one taken by a viewer is replaced
    :data:`REFILL_DELAY_S` later, not while that viewer's first film is still being drawn."""
    if not is_loopback(ip) and not token:
        raise ValueError(f"serving on {ip} lets other machines connect: a token is required")
    if preheated < 0:
        raise ValueError(f"--preheated must be 0 or more, got {preheated}")
    voila = shutil.which("voila", path=str(Path(sys.executable).parent)) or shutil.which("voila")
    if voila is None:
        raise FileNotFoundError("the voila command is not installed (pip install voila)")
    command = [voila, str(notebook), f"--port={port}", "--Voila.port_retries=0", f"--Voila.ip={ip}",
               f"--template={TEMPLATE}",
               f"--preheat_kernel={preheated > 0}", f"--pool_size={max(preheated, 1)}",
               f"--VoilaKernelManager.fill_delay={REFILL_DELAY_S}",
               f"--MappingKernelManager.cull_idle_timeout={int(idle_minutes * 60)}",
               "--MappingKernelManager.cull_connected=False",  # an open page's kernel stays, however idle
               f"--MappingKernelManager.cull_interval={CULL_INTERVAL_S}",
               f"--NotebookClient.timeout={int(timeout_s)}",
               f"--Voila.open_browser={open_browser}"]
    if os.name == "posix":  # kernels over Unix sockets: no TCP port for anyone else on the machine to reach
        command.append("--KernelManager.transport=ipc")
    module = plotly_widget_module()
    if module:
        command.append(f"--VoilaConfiguration.extra_labextensions_path={module[0]}")
    if token:
        command.append(f"--Voila.token={token}")
    return command


def url(ip: str, port: int, token: str | None) -> str:
    host = "127.0.0.1" if ip in ("0.0.0.0", "::") else (f"[{ip}]" if ":" in ip else ip)
    return f"http://{host}:{port}/" + (f"?token={token}" if token else "")
