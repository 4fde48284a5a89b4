"""The ``seegaan-explore`` command line: every command is registered here, in :func:`build_parser`.

One module per group of commands, each only arguments and I/O over the Python API:

* :mod:`.model`: ``info``, ``bench``, ``pack``;
* :mod:`.phantoms`: ``phantoms``, ``evaluate``;
* :mod:`.train`: ``train``; :mod:`.train_cnn`: ``train-cnn``, ``train-oracle``;
* :mod:`.explore`: ``encode``, ``direction``, ``attribute``; :mod:`.films`: ``traverse``, ``export`` (the
  direction each fits or traverses: :mod:`.directions`);
* :mod:`.serve`: ``demo`` and ``serve``;
* :mod:`.check`: ``check``, ``dictionary`` (and the import summary line of ``encode``, ``train``, ``direction``);
* :mod:`.common`: the arguments and loading they share.

Heavy imports (torch, the models) happen inside the commands, so ``--help`` stays quick.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from .. import __version__
from . import check, explore, films, model, phantoms, serve, train, train_cnn

__all__ = ["build_parser", "main"]

DESCRIPTION = "`seegaan-explore`: subcommands, each a few lines over the Python API."


class DefaultsShown(argparse.HelpFormatter):
    """Each option's help ends with its default, where it has one and the help does not say it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        unset = default is None or default is False or default is argparse.SUPPRESS or default in ([], ())  # 0 is one
        if action.option_strings and action.nargs != 0 and not unset and "default" not in text:
            shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else "%(default)s"
            text += f" (default: {shown})"
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seegaan-explore", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"seegaan-explore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (model.add_info, phantoms.add_phantoms, train.add_train, train_cnn.add_train_cnn,
                train_cnn.add_train_oracle, phantoms.add_evaluate, model.add_bench, model.add_pack, check.add_check,
                check.add_dictionary,
                explore.add_encode, explore.add_direction, films.add_traverse, films.add_export,
                explore.add_attribute, serve.add_demo, serve.add_serve):
        add(sub)
    for command in sub.choices.values():
        command.formatter_class = DefaultsShown
    return parser


def plain_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as a user of the command reads it: ``warning: <message>``, without the line of
    the package's code that raised it."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):  # (see common.add_threads_argument)
        import torch

        torch.set_num_threads(args.threads)
    shown, warnings.formatwarning = warnings.formatwarning, plain_warning
    try:
        return args.run(args)
    finally:
        warnings.formatwarning = shown


if __name__ == "__main__":
    sys.exit(main())
