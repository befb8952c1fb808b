"""The ``motcua`` command (contract/interface.md): every command has --help; a user mistake is
one sentence on stderr and exit status 2, never a traceback.

Each command group is a module of this package with a ``register(subparsers)`` function that
adds its commands; a new group is a new module and its name in ``GROUPS``.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Sequence

from motcua.cli.common import EPILOG, EXIT_USER, Parser, exit_at_once, run_command

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


# The cyclic garbage collector's thresholds for a motcua process (``tune_gc``): young
# collections every 500,000 allocations instead of 700, full ones 10× rarer
# (docs/decisions.md, "The motcua process tunes Python's garbage collector").
GC_THRESHOLDS = (500_000, 20, 100)


def tune_gc() -> None:
    """Make the garbage collector cheap for a long-running motcua process: what start-up made
    (modules, the catalog of rules) is frozen out of every collection, and collections run far
    less often. With Python's defaults, collections that walk the engine's cached aggregates
    took about a quarter of the engine's CPU (``benchmarks/engine_cost.py``: 164 → 96–107 µs
    per action; docs/decisions.md). Called once, by the ``motcua`` command's entry point."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``motcua`` with ``argv`` (default: the process's arguments); the exit status."""
    from motcua.engine_spawn import CHILD_ARGS

    if argv is None and sys.argv[1:] == CHILD_ARGS:
        # The child engine of `motcua up`, spawned by its parent with this very command line:
        # straight to it, without building every command's parser (a tenth of a second on
        # the way to the first batch; the parser's route to it is the same function).
        from motcua.cli.roles import cmd_child

        tune_gc()
        exit_at_once(run_command(cmd_child, argparse.Namespace(child=True)))
    parser = build_parser()
    for arg in sys.argv[1:] if argv is None else argv:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:  # bytes that are not UTF-8 come as lone surrogates
            shown = arg.encode("utf-8", "backslashreplace").decode()
            parser.error(f"argument {shown!r} is not valid UTF-8 text")
    args = parser.parse_args(argv)
    if argv is None:  # the process's own command (not a caller's): a long-running process
        tune_gc()
    if not getattr(args, "fn", None):
        parser.print_help()
        return EXIT_USER
    code = run_command(args.fn, args)
    if argv is None and getattr(args, "long_running", False):
        exit_at_once(code)  # its own process: no teardown to wait for (common.exit_at_once)
    return code
