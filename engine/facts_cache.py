"""The facts cache: per recorded event, what the projections need of it.

One row per event, keyed by its notification id (``pos``): its kind, type, subject, business
time, recording time (µs since the epoch) and the subject's facts before and after it, as the
annotator derived them (``projections.facts``). Written in the engine's transaction beside the
event; read by the relay, replays and ``--as-recorded``; replaced as a whole by
``replay --rederive``. ``motcua_meta`` records the rules version the facts were derived by.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, suppress
from typing import Any, NamedTuple


class FactRow(NamedTuple):
    """The facts cache row of one new event (its position is known only once inserted); a
    named tuple, the cheapest record to build (one per event)."""

    kind: str
    type: str
    sid: str
    at: str
    recorded_us: int
    prev: bytes | None
    facts: bytes | None


FACT_COLUMNS = "pos, kind, type, sid, at, recorded_us, prev, facts"
# What a fold of the log reads of a row (a replay reads millions: each column is an object made
# and freed per row).
FOLD_COLUMNS = "pos, kind, sid, prev, facts"
FACT_TYPES = ("int8", "text", "text", "text", "text", "int8", "bytea", "bytea")
# A SQLite connection's page cache while it reads a page of a scan of the log (``read_facts``).
SCAN_CACHE_KIB = 2_048


def _facts_table(name: str, blob: str, *, if_not_exists: bool = False) -> str:
    """A facts cache table's DDL. On SQLite ``pos`` is the rowid (``INTEGER PRIMARY KEY``): a
    row is one b-tree insert, and a read by position one probe, where a ``BIGINT`` key is a
    second index beside the rowid table (docs/decisions.md, "The facts cache's key is
    SQLite's rowid")."""
    key = "INTEGER" if blob == "BLOB" else "BIGINT"
    create = "CREATE TABLE IF NOT EXISTS" if if_not_exists else "CREATE TABLE"
    return (f"{create} {name} (pos {key} PRIMARY KEY, kind TEXT NOT NULL, "
            "type TEXT NOT NULL, sid TEXT NOT NULL, at TEXT NOT NULL, recorded_us BIGINT NOT "
            f"NULL, prev {blob}, facts {blob})")


def FACTS_TABLES(blob: str) -> list[str]:  # noqa: N802 - a constant of two dialects
    """The DDL of the facts cache and the meta table, in a dialect's blob type."""
    return [
        "CREATE TABLE IF NOT EXISTS motcua_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        _facts_table("motcua_facts", blob, if_not_exists=True),
    ]


class FactsCacheMixin:
    """Reads and writes of the facts cache, on the event store's recorder (two dialects)."""

    ph = "?"
    cache_kib = 2_000  # a SQLite connection's page cache, KiB (the store's own setting)
    # Set by the eventsourcing recorder the mixin sits on (its table of stored events).
    events_table_name: str

    def _sql(self, statement: str) -> str:
        return statement if self.ph == "?" else statement.replace("?", "%s")

    def _tx(self, commit: bool) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def write_facts(self, c: Any, rows: Sequence[FactRow] | None,
                    ids: Sequence[int] | None) -> None:
        """The facts cache rows of the events just inserted, under their notification ids."""
        if not rows:
            return
        if ids is None or len(ids) != len(rows):
            raise AssertionError(f"{len(rows)} facts rows for {ids and len(ids)} events")
        self._insert_rows(c, "motcua_facts", FACT_COLUMNS, FACT_TYPES,
                          [(pos, f.kind, f.type, f.sid, f.at, f.recorded_us, f.prev, f.facts)
                           for pos, f in zip(ids, rows, strict=True)])

    def _insert_rows(self, c: Any, table: str, columns: str, types: Sequence[str],
                     rows: Sequence[Sequence[Any]], conflict: str = "") -> None:
        """Insert rows in their order: on SQLite one ``executemany`` (in-process, a row costs
        little); on PostgreSQL one COPY, or with a ``conflict`` clause ONE statement from one
        array per column (``types``: the columns' PostgreSQL types), since the server runs a
        statement per row of an ``executemany``, which cost more than the rest of the
        transaction (the caller's transaction must not be in pipeline mode)."""
        if not rows:
            return
        if self.ph == "?":
            marks = ",".join("?" * len(types))
            c.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks}) {conflict}", rows)
            return
        if not conflict:  # COPY: psycopg formats the rows in C
            with c.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        names = [f"c{i}" for i in range(len(types))]
        # %b: arrays in binary (psycopg's text form escapes every element, bytes in hex:
        # several times the cost).
        arrays = ", ".join(f"%b::{t}[]" for t in types)
        # ORDINALITY + ORDER BY: rows are inserted (and numbered by a serial id) in list order.
        c.execute(f"INSERT INTO {table} ({columns}) SELECT {', '.join(names)} FROM "
                  f"unnest({arrays}) WITH ORDINALITY AS u({', '.join(names)}, n) ORDER BY n "
                  f"{conflict}", [list(col) for col in zip(*rows, strict=True)])

    def get_meta(self, name: str) -> str | None:
        with self._tx(commit=False) as c:
            c.execute(self._sql("SELECT value FROM motcua_meta WHERE name=?"), (name,))
            row = c.fetchone()
            return str(row["value"]) if row else None

    def set_meta(self, name: str, value: str) -> None:
        with self._tx(commit=True) as c:
            c.execute(self._sql("INSERT INTO motcua_meta (name, value) VALUES (?, ?) ON CONFLICT "
                                "(name) DO UPDATE SET value=excluded.value"), (name, value))

    def has_events(self) -> bool:
        table = self.events_table_name
        with self._tx(commit=False) as c:
            c.execute(f"SELECT 1 AS one FROM {table} LIMIT 1")
            return c.fetchone() is not None

    def read_facts(self, start: int, limit: int, stop: int | None = None,
                   recorded_by: int | None = None,
                   columns: str = FACT_COLUMNS, *, scan: bool = False) -> list[tuple[Any, ...]]:
        """Facts cache rows ``(pos, kind, type, sid, at, recorded_us, prev, facts)`` (or the
        ``columns`` given) from ``start`` (inclusive), up to ``stop``, only those recorded by
        ``recorded_by`` (µs).

        ``scan``: one of the pages of a read of the whole log (a replay), which no one reads
        again: on SQLite the connection's page cache is cut to ``SCAN_CACHE_KIB`` while it is
        read and given its size back after, so a scan does not fill the engine connection's
        cache (64 MiB of each replay process's peak) with pages of the log."""
        sql = f"SELECT {columns} FROM motcua_facts WHERE pos >= ?"
        params: list[Any] = [start]
        if stop is not None:
            sql += " AND pos <= ?"
            params.append(stop)
        if recorded_by is not None:
            sql += " AND recorded_us <= ?"
            params.append(recorded_by)
        sql += " ORDER BY pos LIMIT ?"
        params.append(limit)
        with self._tx(commit=False) as c:
            if self.ph == "?":
                # Plain tuples, not the connection's ``sqlite3.Row``s: making a Row per row
                # cost more than SQLite's own reading (a replay reads millions: 2.7 against
                # 1.0 µs of CPU per row, measured on a province-year's store).
                # (the eventsourcing cursor wraps the sqlite3 one)
                getattr(c, "sqlite_cursor", c).row_factory = None
                if scan:
                    c.execute(f"PRAGMA cache_size=-{SCAN_CACHE_KIB}")
            try:
                c.execute(self._sql(sql), params)
                rows = c.fetchall()
            finally:
                if scan and self.ph == "?":
                    # (a failed read's own error is the one to see; a cache left small only
                    # slows the connection's next reads)
                    with suppress(Exception):
                        c.execute(f"PRAGMA cache_size=-{self.cache_kib}")
        if self.ph == "?":
            return rows  # type: ignore[no-any-return]
        return [tuple(r.values()) for r in rows]

    def subjects_after(self, after: Any, limit: int) -> list[Any]:
        """Up to ``limit`` aggregate ids greater than ``after`` (``None``: from the first), in
        id order: the pages of a walk over every subject's history."""
        table = self.events_table_name
        with self._tx(commit=False) as c:
            if after is None:
                c.execute(self._sql(f"SELECT DISTINCT originator_id AS o FROM {table} "
                                    "ORDER BY originator_id LIMIT ?"), (limit,))
            else:
                c.execute(self._sql(f"SELECT DISTINCT originator_id AS o FROM {table} WHERE "
                                    "originator_id > ? ORDER BY originator_id LIMIT ?"),
                          (after, limit))
            return [r["o"] for r in c.fetchall()]

    def events_of(self, ids: Sequence[Any]) -> list[tuple[Any, ...]]:
        """``(position, id, version, topic, state)`` of every event of these aggregates, by
        aggregate and version."""
        if not ids:
            return []
        table = self.events_table_name
        col = "rowid" if self.ph == "?" else "notification_id"
        marks = ",".join("?" * len(ids))
        with self._tx(commit=False) as c:
            c.execute(self._sql(f"SELECT {col} AS pos, originator_id, originator_version, "
                                f"topic, state FROM {table} WHERE originator_id IN ({marks}) "
                                "ORDER BY originator_id, originator_version"), list(ids))
            return [(int(r["pos"]), r["originator_id"], int(r["originator_version"]),
                     r["topic"], bytes(r["state"])) for r in c.fetchall()]

    def write_next_facts(self, rows: Sequence[tuple[Any, ...]], *, first: bool) -> None:
        """Write recomputed facts rows into ``motcua_facts_next`` (created anew when
        ``first``); ``swap_facts`` makes it the cache."""
        blob = "BLOB" if self.ph == "?" else "BYTEA"
        with self._tx(commit=True) as c:
            if first:
                c.execute("DROP TABLE IF EXISTS motcua_facts_next")
                c.execute(_facts_table("motcua_facts_next", blob))
            if rows:
                c.executemany(self._sql(f"INSERT INTO motcua_facts_next ({FACT_COLUMNS}) "
                                        "VALUES (?,?,?,?,?,?,?,?)"), list(rows))

    def swap_facts(self, version_name: str, version: str) -> None:
        """Make the recomputed facts the cache, and record the rules they were derived by,
        in one transaction."""
        with self._tx(commit=True) as c:
            c.execute("DROP TABLE motcua_facts")
            c.execute("ALTER TABLE motcua_facts_next RENAME TO motcua_facts")
            c.execute(self._sql("INSERT INTO motcua_meta (name, value) VALUES (?, ?) ON "
                                "CONFLICT (name) DO UPDATE SET value=excluded.value"),
                      (version_name, version))

    def last_fact(self) -> int:
        """The highest position in the facts cache (0 when empty)."""
        with self._tx(commit=False) as c:
            c.execute("SELECT MAX(pos) AS m FROM motcua_facts")
            row = c.fetchone()
            return int(row["m"] or 0)
