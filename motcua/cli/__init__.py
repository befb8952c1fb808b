"""The ``motcua`` command (contract/interface.md): every command has --help; a user mistake is
one sentence on stderr and exit status 2, never a traceback.

Each command group is a module of this package with a ``register(subparsers)`` function that
adds its commands; a new group is a new module and its name in ``GROUPS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from motcua.cli.common import EPILOG, EXIT_USER, Parser, run_command

# In the order `motcua --help` lists their commands.
GROUPS = ("roles", "ingest", "scores", "ops", "queries", "accountability", "reports",
          "simulate", "tokens", "alerts")


def build_parser() -> argparse.ArgumentParser:
    """The ``motcua`` argument parser with the commands of every group."""
    from motcua import __version__

    p = Parser(prog="motcua", description="Event-sourced dossier lifecycle engine and live "
               "Decision 766 service index.", epilog=EPILOG,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"motcua {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in GROUPS:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``motcua`` with ``argv`` (default: the process's arguments); the exit status."""
    parser = build_parser()
    for arg in sys.argv[1:] if argv is None else argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8 come as lone surrogates
            shown = arg.encode("utf-8", "backslashreplace").decode()
            parser.error(f"argument {shown!r} is not valid UTF-8 text")
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return EXIT_USER
    return run_command(args.fn, args)
