"""Replay from the event store equals the live views, on SQLite and on PostgreSQL.

Live views are built two ways: through the real broker (the engine's relay publishes
``motcua.events``; the projection role, in process or as a ``motcua project`` subprocess, folds
them), and in process, by handing the real ``ProjectionLoop.apply`` the relayed messages of each
partition in an interleaved order, lagging and redelivered, as Kafka would. Then
``Replayer.verify()`` must find nothing, a rebuild and swap must give the same scorecards, and
``motcua replay --verify`` must name a counter someone corrupted.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from faults import ROOT, Probe, Role, consume, role_env, wait_for
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from engine.app import Engine, Message
from engine.facts_cache import FOLD_COLUMNS, SCAN_CACHE_KIB
from engine.relay import Relay, event_message, partition_for
from engine.store import STORE_CACHE_KIB
from kernel import kafka as K
from kernel.broker import BundledBroker
from kernel.errors import UserError
from kernel.settings import ACTIONS_TOPIC, EVENTS_TOPIC
from motcua.ingest import Published, actions_log_id, publish, wait_done
from motcua.pipeline import Pipeline, engine_at
from producers.simulator import SimConfig, generate
from projections.fold import Counters
from projections.layout import DEFAULT_LAYOUT
from projections.periods import parse_instant, parse_period
from projections.replay import Replayer
from projections.ruleset import load_ruleset
from projections.runner import ProjectionLoop
from projections.segments import Segments
from projections.store import ViewStore, views_url
from projections.view_schema import INDEXES, index_names
from projections.views import scorecard

RULESET = load_ruleset("portal-2026")
# The engine's clock for its deadline watcher: before every due time, so that no BecameOverdue
# depends on how fast a test runs (the simulated province lives in 2026).
PAST = datetime(2025, 1, 1, tzinfo=UTC)
NOW = parse_instant("2026-12-31T12:00:00+07:00")
AGENCIES = ("H15", "H15.1", "H15.2")
PERIODS = ("2026", "2026-Q2")

# The slot of the "synced" feature in a dossier cell (the layout compiled from the registry).
SYNCED = DEFAULT_LAYOUT.dossier.names.index("synced")


def province(agencies: int, dossiers: int, seed: int = 3, days: int = 200) -> list[bytes]:
    return [orjson.dumps(a) for a in generate(SimConfig(
        agencies=agencies, dossiers=dossiers, seed=seed, start=date(2026, 1, 1), days=days,
        feedback_per_dossier=0.05))]


def cards(counters: Counters, now: datetime = NOW) -> dict[tuple[str, str], Any]:
    return {(a, p): scorecard(counters, RULESET, a, parse_period(p), now)
            for a in AGENCIES for p in PERIODS}


def state(c: Counters) -> dict[str, Any]:
    """Everything a set of counters says, without the zero entries a fold may leave behind."""
    return {
        "cells": c.cells, "fb_cells": c.fb_cells, "procedures": c.procedures,
        "agencies": c.agencies,
        "open": {k: {d: v for d, v in h.items() if v[0]} for k, h in c.open_due.items()},
        "fb_open": {k: {d: v for d, v in h.items() if v[0]} for k, h in c.fb_open_due.items()},
        "procs": {k: {p: v for p, v in ps.items() if any(v)} for k, ps in c.procs.items()},
    }


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store: a SQLite file, or a fresh database on the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'motcua.db'}"
    return str(request.getfixturevalue("pg_url"))


@dataclass
class Open:
    """An engine, the live views and a replayer over one store."""

    url: str
    engine: Engine
    views: ViewStore
    replayer: Replayer

    def close(self) -> None:
        self.views.close()
        self.engine.close()


def open_store(url: str, **engine_kw: Any) -> Open:
    engine = engine_at(url, hold_seconds=3600, clock=lambda: PAST, **engine_kw)
    views = ViewStore(views_url(url))
    return Open(url, engine, views, Replayer(engine.store, views))


def recorded_at(row: tuple[Any, ...]) -> datetime:
    """When a facts cache row ``(pos, kind, type, sid, at, recorded_us, …)`` was recorded."""
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=row[5])


def fresh_rebuild(o: Open, prefix: str = "check") -> Counters:
    """Every recorded event folded once into a table set of its own (the reference)."""
    shadow, counters, _ = o.replayer.rebuild(prefix, resume=False)
    shadow.close()
    return counters


# ----- the projection in process: relayed messages, partitions, lag and redelivery ------------


@dataclass(frozen=True)
class _TP:
    partition: int


@dataclass(frozen=True)
class _Record:
    offset: int
    value: bytes


class Feed:
    """``motcua.events`` as the relay would fill it, and the real projection fold over it.

    ``pull()`` turns newly recorded events into per-partition records (partition by the relay's
    rule); ``deliver(p, n)`` hands the next ``n`` records of partition ``p`` to
    ``ProjectionLoop.apply``, optionally starting ``back`` records before the cursor (a
    redelivery after a crash or a rebalance).
    """

    def __init__(self, o: Open, partitions: int) -> None:
        self.o = o
        self.partitions = partitions
        o.engine.store.set_position(Relay.PARTITIONS, partitions)
        self.log: dict[int, list[_Record]] = {p: [] for p in range(partitions)}
        self.cursor = dict.fromkeys(range(partitions), 0)
        self.pos = 0
        self.loop = ProjectionLoop(o.views, "127.0.0.1:9", None, partitions=partitions)
        # No broker here: the loop claims its partitions as if the group had assigned them.
        self.loop.take(list(range(partitions)))

    def record(self, lines: list[bytes], offset: int = 0, batch: int = 300) -> None:
        for i in range(0, len(lines), batch):
            self.o.engine.process("log", [Message(ACTIONS_TOPIC, 0, offset + i + j, line)
                                          for j, line in enumerate(lines[i:i + batch])])
        self.pull()

    def pull(self) -> None:
        for n in self.o.engine.store.read_facts(self.pos + 1, 10**9):
            key, value = event_message(n)
            part = self.log[partition_for(key.encode(), self.partitions)]
            part.append(_Record(len(part), orjson.dumps(value)))
            self.pos = n[0]

    def backlog(self, p: int) -> int:
        return len(self.log[p]) - self.cursor[p]

    def deliver(self, p: int, n: int, back: int = 0) -> None:
        start = max(0, self.cursor[p] - back)
        end = min(len(self.log[p]), self.cursor[p] + n)
        if end > start:
            self.loop.apply({_TP(p): self.log[p][start:end]})
            self.cursor[p] = max(self.cursor[p], end)

    def drain(self) -> None:
        for p in range(self.partitions):
            self.deliver(p, self.backlog(p))


# ----- 1. randomized streams, in process ---------------------------------------------------------

_examples = itertools.count()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def new_database(request: pytest.FixtureRequest) -> Iterator[Callable[[], str]]:
    """``new_database()``: the URL of a new, empty store (one per hypothesis example)."""
    made: list[str] = []
    tmp = Path(tempfile.mkdtemp(prefix="motcua-replay-"))
    server = request.getfixturevalue("pg_server") if request.param == "postgresql" else None

    def make() -> str:
        n = next(_examples)
        if server is None:
            return f"sqlite:///{tmp / f'm{n}.db'}"
        import psycopg

        name = f"motcua_replay_{os.getpid()}_{n}"
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return str(server.url(name))

    yield make
    shutil.rmtree(tmp, ignore_errors=True)
    if server is not None:
        import psycopg

        with psycopg.connect(server.url(), autocommit=True) as conn:
            for name in made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@settings(max_examples=10, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.reuse, Phase.generate],  # each example makes a store
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), agencies=st.integers(2, 4), dossiers=st.integers(5, 60),
       partitions=st.integers(1, 4), chunks=st.integers(1, 4), data=st.data())
def test_replay_equals_live_on_randomized_streams(
    new_database: Callable[[], str], seed: int, agencies: int, dossiers: int, partitions: int,
    chunks: int, data: st.DataObject,
) -> None:
    """Whatever the stream, the partitioning and the order, lag and repeats in which the
    projection folds it, verify finds the live views equal to the history they applied, and a
    rebuild swapped in gives the same scorecards."""
    lines = province(agencies, dossiers, seed, days=120)
    o = open_store(new_database())
    try:
        feed = Feed(o, partitions)
        size = -(-len(lines) // chunks)
        for c in range(chunks):
            feed.record(lines[c * size:(c + 1) * size], c * size)
            if c == chunks - 1:  # the deadline watcher, once, mid-history
                o.engine.clock = lambda: datetime(2026, 4, 1, tzinfo=UTC)
                o.engine.record_overdue(limit=10**6)
                feed.pull()
            for _ in range(data.draw(st.integers(0, 6), label="polls")):
                p = data.draw(st.integers(0, partitions - 1), label="partition")
                n = data.draw(st.integers(0, max(feed.backlog(p), 1)), label="records")
                back = data.draw(st.sampled_from([0, 0, 1, 7, 10**6]), label="redelivered")
                feed.deliver(p, n, back)
            assert o.replayer.verify() == []  # partitions lag each other here
        feed.drain()
        assert o.replayer.verify() == []
        live = o.views.load()
        assert state(live) == state(fresh_rebuild(o))
        shadow, counters, done = o.replayer.rebuild(resume=False)
        o.replayer.swap(shadow, counters, done)
        shadow.close()
        assert cards(o.views.load()) == cards(live)
        assert o.replayer.verify() == []
    finally:
        o.close()


# ----- 2. a stopped rebuild resumes ------------------------------------------------------------


def test_a_stopped_rebuild_resumes_to_the_same_views_as_one_full_rebuild(
    database_url: str,
) -> None:
    """A rebuild stopped halfway (``until``) and started again ends with the same counters and
    subject rows as one rebuild from scratch."""
    o = open_store(database_url)
    try:
        Feed(o, 3).record(province(4, 300))
        last = o.replayer.last_position()
        part, _, done = o.replayer.rebuild("shadow", resume=False, until=last // 2)
        assert done == last // 2 and part.positions()["replay|pos"] == last // 2
        part.close()
        resumed, counters, done = o.replayer.rebuild("shadow")
        assert done == last and o.replayer.stats["events"] == last - last // 2
        whole, whole_counters, _ = o.replayer.rebuild("whole", resume=False)
        assert state(resumed.load()) == state(whole.load()) == state(whole_counters)
        assert state(counters) == state(whole_counters)
        for kind in ("dossiers", "feedback"):
            ids = sorted(sid for sid, _ in whole.subject_rows(kind, whole.load().agencies,
                                                              months(whole_counters)))
            assert ids and [whole.subject_facts(kind, i) for i in ids] == [
                resumed.subject_facts(kind, i) for i in ids]
        resumed.close()
        whole.close()
    finally:
        o.close()


def test_a_rebuild_split_across_two_processes_equals_one_folded_in_this_process(
    database_url: str,
) -> None:
    """A rebuild whose later half of the log is folded in a worker process (also when it
    resumes a stopped one) ends with the same counters, subject rows and resume position as
    one folded here, reports its progress up to the end, and leaves no table of its worker."""
    o = open_store(database_url)
    try:
        Feed(o, 3).record(province(4, 300))
        last = o.replayer.last_position()
        whole, whole_counters, _ = o.replayer.rebuild("whole", resume=False)
        split = Replayer(o.engine.store, o.views, source_url=database_url, min_split=1)
        part, _, _ = split.rebuild("split", resume=False, until=last // 3)
        part.close()
        seen: list[tuple[int, int]] = []
        two, counters, done = split.rebuild("split", progress=lambda a, b: seen.append((a, b)))
        assert done == last and two.positions()["replay|pos"] == last
        assert split.stats["events"] == last - last // 3 and seen[-1] == (last, last)
        assert state(counters) == state(whole_counters) == state(two.load())
        for kind in ("dossiers", "feedback"):
            ids = sorted(sid for sid, _ in whole.subject_rows(kind, whole.load().agencies,
                                                              months(whole_counters)))
            assert ids and [whole.subject_facts(kind, i) for i in ids] == [
                two.subject_facts(kind, i) for i in ids]
            assert len(two.subject_rows(kind, two.load().agencies, months(counters))) == len(ids)
        with two.tx() as c:
            c.execute("SELECT table_name FROM information_schema.tables WHERE table_name LIKE "
                      "'split_tail%'" if two.is_pg else
                      "SELECT name FROM sqlite_master WHERE name LIKE 'split_tail%'")
            assert c.fetchall() == []
        two.close()
        whole.close()
    finally:
        o.close()


def months(c: Counters) -> list[str]:
    return sorted({m for _, m in c.cells} | {m for _, m in c.fb_cells})


class _Stop(Exception):
    """Raised from a progress callback: a rebuild interrupted (as by Ctrl-C)."""


def _subject_ids(views: ViewStore, kind: str) -> set[str]:
    with views.tx() as c:
        c.execute(f"SELECT id FROM {views.prefix}_{kind}")
        return {r[0] for r in c.fetchall()}


def test_a_rebuild_interrupted_after_a_flush_resumes_to_the_same_views(
    database_url: str,
) -> None:
    """A rebuild in small pages, flushed after each, interrupted halfway: its flushed rows
    lack some dossiers it had folded (the next page folds them again, so their row is left to
    a later flush), each of which has an event after the resume position; resumed, it ends with
    the same counters and subject rows as one full rebuild, and with every secondary index."""
    o = open_store(database_url)
    try:
        Feed(o, 3).record(province(4, 300))
        last = o.replayer.last_position()
        small = Replayer(o.engine.store, o.views, page=40, flush_every=1)

        def stop_halfway(pos: int, _stop: int) -> None:
            if pos >= last // 2:
                raise _Stop

        with pytest.raises(_Stop):
            small.rebuild("shadow", resume=False, progress=stop_halfway)
        part = ViewStore(o.views.url, prefix="shadow")
        at = part.positions()["replay|pos"]
        assert last // 2 <= at < last
        log = o.engine.store.read_facts(1, 10**9)
        folded = {r[3] for r in log if r[1] == "dossier" and r[7] is not None and r[0] <= at}
        later = {r[3] for r in log if r[1] == "dossier" and r[7] is not None and r[0] > at}
        left = folded - _subject_ids(part, "dossiers")
        assert left and left <= later
        part.close()
        resumed, counters, done = small.rebuild("shadow")
        assert done == last
        whole, whole_counters, _ = o.replayer.rebuild("whole", resume=False)
        assert state(counters) == state(whole_counters) == state(resumed.load())
        for kind in ("dossiers", "feedback"):
            ids = _subject_ids(whole, kind)
            assert ids and ids == _subject_ids(resumed, kind)
            assert [whole.subject_facts(kind, i) for i in sorted(ids)] == [
                resumed.subject_facts(kind, i) for i in sorted(ids)]
        with resumed.tx() as c:
            for table, _, columns in INDEXES:
                assert index_names(c, resumed.is_pg, f"shadow_{table}", columns), (table, columns)
        resumed.close()
        whole.close()
    finally:
        o.close()


def _one_by_one(rows: list[tuple[Any, ...]]) -> Counters:
    """The oracle: every row folded on its own, in order (``Counters.fold_row``)."""
    c = Counters()
    for _pos, kind, sid, prev, facts in rows:
        c.fold_row(kind, sid, None if prev is None else orjson.loads(prev),
                   None if facts is None else orjson.loads(facts))
    return c


def _in_windows(rows: list[tuple[Any, ...]], cuts: list[int], page: int = 97) -> Counters:
    """The replay's way: pages into a ``Segments``, settled at the pages in ``cuts``."""
    c = Counters()
    window = Segments(c)
    for n, i in enumerate(range(0, len(rows), page)):
        window.add(rows[i:i + page])
        if n in cuts:
            window.settle()
    window.settle()
    return c


def _same(a: Counters, b: Counters) -> None:
    assert state(a) == state(b)
    assert {k: v for k, v in a.delays.items() if v} == {k: v for k, v in b.delays.items() if v}
    assert a.dossiers == b.dossiers and a.feedback == b.feedback


def test_a_window_folds_each_dossier_once_to_the_counters_of_every_row_folded(
    database_url: str,
) -> None:
    """The province's log folded a window at a time (each dossier's rows of a window as one
    move, ``projections.segments``) gives the counters, the delays and the latest facts per
    subject of folding every row one by one, whatever the windows; the log has rows after
    which a dossier's facts are byte for byte what they were (results returned, ratings)."""
    o = open_store(database_url)
    try:
        Feed(o, 1).record(province(4, 300))
        rows = [(r[0], r[1], r[3], r[6], r[7]) for r in o.engine.store.read_facts(1, 10**9)]
        assert len([r for r in rows if r[1] == "dossier" and r[3] is not None
                    and r[3] == r[4]]) >= 10
        dossiers = {r[2] for r in rows if r[1] == "dossier"}
        assert len(rows) > 2 * len(dossiers) and any(r[1] == "feedback" for r in rows)
        oracle = _one_by_one(rows)
        for cuts in ([], [0, 1, 2, 5], list(range(0, 10**4, 3))):
            _same(_in_windows(rows, cuts), oracle)
    finally:
        o.close()


def test_a_scan_of_the_log_reads_the_same_rows_and_gives_the_page_cache_back(
    tmp_path: Path,
) -> None:
    """A replay's read of the log (``read_facts(..., scan=True)``) returns what a plain read
    does, cuts the SQLite connection's page cache while it reads (a scan's pages are never read
    again) and gives the connection its own cache size back after (statements traced on the
    connection)."""
    o = open_store(f"sqlite:///{tmp_path / 'scan.db'}")
    try:
        Feed(o, 1).record(province(2, 60))
        store = o.engine.store
        with store._tx(commit=False) as c:  # the connection the reads below are given
            conn = c.sqlite_cursor.connection
        plain = store.read_facts(1, 10**6, columns=FOLD_COLUMNS)
        said: list[str] = []
        conn.set_trace_callback(said.append)
        try:
            scanned = store.read_facts(1, 10**6, columns=FOLD_COLUMNS, scan=True)
        finally:
            conn.set_trace_callback(None)
        assert scanned == plain and len(plain) > 100
        select = next(i for i, q in enumerate(said) if q.startswith("SELECT pos"))
        assert said[:select].count(f"PRAGMA cache_size=-{SCAN_CACHE_KIB}") == 1, said
        assert said[select + 1:].count(f"PRAGMA cache_size=-{STORE_CACHE_KIB}") == 1, said
        assert conn.execute("PRAGMA cache_size").fetchone()[0] == -STORE_CACHE_KIB
    finally:
        o.close()


def test_a_break_in_a_dossiers_chain_of_facts_folds_as_the_rows_say(database_url: str) -> None:
    """Rows left out (as ``--as-recorded`` leaves out those recorded later) and rows whose facts
    before are not the facts after the dossier's row before (facts derived by other code): a
    window's moves stop and start again at each break, so the counters are still those of the
    rows folded one by one, which differ here from the log's own."""
    o = open_store(database_url)
    try:
        Feed(o, 1).record(province(4, 300))
        log = [(r[0], r[1], r[3], r[6], r[7]) for r in o.engine.store.read_facts(1, 10**9)]
        firsts: dict[str, bytes] = {}
        rows = []
        for i, (pos, kind, sid, prev, facts) in enumerate(log):
            if kind == "dossier" and facts is not None:
                firsts.setdefault(sid, facts)
                if i % 7 == 3:
                    continue  # left out
                if i % 11 == 5 and prev is not None:
                    prev = firsts[sid]  # a facts before that is not the row before's after
            rows.append((pos, kind, sid, prev, facts))
        oracle = _one_by_one(rows)
        assert state(oracle) != state(_one_by_one(log))  # the breaks matter
        for cuts in ([], [1, 4], list(range(0, 10**4, 2))):
            _same(_in_windows(rows, cuts), oracle)
    finally:
        o.close()


# ----- 3. --verify names a corrupted counter; --until / --as-recorded ---------------------------


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "motcua", *args], cwd=ROOT, env=env,
                          capture_output=True, timeout=60, check=False)


def cli_env(home: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    env.update(MOTCUA_HOME=str(home), MOTCUA_DATABASE_URL=url, MOTCUA_LOG_LEVEL="warning",
               MOTCUA_LOG_FORMAT="console")
    return env


def test_verify_names_a_corrupted_live_counter(database_url: str, motcua_home: Path) -> None:
    """``motcua replay --verify`` exits 0 on equal views, and exits 1 naming the agency, month
    and counter of a live cell someone changed by hand."""
    o = open_store(database_url)
    env = cli_env(motcua_home, database_url)
    try:
        feed = Feed(o, 3)
        feed.record(province(4, 200))
        feed.drain()
        ok = cli(env, "replay", "--verify")
        assert ok.returncode == 0, ok.stderr.decode()
        assert b"equal" in ok.stdout
        cells = o.views.load().cells
        with o.views.tx() as c:  # one row of a dossier cell, changed by hand
            c.execute("SELECT * FROM proj_cells WHERE kind = 'd' ORDER BY agency, month")
            names = [d[0] for d in c.description]
            row = dict(zip(names, c.fetchall()[-1], strict=True))
            agency, month = row["agency"], row["month"]
            doc = orjson.loads(bytes(row.pop("body")))
            doc["c"][SYNCED] += 3  # dossiers synced to the national portal
            c.execute(o.views._q(f"UPDATE proj_cells SET body = ? WHERE "
                                 f"{' AND '.join(f'{k} = ?' for k in row)}"),
                      (orjson.dumps(doc), *row.values()))
        synced = cells[(agency, month)][SYNCED]  # the cell's count (summed over table sets)
    finally:
        o.close()
    bad = cli(env, "replay", "--verify")
    assert bad.returncode == 1, bad.stderr.decode()
    out = bad.stdout.decode()
    assert "1 difference" in out
    line = next(ln for ln in out.splitlines() if " count[synced] " in ln)
    assert (agency in line and month in line and f"live {synced + 3}" in line
            and f"replayed {synced}" in line), out
    js = cli(env, "replay", "--verify", "--json")
    assert js.returncode == 1
    assert orjson.loads(js.stdout) == {"equal": False, "differences": [{
        "agency_id": agency, "month": month, "kind": "dossier", "counter": "count[synced]",
        "live": synced + 3, "replayed": synced}]}


def test_as_recorded_reproduces_a_scorecard_captured_earlier(
    database_url: str, motcua_home: Path,
) -> None:
    """A scorecard printed at T (``--now T``) is printed again by ``scores --as-recorded T``
    after more facts arrived, and ``replay --until T`` freezes the same counters."""
    lines = province(4, 300)
    half = len(lines) // 2
    o = open_store(database_url)
    env = cli_env(motcua_home, database_url)
    try:
        feed = Feed(o, 3)
        feed.record(lines[:half])
        feed.drain()
        # T after every fact recorded so far, and the later facts recorded after T: wait for
        # the clock to pass each instant (no fixed margin).
        earlier = o.engine.store.read_facts(1, 10**9)
        last = max(recorded_at(r) for r in earlier)
        wait_for(lambda: datetime.now(UTC) > last, "the clock to pass the last recording")
        at = datetime.now(UTC)
        t = at.isoformat()
        wait_for(lambda: datetime.now(UTC) > at, "the clock to pass T")
        first = cli(env, "scores", "H15", "--period", "2026", "--now", t, "--json")
        assert first.returncode == 0, first.stderr.decode()
        captured = orjson.loads(first.stdout)
        feed.record(lines[half:], half)
        feed.drain()
        newer = o.engine.store.read_facts(earlier[-1][0] + 1, 10**9)
        assert newer and min(recorded_at(r) for r in newer) > at
        later = cli(env, "scores", "H15", "--period", "2026", "--now", t, "--json")
        assert orjson.loads(later.stdout) != captured  # the later facts change the figures
        again = cli(env, "scores", "H15", "--period", "2026", "--as-recorded", t, "--json")
        assert again.returncode == 0, again.stderr.decode()
        assert orjson.loads(again.stdout) == captured
        before = "2025-01-01T00:00:00+07:00"  # before anything was recorded: named with T
        none = cli(env, "scores", "H15", "--period", "2026", "--as-recorded", before)
        assert none.returncode == 2
        assert none.stderr.decode().strip() == (
            f"motcua: Agency 'H15' is not known as recorded by {before}: nothing of it had "
            "been recorded by then.")
        frozen = cli(env, "replay", "--until", t)
        assert frozen.returncode == 0, frozen.stderr.decode()
        asof = ViewStore(o.views.url, prefix="asof")
        try:
            card = scorecard(asof.load(), RULESET, "H15", parse_period("2026"),
                             parse_instant(t))
        finally:
            asof.close()
        assert card == captured
    finally:
        o.close()


# ----- 4. through the real broker ---------------------------------------------------------------


def _settings(settings_for: Any, url: str, bootstrap: str) -> Any:
    return settings_for(url, bootstrap, MOTCUA_HOLD_SECONDS="600")


def _wait(p: Pipeline, views: ViewStore, pub: Published, bootstrap: str,
          roles: Sequence[Role] = ()) -> None:
    """Until the engine recorded ``pub`` and the projection folded it. A bound, not a speed:
    after a ``motcua project`` is killed and started again, the new member joins the group
    only once the dead one's session has run out (and the broker's JoinGroup delay), about 7 s
    of a 27 s test alone; 30 s ran out once with the suite's other worker busy (CI,
    2026-12-05), so the bound is 90 s."""
    assert p.engine is not None
    try:
        wait_done(p.engine, views, actions_log_id(p.engine, bootstrap, None), pub,
                  hold_seconds=600, timeout=90, progress=lambda n, s: None)
    except UserError as e:  # what the roles said, to tell a stall from a slow machine
        raise AssertionError("\n".join([str(e), *(
            f"--- motcua {r.role} ({'alive' if r.alive else 'exited'}):\n{r.tail()}"
            for r in roles)])) from e


def test_swap_under_a_running_projection_reloads_and_counts_later_events_once(
    database_url: str, fresh_broker: BundledBroker, settings_for: Any,
) -> None:
    """A rebuild swapped in while the projection role runs (and events keep coming) fences
    it: it reloads the new generation, and the events after the swap count exactly once."""
    lines = province(6, 900)
    a, b = len(lines) // 3, 2 * len(lines) // 3
    bootstrap = fresh_broker.bootstrap
    s = _settings(settings_for, database_url, bootstrap)
    p = Pipeline(s, roles=frozenset({"engine", "project"}), clock=lambda: PAST).start()
    o = open_store(database_url)
    try:
        p.wait_ready()
        assert p.views is not None and p.projection is not None
        _wait(p, o.views, publish(lines[:a], bootstrap, None, s.partitions), bootstrap)
        shadow, counters, done = o.replayer.rebuild(resume=False)
        pub = publish(lines[a:b], bootstrap, None, s.partitions)  # the loop is busy folding
        generation = o.replayer.swap(shadow, counters, done)
        shadow.close()
        assert generation == 1
        _wait(p, o.views, pub, bootstrap)
        _wait(p, o.views, publish(lines[b:], bootstrap, None, s.partitions), bootstrap)
        assert p.projection.generation == generation  # it reloaded after the swap
        assert o.replayer.verify() == []
        with p.projection.lock:
            live = state(p.projection.counters)
        assert live == state(fresh_rebuild(o)) == state(o.views.load())
    finally:
        o.close()
        p.stop()


def test_replay_verifies_equal_after_projection_kill_and_duplicated_delivery(
    database_url: str, fresh_broker: BundledBroker, settings_for: Any, tmp_path: Path,
) -> None:
    """A larger province through the broker, its ``motcua project`` SIGKILLed mid-stream and
    restarted, then every events message delivered twice: verify (in process, while it lags,
    and ``motcua replay --verify``) finds nothing, and a rebuild scores the same."""
    lines = province(8, 1500, seed=5)
    half = len(lines) // 2
    bootstrap = fresh_broker.bootstrap
    s = _settings(settings_for, database_url, bootstrap)
    env = role_env(s.home, database_url, bootstrap, MOTCUA_LOG_LEVEL="info")
    probe = Probe(database_url)
    project = Role("project", env, tmp_path)
    p = Pipeline(s, roles=frozenset({"engine"}), clock=lambda: PAST).start()
    o = open_store(database_url)
    try:
        project.start()
        publish(lines[:half], bootstrap, None, s.partitions)
        wait_for(lambda: probe.projected() > 0, "the projection to fold events",
                 roles=[project])
        project.kill()
        assert o.replayer.verify() == []  # dead mid-stream, partitions at different places
        pub = publish(lines[half:], bootstrap, None, s.partitions)
        project.start()
        _wait(p, o.views, pub, bootstrap, roles=[project])
        assert o.replayer.verify() == []

        events = o.replayer.last_position()
        records = consume(bootstrap, EVENTS_TOPIC, events)
        producer = K.producer(bootstrap)
        try:
            for r in records:
                producer.send(EVENTS_TOPIC, key=r.key, value=r.value, partition=r.partition)
            producer.flush()
        finally:
            producer.close()
        ends = K.end_offsets(bootstrap, EVENTS_TOPIC)
        wait_for(lambda: all(probe.view_positions().get(f"off|{log}|{q}", 0) >= end
                             for q, end in ends.items()
                             for log in _events_logs(probe)),
                 "the projection to read every event twice", roles=[project])
        done = cli(env, "replay", "--verify")
        assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
        assert o.replayer.verify() == []
        assert cards(o.views.load()) == cards(fresh_rebuild(o))
    finally:
        project.stop()
        o.close()
        p.stop()


def _events_logs(probe: Probe) -> set[str]:
    """The events log ids the projection keeps Kafka offsets for."""
    return {k.split("|")[1] for k in probe.view_positions() if k.startswith("off|")}
