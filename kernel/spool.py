"""The spool: motcua's durable intake, three tables in the event store's database.

What ``motcua ingest`` and the HTTP bridge acknowledge is first committed here, then forwarded to
``motcua.actions`` (``producers.forwarder``). The bundled broker keeps messages in memory only,
so an acknowledgement must not depend on it: a spooled line survives a SIGKILL of any process and
the loss of the broker's memory, and is sent again until the engine has recorded it.

Every forwarded record carries the header ``motcua-spool: <namespace>/<id>``. The engine writes
``motcua_spool_done (id, log, part, off)`` in the same transaction as the line's outcome (accepted,
duplicate, held or rejected), and records any other copy of the same line as a plain duplicate.
So a line is recorded exactly once however many copies of it reach Kafka (a broker that forgot
its log, a forwarder that died between sending and noting it, a lease that changed hands), and
never dead-lettered twice, even when it is not JSON and has no (source, action_id) key.

``motcua_spool``       id, key, raw, spooled_at; sent_log/part/off: where its last copy went
``motcua_spool_done``  id, log, part, off, at: written by the engine only
``motcua_spool_meta``  ``namespace`` (tells this store's copies from any other's) and ``lease``
                       (which forwarder may send; ``until`` its expiry, epoch seconds)

A done line's row is pruned; the engine takes a header whose row is gone for a repeat. Ids are
never reused (AUTOINCREMENT, BIGSERIAL).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kernel.contract.actions import ACTION_MAX_BYTES
from kernel.db import SCHEMA_LOCK, Database

SPOOL_HEADER = "motcua-spool"
# How long a done row is kept (for `ingest --wait` summaries) once its line's row is pruned.
DONE_RETENTION_SECONDS = 24 * 3600

_NOT_DONE = "NOT EXISTS (SELECT 1 FROM motcua_spool_done d WHERE d.id = motcua_spool.id)"


def spool_tables(postgres: bool) -> list[str]:
    """The spool's DDL (the engine's schema includes it; so does :class:`Spool`)."""
    serial = "BIGSERIAL PRIMARY KEY" if postgres else "INTEGER PRIMARY KEY AUTOINCREMENT"
    blob = "BYTEA" if postgres else "BLOB"
    return [
        f"CREATE TABLE IF NOT EXISTS motcua_spool (id {serial}, key {blob}, raw {blob} NOT NULL, "
        "spooled_at DOUBLE PRECISION NOT NULL, sent_log TEXT, sent_part INTEGER, sent_off BIGINT)",
        "CREATE INDEX IF NOT EXISTS motcua_spool_unsent ON motcua_spool (id) "
        "WHERE sent_log IS NULL",
        "CREATE INDEX IF NOT EXISTS motcua_spool_sent ON motcua_spool "
        "(sent_log, sent_part, sent_off)",
        "CREATE INDEX IF NOT EXISTS motcua_spool_key ON motcua_spool (key, id)",
        "CREATE TABLE IF NOT EXISTS motcua_spool_done (id BIGINT PRIMARY KEY, log TEXT NOT NULL, "
        "part INTEGER NOT NULL, off BIGINT NOT NULL, at DOUBLE PRECISION NOT NULL)",
        "CREATE INDEX IF NOT EXISTS motcua_spool_done_at ON motcua_spool_done (at)",
        "CREATE TABLE IF NOT EXISTS motcua_spool_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL, "
        "until DOUBLE PRECISION NOT NULL)",
    ]


# ----- what the engine runs, in its own transaction, with its own cursor ---------------------

NAMESPACE_INSERT = ("INSERT INTO motcua_spool_meta (name, value, until) VALUES ('namespace', ?, 0) "
                    "ON CONFLICT (name) DO NOTHING")
NAMESPACE_SELECT = "SELECT value FROM motcua_spool_meta WHERE name = 'namespace'"
DONE_INSERT = "INSERT INTO motcua_spool_done (id, log, part, off, at) VALUES (?,?,?,?,?)"


def fresh_select(n: int) -> str:
    """(id, key) of the lines among ``n`` given ids that are spooled and not yet recorded."""
    return (f"SELECT id, key FROM motcua_spool WHERE id IN ({','.join('?' * n)}) "
            f"AND {_NOT_DONE}")


def queue_select(n: int) -> str:
    """(key, id) of every line not yet recorded of ``n`` given keys (subjects), oldest first."""
    return (f"SELECT key, id FROM motcua_spool WHERE key IN ({','.join('?' * n)}) "
            f"AND {_NOT_DONE} ORDER BY id")


# A copy that came before an older line of its subject: it is not recorded, and the line is
# sent again (after the older one, which the forwarder sends first).
RESEND_UPDATE = ("UPDATE motcua_spool SET sent_log = NULL, sent_part = NULL, sent_off = NULL "
                 "WHERE id = ?")


def new_namespace() -> str:
    return uuid.uuid4().hex


def header(namespace: str, spool_id: int) -> tuple[str, bytes]:
    """The Kafka header of a forwarded copy of spooled line ``spool_id``."""
    return SPOOL_HEADER, f"{namespace}/{spool_id}".encode()


def spool_id(headers: Iterable[tuple[str, bytes]] | None, namespace: str) -> int | None:
    """The spooled line a record is a copy of, if it carries this store's header."""
    for name, value in headers or ():
        if name == SPOOL_HEADER and value:
            ns, _, sid = value.decode("ascii", "replace").partition("/")
            if ns == namespace and sid.isdigit():
                return int(sid)
    return None


# ----- the spool -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SpoolRow:
    id: int
    key: bytes | None
    raw: bytes


@dataclass(frozen=True)
class Spooled:
    """Which spool ids one submission got, as ranges (ids of concurrent writers interleave)."""

    ranges: tuple[tuple[int, int], ...]
    count: int

    @classmethod
    def of(cls, ids: Sequence[int]) -> Spooled:
        ranges: list[tuple[int, int]] = []
        for i in sorted(ids):
            if ranges and ranges[-1][1] == i - 1:
                ranges[-1] = (ranges[-1][0], i)
            else:
                ranges.append((i, i))
        return cls(tuple(ranges), len(ids))

    def __add__(self, other: Spooled) -> Spooled:
        return Spooled(self.ranges + other.ranges, self.count + other.count)


class SpoolError(ValueError):
    """A line the spool cannot take (over the contract's ``ACTION_MAX_BYTES``)."""


class Spool:
    """The durable intake of one store (``MOTCUA_DATABASE_URL``); thread-safe."""

    def __init__(self, database_url: str) -> None:
        self.db = Database(database_url, durable=True)
        self._create()
        with self.db.tx() as c:
            c.execute(self.db.q(NAMESPACE_INSERT), (new_namespace(),))
            c.execute(NAMESPACE_SELECT)
            self.namespace = str(c.fetchone()[0])

    def _create(self) -> None:
        statements = spool_tables(self.db.is_pg)
        with self.db.tx() as c:
            if self.db.is_pg:
                c.execute("SELECT count(*) FROM pg_class WHERE relname = ANY(%s) AND "
                          "relnamespace = current_schema()::regnamespace",
                          (["motcua_spool", "motcua_spool_done", "motcua_spool_meta"],))
                if int(c.fetchone()[0]) == 3:
                    return
                c.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            for s in statements:
                c.execute(s)

    def close(self) -> None:
        self.db.close()

    # ----- writers ---------------------------------------------------------------------------

    def append(self, records: Sequence[tuple[bytes | None, bytes]]) -> list[int]:
        """Commit ``(key, raw)`` lines, in order; their ids once they are durable."""
        for _, raw in records:
            if len(raw) > ACTION_MAX_BYTES:
                raise SpoolError(f"An action of {len(raw):,} bytes is over the limit of "
                                 f"{ACTION_MAX_BYTES:,} bytes (too_large).")
        if not records:
            return []
        now = time.time()
        with self.db.tx() as c:
            if self.db.is_pg:
                c.execute("INSERT INTO motcua_spool (key, raw, spooled_at) SELECT * FROM "
                          "unnest(%s::bytea[], %s::bytea[], %s::float8[]) RETURNING id",
                          ([k for k, _ in records], [r for _, r in records],
                           [now] * len(records)))
                # One statement: its ids rise in the order of the rows.
                return sorted(int(r[0]) for r in c.fetchall())
            c.executemany("INSERT INTO motcua_spool (key, raw, spooled_at) VALUES (?,?,?)",
                          [(k, r, now) for k, r in records])
            c.execute("SELECT last_insert_rowid()")
            last = int(c.fetchone()[0])
        # The write lock was held throughout and ids are never reused: they are consecutive.
        return list(range(last - len(records) + 1, last + 1))

    # ----- the forwarder ---------------------------------------------------------------------

    def pending(self, limit: int) -> list[SpoolRow]:
        """Lines to send, oldest first: never sent, or whose copy is known lost."""
        with self.db.tx(write=False) as c:
            c.execute(self.db.q(f"SELECT id, key, raw FROM motcua_spool WHERE sent_log IS NULL "
                                f"AND {_NOT_DONE} ORDER BY id LIMIT ?"), (limit,))
            return [SpoolRow(int(r[0]), None if r[1] is None else bytes(r[1]), bytes(r[2]))
                    for r in c.fetchall()]

    def mark_sent(self, sent: Sequence[tuple[int, str, int, int]]) -> None:
        """Note where the broker put each copy: ``(id, log, partition, offset)``."""
        if sent:
            with self.db.tx() as c:
                c.executemany(self.db.q("UPDATE motcua_spool SET sent_log=?, sent_part=?, "
                                        "sent_off=? WHERE id=?"),
                              [(log, part, off, i) for i, log, part, off in sent])

    def resend_other_logs(self, current: str) -> int:
        """Lines whose copy went to a log that is no longer the topic's: send them again."""
        return self._unsend("sent_log IS NOT NULL AND sent_log <> ?", (current,))

    def resend_passed(self, log: str, part: int, upto: int) -> int:
        """Lines whose copy the engine read past without recording it: send them again."""
        return self._unsend("sent_log = ? AND sent_part = ? AND sent_off <= ?", (log, part, upto))

    def _unsend(self, where: str, params: Sequence[Any]) -> int:
        with self.db.tx() as c:
            c.execute(self.db.q(f"UPDATE motcua_spool SET sent_log=NULL, sent_part=NULL, "
                                f"sent_off=NULL WHERE {where} AND {_NOT_DONE}"), params)
            return int(c.rowcount or 0)

    def prune(self) -> int:
        """Drop the lines the engine recorded, and done rows past their retention."""
        with self.db.tx() as c:
            c.execute("SELECT MIN(id) FROM motcua_spool")
            low = c.fetchone()[0]
            pruned = 0
            if low is not None:
                c.execute(self.db.q("DELETE FROM motcua_spool WHERE id IN (SELECT id FROM "
                                    "motcua_spool_done WHERE id >= ?)"), (int(low),))
                pruned = int(c.rowcount or 0)
            # Never a done row whose line is still spooled: that line would look new again.
            c.execute(self.db.q("DELETE FROM motcua_spool_done WHERE at < ? AND NOT EXISTS "
                                "(SELECT 1 FROM motcua_spool s WHERE s.id = "
                                "motcua_spool_done.id)"),
                      (time.time() - DONE_RETENTION_SECONDS,))
        return pruned

    def hold_lease(self, owner: str, seconds: float) -> bool:
        """Take or renew the forwarder's lease for ``seconds``; False while another holds it."""
        now = time.time()
        with self.db.tx(write=False) as c:
            c.execute("SELECT value, until FROM motcua_spool_meta WHERE name = 'lease'")
            row = c.fetchone()
        if row is not None and row[0] != owner and float(row[1]) >= now:
            return False  # held elsewhere: no write (and no write lock) for a mere look
        with self.db.tx() as c:
            c.execute("INSERT INTO motcua_spool_meta (name, value, until) VALUES "
                      "('lease', '', 0) ON CONFLICT (name) DO NOTHING")
            c.execute(self.db.q("UPDATE motcua_spool_meta SET value=?, until=? WHERE "
                                "name='lease' AND (value=? OR until < ?)"),
                      (owner, now + seconds, owner, now))
            return int(c.rowcount or 0) == 1

    def release_lease(self, owner: str) -> None:
        with self.db.tx() as c:
            c.execute(self.db.q("UPDATE motcua_spool_meta SET until=0 WHERE name='lease' AND "
                                "value=?"), (owner,))

    # ----- readers ---------------------------------------------------------------------------

    def unsent(self, spooled: Spooled) -> int:
        """How many of these lines no broker has acknowledged yet (and the engine has not
        recorded)."""
        return self._count("SELECT COUNT(*) FROM motcua_spool WHERE id BETWEEN ? AND ? AND "
                           f"sent_log IS NULL AND {_NOT_DONE}", spooled)

    def settled(self, spooled: Spooled) -> int:
        """How many of these lines the engine has recorded."""
        return self._count("SELECT COUNT(*) FROM motcua_spool_done WHERE id BETWEEN ? AND ?",
                           spooled)

    def _count(self, sql: str, spooled: Spooled) -> int:
        n = 0
        with self.db.tx(write=False) as c:
            for lo, hi in spooled.ranges:
                c.execute(self.db.q(sql), (lo, hi))
                n += int(c.fetchone()[0])
        return n

    def backlog(self) -> int:
        """Spooled lines the engine has not recorded yet."""
        with self.db.tx(write=False) as c:
            c.execute(f"SELECT COUNT(*) FROM motcua_spool WHERE {_NOT_DONE}")
            return int(c.fetchone()[0])
