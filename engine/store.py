"""The event store: eventsourcing's process recorders plus motcua's intake ledger.

Each engine transaction writes, together and atomically: the new domain events, the facts
cache row of each (``motcua_facts``, keyed by the event's notification id), the Kafka position
(eventsourcing ``Tracking``), one intake row per consumed message (accepted, duplicate, held or
rejected), the dead letters bound for ``motcua.rejected``, and the deadline index of open
dossiers. One schema, two dialects (SQLite and PostgreSQL).

The facts cache is what every reader of the log reads (the relay, a replay, an in-store
projection): per event its kind, type, subject, business time, recording time and the facts
before and after it, without the domain payload.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import IntegrityError, StoredEvent, Transcoder
from eventsourcing.sqlite import SQLiteProcessRecorder

from engine.checkpoint import BACKSTOP_PAGES
from engine.facts_cache import FACTS_TABLES, FactRow, FactsCacheMixin
from engine.held_rows import HeldRowsMixin
from engine.spooled import SpoolMixin
from kernel.spool import spool_tables

ACCEPTED = "accepted"
DUPLICATE = "duplicate"
REJECTED = "rejected"
HELD = "held"


class OrjsonTranscoder(Transcoder):
    """JSON with orjson; event payloads are primitives, only ``timestamp`` is a datetime."""

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def decode(self, data: bytes) -> Any:
        d = orjson.loads(data)
        ts = d.get("timestamp")
        if isinstance(ts, str):
            d["timestamp"] = datetime.fromisoformat(ts)
        return d


class HoldRaceError(IntegrityError):
    """Another process settled a held action first; the batch is redone."""


class FencedError(IntegrityError):
    """A process that lost a partition tried to commit for it (a zombie); nothing is written."""


@dataclass(slots=True)
class IntakeRow:
    """What became of one consumed message (slots: one per message, built and read once)."""

    log: str
    topic: str
    partition: int
    offset: int
    outcome: str
    akey: str | None = None
    fingerprint: str | None = None
    subject: str | None = None
    occurred_at: str | None = None
    reason: str | None = None
    field: str | None = None
    message: str | None = None
    raw: bytes | None = None


@dataclass
class SideEffects:
    """Everything an engine transaction writes besides events and tracking."""

    intake: list[IntakeRow] = field(default_factory=list)
    # (row id, new outcome, reason, message) for held rows that were released or expired.
    resolved_holds: list[tuple[int, str, str | None, str | None]] = field(default_factory=list)
    dead_letters: list[IntakeRow] = field(default_factory=list)
    # (topic, partition, epoch): commit only while this process still owns the partition.
    fence: tuple[str, int, int] | None = None
    # (row id, new subject) for held rows that now wait for something else.
    rehold: list[tuple[int, str]] = field(default_factory=list)
    # originator id hex -> epoch seconds of the due time, or None to drop it from the index.
    deadlines: dict[str, float | None] = field(default_factory=dict)
    # One per new event, in the order the events are inserted.
    facts: list[FactRow] = field(default_factory=list)
    # (spool id, log, partition, offset): spooled lines this batch recorded (kernel.spool).
    spool_done: list[tuple[int, str, int, int]] = field(default_factory=list)
    # Spool ids whose copy came before an older line of its subject: send them again.
    spool_resend: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.intake or self.resolved_holds or self.dead_letters or self.deadlines
                    or self.rehold or self.fence or self.facts or self.spool_done
                    or self.spool_resend)


def akey(source: str, action_id: str) -> str:
    """The idempotency key (``source``, ``action_id``) as one column."""
    return f"{source}\x1f{action_id}"


_INTAKE_COLUMNS = (
    "log, topic, part, off, outcome, akey, fingerprint, subject, occurred_at, reason, field, "
    "message, raw, recorded_at"
)
# Their PostgreSQL types, for a multi-row insert from arrays (``_insert_rows``).
_INTAKE_TYPES = ("text", "text", "int4", "int8", "text", "text", "text", "text", "text", "text",
                 "text", "text", "bytea", "float8")
_DEAD_LETTER_TYPES = ("text", "text", "int4", "int8", "text", "text", "text", "text", "bytea",
                      "float8")


def schema(serial: str, blob: str) -> list[str]:
    """The motcua tables of the event store, in a dialect's serial and blob types (SQLite here,
    PostgreSQL in ``engine.store_pg``)."""
    return [
        f"CREATE TABLE IF NOT EXISTS motcua_intake (id {serial} PRIMARY KEY, log TEXT NOT NULL, "
        "topic TEXT NOT NULL, part INTEGER NOT NULL, off BIGINT NOT NULL, outcome TEXT NOT NULL, "
        f"akey TEXT, fingerprint TEXT, subject TEXT, occurred_at TEXT, reason TEXT, field TEXT, "
        f"message TEXT, raw {blob}, recorded_at DOUBLE PRECISION NOT NULL)",
        "CREATE UNIQUE INDEX IF NOT EXISTS motcua_intake_key ON motcua_intake (akey) "
        "WHERE outcome IN ('accepted', 'held')",
        "CREATE INDEX IF NOT EXISTS motcua_intake_held ON motcua_intake (subject) "
        "WHERE outcome = 'held'",
        "CREATE INDEX IF NOT EXISTS motcua_intake_pos ON motcua_intake (log, topic, part, off)",
        f"CREATE TABLE IF NOT EXISTS motcua_dead_letters (id {serial} PRIMARY KEY, "
        "log TEXT NOT NULL, topic TEXT NOT NULL, part INTEGER NOT NULL, off BIGINT NOT NULL, "
        "akey TEXT, reason TEXT NOT NULL, field TEXT, message TEXT NOT NULL, "
        f"raw {blob}, recorded_at DOUBLE PRECISION NOT NULL)",
        "CREATE TABLE IF NOT EXISTS motcua_deadlines (originator_id TEXT PRIMARY KEY, "
        "due DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX IF NOT EXISTS motcua_deadlines_due ON motcua_deadlines (due)",
        "CREATE TABLE IF NOT EXISTS motcua_positions (name TEXT PRIMARY KEY, "
        "value BIGINT NOT NULL)",
        *FACTS_TABLES(blob),
        # Partition ownership for many engine processes: a new owner bumps the epoch, and a
        # commit succeeds only with the current epoch (zombie fencing).
        "CREATE TABLE IF NOT EXISTS motcua_owners (topic TEXT NOT NULL, part INTEGER NOT NULL, "
        "owner TEXT NOT NULL, epoch BIGINT NOT NULL, beat DOUBLE PRECISION NOT NULL, "
        "PRIMARY KEY (topic, part))",
        *spool_tables(postgres=serial != "INTEGER"),
    ]


class IntakeMixin(FactsCacheMixin, SpoolMixin, HeldRowsMixin):
    """The motcua tables, written in the same transaction as the events (one home, two dialects)."""

    # Set by the eventsourcing recorder the mixin sits on: its datastore, whose
    # ``transaction(commit=…)`` gives a cursor (SQLite's or PostgreSQL's; typed there).
    datastore: Any

    @contextmanager
    def _tx(self, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as c:
            yield c

    def existing(self, ids: Sequence[UUID]) -> set[UUID]:
        """Which of these aggregates have any recorded event (one query; each dialect's)."""
        raise NotImplementedError

    def write_side_effects(self, c: Any, fx: SideEffects) -> None:
        now = time.time()
        if fx.intake:
            self._insert_rows(c, "motcua_intake", _INTAKE_COLUMNS, _INTAKE_TYPES, [
                (r.log, r.topic, r.partition, r.offset, r.outcome, r.akey, r.fingerprint,
                 r.subject, r.occurred_at, r.reason, r.field, r.message,
                 r.raw if r.outcome in (HELD, REJECTED) else None, now) for r in fx.intake])
        # A held row may be settled by another engine process at the same moment (its subject
        # arrived there, or its hold expired there): each update must find the row still held,
        # or the whole transaction is undone and the batch redone (HoldRaceError).
        for i, o, r, m in fx.resolved_holds:
            if self._returning(c, "UPDATE motcua_intake SET outcome=?, reason=?, message=?, "
                               "raw=NULL WHERE id=? AND outcome='held' RETURNING id",
                               (o, r, m, i)) is None:
                raise HoldRaceError(f"Held action {i} was settled elsewhere meanwhile.")
        for i, subject in fx.rehold:
            if self._returning(c, "UPDATE motcua_intake SET subject=? WHERE id=? AND "
                               "outcome='held' RETURNING id", (subject, i)) is None:
                raise HoldRaceError(f"Held action {i} was settled elsewhere meanwhile.")
        if fx.fence is not None:
            topic, part, epoch = fx.fence
            if self._returning(c, "UPDATE motcua_owners SET beat=? WHERE topic=? AND part=? "
                               "AND epoch=? RETURNING epoch", (now, topic, part, epoch)) is None:
                raise FencedError(f"This process no longer owns {topic}[{part}] (epoch {epoch}).")
        if fx.dead_letters:
            self._insert_rows(
                c, "motcua_dead_letters", "log, topic, part, off, akey, reason, field, message, "
                "raw, recorded_at", _DEAD_LETTER_TYPES,
                [(r.log, r.topic, r.partition, r.offset, r.akey, r.reason, r.field, r.message,
                  r.raw, now) for r in fx.dead_letters])
        self.write_spool_done(c, fx.spool_done, fx.spool_resend)
        drops = [(oid,) for oid, due in fx.deadlines.items() if due is None]
        sets = [(oid, due) for oid, due in fx.deadlines.items() if due is not None]
        if drops and self.ph != "?":  # one statement, not one per row
            c.execute("DELETE FROM motcua_deadlines WHERE originator_id = ANY(%s)",
                      ([oid for oid, in drops],))
        elif drops:
            c.executemany("DELETE FROM motcua_deadlines WHERE originator_id=?", drops)
        if sets:
            self._insert_rows(c, "motcua_deadlines", "originator_id, due", ("text", "float8"),
                              sets, "ON CONFLICT (originator_id) DO UPDATE SET due=excluded.due")

    def _returning(self, c: Any, statement: str, params: Sequence[Any]) -> Any:
        """One ``… RETURNING`` statement's first row, read on a cursor of its own.

        On PostgreSQL the recorder's cursor runs in pipeline mode, where a fetch on the cursor
        that also ran the tracking INSERT may see that INSERT's result instead of this one's
        (psycopg: "the last operation didn't produce records")."""
        if self.ph == "?":  # SQLite: no pipeline, the recorder's cursor will do
            c.execute(statement, params)
            return c.fetchone()
        cur = c.connection.cursor()
        try:
            cur.execute(self._sql(statement), params)
            return cur.fetchone()
        finally:
            cur.close()

    def record_side_effects(self, fx: SideEffects) -> None:
        """Write side effects alone (hold expiry), in their own transaction."""
        if fx:
            with self._tx(commit=True) as c:
                self.write_side_effects(c, fx)

    # ----- reads ---------------------------------------------------------------------------

    def lookup_keys(self, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        """The taken keys among ``keys``: key → (fingerprint, outcome)."""
        out: dict[str, tuple[str, str]] = {}
        with self._tx(commit=False) as c:
            if self.ph != "?":  # one statement with an array, not one per 500 keys
                c.execute("SELECT akey, fingerprint, outcome FROM motcua_intake WHERE "
                          "outcome IN ('accepted','held') AND akey = ANY(%s)", (list(keys),))
                return {r["akey"]: (r["fingerprint"], r["outcome"]) for r in c.fetchall()}
            for i in range(0, len(keys), 500):
                chunk = keys[i:i + 500]
                c.execute(
                    self._sql("SELECT akey, fingerprint, outcome FROM motcua_intake WHERE "
                              f"outcome IN ('accepted','held') AND akey IN "
                              f"({','.join('?' * len(chunk))})"),
                    list(chunk),
                )
                for row in c.fetchall():
                    out[row["akey"]] = (row["fingerprint"], row["outcome"])
        return out

    def due_deadlines(self, now: float, limit: int = 1000) -> list[tuple[str, float]]:
        with self._tx(commit=False) as c:
            c.execute(
                self._sql("SELECT originator_id, due FROM motcua_deadlines WHERE due <= ? "
                          "ORDER BY due LIMIT ?"),
                (now, limit),
            )
            return [(r["originator_id"], float(r["due"])) for r in c.fetchall()]

    def intake_summary(self, log: str, topic: str,
                       ranges: dict[int, tuple[int, int]]) -> list[tuple[str, str | None, int]]:
        """(outcome, reason, count) of the messages in the given offset ranges per partition."""
        out: list[tuple[str, str | None, int]] = []
        with self._tx(commit=False) as c:
            for part, (lo, hi) in ranges.items():
                c.execute(
                    self._sql("SELECT outcome, reason, COUNT(*) AS n FROM motcua_intake WHERE "
                              "log=? AND topic=? AND part=? AND off BETWEEN ? AND ? "
                              "GROUP BY outcome, reason"),
                    (log, topic, part, lo, hi),
                )
                out.extend((r["outcome"], r["reason"], int(r["n"])) for r in c.fetchall())
        return out

    def dead_letters_after(self, after_id: int, limit: int) -> list[dict[str, Any]]:
        with self._tx(commit=False) as c:
            c.execute(self._sql("SELECT * FROM motcua_dead_letters WHERE id > ? ORDER BY id "
                                "LIMIT ?"), (after_id, limit))
            return [dict(r) for r in c.fetchall()]

    def get_position(self, name: str) -> int:
        with self._tx(commit=False) as c:
            c.execute(self._sql("SELECT value FROM motcua_positions WHERE name=?"), (name,))
            row = c.fetchone()
            return int(row["value"]) if row else 0

    def set_position(self, name: str, value: int) -> None:
        self.set_positions({name: value})

    def set_positions(self, values: dict[str, int]) -> None:
        """Several positions, in one transaction."""
        with self._tx(commit=True) as c:
            c.executemany(self._sql("INSERT INTO motcua_positions (name, value) VALUES (?, ?) "
                                    "ON CONFLICT (name) DO UPDATE SET value=excluded.value"),
                          list(values.items()))

    def positions_like(self, prefix: str) -> dict[str, int]:
        with self._tx(commit=False) as c:
            c.execute(self._sql("SELECT name, value FROM motcua_positions WHERE name LIKE ?"),
                      (prefix + "%",))
            return {r["name"]: int(r["value"]) for r in c.fetchall()}

    def read_log(self, start: int, limit: int,
                 stop: int | None = None) -> list[tuple[int, str, bytes]]:
        """(position, topic, state) from ``start`` (inclusive), for replays: plain rows, no
        Notification objects, since a replay reads the whole log."""
        col = "rowid" if self.ph == "?" else "notification_id"
        table = self.events_table_name
        sql = f"SELECT {col}, topic, state FROM {table} WHERE {col} >= ?"
        params: list[Any] = [start]
        if stop is not None:
            sql += f" AND {col} <= ?"
            params.append(stop)
        sql += f" ORDER BY {col} LIMIT ?"
        params.append(limit)
        with self._tx(commit=False) as c:
            c.execute(self._sql(sql), params)
            rows = c.fetchall()
        if self.ph == "?":
            return rows  # type: ignore[no-any-return]  # already (int, str, bytes)
        return [(int(r["notification_id"]), r["topic"], bytes(r["state"])) for r in rows]

    def claim(self, topic: str, part: int, owner: str) -> int:
        """Take a partition: bump its epoch (fencing the previous owner); returns my epoch."""
        with self._tx(commit=True) as c:
            c.execute(self._sql(
                "INSERT INTO motcua_owners (topic, part, owner, epoch, beat) VALUES (?,?,?,1,?) "
                "ON CONFLICT (topic, part) DO UPDATE SET owner=excluded.owner, "
                "epoch=motcua_owners.epoch+1, beat=excluded.beat RETURNING epoch"),
                (topic, part, owner, time.time()))
            return int(c.fetchone()["epoch"])

    def owners(self) -> list[dict[str, Any]]:
        with self._tx(commit=False) as c:
            c.execute("SELECT topic, part, owner, epoch, beat FROM motcua_owners ORDER BY "
                      "topic, part")
            return [dict(r) for r in c.fetchall()]


# Each engine SQLite connection's page cache, KiB (SQLite's default: 2 MiB, far less than the
# trees a batch writes its events, facts rows and indexes into: pages spill and are read again
# from the OS; 4-9 % of `motcua up`'s CPU on a 135,000-action backlog, benchmarks/RESULTS.md).
STORE_CACHE_KIB = 65_536


class SQLiteStore(IntakeMixin, SQLiteProcessRecorder):
    """SQLite process recorder with the motcua tables."""

    cache_kib = STORE_CACHE_KIB

    def __init__(self, datastore: Any, **kwargs: Any) -> None:
        super().__init__(datastore, **kwargs)
        pool = datastore.pool
        make = pool._create_connection  # the library's only hook for a new connection

        def create() -> Any:
            conn = make()
            conn.cursor().execute(f"PRAGMA cache_size=-{STORE_CACHE_KIB}")
            # Checkpoints are the engine's checkpointer's (engine.checkpoint): a commit copies
            # the WAL into the database file itself only past the backstop.
            conn.cursor().execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
            return conn

        pool._create_connection = create

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(),
                *schema("INTEGER", "BLOB")]

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent],
                       **kwargs: Any) -> Sequence[int] | None:
        # One executemany instead of the library's execute per event: the transaction holds
        # SQLite's write lock, so the new rowids (notification ids) are consecutive.
        returning: list[int] = []
        if stored_events:
            c.executemany(self.insert_events_statement, [
                (s.originator_id.hex if isinstance(s.originator_id, UUID) else s.originator_id,
                 s.originator_version, s.topic, s.state) for s in stored_events])
            c.execute("SELECT last_insert_rowid()")
            last = int(c.fetchone()[0])
            returning = list(range(last - len(stored_events) + 1, last + 1))
        tracking = kwargs.get("tracking")
        if tracking is not None:
            self._insert_tracking(c, tracking)
        fx: SideEffects | None = kwargs.get("side_effects")
        if fx:
            self.write_side_effects(c, fx)
            self.write_facts(c, fx.facts, returning)
        return returning

    def existing(self, ids: Sequence[UUID]) -> set[UUID]:
        """Which of these aggregates have any recorded event (one query)."""
        out: set[UUID] = set()
        with self._tx(commit=False) as c:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                c.execute(f"SELECT DISTINCT originator_id FROM {self.events_table_name} WHERE "
                          f"originator_id IN ({','.join('?' * len(chunk))})",
                          [u.hex for u in chunk])
                out.update(UUID(r[0]) for r in c.fetchall())
        return out
