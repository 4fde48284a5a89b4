"""``demo`` and ``serve``: the clinician dashboard served by Voila, on the built-in demo or on a
user's own model and cohort (the command line of :mod:`seegaan_explore.ui.serve`)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
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
from .common import add_autoencoder_arguments, add_cohort_arguments, import_options, user_errors

__all__ = ["add_demo", "add_serve"]


def _add_server_arguments(p) -> None:
    g = p.add_argument_group("server")
    g.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    g.add_argument("--ip", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    g.add_argument("--token", help="access token (required off loopback; generated when missing)")
    g.add_argument("--no-browser", action="store_true", help="do not open a browser")
    g.add_argument("--idle-minutes", type=float, default=IDLE_MINUTES,
                   help=f"shut down the kernel of a page that was closed (or lost its connection) after this "
                        f"long unused, freeing its memory; an open page's kernel stays (default {IDLE_MINUTES:g})")
    g.add_argument("--timeout", type=int, default=EXECUTION_TIMEOUT_S,
                   help=f"seconds the dashboard may take to start (default {EXECUTION_TIMEOUT_S})")
    g.add_argument("--preheated", type=int, default=1,
                   help="dashboards kept running for the next viewers, one per viewer expected at once "
                        "(default 1; each holds a few hundred MB)")
    g.add_argument("--data-root", type=Path,
                   help="offer a box for reading images by their path on this server, confined to this folder "
                        "(without it the box is offered only on loopback, and reads any path there)")


def add_demo(sub) -> None:
    p = sub.add_parser("demo", help="serve the clinician dashboard (Voila) on the built-in demo",
                       description="Serve the explorer dashboard with Voila on the bundled models and phantom "
                                   "cohort. Listens on 127.0.0.1 unless --ip says otherwise; on any other address "
                                   "a token is required (one is generated when --token is not given).")
    _add_server_arguments(p)
    p.add_argument("--notebook", type=Path, help="serve this notebook instead of the bundled dashboard")
    p.set_defaults(run=_run_demo)


def add_serve(sub) -> None:
    p = sub.add_parser("serve", help="serve the clinician dashboard on your own model and cohort",
                       description="Check and encode the cohort (from the latent store when unchanged), then serve "
                                   "the same dashboard as demo on this model and cohort: attributes from the "
                                   "table's columns, in the words of --dictionary where given. Loopback, token, "
                                   "idle kernels and preheating as for demo.")
    add_cohort_arguments(p)
    add_autoencoder_arguments(p)
    p.add_argument("--cnn", type=Path, help="an attribute CNN (from train-cnn): its prediction, curve and attributions")
    p.add_argument("--dictionary", type=Path,
                   help="data dictionary (CSV or YAML: label, unit, log scale, plausible range, anchors per "
                        "column; see docs/dashboard.md)")
    _add_server_arguments(p)
    p.set_defaults(run=user_errors(_run_serve))


def _run_demo(args: argparse.Namespace) -> int:
    try:
        notebook = args.notebook or dashboard_notebook()
        if not Path(notebook).is_file():
            raise FileNotFoundError(f"no notebook at {notebook}")
        _serve(args, Path(notebook), {})
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"seegaan-explore demo: {e}") from e
    return 0


def _run_serve(args: argparse.Namespace) -> int:
    import dataclasses

    from ..ui.session import SESSION_ENV, CohortSource, load_cohort_source

    def absolute(path: Path | None) -> str | None:  # the kernels run in another folder than this command
        return None if path is None else str(Path(path).expanduser().absolute())

    options = import_options(args)
    source = CohortSource(
        checkpoint=absolute(args.checkpoint), data=absolute(args.data), image_root=absolute(args.image_root),
        id_column=args.id_column, path_column=args.path_column, patient_column=args.patient_column,
        cache_dir=absolute(args.cache_dir), cnn=absolute(args.cnn), dictionary=absolute(args.dictionary),
        framing=options["framing"], colour=options["colour"], filters=dataclasses.asdict(options["filters"]),
        device=args.device, precision=args.precision)
    # everything the kernels will do, once here: a mistake is one line before any server starts, and
    # the kernels read the cohort and its latents back from the cache
    kwargs = load_cohort_source(source, progress=not args.no_progress)
    print(f"Serving {kwargs['note']}", file=sys.stderr, flush=True)
    _say_what_the_page_reads(kwargs, args)
    del kwargs
    _serve(args, dashboard_notebook(), {SESSION_ENV: source.to_json()})
    return 0


def _say_what_the_page_reads(kwargs: dict, args: argparse.Namespace) -> None:
    """Warn here, where the person serving reads them, what the kernels would say only to their logs:
    how each attribute's values are read (censored lab values, values below the plausible range); and
    without a dictionary, that the page speaks in column names and how to give it words."""
    from ..data.table import listing
    from ..explore.attribute_table import AttributeTable

    table = AttributeTable(kwargs["table"], dictionary=kwargs["dictionary"])
    for attribute in table.attributes:
        table.check(attribute)  # warns, once, what was done with its values
    if args.dictionary is None:
        print(f"no --dictionary: the page names the attributes by the table's columns, without units "
              f"({listing(table.attributes, 4)}); `seegaan-explore dictionary --data {args.data} --out words.yaml` "
              f"writes a dictionary to fill in", file=sys.stderr, flush=True)


def server_paths_setting(ip: str, data_root: Path | None) -> str:
    """What the page's server-path box may read: a folder it is confined to (``--data-root``), any path
    ("1", on loopback only: whoever has the token could otherwise read any file the server can) or
    nothing ("0")."""
    if data_root is not None:
        if not data_root.is_dir():
            raise FileNotFoundError(f"--data-root {data_root} is not a folder")
        return str(data_root.resolve())
    return "1" if is_loopback(ip) else "0"


def _serve(args: argparse.Namespace, notebook: Path, environ: dict) -> None:
    """Replace this process by Voila serving ``notebook`` with ``environ`` added to the kernels'."""
    token = args.token or (None if is_loopback(args.ip) else secrets.token_urlsafe(24))
    port = free_port(args.ip, args.port)
    if port != args.port:
        print(f"port {args.port} is taken; serving on {port}", flush=True)
    command = voila_command(notebook, ip=args.ip, port=port, token=token, open_browser=not args.no_browser,
                            idle_minutes=args.idle_minutes, timeout_s=args.timeout, preheated=args.preheated)
    environ = {**os.environ, **environ, SERVER_PATHS_ENV: server_paths_setting(args.ip, args.data_root)}
    module = plotly_widget_module()
    if module:  # the kernels' cohort maps load it from there instead of carrying it (see CohortMap)
        environ[PLOTLY_MODULE_ENV] = module[1]
    print(f"Dashboard: {url(args.ip, port, token)}  (Ctrl-C stops it)", flush=True)
    # Voila replaces this process: no idle Python (with torch loaded) beside it
    os.execve(command[0], command, voila_environment(environ))
