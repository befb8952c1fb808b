"""Queries beyond one agency's scorecard: ``ranking``, ``overdue``, ``history`` and the what-if
``score``."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from kernel.contract.types import AGENCY_LEVELS
from kernel.errors import UserError
from motcua.cli import render
from motcua.cli.common import (
    Subparsers,
    add_command,
    add_ruleset_arg,
    add_time_args,
    check_agency_known,
    load_settings,
    load_views,
    now_of,
    one_of,
    print_json,
    print_lines,
    query,
    require_store,
    setup_logs,
    views_counters,
)
from motcua.userfiles import MIB, read_user_file


def register(sub: Subparsers) -> None:
    """Add ``ranking``, ``overdue``, ``history`` and ``score``."""
    sp = add_command(sub, "ranking", "Agencies ranked by total score.", cmd_ranking)
    add_time_args(sp)
    add_ruleset_arg(sp)
    sp.add_argument("--level", type=one_of(*AGENCY_LEVELS), help="only agencies of this "
                    f"level ({', '.join(AGENCY_LEVELS)})")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add_command(sub, "overdue", "The late-dossier list of an agency, with apology status.",
                     cmd_overdue)
    sp.add_argument("agency", help="agency id")
    add_time_args(sp)
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add_command(sub, "history", "Every recorded event of a dossier and the action that "
                     "caused it.", cmd_history)
    sp.add_argument("dossier_id", help="dossier id, e.g. H15.15-261005-0042")
    sp.add_argument("--now", help="judge the control sheet's open step at this RFC 3339 time "
                    "(default: the clock)")
    sp.add_argument("--json", action="store_true", help="print JSON (events and the control "
                    "sheet)")

    sp = add_command(sub, "score", "Score given numerators and denominators (what-if).",
                     cmd_score)
    sp.add_argument("--counts", required=True, help='JSON file: {"ruleset": "portal-2026", '
                    '"criteria": {"ON_TIME": [393087, 443565], …}}')
    sp.add_argument("--json", action="store_true", help="print the scorecard JSON")


def cmd_ranking(args: argparse.Namespace) -> int:
    """Print the agencies ranked by total score."""
    from projections.views import ranking

    settings, ruleset, now, period = query(args)
    result = ranking(views_counters(settings), ruleset, period, now, level=args.level)
    if args.json:
        print_json(result)
        return 0
    print_lines(render.ranking_lines(result))
    return 0


def cmd_overdue(args: argparse.Namespace) -> int:
    """Print an agency's late dossiers and their apology status."""
    from projections.views import Tree, overdue_list

    settings, ruleset, now, period = query(args)
    store = load_views(settings)
    try:
        counters = store.load()
        check_agency_known(counters, args.agency)
        rows = store.late_rows(Tree.build(counters).subtree(args.agency), period.months)
    finally:
        store.close()
    result = overdue_list(rows, counters, ruleset, args.agency, period, now)
    if args.json:
        print_json(result)
        return 0
    print_lines(render.overdue_lines(args.agency, result))
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """Print every recorded event of a dossier and what caused it."""
    from motcua.pipeline import make_engine
    from projections.source import dossier_history

    settings = load_settings()
    setup_logs(settings, quiet=True)
    require_store(settings)
    engine = make_engine(settings)
    try:
        doc = dossier_history(engine, args.dossier_id, now_of(args))
    finally:
        engine.close()
    if doc is None:
        raise UserError(f"Dossier {args.dossier_id!r} has no recorded history.")
    if args.json:
        print_json(doc)
        return 0
    print_lines(render.history_lines(doc["events"]))
    print_lines(render.control_sheet_lines(doc["control_sheet"]))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Print the scorecard of given numerators and denominators."""
    from projections.scoring import build_scorecard, parse_counts

    settings = load_settings()
    path = Path(args.counts)
    data = read_user_file(path, "a JSON file of counts", 16 * MIB)
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise UserError(f"File {str(path)!r} is not JSON: {e}.") from None
    if not isinstance(doc, dict):
        raise UserError(f"File {str(path)!r} holds JSON {type(doc).__name__}, not an object "
                        '{"ruleset": …, "criteria": {…}}.')
    from datetime import date

    from motcua.pipeline import make_rulesets

    rulesets = make_rulesets(settings)
    default = settings.ruleset or rulesets.in_force(date.today()).name
    ruleset, counts = parse_counts(doc, rulesets.get, default_ruleset=default)
    card = build_scorecard(ruleset, counts, agency_id=str(doc.get("agency_id", "what-if")),
                           period=str(doc.get("period", "what-if")), view_end=None)
    if args.json:
        print_json(card)
    else:
        print_lines(render.scorecard_lines(card))
    return 0
