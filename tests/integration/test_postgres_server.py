"""The throwaway PostgreSQL server started by tests/conftest.py."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit
from uuid import UUID

import psycopg
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

pytestmark = pytest.mark.postgres


class Note(Aggregate):
    @event("Created")
    def __init__(self, text: str) -> None:
        self.text = text


def test_connects_to_a_fresh_database(pg_url: str) -> None:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("select current_database(), count(*) from pg_tables "
                           "where schemaname = 'public'").fetchone()  # fmt: skip
    assert row is not None
    assert row[0] == urlsplit(pg_url).path.lstrip("/")
    assert row[1] == 0


def test_each_test_gets_its_own_database(new_pg_database: Callable[[], str]) -> None:
    """Two databases of the fixture behind ``pg_url`` are separate: what one holds, the
    other does not."""
    first, second = new_pg_database(), new_pg_database()
    assert first != second
    with psycopg.connect(first) as conn:
        conn.execute("create table mark (x int)")
        conn.execute("insert into mark values (766)")
    with psycopg.connect(second) as conn:
        tables = conn.execute("select tablename from pg_tables "
                              "where schemaname = 'public'").fetchall()  # fmt: skip
    assert tables == []
    with psycopg.connect(first) as conn:
        assert conn.execute("select x from mark").fetchall() == [(766,)]


def test_eventsourcing_postgres_creates_its_tables(pg_url: str) -> None:
    parts = urlsplit(pg_url)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "",
        "POSTGRES_PORT": str(parts.port),
        "POSTGRES_USER": parts.username or "",
        "POSTGRES_PASSWORD": "",
    }
    app: Application[UUID] = Application(env=env)
    try:
        note = Note("hello")
        app.save(note)
        assert app.repository.get(note.id).text == "hello"
        assert [n.id for n in app.notification_log.select(start=1, limit=10)] == [1]
    finally:
        app.close()
    with psycopg.connect(pg_url) as conn:
        tables = {r[0] for r in conn.execute(
            "select tablename from pg_tables where schemaname = 'public'")}  # fmt: skip
    assert tables, "eventsourcing created no table"
