"""The ``motcua`` command (contract/interface.md): every command has --help; a user mistake is
one sentence on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from kernel.errors import UserError
from kernel.settings import Settings

EXIT_USER = 2

EPILOG = """Configuration is read from the environment: MOTCUA_HOME (default ./.motcua),
MOTCUA_DATABASE_URL (default sqlite:///$MOTCUA_HOME/motcua.db, or postgresql://…),
MOTCUA_KAFKA_BOOTSTRAP (unset: the bundled local broker), MOTCUA_RULESET (portal-2026)."""


def _print_json(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def _now(args: argparse.Namespace) -> datetime:
    from projections.periods import parse_instant

    return parse_instant(args.now) if getattr(args, "now", None) else datetime.now(UTC)


def _period(args: argparse.Namespace, now: datetime) -> Any:
    from projections.periods import current_year, parse_period

    return parse_period(args.period) if args.period else current_year(now)


def _settings() -> Settings:
    return Settings.from_env()


def _setup_logs(settings: Settings, quiet: bool = False) -> None:
    from motcua.logs import configure

    configure("warning" if quiet else settings.log_level, settings.log_format)


def _load_views(settings: Settings) -> Any:
    from projections.store import ViewStore, views_url

    store = ViewStore(views_url(settings.database_url))
    return store


# ----- roles ---------------------------------------------------------------------------------


def cmd_roles(args: argparse.Namespace, roles: frozenset[str]) -> int:
    from motcua.pipeline import Pipeline
    from motcua.serving import api, run_until_signal, serve_http, stop_http

    settings = _settings()
    _setup_logs(settings)
    # The one-role commands join consumer groups, so several processes share the partitions.
    group = len(roles) == 1 and roles != frozenset({"serve"})
    p = Pipeline(settings, roles=roles, group=group).start()
    server = None
    try:
        if "serve" in roles:
            host = args.host or settings.http_host
            port = args.port or settings.http_port
            app = api(p, settings, live="project" in roles)
            server, _ = serve_http(app, host, port)
            print(f"motcua API on http://{host}:{port}/", file=sys.stderr)
        def stop() -> None:
            if server is not None:
                stop_http(server)
            p.stop()

        run_until_signal(stop)
    except BaseException:
        p.stop()
        raise
    return 0


def _role_command(roles: frozenset[str]) -> Callable[[argparse.Namespace], int]:
    return lambda a: cmd_roles(a, roles)


def cmd_demo(args: argparse.Namespace) -> int:
    from motcua.demo import run_demo

    settings = _settings()
    _setup_logs(settings, quiet=not args.verbose)
    return run_demo(settings, args)


# ----- ingest --------------------------------------------------------------------------------


def cmd_ingest(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from motcua import ingest as I
    from motcua.pipeline import HEARTBEAT, Pipeline, running_embedded_broker

    settings = _settings()
    _setup_logs(settings, quiet=True)
    lines = I.read_lines(Path(args.file))
    own: Pipeline | None = None
    try:
        if settings.kafka_bootstrap is None:
            bootstrap = running_embedded_broker(settings)
            if bootstrap is None:
                if not args.wait:
                    raise UserError("No motcua pipeline is running here to take the actions; "
                                    "use --wait to process them now, or start `motcua up`.")
                own = Pipeline(settings, roles=frozenset({"engine", "project"})).start()
                own.wait_ready()
                bootstrap = own.bootstrap
        else:
            bootstrap = settings.kafka_bootstrap
        progress = Progress(TextColumn("{task.description:<12}"), BarColumn(),
                            TextColumn("{task.completed:>9,.0f}/{task.total:,.0f}"),
                            TimeRemainingColumn(), transient=True, console=_stderr_console(),
                            disable=not sys.stderr.isatty())
        with progress:
            t_pub = progress.add_task("publishing", total=len(lines))
            pub = I.publish(lines, bootstrap, settings.kafka_security, settings.partitions,
                            progress=lambda n: progress.advance(t_pub, n))
            if not args.wait:
                progress.stop()
                print(f"published {pub.count:,} actions to motcua.actions", file=sys.stderr)
                return 0
            if own is None and settings.kafka_bootstrap is not None:
                own = _start_engine_if_none(settings, HEARTBEAT)
            from engine.app import Engine
            from engine.ruleset import load_ruleset
            from projections.store import ViewStore, views_url

            engine = own.engine if own and own.engine else Engine(
                settings.database_url, load_ruleset(settings.ruleset))
            views = own.views if own and own.views else ViewStore(views_url(settings.database_url))
            log_id = I.actions_log_id(engine, bootstrap, settings.kafka_security)
            t_eng = progress.add_task("recording", total=pub.count)

            def report(done: int, stage: str) -> None:
                progress.update(t_eng, completed=done,
                                description="recording" if stage == "engine" else "scoring")

            summary = I.wait_done(engine, views, log_id, pub, hold_seconds=settings.hold_seconds,
                                  timeout=args.timeout, progress=report)
    finally:
        if own is not None:
            own.stop()
    if args.json:
        _print_json(summary)
    else:
        for line in I.format_summary(summary):
            print(line)
    return 0


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def _start_engine_if_none(settings: Settings, heartbeat: str) -> Any:
    from engine.app import Engine
    from engine.ruleset import load_ruleset
    from motcua.pipeline import Pipeline

    probe = Engine(settings.database_url, load_ruleset(settings.ruleset))
    try:
        beat = probe.store.get_position(heartbeat)
    finally:
        probe.close()
    if time.time() - beat < 5:
        return None
    p = Pipeline(settings, roles=frozenset({"engine", "project"})).start()
    p.wait_ready()
    return p


# ----- queries -------------------------------------------------------------------------------


def _agency_known(counters: Any, agency_id: str) -> None:
    from projections.views import Tree

    if agency_id not in Tree.build(counters).parent:
        raise UserError(f"Agency {agency_id!r} is not known: no registration or dossier of it "
                        "has been recorded.")


def _query(args: argparse.Namespace) -> tuple[Settings, Any, datetime, Any]:
    """What every query command starts with: settings, ruleset, the view's now and period."""
    from engine.ruleset import load_ruleset

    settings = _settings()
    _setup_logs(settings, quiet=True)
    now = _now(args)
    return settings, load_ruleset(settings.ruleset), now, _period(args, now)


def _views_counters(settings: Settings) -> Any:
    store = _load_views(settings)
    try:
        return store.load()
    finally:
        store.close()


def cmd_scores(args: argparse.Namespace) -> int:
    from projections.views import scorecard

    settings, ruleset, now, period = _query(args)
    if args.as_recorded:
        from projections.periods import parse_instant

        at = parse_instant(args.as_recorded, "--as-recorded")
        if not args.now:
            now = at
        if not args.period:
            period = _period(args, now)
        counters = _as_recorded(settings, at)
    else:
        counters = _views_counters(settings)
    _agency_known(counters, args.agency)
    card = scorecard(counters, ruleset, args.agency, period, now)
    if args.json:
        _print_json(card)
    else:
        _print_scorecard(card)
    return 0


def _replayer(settings: Settings) -> Any:
    from engine.app import Engine
    from engine.ruleset import load_ruleset
    from projections.replay import Replayer

    engine = Engine(settings.database_url, load_ruleset(settings.ruleset))
    return engine, Replayer(engine.app.recorder, engine.store, _load_views(settings))


def _as_recorded(settings: Settings, at: datetime) -> Any:
    """The counters from the facts recorded by ``at`` (a replay of the store, in memory)."""
    engine, replayer = _replayer(settings)
    try:
        with _progress("replaying") as bar:
            return replayer.as_recorded(at, progress=bar)
    finally:
        replayer.views.close()
        engine.close()


class _progress:
    """A rich progress bar on stderr (events/s and time left) when stderr is a terminal."""

    def __init__(self, what: str) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.p = Progress(TextColumn(f"{what:<10}"), BarColumn(), TaskProgressColumn(),
                          TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                          console=_stderr_console(), transient=True,
                          disable=not sys.stderr.isatty())
        del TransferSpeedColumn
        self.task = self.p.add_task(what, total=None, rate="")
        self.t0 = time.monotonic()
        self.first: int | None = None

    def __enter__(self) -> Callable[[int, int], None]:
        self.p.__enter__()
        return self

    def __call__(self, done: int, total: int) -> None:
        if self.first is None:
            self.first = done
        rate = (done - self.first) / max(time.monotonic() - self.t0, 1e-6)
        self.p.update(self.task, completed=done, total=max(total, done),
                      rate=f"{rate:,.0f} events/s")

    def __exit__(self, *exc: object) -> None:
        self.p.__exit__(*exc)  # type: ignore[arg-type]


def cmd_replay(args: argparse.Namespace) -> int:
    from projections.periods import parse_instant

    settings = _settings()
    _setup_logs(settings, quiet=True)
    engine, replayer = _replayer(settings)
    try:
        if args.verify:
            with _progress("verifying") as bar:
                diffs = replayer.verify(progress=bar)
            if args.json:
                _print_json({"equal": not diffs, "differences": diffs})
            elif not diffs:
                print("replay --verify: the live views equal the replayed history.")
            else:
                print(f"replay --verify: {len(diffs)} difference(s) between the live views "
                      "and the replayed history:")
                for d in diffs[:200]:
                    print(f"  {d['kind']:<18} {d['agency_id'] or '-':<12} {d['month'] or '-':<8} "
                          f"{d['counter']:<26} live {d['live']}  replayed {d['replayed']}")
                _print_dossiers_of(replayer, diffs)
            return 1 if diffs else 0
        if args.until:
            at = parse_instant(args.until, "--until")
            with _progress("replaying") as bar:
                counters = replayer.as_recorded(at, progress=bar)
            from projections.store import ViewStore

            snap = ViewStore(replayer.views.url, prefix="asof")
            snap.drop("asof")
            snap.create_tables()
            snap.flush(_all_dirty(counters), {"asof": int(at.timestamp())})
            snap.close()
            print(f"replay --until {at.isoformat()}: the views as recorded then are in the "
                  f"'asof' table set; score them with `motcua scores AGENCY --as-recorded "
                  f"{args.until}`.")
            return 0
        t0 = time.monotonic()
        with _progress("replaying") as bar:
            shadow, counters, done = replayer.rebuild(progress=bar, resume=not args.restart)
        generation = replayer.swap(shadow, counters, done)
        n, secs = replayer.stats.get("events", 0), replayer.stats.get("seconds", 0.0)
        print(f"replay: rebuilt the views from {done:,} recorded events ({n:,} this run, "
              f"{n / max(secs, 1e-6):,.0f} events/s) and swapped them in (generation "
              f"{generation}) in {time.monotonic() - t0:.1f} s.")
        shadow.close()
        return 0
    finally:
        replayer.views.close()
        engine.close()


def _all_dirty(counters: Any) -> Any:
    counters.dirty_cells.update(counters.cells)
    counters.dirty_fb.update(counters.fb_cells)
    counters.dirty_catalog.update(("procedure", k) for k in counters.procedures)
    counters.dirty_catalog.update(("agency", k) for k in counters.agencies)
    return counters


def _print_dossiers_of(replayer: Any, diffs: list[dict[str, Any]]) -> None:
    cells = {(d["agency_id"], d["month"]) for d in diffs if d["kind"] == "dossier"}
    for agency, month in sorted(cells)[:20]:
        rows = replayer.views.subject_rows("dossiers", [agency], [month])
        ids = ", ".join(sid for sid, _ in rows[:15])
        more = f" … ({len(rows)} in all)" if len(rows) > 15 else ""
        print(f"  dossiers of {agency} received in {month}: {ids}{more}")


def cmd_explain(args: argparse.Namespace) -> int:
    from projections.explain import explain

    settings, ruleset, now, period = _query(args)
    ruleset.criterion(args.criterion)
    store = _load_views(settings)
    try:
        counters = store.load()
        _agency_known(counters, args.agency)
        result = explain(store, counters, ruleset, args.agency, period, now, args.criterion)
    finally:
        store.close()
    if args.json:
        _print_json(result)
        return 0
    c = result["criterion"]
    print(f"{c['id']} {c['code']} — {c['name_vi']} ({c['name_en']})")
    print(f"{args.agency}  period {result['period']}  view end {result['view_end']}: "
          f"{result['numerator']:,} / {result['denominator']:,}")
    print(f"\nnot counted ({len(result['not_counted'])}): where the points are lost")
    for item in result["not_counted"][:args.limit]:
        print(f"  {item['id']:<26} {item.get('agency_id', ''):<10} {item['why']}")
    if len(result["not_counted"]) > args.limit:
        print(f"  … {len(result['not_counted']) - args.limit} more (--limit, or --json)")
    print(f"\ncounted ({len(result['counted'])})")
    for item in result["counted"][:min(args.limit, 10)]:
        print(f"  {item['id']}")
    if len(result["counted"]) > 10:
        print(f"  … {len(result['counted']) - 10} more")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from engine.app import Engine
    from engine.ruleset import load_ruleset
    from motcua.pipeline import running_embedded_broker
    from motcua.status import format_status, status

    settings = _settings()
    _setup_logs(settings, quiet=True)
    bootstrap = settings.kafka_bootstrap or running_embedded_broker(settings)
    engine = Engine(settings.database_url, load_ruleset(settings.ruleset))
    views = _load_views(settings)
    try:
        result = status(engine, views, bootstrap, settings.kafka_security)
    finally:
        views.close()
        engine.close()
    if args.json:
        _print_json(result)
    else:
        print("\n".join(format_status(result)))
    return 0


def _print_scorecard(card: dict[str, Any]) -> None:
    print(f"{card.get('agency_name', card['agency_id'])} ({card['agency_id']})  "
          f"period {card['period']}  view end {card['view_end']}  ruleset {card['ruleset']}")
    print(f"TOTAL {card['total']:.2f} / 100   {card['classification']}")
    for g in card["groups"]:
        print(f"\n{g['key']:<16} {g['score']:>6.2f} / {g['max']}")
        for c in g["criteria"]:
            if c["ratio"] is None:
                ratio = "   –   "
            elif c.get("target") is None:
                ratio = f"{c['ratio']:7.2f}"
            else:
                ratio = f"{c['ratio'] * 100:6.2f}%"
            print(f"  {c['id']:<5} {c['code']:<36} {c['numerator']:>9,} / {c['denominator']:<9,}"
                  f" {ratio}  {c['points']:>6.2f} / {c['max']}")


def cmd_ranking(args: argparse.Namespace) -> int:
    from projections.views import ranking

    settings, ruleset, now, period = _query(args)
    result = ranking(_views_counters(settings), ruleset, period, now, level=args.level)
    if args.json:
        _print_json(result)
        return 0
    print(f"Ranking  period {result['period']}  view end {result['view_end']}")
    for r in result["ranking"]:
        print(f"{r['rank']:>4}. {r['total']:>6.2f}  {r['classification']:<11} "
              f"{r['agency_id']:<12} {r['agency_name']}")
    return 0


def cmd_overdue(args: argparse.Namespace) -> int:
    from projections.views import Tree, overdue_list

    settings, ruleset, now, period = _query(args)
    store = _load_views(settings)
    try:
        counters = store.load()
        _agency_known(counters, args.agency)
        rows = store.late_rows(Tree.build(counters).subtree(args.agency), period.months)
    finally:
        store.close()
    result = overdue_list(rows, counters, ruleset, args.agency, period, now)
    if args.json:
        _print_json(result)
        return 0
    print(f"Late dossiers of {args.agency}  period {result['period']}  view end "
          f"{result['view_end']}: {result['count']}")
    for r in result["dossiers"]:
        apology = ("apology in time" if r["apology_in_time"] else
                   "apology late" if r["apology_issued"] else "no apology")
        print(f"  {r['dossier_id']:<24} due {r['due_date']}  {r['days_late']:>3} working days "
              f"late  {r['status']:<20} {apology}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from engine.app import Engine
    from engine.ruleset import load_ruleset

    settings = _settings()
    _setup_logs(settings, quiet=True)
    engine = Engine(settings.database_url, load_ruleset(settings.ruleset))
    try:
        events = engine.history("dossier", args.dossier_id)
    finally:
        engine.close()
    if events is None:
        raise UserError(f"Dossier {args.dossier_id!r} has no recorded history.")
    if args.json:
        _print_json({"dossier_id": args.dossier_id, "events": events})
        return 0
    from engine.facts import flag_names

    for e in events:
        c = e["cause"] or {}
        where = (f"{c.get('source')}/{c.get('action_id')} @ {c.get('topic')}"
                 f"[{c.get('partition')}]:{c.get('offset')}" if c.get("action_id")
                 else f"{c.get('source', '')} ({c.get('reason', '')})")
        print(f"{e['version']:>3}  {e['type']:<20} at {e['at']}  recorded {e['recorded_at']}")
        print(f"     caused by {where}")
        if e["data"]:
            print(f"     data {orjson.dumps(e['data']).decode()}")
        facts = e["facts"]
        if isinstance(facts, list) and len(facts) > 3:
            print(f"     facts {', '.join(flag_names(facts[3])) or '-'}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from projections.scoring import build_scorecard, parse_counts

    settings = _settings()
    path = Path(args.counts)
    try:
        doc = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise UserError(f"File {str(path)!r} does not exist.") from None
    except orjson.JSONDecodeError as e:
        raise UserError(f"File {str(path)!r} is not JSON: {e}.") from None
    ruleset, counts = parse_counts(doc, default_ruleset=settings.ruleset)
    card = build_scorecard(ruleset, counts, agency_id=str(doc.get("agency_id", "what-if")),
                           period=str(doc.get("period", "what-if")), view_end=None)
    if args.json:
        _print_json(card)
    else:
        _print_scorecard(card)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
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


# ----- tokens --------------------------------------------------------------------------------


def cmd_tokens(args: argparse.Namespace) -> int:
    from producers.tokens import TokenStore

    store = TokenStore(_settings().database_url)
    try:
        if args.tokens_command == "list":
            grants = store.grants()
            if args.json:
                _print_json([{"source": g.source, "agencies": list(g.agencies),
                              "token_id": g.token_id, "created_at": g.created_at,
                              "rotated_at": g.rotated_at} for g in grants])
            elif not grants:
                print("no source has a token; add one with `motcua tokens add SOURCE "
                      "--agencies H15`", file=sys.stderr)
            for g in [] if args.json else grants:
                print(f"{g.source:<24} {','.join(g.agencies):<24} {g.token_id}  "
                      f"created {g.created_at}" + (f", rotated {g.rotated_at}"
                                                   if g.rotated_at else ""))
            return 0
        if args.tokens_command == "revoke":
            store.revoke(args.source)
            print(f"revoked the token of {args.source}", file=sys.stderr)
            return 0
        if args.tokens_command == "add":
            token = store.add(args.source, args.agencies)
        else:
            token = store.rotate(args.source)
    finally:
        store.close()
    print(token)
    print(f"the token of {args.source} is shown once: store it now", file=sys.stderr)
    return 0


# ----- parser --------------------------------------------------------------------------------


def _database_problem(e: Exception) -> str | None:
    """A database that cannot be opened or reached, as one sentence (a setting, not a bug)."""
    import sqlite3

    from eventsourcing.persistence import InterfaceError, OperationalError

    kinds: tuple[type[BaseException], ...] = (InterfaceError, OperationalError,
                                              sqlite3.OperationalError)
    try:
        import psycopg

        kinds = (*kinds, psycopg.OperationalError)
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(e, kinds):
        return None
    from kernel.settings import redact_url

    try:
        url = redact_url(Settings.from_env().database_url)
    except UserError:
        url = "the configured database"
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return f"The database {url} cannot be used: {first.rstrip('.')}."


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one sentence, exit 2
        self.exit(EXIT_USER, f"motcua: {message[0].upper() + message[1:]}.\n"
                             f"Run `{self.prog} --help` for usage.\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="motcua", description="Event-sourced dossier lifecycle engine and live "
                "Decision 766 service index.", epilog=EPILOG,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    from motcua import __version__

    p.add_argument("--version", action="version", version=f"motcua {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def add(name: str, help_: str, fn: Callable[[argparse.Namespace], int]) -> Any:
        sp = sub.add_parser(name, help=help_, description=help_, epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.set_defaults(fn=fn)
        return sp

    def time_args(sp: Any, period: bool = True) -> None:
        if period:
            sp.add_argument("--period", help="2026, 2026-H2, 2026-Q4 or 2026-10 "
                            "(default: the current year)")
        sp.add_argument("--now", help="the view's now, RFC 3339 (default: the clock)")

    sp = add("demo", "Run the whole product on the embedded default, fed by a simulated "
             "province, and serve the scoreboard.", cmd_demo)
    sp.add_argument("--host", default=None, help="HTTP host (default 127.0.0.1)")
    sp.add_argument("--port", type=int, default=None, help="HTTP port (default 8766)")
    sp.add_argument("--agencies", type=int, default=20, help="simulated units (default 20)")
    sp.add_argument("--dossiers", type=int, default=15000, help="simulated dossiers "
                    "(default 15000)")
    sp.add_argument("--seed", type=int, default=766, help="simulation seed (default 766)")
    sp.add_argument("--rate", type=float, default=40.0, help="live actions per second after "
                    "the backlog (default 40)")
    sp.add_argument("--no-browser-hint", action="store_true", help=argparse.SUPPRESS)
    sp.add_argument("--verbose", action="store_true", help="show the JSON logs")

    for name, roles, text in (
        ("up", {"engine", "project", "serve"}, "Run engine, projections and API in one process "
         "against the configured broker and database."),
        ("engine", {"engine"}, "Run the engine role: motcua.actions → event store → "
         "motcua.events / motcua.rejected."),
        ("project", {"project"}, "Run the projection role: motcua.events → views."),
        ("serve", {"serve"}, "Serve the HTTP API and the scoreboard from the views."),
    ):
        sp = add(name, text, _role_command(frozenset(roles)))
        if "serve" in roles:
            sp.add_argument("--host", default=None, help="HTTP host (default 127.0.0.1)")
            sp.add_argument("--port", type=int, default=None, help="HTTP port (default 8766)")

    sp = add("ingest", "Publish an NDJSON file of actions to motcua.actions; with --wait, "
             "see it recorded and scored and print what became of it.", cmd_ingest)
    sp.add_argument("file", help="NDJSON file, one action per line")
    sp.add_argument("--wait", action="store_true", help="block until processed (starts the "
                    "embedded pipeline if none is running)")
    sp.add_argument("--json", action="store_true", help="print the summary as JSON")
    sp.add_argument("--timeout", type=float, default=600.0, help="seconds to wait at most "
                    "(default 600)")

    sp = add("scores", "The scorecard of an agency (pooled over its subtree).", cmd_scores)
    sp.add_argument("agency", help="agency id, e.g. H15 or H15.3")
    time_args(sp)
    sp.add_argument("--as-recorded", help="only the facts recorded by this RFC 3339 time")
    sp.add_argument("--json", action="store_true", help="print the scorecard JSON")

    sp = add("explain", "The dossiers, procedures or feedback behind a criterion's numerator "
             "and denominator: where an agency loses its points.", cmd_explain)
    sp.add_argument("agency", help="agency id")
    time_args(sp)
    sp.add_argument("--criterion", required=True, help="criterion code, e.g. ON_TIME")
    sp.add_argument("--limit", type=int, default=50, help="rows to print (default 50)")
    sp.add_argument("--json", action="store_true", help="print JSON with every subject")

    sp = add("replay", "Rebuild the views from the event store (not from Kafka) into a shadow "
             "copy and swap it in; --verify compares instead; --until freezes the views as "
             "recorded at a time.", cmd_replay)
    sp.add_argument("--verify", action="store_true", help="compare a rebuild with the live "
                    "views; exit 1 on any difference")
    sp.add_argument("--until", help="rebuild only the facts recorded by this RFC 3339 time "
                    "(into the 'asof' table set)")
    sp.add_argument("--restart", action="store_true", help="start the rebuild over instead of "
                    "resuming a stopped one")
    sp.add_argument("--json", action="store_true", help="print the --verify result as JSON")

    sp = add("status", "Per role and partition: position, lag behind the topic end, owner and "
             "the age of its last commit (spot a stuck partition).", cmd_status)
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("ranking", "Agencies ranked by total score.", cmd_ranking)
    time_args(sp)
    sp.add_argument("--level", help="only agencies of this level (province, department, "
                    "commune, …)")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("overdue", "The late-dossier list of an agency, with apology status.", cmd_overdue)
    sp.add_argument("agency", help="agency id")
    time_args(sp)
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("history", "Every recorded event of a dossier and the action that caused it.",
             cmd_history)
    sp.add_argument("dossier_id", help="dossier id, e.g. H15.15-261005-0042")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("score", "Score given numerators and denominators (what-if).", cmd_score)
    sp.add_argument("--counts", required=True, help='JSON file: {"ruleset": "portal-2026", '
                    '"criteria": {"ON_TIME": [393087, 443565], …}}')
    sp.add_argument("--json", action="store_true", help="print the scorecard JSON")

    sp = add("simulate", "Write a realistic NDJSON stream of a simulated province.",
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

    sp = add("tokens", "Bearer tokens of the sources that POST actions to the HTTP bridge.",
             cmd_tokens)
    tokens = sp.add_subparsers(dest="tokens_command", metavar="ACTION", required=True,
                               parser_class=_Parser)
    tp = tokens.add_parser("add", help="issue a source's token (printed once)")
    tp.add_argument("source", help="the source name its actions carry, e.g. daklak-igate")
    tp.add_argument("--agencies", required=True, help="agencies it may report for, comma "
                    "separated; H15 also covers H15.*")
    tp = tokens.add_parser("rotate", help="replace a source's token (the old one stops "
                           "working; the new one is printed once)")
    tp.add_argument("source")
    tp = tokens.add_parser("revoke", help="delete a source's token")
    tp.add_argument("source")
    tp = tokens.add_parser("list", help="the sources with a token and their agencies")
    tp.add_argument("--json", action="store_true", help="print JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "fn", None):
        parser.print_help()
        return EXIT_USER
    try:
        return int(args.fn(args))
    except UserError as e:
        msg = str(e).strip()
        print(f"motcua: {msg}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("motcua: interrupted.", file=sys.stderr)
        return 130
    except Exception as e:
        where = _database_problem(e)
        if where is None:
            raise
        print(f"motcua: {where}", file=sys.stderr)
        return EXIT_USER
    except BrokenPipeError:  # e.g. `motcua ranking | head`: the reader left; so do we, quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
