"""``motcua simulate``: write the NDJSON actions of a simulated province (or several)."""

from __future__ import annotations

import argparse
import sys
from datetime import date, timedelta
from pathlib import Path

from kernel.contract.bounds import DATE_MAX, DATE_MIN
from kernel.errors import UserError
from motcua.cli.common import Subparsers, add_command, int_from

# A simulated dossier's last actions come up to about a year after its reception.
_TAIL = timedelta(days=366)


def register(sub: Subparsers) -> None:
    """Add ``simulate``."""
    sp = add_command(sub, "simulate", "Write a realistic NDJSON stream of a simulated province.",
                     cmd_simulate)
    sp.add_argument("--agencies", type=int_from(1, 10_000), default=20,
                    help="units below the province (default 20)")
    sp.add_argument("--dossiers", type=int_from(0, 100_000_000), default=5000,
                    help="dossiers (default 5000)")
    sp.add_argument("--seed", type=int_from(0), default=1, help="seed (default 1)")
    sp.add_argument("--start", default="2026-01-01", help="first reception day (default "
                    "2026-01-01)")
    sp.add_argument("--days", type=int_from(1, 3650), default=300,
                    help="days of receptions (default 300)")
    sp.add_argument("--provinces", type=int_from(0, 34), default=0, help="simulate this many "
                    "of the 34 provinces (national scale), each with --agencies and --dossiers")
    sp.add_argument("--out", required=True, help="output NDJSON file")


def _start(args: argparse.Namespace) -> date:
    """``--start``, such that every simulated action falls in the years motcua records."""
    try:
        start = date.fromisoformat(args.start)
    except ValueError:
        raise UserError(f"--start {args.start!r} is not a date YYYY-MM-DD.") from None
    last = DATE_MAX - _TAIL - timedelta(days=args.days)
    if not DATE_MIN <= start <= last:
        raise UserError(f"--start {args.start!r} with --days {args.days} is outside "
                        f"{DATE_MIN} to {last}: the simulated actions would fall outside the "
                        "years motcua records.")
    return start


def _out(text: str) -> Path:
    out = Path(text)
    if out.is_dir():
        raise UserError(f"--out {text!r} is a directory, not a file to write.")
    if not out.parent.is_dir():
        raise UserError(f"Directory {str(out.parent)!r} of --out does not exist.")
    return out


def cmd_simulate(args: argparse.Namespace) -> int:
    """Write the simulated actions to ``--out`` and say how many on stderr."""
    from producers.simulator import SimConfig, write_ndjson

    start = _start(args)
    try:
        cfg = SimConfig(agencies=args.agencies, dossiers=args.dossiers, seed=args.seed,
                        start=start, days=args.days)
    except ValueError as e:
        raise UserError(str(e)) from None
    out = _out(args.out)
    try:
        if args.provinces:
            from producers.national import write_national

            n = write_national(cfg, args.provinces, out)
            print(f"wrote {n:,} actions for {args.provinces} provinces of {args.agencies} "
                  f"agencies and {args.dossiers:,} dossiers each to {out}", file=sys.stderr)
            return 0
        n = write_ndjson(cfg, out)
    except OSError as e:
        raise UserError(f"--out {args.out!r} cannot be written: {e.strerror}.") from None
    print(f"wrote {n:,} actions for {args.agencies} agencies and {args.dossiers:,} dossiers "
          f"to {out}", file=sys.stderr)
    return 0
