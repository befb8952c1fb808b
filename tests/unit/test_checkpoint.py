"""The event store's WAL is copied into its database file by the engine's checkpointer, not by
its commits (engine.checkpoint).

A real engine on a SQLite file. What must hold: the store's connections checkpoint themselves
only past the backstop, so a commit below it leaves its pages in the WAL (the database file does
not grow); the checkpointer copies them right after each commit it is poked about, in full, and
counts it in the metrics; every action is readable throughout; a checkpointer that cannot open
its database says so once and goes on; and one dropped without ``close`` ends its thread.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import structlog
from faults import wait_for

from engine.app import Engine, Message
from engine.checkpoint import BACKSTOP_PAGES, Checkpointer
from engine.store import SQLiteStore
from kernel.metrics import REGISTRY
from motcua.pipeline import engine_at

AT = "2026-10-05T08:00:00+07:00"


def _received(i: int) -> bytes:
    return orjson.dumps({
        "schema": "motcua.action/1", "source": "t", "dossier_id": f"D{i}", "action_id": f"r-{i}",
        "type": "received", "occurred_at": AT,
        "data": {"agency_id": "A1", "procedure_id": "P1", "channel": "online",
                 "due_at": "2026-10-20T17:00:00+07:00"}})


N = 5000  # dossiers a batch: more than SQLite's own autocheckpoint threshold of WAL (1,000 pages)


def _batch(start: int, n: int) -> list[Message]:
    return [Message("motcua.actions", 0, o, _received(o)) for o in range(start, start + n)]


def _store(engine: Engine) -> SQLiteStore:
    """The engine's store: these tests open their engines on SQLite."""
    store = engine.store
    assert isinstance(store, SQLiteStore)
    return store


def _events(engine: Engine) -> int:
    with _store(engine).datastore.transaction(commit=False) as c:
        c.execute(f"SELECT count(*) AS n FROM {_store(engine).events_table_name}")
        return int(c.fetchone()["n"])


def _checkpoints() -> float:
    return REGISTRY.get_sample_value("motcua_engine_checkpoint_seconds_count") or 0.0


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = engine_at(f"sqlite:///{tmp_path}/s.db", hold_seconds=3600.0, record_uncatalogued=True)
    try:
        yield e
    finally:
        e.close()


def test_commits_leave_the_wal_to_the_checkpointer_which_copies_each_in_full(
        engine: Engine, tmp_path: Path) -> None:
    db, wal = tmp_path / "s.db", tmp_path / "s.db-wal"
    with _store(engine).datastore.transaction(commit=False) as c:
        c.execute("PRAGMA wal_autocheckpoint")
        assert c.fetchone()[0] == BACKSTOP_PAGES
    assert engine.checkpointer is not None
    # Without the checkpointer, the commits leave their pages in the WAL.
    engine.checkpointer.close()
    checkpointer, engine.checkpointer = engine.checkpointer, None
    size = db.stat().st_size
    engine.process("log", _batch(0, N))
    assert wal.stat().st_size > 1000 * 4096  # past SQLite's own threshold…
    assert db.stat().st_size == size  # …and not copied by the commit
    assert checkpointer.stats.runs == 0

    # With it, each commit is copied right after it, in full.
    engine.checkpointer = Checkpointer(str(db))
    before = _checkpoints()
    engine.process("log", _batch(N, N))
    wait_for(lambda: engine.checkpointer and engine.checkpointer.stats.runs >= 1,
             "the checkpointer to run after the commit")
    stats = engine.checkpointer.stats
    assert stats.last is not None
    busy, frames, copied = stats.last
    assert busy == 0 and frames > 2000 and copied == frames
    assert db.stat().st_size > size + 2 * 1000 * 4096  # both batches are in the file now
    assert _checkpoints() >= before + 1
    assert _events(engine) == 2 * N


def test_an_engine_on_sqlite_checkpoints_after_its_commits(engine: Engine) -> None:
    assert engine.checkpointer is not None
    engine.process("log", _batch(0, 50))
    wait_for(lambda: engine.checkpointer and engine.checkpointer.stats.runs >= 1,
             "the engine's checkpointer to run")
    assert engine.checkpointer.stats.failures == 0
    assert _events(engine) == 50


def test_a_checkpointer_that_cannot_open_its_database_says_so_once_and_goes_on(
        tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir" / "s.db"
    with structlog.testing.capture_logs() as logs:
        cp = Checkpointer(f"file:{missing}?mode=rw")
        try:
            for n in (1, 2, 3):
                cp.poke()

                def counted(n: int = n) -> bool:
                    return cp.stats.failures >= n

                wait_for(counted, f"failure {n} to be counted")
        finally:
            cp.close()
    assert [e["event"] for e in logs] == ["checkpoint_failed"]
    assert "unable to open database file" in logs[0]["error"]
    assert cp.stats.runs == 0


def test_a_checkpointer_dropped_without_close_ends_its_thread(tmp_path: Path) -> None:
    cp = Checkpointer(str(tmp_path / "s.db"))
    thread = cp._thread
    assert thread.is_alive()
    del cp
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()
