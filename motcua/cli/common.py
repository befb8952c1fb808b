"""What every command group shares: the parser class and how commands are added, settings and
the query preamble, JSON output, the progress bar, and turning an error into one sentence."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, NoReturn, TypeAlias

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
        """Exit 2 with the message as one sentence (one line) saying where the usage is."""
        text = " ".join(message.split()).rstrip(".")
        self.exit(EXIT_USER, f"motcua: {text[0].upper() + text[1:]} (see `{self.prog} "
                             "--help`).\n")


def add_command(sub: Subparsers, name: str, help_: str, fn: Command) -> Any:
    """Add command ``name`` running ``fn``; its help line is also its description."""
    sp = sub.add_parser(name, help=help_, description=help_, epilog=EPILOG,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    sp.set_defaults(fn=fn)
    return sp


# ----- argument types: a bad value is argparse's one-sentence error naming the argument ------


def int_from(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``lo`` (to ``hi``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < lo or (hi is not None and value > hi):
            within = f"from {lo:,} to {hi:,}" if hi is not None else f"of {lo:,} or more"
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number {within}")
        return value
    return parse


def positive_number(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text!r} is not a number above 0")
    return value


def one_of(*choices: str) -> Callable[[str], str]:
    """An argparse type: one of ``choices`` (listed when it is not)."""
    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(choices)}")
        return text
    return parse


def not_empty(what: str) -> Callable[[str], str]:
    """An argparse type: a value that is not empty or blank."""
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"an empty {what} is not a {what}")
        return text
    return parse


PORT = int_from(1, 65535)


def add_time_args(sp: Any, period: bool = True) -> None:
    """Add the view's ``--period`` (unless not ``period``) and ``--now`` to a query command."""
    if period:
        sp.add_argument("--period", type=not_empty("period"), help="2026, 2026-H2, 2026-Q4 or "
                        "2026-10 (default: the current year)")
    sp.add_argument("--now", type=not_empty("time"), help="the view's now, RFC 3339 "
                    "(default: the clock)")


# ----- settings and the query preamble -------------------------------------------------------


def load_settings() -> Settings:
    """The settings from the environment."""
    return Settings.from_env()


def check_settings() -> None:
    """Every setting, checked before any command runs: the variables themselves, and the files
    some of them name (a pinned ruleset must exist, rules files must load)."""
    from kernel.errors import ConfigurationError

    settings = load_settings()
    if settings.ruleset or settings.ruleset_dir:
        from motcua.pipeline import make_rulesets
        from projections.ruleset import UnknownRulesetError

        try:
            make_rulesets(settings)
        except UserError as e:
            named = (f"MOTCUA_RULESET {settings.ruleset!r}" if isinstance(e, UnknownRulesetError)
                     else f"MOTCUA_RULESET_DIR {settings.ruleset_dir!r}")
            raise ConfigurationError(f"{named}: {e}") from None
    if settings.lifecycle_rules:
        from kernel.lifecycle import load_lifecycle

        try:
            load_lifecycle(settings.lifecycle_rules)
        except UserError as e:
            raise ConfigurationError(
                f"MOTCUA_LIFECYCLE_RULES {settings.lifecycle_rules!r}: {e}") from None


def require_store(settings: Settings) -> None:
    """A command that only reads must not create a store: a SQLite file that is not there is
    a mistyped MOTCUA_DATABASE_URL or MOTCUA_HOME, not an empty store to make."""
    from kernel.settings import redact_url

    if settings.is_postgres:
        return
    if not settings.sqlite_path.is_file():
        raise UserError(f"The database {redact_url(settings.database_url)} does not exist: "
                        "nothing has been recorded there (check MOTCUA_HOME and "
                        "MOTCUA_DATABASE_URL).")
    with settings.sqlite_path.open("rb") as f:
        head = f.read(16)
    if head and head != b"SQLite format 3\x00":  # (an empty file is an empty database)
        raise UserError(f"The database {redact_url(settings.database_url)} is not a SQLite "
                        "database (check MOTCUA_DATABASE_URL).")


def setup_logs(settings: Settings, quiet: bool = False) -> None:
    """Configure logging as set (only warnings and worse when ``quiet``)."""
    from motcua.logs import configure

    configure("warning" if quiet else settings.log_level, settings.log_format)


def now_of(args: argparse.Namespace) -> datetime:
    """The view's now: ``--now`` if given, else the clock."""
    from projections.periods import parse_instant

    return parse_instant(args.now) if getattr(args, "now", None) is not None \
        else datetime.now(UTC)


def period_of(args: argparse.Namespace, now: datetime) -> Any:
    """The view's period: ``--period`` if given, else the year of ``now``."""
    from projections.periods import current_year, parse_period

    return parse_period(args.period) if args.period is not None else current_year(now)


def query(args: argparse.Namespace) -> tuple[Settings, Any, datetime, Any]:
    """What every query command starts with: settings, the ruleset, the view's now and
    period."""
    settings = load_settings()
    setup_logs(settings, quiet=True)
    now = now_of(args)
    period = period_of(args, now)
    require_store(settings)
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


def check_agency_known(counters: Any, agency_id: str, as_recorded: str | None = None) -> None:
    """Refuse an agency the views have never seen, rather than score it as empty (the views
    as recorded by a time: named with it)."""
    from projections.views import Tree

    if agency_id in Tree.build(counters).parent:
        return
    if as_recorded is not None:
        raise UserError(f"Agency {agency_id!r} is not known as recorded by {as_recorded}: "
                        "nothing of it had been recorded by then.")
    raise UserError(f"Agency {agency_id!r} is not known: no registration or dossier of it "
                    "has been recorded.")


def open_replayer(settings: Settings, check_facts: bool = True) -> Any:
    """An engine and a replayer of its store into the views (the caller closes both)."""
    from motcua.pipeline import make_engine
    from projections.replay import Replayer

    engine = make_engine(settings, check_facts=check_facts)
    # source_url: a long rebuild folds half the log in a second process (Replayer.rebuild)
    return engine, Replayer(engine.store, load_views(settings), source_url=settings.database_url)


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
    # A file that is not a SQLite database, or a damaged one (not a bug of ours either).
    unusable_file = isinstance(e, sqlite3.DatabaseError) and getattr(
        e, "sqlite_errorname", "") in ("SQLITE_NOTADB", "SQLITE_CORRUPT")
    if not isinstance(e, kinds) and not unusable_file:
        return None
    from kernel.settings import redact_url

    try:
        url = redact_url(Settings.from_env().database_url)
    except UserError:
        url = "the configured database"
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return f"The database {url} cannot be used: {first.rstrip('.')}."


def exit_at_once(code: int) -> NoReturn:
    """End a long-running motcua process once its command has stopped everything it started
    (stores closed, broker and child engine stopped, logs written), without the interpreter's
    own teardown: freeing every object one by one (the engine's cached aggregates and all)
    took about 0.7 s of the child engine's stop after a backlog, and `motcua up` waits for it.
    Standard output and error are flushed first; no motcua code runs at exit."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # (a reader gone away: nothing to flush to)
            stream.flush()
    logging.shutdown()
    os._exit(code)


def run_command(fn: Command, args: argparse.Namespace) -> int:
    """Run a command; a user mistake or an unusable database is one sentence on stderr.

    The settings are checked first, whatever the command: a bad ``MOTCUA_*`` value is a
    mistake even where the command would not have read it."""
    try:
        check_settings()
        code = int(fn(args))
        sys.stdout.flush()  # here, so that a reader gone away is the BrokenPipeError below
        return code
    except UserError as e:
        _say(str(e))
        return EXIT_USER
    except KeyboardInterrupt:
        _say("interrupted.")
        return 130
    except BrokenPipeError:  # e.g. `motcua ranking | head`: the reader left; so do we, quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as e:
        where = database_problem(e)
        if where is None:
            raise
        _say(where)
        return EXIT_USER


def _say(message: str) -> None:
    """One line on stderr, whatever line breaks the message holds."""
    print(f"motcua: {' '.join(message.split())}", file=sys.stderr)
