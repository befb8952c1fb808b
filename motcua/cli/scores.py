"""An agency's scorecard: ``scores`` (now or as recorded at a time) and ``explain`` (the subjects
behind a criterion)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from kernel.settings import Settings
from motcua.cli import render
from motcua.cli.common import (
    ProgressBar,
    Subparsers,
    add_command,
    add_ruleset_arg,
    add_time_args,
    check_agency_known,
    int_from,
    load_views,
    not_empty,
    open_replayer,
    period_of,
    print_json,
    print_lines,
    query,
    ruleset_for,
    views_counters,
)


def register(sub: Subparsers) -> None:
    """Add ``scores`` and ``explain``."""
    sp = add_command(sub, "scores", "The scorecard of an agency (pooled over its subtree).",
                     cmd_scores)
    sp.add_argument("agency", help="agency id, e.g. H15 or H15.3")
    add_time_args(sp)
    add_ruleset_arg(sp)
    sp.add_argument("--as-recorded", type=not_empty("time"),
                    help="only the facts recorded by this RFC 3339 time (not after "
                    "now)")
    sp.add_argument("--json", action="store_true", help="print the scorecard JSON")

    sp = add_command(sub, "explain", "The dossiers, procedures or feedback behind a criterion's "
                     "numerator and denominator: where an agency loses its points.", cmd_explain)
    sp.add_argument("agency", help="agency id")
    add_time_args(sp)
    sp.add_argument("--criterion", required=True, type=not_empty("criterion"),
                    help="criterion code, e.g. ON_TIME")
    add_ruleset_arg(sp)
    sp.add_argument("--limit", type=int_from(0), default=50, help="rows to print "
                    "(default 50)")
    sp.add_argument("--json", action="store_true", help="print JSON with every subject")


def cmd_scores(args: argparse.Namespace) -> int:
    """Print an agency's scorecard from the live views, or as recorded at a time."""
    from projections.views import scorecard

    settings, ruleset, now, period = query(args)
    if args.as_recorded:
        from projections.periods import parse_recorded_by

        at = parse_recorded_by(args.as_recorded, "--as-recorded", datetime.now(UTC))
        # Unless given, the view's now (and so its default period) is the recorded time.
        if args.now is None:
            now = at
        if args.period is None:
            period = period_of(args, now)
        ruleset = ruleset_for(settings, args, period, now)
        counters = _as_recorded(settings, at)
    else:
        counters = views_counters(settings)
    check_agency_known(counters, args.agency, args.as_recorded)
    card = scorecard(counters, ruleset, args.agency, period, now)
    if args.json:
        print_json(card)
    else:
        print_lines(render.scorecard_lines(card))
    return 0


def _as_recorded(settings: Settings, at: datetime) -> Any:
    """The counters from the facts recorded by ``at`` (a replay of the store, in memory)."""
    engine, replayer = open_replayer(settings)
    try:
        with ProgressBar("replaying") as bar:
            return replayer.as_recorded(at, progress=bar)
    finally:
        replayer.views.close()
        engine.close()


def cmd_explain(args: argparse.Namespace) -> int:
    """Print the subjects counted and not counted by a criterion for an agency."""
    from projections.explain import explain

    settings, ruleset, now, period = query(args)
    ruleset.criterion(args.criterion)
    store = load_views(settings)
    try:
        counters = store.load()
        check_agency_known(counters, args.agency)
        result = explain(store, counters, ruleset, args.agency, period, now, args.criterion)
    finally:
        store.close()
    if args.json:
        print_json(result)
        return 0
    print_lines(render.explain_lines(args.agency, result, args.limit))
    return 0
