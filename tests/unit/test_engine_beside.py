"""The next turn is parsed beside a batch's commit (engine.beside).

A real engine on a SQLite file; polls handed to the loop as the consumer would (no broker).
What must hold: each message is parsed once, the next turn's messages while the previous
commit runs on its helper thread; every action is recorded once; a failed commit raises on the
engine's thread, translated as the library translates it, after which the batch is recorded
whole by a second try; a message whose parse fails in an unexpected way fails in its own batch
(isolated and dead-lettered there), never in the batch beside whose commit it was parsed; and a
batch that fails before its commit runs nothing beside it.
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from collections import namedtuple
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from eventsourcing.persistence import OperationalError
from eventsourcing.sqlite import SQLiteConnection
from kafka import TopicPartition

from engine import beside
from engine.app import Engine, Message
from engine.domain.dossier import Dossier
from engine.intake import Batch
from engine.runner import EngineLoop
from engine.store import SQLiteStore
from engine.store_pg import PostgresStore
from kernel.contract.actions import parse_action
from motcua.pipeline import engine_at

Record = namedtuple("Record", "offset value headers")
AT = "2026-10-05T08:00:00+07:00"


def _dossier(i: int) -> list[bytes]:
    base = {"schema": "motcua.action/1", "source": "t", "dossier_id": f"D{i}"}
    return [orjson.dumps({**base, "action_id": f"r-{i}", "type": "received", "occurred_at": AT,
                          "data": {"agency_id": "A1", "procedure_id": "P1", "channel": "online",
                                   "due_at": "2026-10-20T17:00:00+07:00"}}),
            orjson.dumps({**base, "action_id": f"s-{i}", "type": "synced", "occurred_at": AT})]


def _messages(dossiers: int) -> list[Message]:
    values = [v for i in range(dossiers) for v in _dossier(i)]
    return [Message("motcua.actions", 0, o, v) for o, v in enumerate(values)]


def _store(engine: Engine) -> SQLiteStore | PostgresStore:
    """The engine's store: these tests open their engines on SQLite or PostgreSQL."""
    store = engine.store
    assert isinstance(store, SQLiteStore | PostgresStore)
    return store


def _events(engine: Engine) -> int:
    with _store(engine).datastore.transaction(commit=False) as c:
        c.execute(f"SELECT count(*) AS n FROM {_store(engine).events_table_name}")
        row = c.fetchone()
        assert row is not None
        return int(row["n"])


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = engine_at(f"sqlite:///{tmp_path}/s.db", hold_seconds=3600.0)
    try:
        yield e
    finally:
        e.close()


def test_each_message_is_parsed_once_the_next_turns_beside_the_commit(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten dossiers (20 actions) in turns of 4: the first turn is parsed before any commit,
    the four others each while the commit before them runs, every one exactly once; all 20
    are recorded."""
    in_commit = threading.Event()
    parsed: dict[bytes, list[bool]] = {}
    commit = beside._CommitBeside.commit

    def watched_commit(self: Any) -> None:
        in_commit.set()
        try:
            commit(self)
        finally:
            in_commit.clear()

    def counting_parse(raw: bytes) -> Any:
        parsed.setdefault(raw, []).append(in_commit.is_set())
        return parse_action(raw)

    monkeypatch.setattr(beside._CommitBeside, "commit", watched_commit)
    monkeypatch.setattr(beside, "parse_action", counting_parse)
    loop = EngineLoop(engine, "127.0.0.1:1", None, max_records=4, timer_every=1e9)
    loop.log_id = "L#0"
    loop.epochs = {0: engine.store.claim("motcua.actions", 0, loop.owner)}
    loop.ready.set()
    loop._last_identity = time.monotonic() + 1e9  # no broker to ask
    values = [v for i in range(10) for v in _dossier(i)]
    loop._record({TopicPartition("motcua.actions", 0):
                  [Record(o, v, []) for o, v in enumerate(values)]})
    assert loop.next_offset == {0: 20}
    assert [parsed[v] for v in values] == [[False]] * 4 + [[True]] * 16
    assert _events(engine) == 20


def test_a_failed_commit_raises_here_after_the_work_beside_it_and_a_retry_records_all(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    msgs = _messages(3)
    threads: list[str] = []
    real = SQLiteConnection.commit

    def failing_commit(self: SQLiteConnection) -> None:
        threads.append(threading.current_thread().name)
        self.rollback()  # as SQLite does when a commit fails on I/O
        raise sqlite3.OperationalError("disk I/O error")

    ran: list[str] = []
    switch = sys.getswitchinterval()
    monkeypatch.setattr(SQLiteConnection, "commit", failing_commit)
    with pytest.raises(OperationalError, match="disk I/O error"):
        engine.process("L#0", msgs, during=lambda: ran.append(
            threading.current_thread().name))
    assert threads == ["engine-commit"]
    assert ran == [threading.current_thread().name]
    assert not any(t.name == "engine-commit" for t in threading.enumerate())
    assert sys.getswitchinterval() == switch  # shortened only while both threads ran
    assert _events(engine) == 0
    monkeypatch.setattr(SQLiteConnection, "commit", real)
    assert engine.process("L#0", msgs, during=lambda: None) == {"accepted": 6}
    assert _events(engine) == 6


def test_a_parse_that_fails_unexpectedly_fails_in_its_own_batch(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _messages(2), _messages(4)[4:]
    bad = second[1]

    def parse(raw: bytes) -> Any:
        if raw == bad.value:
            raise RuntimeError("a bug in the parser")
        return parse_action(raw)

    monkeypatch.setattr(beside, "parse_action", parse)
    ahead: dict[int, Any] = {}
    counts = engine.process("L#0", first, during=lambda: ahead.update(beside.prepare(second)))
    assert counts == {"accepted": 4}  # the batch beside which the bad message was parsed
    assert id(bad) not in ahead and len(ahead) == 3
    counts = engine.process("L#0", second, parsed=ahead)
    assert counts["accepted"] == 3
    with _store(engine).datastore.transaction(commit=False) as c:
        c.execute("SELECT off, reason FROM motcua_dead_letters")
        assert [tuple(r) for r in c.fetchall()] == [(bad.offset, "internal_error")]


def _fail_on_offset_1(monkeypatch: pytest.MonkeyPatch) -> None:
    handle = Batch.handle

    def handle_or_fail(self: Any, m: Message, a: Any) -> None:
        if m.offset == 1:
            raise RuntimeError("a bug in one action's handling")
        handle(self, m, a)

    monkeypatch.setattr(Batch, "handle", handle_or_fail)


def test_a_batch_that_fails_in_handling_is_isolated_from_the_stored_state(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """D0's `synced` fails to handle: the batch is split, and D0's `received` is recorded.
    Before, the halves ran on what the failed try left in the cache (D0 received, not
    stored): D0's `received` was dead-lettered as `already_received`, lost."""
    _fail_on_offset_1(monkeypatch)
    counts = engine.process("L#0", _messages(2))
    assert counts == {"accepted": 3, "rejected": 1, "rejected:internal_error": 1}
    assert _events(engine) == 3
    with _store(engine).datastore.transaction(commit=False) as c:
        c.execute("SELECT off, reason FROM motcua_dead_letters")
        assert [tuple(r) for r in c.fetchall()] == [(1, "internal_error")]


def test_a_batch_that_fails_before_its_commit_runs_nothing_beside_it(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_on_offset_1(monkeypatch)
    ran: list[int] = []
    counts = engine.process("L#0", _messages(2), during=lambda: ran.append(1))
    assert ran == []
    assert counts["accepted"] == 3


def test_a_timer_batch_that_fails_leaves_no_unsaved_change_in_memory(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadline watcher fails on the second of two overdue dossiers: the first one's
    ``BecameOverdue``, never written, does not stay in the cache; the next round records
    both."""
    assert engine.process("L#0", _messages(2)) == {"accepted": 4}  # both due 2026-10-20
    record = Dossier.record_overdue
    calls: list[int] = []

    def second_fails(self: Dossier, now: Any) -> bool:
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("a bug on the second dossier")
        return record(self, now)

    monkeypatch.setattr(Dossier, "record_overdue", second_fails)
    with pytest.raises(RuntimeError):
        engine.record_overdue()
    assert not [a for a in engine.cache._aggregates.values() if a.pending_events]
    monkeypatch.setattr(Dossier, "record_overdue", record)
    assert engine.record_overdue() == 2
    assert _events(engine) == 6


@pytest.mark.postgres
def test_on_postgresql_the_whole_transaction_runs_beside_the_parse(
        pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real server: the batch's transaction runs on the helper thread while ``during`` runs
    here; the batch is recorded; a failure of the transaction is raised here."""
    engine = engine_at(pg_url, hold_seconds=3600.0)
    try:
        insert = PostgresStore.insert_events
        threads: list[str] = []

        def watched(self: Any, *args: Any, **kwargs: Any) -> Any:
            threads.append(threading.current_thread().name)
            return insert(self, *args, **kwargs)

        monkeypatch.setattr(PostgresStore, "insert_events", watched)
        ran: list[str] = []
        msgs = _messages(3)
        assert engine.process("L#0", msgs[:4], during=lambda: ran.append(
            threading.current_thread().name)) == {"accepted": 4}
        assert threads == ["engine-commit"] and ran == [threading.current_thread().name]

        def failing(self: Any, *args: Any, **kwargs: Any) -> Any:
            raise OperationalError("the server went away")

        monkeypatch.setattr(PostgresStore, "insert_events", failing)
        with pytest.raises(OperationalError, match="went away"):
            engine.process("L#0", msgs[4:], during=lambda: None)
        monkeypatch.setattr(PostgresStore, "insert_events", insert)
        assert engine.process("L#0", msgs[4:], during=lambda: None) == {"accepted": 2}
        assert _events(engine) == 6
    finally:
        engine.close()
