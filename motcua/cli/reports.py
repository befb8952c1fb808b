"""What a province publishes and checks: ``publish`` (and ``publish --verify``), ``report
legacy`` (the older monthly form) and ``reconcile`` (against the national portal's export)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kernel.errors import UserError
from kernel.settings import Settings
from motcua.cli import render_reports as render
from motcua.cli.common import (
    ProgressBar,
    Subparsers,
    add_command,
    add_time_args,
    check_agency_known,
    int_from,
    load_settings,
    load_views,
    open_replayer,
    print_json,
    print_lines,
    query,
    require_store,
    setup_logs,
)
from motcua.userfiles import MIB, read_user_file

EXIT_DIFFERENT = 1


def register(sub: Subparsers) -> None:
    """Add ``publish``, ``report`` and ``reconcile``."""
    sp = add_command(sub, "publish", "Freeze a period's official figures as recorded at a time "
                     "(scorecards of every agency, ranking, late dossiers with apology status) "
                     "as a new version, with its SHA-256 and its CSV, XLSX and PDF files; or "
                     "--verify a publication against the event store.", cmd_publish)
    what = sp.add_mutually_exclusive_group(required=True)
    what.add_argument("--period", help="the period to publish: 2026-10, 2026-Q4, 2026-H2, 2026")
    what.add_argument("--verify", metavar="P", help="recompute period P's publication from the "
                      "event store as recorded at its time; exit 0 when identical, 1 naming "
                      "every difference")
    sp.add_argument("--at", help="the recording instant T, RFC 3339 (default: now); only the "
                    "facts recorded by T count, judged with now = T")
    sp.add_argument("--version", type=int_from(1), help="with --verify: which version "
                    "(default: the latest)")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add_command(sub, "report", "Reports in other forms than the 766 index.", cmd_report)
    forms = sp.add_subparsers(dest="form", metavar="FORM", parser_class=type(sp))
    lp = add_command(forms, "legacy", "The provinces' older monthly form for an agency's "
                     "subtree: carried over, received, resolved (early or on time, late), "
                     "pending (overdue) and the on-time rate of resolved dossiers.", cmd_legacy)
    lp.add_argument("agency", help="agency id, e.g. H15")
    lp.add_argument("--period", required=True, help="2026-10, 2026-Q4, 2026-H2 or 2026")
    add_time_args(lp, period=False)
    lp.add_argument("--json", action="store_true", help="print JSON")

    sp = add_command(sub, "reconcile", "Compare the national portal's per-unit export (TSV or "
                     "CSV with unit_code, metric_code, numerator, denominator) with motcua's "
                     "views: every differing figure, units either side lacks, and the dossiers "
                     "not synced that may explain a difference. Exit 0 when they agree, 1 when "
                     "they differ, 2 for a bad file.", cmd_reconcile)
    sp.add_argument("portal_file", metavar="PORTAL_FILE", help="the portal's export")
    add_time_args(sp)
    sp.add_argument("--json", action="store_true", help="print JSON")


# ----- publish -------------------------------------------------------------------------------


def cmd_publish(args: argparse.Namespace) -> int:
    """Publish a period, or verify a publication."""
    settings = load_settings()
    setup_logs(settings, quiet=True)
    if args.verify:
        if args.at:
            raise UserError("--at is the time of a new publication; --verify uses the time "
                            "the publication was made at.")
        require_store(settings)  # verifies only: nothing to create
        return _verify(settings, args)
    if args.version is not None:
        raise UserError("--version names a publication to verify; use it with --verify.")
    return _publish(settings, args)


def _publish(settings: Settings, args: argparse.Namespace) -> int:
    from kernel.calendar import local_date
    from motcua.pipeline import make_rulesets
    from projections.periods import parse_period, parse_recorded_by
    from projections.publication import check_period
    from projections.publishing import publish

    now = datetime.now(UTC)
    at = parse_recorded_by(args.at, "--at", now) if args.at else now
    period = parse_period(args.period)
    check_period(period, at)
    ruleset = make_rulesets(settings).choose(settings.ruleset, local_date(period.view_end(at)))
    engine, replayer = open_replayer(settings)
    store = _publications(settings)
    try:
        with ProgressBar("freezing") as bar:
            pub = publish(replayer, store, period, at, ruleset, progress=bar)
    finally:
        store.close()
        replayer.views.close()
        engine.close()
    files = _write_files(settings, pub)
    result = {"period": pub.period, "version": pub.version, "recorded_at": pub.recorded_at,
              "sha256": pub.sha256, "files": files}
    if args.json:
        print_json(result)
    else:
        print_lines(render.published_lines(result, pub.ruleset))
    return 0


def _publications(settings: Settings) -> Any:
    from projections.publication_store import PublicationStore
    from projections.store import views_url

    return PublicationStore(views_url(settings.database_url))


def _write_files(settings: Settings, pub: Any) -> dict[str, str]:
    """Copies of the stored files under MOTCUA_HOME/publications/PERIOD/vN/ (the store keeps
    the originals; these are for putting on the province's portal)."""
    from projections.publication_store import KINDS

    folder = settings.home / "publications" / pub.period / f"v{pub.version}"
    folder.mkdir(parents=True, exist_ok=True)
    store = _publications(settings)
    try:
        out = {}
        for f in sorted(pub.files, key=lambda f: KINDS.index(f.kind)):
            found = store.file(pub.period, pub.version, f.name)
            assert found is not None
            path = folder / f.name
            path.write_bytes(found[1])
            out[f.kind] = str(path.resolve())
        return out
    finally:
        store.close()


def _verify(settings: Settings, args: argparse.Namespace) -> int:
    from motcua.pipeline import make_rulesets
    from projections.periods import parse_period
    from projections.publishing import verify
    from projections.ruleset import UnknownRulesetError

    label = parse_period(args.verify).label
    store = _publications(settings)
    try:
        pub = store.get(label, args.version)
        if pub is None:
            which = f"version {args.version} of " if args.version else ""
            raise UserError(f"There is no publication of {which}period {label}.")
        rulesets = make_rulesets(settings)
        try:
            rulesets.get(pub.ruleset)
        except UnknownRulesetError:
            print_lines(render.verify_lines(pub.summary(), [
                f"The publication was scored under ruleset {pub.ruleset!r}, which this "
                "installation does not have: it cannot be recomputed."]))
            return EXIT_DIFFERENT
        engine, replayer = open_replayer(settings)
        try:
            with ProgressBar("recomputing") as bar:
                verdict = verify(replayer, store, pub, rulesets.get, progress=bar)
        finally:
            replayer.views.close()
            engine.close()
    finally:
        store.close()
    if args.json:
        print_json(verdict.to_json())
    else:
        print_lines(render.verify_lines(pub.summary(), list(verdict.differences)))
    return 0 if verdict.identical else EXIT_DIFFERENT


# ----- report legacy -------------------------------------------------------------------------


def cmd_report(args: argparse.Namespace) -> int:
    """``report`` needs a form."""
    raise UserError("Name a report form: `motcua report legacy AGENCY --period P`.")


def cmd_legacy(args: argparse.Namespace) -> int:
    """Print the older monthly form of an agency's subtree."""
    from projections.legacy import legacy_report
    from projections.views import Tree

    settings, _, now, period = query(args)
    store = load_views(settings)
    try:
        counters = store.load()
        check_agency_known(counters, args.agency)
        result = legacy_report(store, Tree.build(counters), args.agency, period, now)
    finally:
        store.close()
    if args.json:
        print_json(result)
    else:
        print_lines(render.legacy_lines(result))
    return 0


# ----- reconcile -----------------------------------------------------------------------------


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Compare the portal's export with the views; 1 when they differ."""
    from projections.reconcile import agree, read_portal_file, reconcile

    settings, ruleset, now, period = query(args)
    path = Path(args.portal_file)
    data = read_user_file(path, "a portal export", 256 * MIB)
    portal = read_portal_file(data, str(path), ruleset)
    store = load_views(settings)
    try:
        result = reconcile(portal, store.load(), ruleset, period, now,
                           lambda agencies, months: store.subject_rows("dossiers", agencies,
                                                                       months))
    finally:
        store.close()
    if args.json:
        print_json(result)
    else:
        print_lines(render.reconcile_lines(result))
    return 0 if agree(result) else EXIT_DIFFERENT
