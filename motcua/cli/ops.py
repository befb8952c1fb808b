"""Operating the views and the pipeline: ``replay`` (rebuild, verify, freeze as recorded) and
``status`` (positions and lag)."""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

from kernel.errors import UserError
from motcua.cli import render
from motcua.cli.common import (
    ProgressBar,
    Subparsers,
    add_command,
    load_settings,
    load_views,
    not_empty,
    open_replayer,
    print_json,
    print_lines,
    require_store,
    setup_logs,
)


def register(sub: Subparsers) -> None:
    """Add ``replay`` and ``status``."""
    sp = add_command(sub, "replay", "Rebuild the views from the event store (not from Kafka) "
                     "into a shadow copy and swap it in; --verify compares instead; --until "
                     "freezes the views as recorded at a time.", cmd_replay)
    sp.add_argument("--verify", action="store_true", help="compare a rebuild with the live "
                    "views; exit 1 on any difference")
    sp.add_argument("--until", type=not_empty("time"), help="rebuild only the facts recorded "
                    "by this RFC 3339 time, not after now (into the 'asof' table set)")
    sp.add_argument("--restart", action="store_true", help="start the rebuild over instead of "
                    "resuming a stopped one")
    sp.add_argument("--rederive", action="store_true", help="first derive every event's "
                    "facts again from the domain events (after a change of the fact rules; "
                    "stop the engine first), then rebuild")
    sp.add_argument("--json", action="store_true", help="print the --verify result as JSON")

    sp = add_command(sub, "status", "Per role and partition: position, lag behind the topic "
                     "end, owner and the age of its last commit (spot a stuck partition).",
                     cmd_status)
    sp.add_argument("--json", action="store_true", help="print JSON")


def cmd_replay(args: argparse.Namespace) -> int:
    """Rebuild the views from the event store, or verify them, or freeze them at a time;
    with ``--rederive``, derive the facts again first."""
    if args.rederive and (args.verify or args.until):
        raise UserError("--rederive rebuilds the views from facts derived again; run "
                        "--verify or --until after it, not with it.")
    if args.verify and args.until:
        raise UserError("--verify compares the live views with all of history and --until "
                        "freezes the views as recorded at a time: run one or the other.")
    settings = load_settings()
    setup_logs(settings, quiet=True)
    if args.verify:  # compares only: nothing to create
        require_store(settings)
    until = None
    if args.until is not None:  # a bad time is refused before any store is opened
        from projections.periods import parse_recorded_by

        until = parse_recorded_by(args.until, "--until", datetime.now(UTC))
    engine, replayer = open_replayer(settings, check_facts=not args.rederive)
    try:
        if args.rederive:
            _rederive(engine)
            return _rebuild(replayer, resume=False)
        if args.verify:
            return _verify(replayer, args.json)
        if until is not None:
            return _until(replayer, until, args.until)
        return _rebuild(replayer, resume=not args.restart)
    finally:
        replayer.views.close()
        engine.close()


def _rederive(engine: Any) -> None:
    """Recompute the facts cache from the domain events under this build's rules."""
    from projections.rederive import rederive

    t0 = time.monotonic()
    with ProgressBar("rederiving") as bar:
        n = rederive(engine, progress=bar)
    print(f"replay --rederive: derived the facts of {n:,} recorded events again under rules "
          f"{engine.facts_version} in {time.monotonic() - t0:.1f} s.")


def _verify(replayer: Any, as_json: bool) -> int:
    """Compare a rebuild with the live views; 1 on any difference."""
    with ProgressBar("verifying") as bar:
        diffs = replayer.verify(progress=bar)
    if as_json:
        print_json({"equal": not diffs, "differences": diffs})
    else:
        print_lines(render.verify_lines(diffs, _dossiers_of(replayer, diffs)))
    return 1 if diffs else 0


def _dossiers_of(replayer: Any, diffs: list[dict[str, Any]]) -> list[tuple[str, str, list[str]]]:
    """The dossiers of (up to 20 of) the agency-months whose dossier counters differ."""
    cells = {(d["agency_id"], d["month"]) for d in diffs if d["kind"] == "dossier"}
    return [(agency, month, [sid for sid, _ in
                             replayer.views.subject_rows("dossiers", [agency], [month])])
            for agency, month in sorted(cells)[:20]]


def _until(replayer: Any, at: datetime, until: str) -> int:
    """Replay the facts recorded by ``at`` (given as ``until``) into the 'asof' table set
    (counters and every dossier's facts as recorded then)."""
    from projections.store import ViewStore

    snap = ViewStore(replayer.views.url, prefix="asof", layout=replayer.views.layout)
    try:
        snap.drop("asof")
        snap.create_tables()
        with ProgressBar("replaying") as bar:
            replayer.as_recorded(at, progress=bar, into=snap)
    finally:
        snap.close()
    print(render.until_line(at, until))
    return 0


def _rebuild(replayer: Any, resume: bool) -> int:
    """Rebuild the views into a shadow copy and swap it in."""
    t0 = time.monotonic()
    with ProgressBar("replaying") as bar:
        shadow, counters, done = replayer.rebuild(progress=bar, resume=resume)
    generation = replayer.swap(shadow, counters, done)
    n, secs = replayer.stats.get("events", 0), replayer.stats.get("seconds", 0.0)
    print(render.rebuild_line(done, n, secs, generation, time.monotonic() - t0))
    shadow.close()
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print each role's partitions: position, lag, owner and the age of its last commit."""
    from motcua.pipeline import make_engine, running_embedded_broker
    from motcua.status import format_status, status

    settings = load_settings()
    setup_logs(settings, quiet=True)
    require_store(settings)
    bootstrap = settings.kafka_bootstrap or running_embedded_broker(settings)
    engine = make_engine(settings)
    views = load_views(settings)
    try:
        result = status(engine, views, bootstrap, settings.kafka_security)
    finally:
        views.close()
        engine.close()
    if args.json:
        print_json(result)
    else:
        print("\n".join(format_status(result)))
    return 0
