"""``demo``: the clinician dashboard served by Voila (the command line of :mod:`seegaan_explore.ui.serve`)."""

from __future__ import annotations

import argparse
import os
import secrets
from pathlib import Path

from ..ui.serve import (
    DEFAULT_PORT,
    EXECUTION_TIMEOUT_S,
    IDLE_MINUTES,
    PLOTLY_MODULE_ENV,
    SERVER_PATHS_ENV,
    dashboard_notebook,
    free_port,
    is_loopback,
    plotly_widget_module,
    url,
    voila_command,
    voila_environment,
)

__all__ = ["add_demo"]


def add_demo(sub) -> None:
    p = sub.add_parser("demo", help="serve the clinician dashboard (Voila) on this machine",
                       description="Serve the explorer dashboard with Voila. Listens on 127.0.0.1 unless "
                                   "--ip says otherwise; on any other address a token is required (one is "
                                   "generated when --token is not given).")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    p.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--token", help="access token (required off loopback; generated when missing)")
    p.add_argument("--no-browser", action="store_true", help="do not open a browser")
    p.add_argument("--idle-minutes", type=float, default=IDLE_MINUTES,
                   help=f"shut down a viewer's kernel after this long unused (default {IDLE_MINUTES})")
    p.add_argument("--timeout", type=int, default=EXECUTION_TIMEOUT_S,
                   help=f"seconds the dashboard may take to start (default {EXECUTION_TIMEOUT_S})")
    p.add_argument("--preheated", type=int, default=1,
                   help="dashboards kept running for the next viewers, one per viewer expected at once "
                        "(default 1; each holds a few hundred MB)")
    p.add_argument("--notebook", type=Path, help="serve this notebook instead of the bundled dashboard")
    p.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    try:
        notebook = args.notebook or dashboard_notebook()
        if not Path(notebook).is_file():
            raise FileNotFoundError(f"no notebook at {notebook}")
        token = args.token or (None if is_loopback(args.ip) else secrets.token_urlsafe(24))
        port = free_port(args.ip, args.port)
        if port != args.port:
            print(f"port {args.port} is taken; serving on {port}", flush=True)
        command = voila_command(Path(notebook), ip=args.ip, port=port, token=token,
                                open_browser=not args.no_browser, idle_minutes=args.idle_minutes,
                                timeout_s=args.timeout, preheated=args.preheated)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"seegaan-explore demo: {e}") from e
    module = plotly_widget_module()
    if module:  # the kernels' cohort maps load it from there instead of carrying it (see CohortMap)
        os.environ[PLOTLY_MODULE_ENV] = module[1]
    # off loopback, whoever has the token must not read files on this server by typing a path
    os.environ[SERVER_PATHS_ENV] = "1" if is_loopback(args.ip) else "0"
    print(f"Dashboard: {url(args.ip, port, token)}  (Ctrl-C stops it)", flush=True)
    # Voila replaces this process: no idle Python (with torch loaded) beside it
    os.execve(command[0], command, voila_environment(dict(os.environ)))
