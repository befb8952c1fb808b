"""The event store on PostgreSQL (``engine.store`` has the schema and what both dialects share).

Its own module so that a process on SQLite never imports the PostgreSQL driver (a twentieth of a
second at every start): ``engine.app`` names this class by its topic, resolved on first use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresProcessRecorder
from eventsourcing.utils import retry
from psycopg.sql import SQL

from engine.store import IntakeMixin, SideEffects, schema
from kernel.db import SCHEMA_LOCK

_CREATED = re.compile(r'CREATE (?:UNIQUE )?(?:TABLE|INDEX) IF NOT EXISTS (?:"?\w+"?\.)?"?(\w+)"?')


class PostgresStore(IntakeMixin, PostgresProcessRecorder):
    """PostgreSQL process recorder with the motcua tables."""

    ph = "%s"

    def __init__(self, datastore: Any, *, events_table_name: str = "stored_events",
                 tracking_table_name: str = "notification_tracking") -> None:
        super().__init__(datastore, events_table_name=events_table_name,
                         tracking_table_name=tracking_table_name)
        for statement in schema("BIGSERIAL", "BYTEA"):
            self.sql_create_statements.append(SQL(statement))  # type: ignore[arg-type]

    def create_table(self) -> None:
        """Create what is missing, one process at a time.

        With several engine processes: PostgreSQL's ``CREATE … IF NOT EXISTS`` fails (unique
        violation on ``pg_type``) when two processes create the same table at once, so they take
        turns; and even on existing tables it takes table locks (``CREATE INDEX`` a SHARE lock)
        that deadlock with a running engine's commit, so a process that finds every table and
        index in place creates nothing."""
        names = {m.group(1) for s in self.sql_create_statements
                 if (m := _CREATED.search(s.as_string()))}
        with self.datastore.get_connection() as conn:
            row = conn.execute("SELECT count(*) AS n FROM pg_class WHERE relname = ANY(%s) AND "
                               "relnamespace = %s::regnamespace",
                               (list(names), self.datastore.schema)).fetchone()
            if row is not None and int(row["n"]) == len(names):
                self.datastore.register_type_adapters()
                return
            conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
            try:
                super().create_table()
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))

    def existing(self, ids: Sequence[UUID]) -> set[UUID]:
        """Which of these aggregates have any recorded event (one query)."""
        out: set[UUID] = set()
        with self._tx(commit=False) as c:
            c.execute(f"SELECT DISTINCT originator_id FROM {self.events_table_name} WHERE "
                      "originator_id = ANY(%s)", (list(ids),))
            out.update(r["originator_id"] for r in c.fetchall())
        return out

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent],
                      **kwargs: Any) -> Sequence[int] | None:
        """The library's transaction (tracking and side effects, lock, notify, events, their
        facts rows), outside pipeline mode: a batch is a dozen statements, one per table, so
        the pipeline saves little, and COPY (the cheapest way in for the ledger and the facts
        rows, ``_insert_rows``) cannot run in one."""
        with self.datastore.get_connection() as conn, conn.transaction(), \
                conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                return None
            self._insert_stored_events(curs, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    def _insert_stored_events(self, curs: Any, stored_events: Sequence[StoredEvent],
                              **kwargs: Any) -> None:
        # The library's statement (kept: lock, notify, one INSERT … RETURNING) with the events
        # as four binary arrays instead of an array of its composite type, which psycopg
        # dumps as text, escaping every byte of every state.
        self._lock_table(curs)
        self._notify_channel(curs)
        ds = self.datastore
        curs.execute(
            f'INSERT INTO "{ds.schema}"."{self.events_table_name}" (originator_id, '
            "originator_version, topic, state) SELECT i, v, t, s FROM unnest("
            f"%b::{ds.originator_id_type}[], %b::int8[], %b::text[], %b::bytea[]) "
            "WITH ORDINALITY AS u(i, v, t, s, n) ORDER BY n RETURNING notification_id",
            [[s.originator_id for s in stored_events],
             [s.originator_version for s in stored_events],
             [s.topic for s in stored_events], [s.state for s in stored_events]])

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        fx: SideEffects | None = kwargs.get("side_effects")
        if fx:
            self.write_side_effects(curs, fx)

    def _fetch_ids_after_insert_events(self, curs: Any, stored_events: Sequence[StoredEvent],
                                       **kwargs: Any) -> Sequence[int] | None:
        # The facts rows are keyed by the notification ids, known only now; still in the
        # same transaction.
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        # Numbered in the arrays' order (ORDER BY n, under the table lock), whatever order
        # RETURNING lists them in.
        ids = sorted(ids) if ids is not None else None
        fx: SideEffects | None = kwargs.get("side_effects")
        self.write_facts(curs, fx.facts if fx else None, ids)
        return ids
