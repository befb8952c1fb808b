"""``motcua simulate``: write the NDJSON actions of a simulated province (or several)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kernel.errors import UserError
from motcua.cli.common import Subparsers, add_command


def register(sub: Subparsers) -> None:
    """Add ``simulate``."""
    sp = add_command(sub, "simulate", "Write a realistic NDJSON stream of a simulated province.",
                     cmd_simulate)
    sp.add_argument("--agencies", type=int, default=20, help="units below the province "
                    "(default 20)")
    sp.add_argument("--dossiers", type=int, default=5000, help="dossiers (default 5000)")
    sp.add_argument("--seed", type=int, default=1, help="seed (default 1)")
    sp.add_argument("--start", default="2026-01-01", help="first reception day (default "
                    "2026-01-01)")
    sp.add_argument("--days", type=int, default=300, help="days of receptions (default 300)")
    sp.add_argument("--provinces", type=int, default=0, help="simulate this many of the 34 "
                    "provinces (national scale), each with --agencies and --dossiers")
    sp.add_argument("--out", required=True, help="output NDJSON file")


def cmd_simulate(args: argparse.Namespace) -> int:
    """Write the simulated actions to ``--out`` and say how many on stderr."""
    from datetime import date

    from producers.simulator import SimConfig, write_ndjson

    try:
        start = date.fromisoformat(args.start)
    except ValueError:
        raise UserError(f"--start {args.start!r} is not a date YYYY-MM-DD.") from None
    try:
        cfg = SimConfig(agencies=args.agencies, dossiers=args.dossiers, seed=args.seed,
                        start=start, days=args.days)
    except ValueError as e:
        raise UserError(str(e)) from None
    out = Path(args.out)
    if not out.parent.exists():
        raise UserError(f"Directory {str(out.parent)!r} does not exist.")
    if args.provinces:
        from producers.national import write_national

        try:
            n = write_national(cfg, args.provinces, out)
        except ValueError as e:
            raise UserError(str(e)) from None
        print(f"wrote {n:,} actions for {args.provinces} provinces of {args.agencies} agencies "
              f"and {args.dossiers:,} dossiers each to {out}", file=sys.stderr)
        return 0
    n = write_ndjson(cfg, out)
    print(f"wrote {n:,} actions for {args.agencies} agencies and {args.dossiers:,} dossiers "
          f"to {out}", file=sys.stderr)
    return 0
