"""Who made dossiers late, and what is at risk: ``delays`` and ``at-risk``
(spec/accountability.md §4–§5)."""

from __future__ import annotations

import argparse

from motcua.cli import render
from motcua.cli.common import (
    Subparsers,
    add_command,
    add_time_args,
    check_agency_known,
    int_from,
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
    sp = add_command(sub, "at-risk", "The open dossiers falling due within N working days, "
                     "then those already past due: each with its current holder, whether an "
                     "apology was issued, and the points the unit and the agency lose if it goes "
                     "late.", cmd_at_risk)
    sp.add_argument("agency", help="agency id, e.g. H15 or H15.3")
    sp.add_argument("--within", type=int_from(0, 366), default=2, metavar="N",
                    help="working days ahead (default 2)")
    add_time_args(sp, period=False)
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


def cmd_at_risk(args: argparse.Namespace) -> int:
    """Print the at-risk list of an agency's subtree at now."""
    from kernel.calendar import local_date
    from motcua.pipeline import make_rulesets
    from projections.atrisk import at_risk

    args.period = None
    settings, _ruleset, now, _period = query(args)
    rulesets = make_rulesets(settings)
    store = load_views(settings)
    try:
        counters = store.load()
        check_agency_known(counters, args.agency)
        result = at_risk(counters, store.open_rows,
                         lambda p: rulesets.choose(settings.ruleset, local_date(p.view_end(now))),
                         args.agency, now.replace(microsecond=0), args.within)
    finally:
        store.close()
    if args.json:
        print_json(result)
    else:
        print_lines(render.at_risk_lines(result))
    return 0
