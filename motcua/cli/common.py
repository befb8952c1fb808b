"""What every command group shares: the parser class and how commands are added, settings and
the query preamble, JSON output, the progress bar, and turning an error into one sentence."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeAlias

import orjson

from kernel.errors import UserError
from kernel.settings import Settings

# argparse has no public name for what add_subparsers returns (nor is it generic at run time).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

EXIT_USER = 2

EPILOG = """Configuration is read from the environment: MOTCUA_HOME (default ./.motcua),
MOTCUA_DATABASE_URL (default sqlite:///$MOTCUA_HOME/motcua.db, or postgresql://…),
MOTCUA_KAFKA_BOOTSTRAP (unset: the bundled local broker), MOTCUA_RULESET (portal-2026)."""

Command = Callable[[argparse.Namespace], int]


# ----- parsing -------------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one sentence and exit status 2."""

    def error(self, message: str) -> Any:
        """Exit 2 with the message as a sentence and where to find the usage."""
        self.exit(EXIT_USER, f"motcua: {message[0].upper() + message[1:]}.\n"
                             f"Run `{self.prog} --help` for usage.\n")


def add_command(sub: Subparsers, name: str, help_: str, fn: Command) -> Any:
    """Add command ``name`` running ``fn``; its help line is also its description."""
    sp = sub.add_parser(name, help=help_, description=help_, epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    sp.set_defaults(fn=fn)
    return sp


def add_time_args(sp: Any, period: bool = True) -> None:
    """Add the view's ``--period`` (unless not ``period``) and ``--now`` to a query command."""
    if period:
        sp.add_argument("--period", help="2026, 2026-H2, 2026-Q4 or 2026-10 "
                        "(default: the current year)")
    sp.add_argument("--now", help="the view's now, RFC 3339 (default: the clock)")


# ----- settings and the query preamble -------------------------------------------------------


def load_settings() -> Settings:
    """The settings from the environment."""
    return Settings.from_env()


def setup_logs(settings: Settings, quiet: bool = False) -> None:
    """Configure logging as set (only warnings and worse when ``quiet``)."""
    from motcua.logs import configure

    configure("warning" if quiet else settings.log_level, settings.log_format)


def now_of(args: argparse.Namespace) -> datetime:
    """The view's now: ``--now`` if given, else the clock."""
    from projections.periods import parse_instant

    return parse_instant(args.now) if getattr(args, "now", None) else datetime.now(UTC)


def period_of(args: argparse.Namespace, now: datetime) -> Any:
    """The view's period: ``--period`` if given, else the year of ``now``."""
    from projections.periods import current_year, parse_period

    return parse_period(args.period) if args.period else current_year(now)


def query(args: argparse.Namespace) -> tuple[Settings, Any, datetime, Any]:
    """What every query command starts with: settings, the ruleset, the view's now and
    period."""
    settings = load_settings()
    setup_logs(settings, quiet=True)
    now = now_of(args)
    period = period_of(args, now)
    return settings, ruleset_for(settings, args, period, now), now, period


def ruleset_for(settings: Settings, args: argparse.Namespace, period: Any,
                now: datetime) -> Any:
    """The ruleset a view is scored under: ``--ruleset`` (what-if), else the pinned one
    (``MOTCUA_RULESET``), else the one in force at the view's end."""
    from kernel.calendar import local_date
    from motcua.pipeline import make_rulesets

    name = getattr(args, "ruleset", None) or settings.ruleset
    return make_rulesets(settings).choose(name, local_date(period.view_end(now)))


def add_ruleset_arg(sp: Any) -> None:
    """``--ruleset NAME``: score under another ruleset (a draft revision, what-if)."""
    sp.add_argument("--ruleset", help="score under this ruleset (what-if) instead of the one "
                    "in force at the view's end")


def load_views(settings: Settings) -> Any:
    """The view store of the configured database (the caller closes it)."""
    from projections.store import ViewStore, views_url

    return ViewStore(views_url(settings.database_url))


def views_counters(settings: Settings) -> Any:
    """The counters of the live views."""
    store = load_views(settings)
    try:
        return store.load()
    finally:
        store.close()


def check_agency_known(counters: Any, agency_id: str) -> None:
    """Refuse an agency the views have never seen, rather than score it as empty."""
    from projections.views import Tree

    if agency_id not in Tree.build(counters).parent:
        raise UserError(f"Agency {agency_id!r} is not known: no registration or dossier of it "
                        "has been recorded.")


def open_replayer(settings: Settings, check_facts: bool = True) -> Any:
    """An engine and a replayer of its store into the views (the caller closes both)."""
    from motcua.pipeline import make_engine
    from projections.replay import Replayer

    engine = make_engine(settings, check_facts=check_facts)
    return engine, Replayer(engine.store, load_views(settings))


# ----- output --------------------------------------------------------------------------------


def print_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout."""
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def print_lines(lines: Iterable[str]) -> None:
    """Print each of ``lines`` on stdout."""
    for line in lines:
        print(line)


def stderr_console() -> Any:
    """A rich console on stderr, so progress never mixes with the output."""
    from rich.console import Console

    return Console(stderr=True)


class ProgressBar:
    """A rich progress bar on stderr (events/s and time left) when stderr is a terminal."""

    def __init__(self, what: str) -> None:
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        self.p = Progress(TextColumn(f"{what:<10}"), BarColumn(), TaskProgressColumn(),
                          TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                          console=stderr_console(), transient=True,
                          disable=not sys.stderr.isatty())
        self.task = self.p.add_task(what, total=None, rate="")
        self.t0 = time.monotonic()
        self.first: int | None = None

    def __enter__(self) -> Callable[[int, int], None]:
        self.p.__enter__()
        return self

    def __call__(self, done: int, total: int) -> None:
        # The rate counts from the first report: a resumed replay starts past zero.
        if self.first is None:
            self.first = done
        rate = (done - self.first) / max(time.monotonic() - self.t0, 1e-6)
        self.p.update(self.task, completed=done, total=max(total, done),
                      rate=f"{rate:,.0f} events/s")

    def __exit__(self, *exc: object) -> None:
        self.p.__exit__(*exc)  # type: ignore[arg-type]


# ----- errors --------------------------------------------------------------------------------


def database_problem(e: Exception) -> str | None:
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


def run_command(fn: Command, args: argparse.Namespace) -> int:
    """Run a command; a user mistake or an unusable database is one sentence on stderr."""
    try:
        return int(fn(args))
    except UserError as e:
        msg = str(e).strip()
        print(f"motcua: {msg}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("motcua: interrupted.", file=sys.stderr)
        return 130
    except Exception as e:
        where = database_problem(e)
        if where is None:
            raise
        print(f"motcua: {where}", file=sys.stderr)
        return EXIT_USER
    except BrokenPipeError:  # e.g. `motcua ranking | head`: the reader left; so do we, quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
