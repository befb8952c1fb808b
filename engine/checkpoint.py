"""The event store's WAL copied into its database file on a thread of its own (SQLite).

In WAL mode a commit appends the transaction's pages to the WAL and, with ``synchronous=FULL``,
fsyncs it. Left to itself, SQLite then *checkpoints* in the same call whenever the WAL holds
more than 1,000 pages since it last started over: it copies them into the database file and
fsyncs that too. A batch of the engine writes about 500 pages, and the parent process's readers
(relay, projection) keep the WAL from starting over, so on a backlog nearly every commit paid
for a checkpoint as well: 25 ms median instead of 10, on the engine thread's critical path.

``Checkpointer`` takes that work off the commit: the store's connections checkpoint themselves
only past ``BACKSTOP_PAGES`` (``engine.store``), and this thread runs a ``PASSIVE`` checkpoint
(it blocks neither writers nor readers) on its own connection right after each commit the
engine pokes it about: one C call that releases the GIL, so it runs beside the engine's next
batch. Durability is unchanged: a commit is durable once the WAL's fsync returns, whoever
copies it into the database file later (docs/decisions.md).
"""

from __future__ import annotations

import sqlite3
import threading
import time

import structlog
from eventsourcing.sqlite import SQLiteConnectionPool

from kernel.failures import describe
from kernel.metrics import METRICS

log = structlog.get_logger("motcua.engine")

# Past this many pages in the WAL a store connection checkpoints in its own commit (SQLite's
# autocheckpoint): a backstop should this thread fall behind, or for a process without one.
BACKSTOP_PAGES = 8192


class Checkpointer:
    """A thread that checkpoints the SQLite database at ``path`` after each ``poke()``, until
    ``close()`` (or until this object is garbage: the thread holds none of it)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stats = CheckpointStats()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=_run, name="checkpointer", daemon=True,
                                        args=(path, self._wake, self._stop, self.stats))
        self._thread.start()

    def poke(self) -> None:
        """A commit has just been written: checkpoint it."""
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __del__(self) -> None:
        self._stop.set()
        self._wake.set()


class CheckpointStats:
    """What a checkpointer did (its thread writes, anyone reads)."""

    def __init__(self) -> None:
        self.runs = 0  # checkpoints run
        self.failures = 0  # checkpoints failed in a row (logged once per streak)
        self.last: tuple[int, int, int] | None = None  # (busy, WAL frames, frames copied)


def _run(path: str, wake: threading.Event, stop: threading.Event,
         stats: CheckpointStats) -> None:
    conn: sqlite3.Connection | None = None
    try:
        while True:
            wake.wait()
            wake.clear()
            if stop.is_set():
                return
            try:
                if conn is None:
                    conn = sqlite3.connect(path, uri=True, timeout=5, isolation_level=None,
                                           check_same_thread=False)
                t0 = time.perf_counter()
                row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                METRICS.checkpoint_seconds.observe(time.perf_counter() - t0)
                stats.last = (int(row[0]), int(row[1]), int(row[2]))
                stats.runs += 1
                stats.failures = 0
            except sqlite3.Error as e:  # the commits go on; their own backstop checkpoints
                if conn is not None:
                    conn.close()
                    conn = None
                stats.failures += 1
                if stats.failures == 1:
                    log.warning("checkpoint_failed", error=describe(e))
    finally:
        if conn is not None:
            conn.close()


def checkpointer_for(store: object) -> Checkpointer | None:
    """A checkpointer for an eventsourcing SQLite recorder's database file; None for another
    store (PostgreSQL checkpoints on its own) or an in-memory database."""
    pool = getattr(getattr(store, "datastore", None), "pool", None)
    if not isinstance(pool, SQLiteConnectionPool) or pool.is_sqlite_memory_mode:
        return None
    return Checkpointer(pool.db_name)
