"""Where and how the stores keep things (docs/architecture.md "Storage", docs/decisions.md):
two SQLite files with their durability, one PostgreSQL database, views refused when built for
other criteria, and no rederive under a running engine."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_registry import EXTENDED

from engine.app import HEARTBEAT
from engine.store import SQLiteStore
from motcua.pipeline import engine_at
from projections.fold import Counters
from projections.layout import Layout
from projections.rederive import EngineRunningError, rederive
from projections.store import LayoutChangedError, ViewStore, views_url


def pragmas(transaction: Callable[[], Any]) -> tuple[Any, Any]:
    """(journal_mode, synchronous) of a connection, read in one of its transactions."""
    with transaction() as c:
        c.execute("PRAGMA journal_mode")
        mode = tuple(c.fetchone())[0]
        c.execute("PRAGMA synchronous")
        return mode, tuple(c.fetchone())[0]


def test_sqlite_keeps_events_and_views_in_two_files_each_with_its_durability(
    tmp_path: Path,
) -> None:
    """The event store ``motcua.db`` keeps eventsourcing's WAL with full sync; the views are
    ``motcua-views.db``, WAL with ``synchronous=NORMAL`` (a lost view transaction is redone)."""
    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    assert views_url(url) == f"sqlite:///{tmp_path / 'motcua-views.db'}"
    engine = engine_at(url)
    views = ViewStore(views_url(url))
    try:
        recorder = engine.app.recorder
        assert isinstance(recorder, SQLiteStore)
        store = recorder.datastore
        assert pragmas(lambda: store.transaction(commit=False)) == ("wal", 2)  # FULL
        assert pragmas(views.tx) == ("wal", 1)  # NORMAL
        views.flush(Counters(), {"pos|0": 0})
    finally:
        views.close()
        engine.close()
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["motcua-views.db", "motcua.db"]


def test_postgresql_keeps_the_views_in_the_event_store_s_database() -> None:
    """With PostgreSQL both live in the one database of ``MOTCUA_DATABASE_URL``."""
    url = "postgresql://motcua:secret@db.example:5432/motcua"
    assert views_url(url) == url


def test_views_built_for_other_criteria_are_refused_not_misread(tmp_path: Path) -> None:
    """A table set written with another counter layout (another criteria registry) is refused
    with one sentence saying to rebuild it, instead of being read with the wrong slots."""
    url = f"sqlite:///{tmp_path / 'motcua-views.db'}"
    other = ViewStore(url, layout=Layout(EXTENDED))
    try:
        other.flush(Counters(Layout(EXTENDED)), {"pos|0": 0})
    finally:
        other.close()
    views = ViewStore(url)
    try:
        with pytest.raises(LayoutChangedError, match="replay --restart"):
            views.load()
    finally:
        views.close()


def test_rederive_refuses_while_an_engine_records(tmp_path: Path) -> None:
    """A fresh engine heartbeat in the store: ``rederive`` refuses in one sentence; once the
    heartbeat is cleared (a stopped pipeline clears it) it runs."""
    engine = engine_at(f"sqlite:///{tmp_path / 'motcua.db'}")
    try:
        engine.store.set_position(HEARTBEAT, int(time.time()))
        with pytest.raises(EngineRunningError, match="stop `motcua up`"):
            rederive(engine)
        engine.store.set_position(HEARTBEAT, 0)
        assert rederive(engine) == 0
    finally:
        engine.close()
