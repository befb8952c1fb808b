"""Benchmark fixtures and the results summary.

Run with ``benchmarks/run`` (or ``python -m pytest benchmarks --benchmark-only``). Benchmarks are
not part of ``scripts/test``: the suite in ``tests/`` never asserts a time. Here the only hard
assertion by default is a RATIO against a baseline measured in the same process (the fold suite),
because the machine is shared and absolute numbers move with its load. Absolute targets are
reported (pass/fail in the summary and in the JSON's ``extra_info``) and asserted only with
``MOTCUA_BENCH_STRICT=1``.

Every benchmark calls :func:`record` with its measures; the session ends with a table of them
(measure, target, value, pass/fail), and ``benchmarks/run`` writes them into the JSON and
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import itertools
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `tests` is a plain directory (no __init__), found from the root
    sys.path.insert(0, str(ROOT))

# The session fixtures of the test suite: the bundled broker and the real PostgreSQL server.
from support import RESULTS  # noqa: E402

from projections.ruleset import Ruleset, load_ruleset  # noqa: E402
from tests.conftest import PgServer, broker, pg_server  # noqa: E402, F401


@pytest.fixture(scope="session")
def ruleset() -> Ruleset:
    return load_ruleset("portal-2026")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RESULTS:
        return
    tr = terminalreporter
    tr.section("motcua benchmark measures")
    w = max(len(m.name) for m in RESULTS)
    for m in RESULTS:
        verdict = "" if m.passed is None else ("PASS" if m.passed else "MISS")
        tr.write_line(f"{m.suite:<10} {m.name:<{w}} {m.value:>14,.3f} {m.unit:<10} "
                      f"{m.target:<18} {verdict}")
    tr.write_line(f"load average (1/5/15 min) at the end: {os.getloadavg()}")
    out = os.environ.get("MOTCUA_BENCH_MEASURES")
    if out:
        Path(out).write_bytes(orjson.dumps([asdict(m) for m in RESULTS],
                                           option=orjson.OPT_INDENT_2))


# --------------------------------------------------------------------------- stores

_db_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def bench_dir() -> Iterator[Path]:
    """Scratch space on the real disk (SQLite files), removed at the end of the session."""
    import shutil

    d = Path(tempfile.mkdtemp(prefix="motcua-bench-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def fresh_sqlite_url(bench_dir: Path) -> Callable[[], str]:
    """``fresh_sqlite_url()``: the URL of a new, empty SQLite event store."""
    return lambda: f"sqlite:///{bench_dir / f'store-{next(_db_numbers)}.db'}"


@pytest.fixture(scope="session")
def fresh_pg_url(pg_server: PgServer) -> Iterator[Callable[[], str]]:  # noqa: F811
    """``fresh_pg_url()``: a new, empty database on the session's real PostgreSQL server."""
    import psycopg

    made: list[str] = []

    def make() -> str:
        name = f"motcua_bench_{os.getpid()}_{next(_db_numbers)}"
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return pg_server.url(name)

    yield make
    try:
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            for name in made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except psycopg.Error:
        pass  # the whole cluster goes at session end anyway


# --------------------------------------------------------------------------- the scoring province


@pytest.fixture(scope="session")
def scoring_province(ruleset: Ruleset, fresh_sqlite_url: Callable[[], str]) -> list[bytes]:
    """The ``motcua.events`` messages (bytes, as the relay sends them) of a simulated province
    with 100 units (33 departments, 67 communes) and a year of dossiers (12 reception months).

    Built once per session: simulate, record through the real engine, and turn the store's
    notification log into relay messages with ``engine.relay.event_message``.
    """
    from support import SCORING_CFG, relay_messages

    return relay_messages(SCORING_CFG, fresh_sqlite_url())

