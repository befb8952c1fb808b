"""Who made dossiers late: ``delays`` (spec/accountability.md §4)."""

from __future__ import annotations

import argparse

from motcua.cli import render
from motcua.cli.common import (
    Subparsers,
    add_command,
    add_time_args,
    check_agency_known,
    load_views,
    print_json,
    print_lines,
    query,
)


def register(sub: Subparsers) -> None:
    """Add ``delays``."""
    sp = add_command(sub, "delays", "Who made the view's late dossiers late: one row per unit "
                     "(or per unit and official), with late dossiers, late steps, the overrun in "
                     "office hours and apology status.", cmd_delays)
    sp.add_argument("agency", help="agency id, e.g. H15 or H15.3")
    add_time_args(sp)
    sp.add_argument("--by", choices=("unit", "official"), default="unit",
                    help="one row per unit (default) or per unit and official")
    sp.add_argument("--json", action="store_true", help="print JSON")


def cmd_delays(args: argparse.Namespace) -> int:
    """Print the delays list of an agency's subtree for a period."""
    from projections.delays import delays

    settings, ruleset, now, period = query(args)
    store = load_views(settings)
    try:
        counters = store.load()
        check_agency_known(counters, args.agency)
        result = delays(counters, store.unfinished_late_rows, ruleset, args.agency, period, now,
                        args.by)
    finally:
        store.close()
    if args.json:
        print_json(result)
    else:
        print_lines(render.delays_lines(result))
    return 0
