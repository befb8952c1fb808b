"""One database connection shared by a process's threads in turn, for motcua's own tables.

SQLite (a file, WAL) or PostgreSQL behind one small API: ``tx()`` yields a cursor inside ONE
transaction (a nested call joins the open one), ``q()`` turns ``?`` placeholders into the
dialect's. A PostgreSQL connection that was lost (the server restarted) is dropped, and the next
``tx()`` opens a new one: the caller sees the error once, backs off and tries again, and never
needs to be restarted by hand.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# The advisory lock under which a process creates the store's tables (PostgreSQL): creating the
# same table in two sessions at once fails, so every creator of motcua tables takes this one.
SCHEMA_LOCK = 7660001


class Database:
    """A connection to ``sqlite:///PATH`` or ``postgresql://…``, reopened after it is lost."""

    def __init__(self, url: str, *, connect_timeout: int = 5, durable: bool = False,
                 cache_kib: int | None = None) -> None:
        """``durable``: on SQLite, a commit reaches the disk before it returns (``synchronous=
        FULL``: what an acknowledgement rests on survives a power cut, not only a crash).
        ``cache_kib``: on SQLite, the connection's page cache (default: SQLite's 2 MiB)."""
        self.url = url
        self.durable = durable
        self.cache_kib = cache_kib
        self.is_pg = not url.startswith("sqlite:///")
        self.ph = "%s" if self.is_pg else "?"
        self.connect_timeout = connect_timeout
        self._lock = threading.RLock()
        self._cursor: Any = None
        self._conn: Any = None
        self._connection()  # fail at once (one sentence upstream) if it cannot be opened

    def q(self, sql: str) -> str:
        """``sql`` with ``?`` placeholders in this dialect."""
        return sql if not self.is_pg else sql.replace("?", "%s")

    def _connection(self) -> Any:
        if self._conn is not None and not _is_lost(self._conn):
            return self._conn
        self._drop()
        if self.is_pg:
            import psycopg

            self._conn = psycopg.connect(self.url, autocommit=False,
                                         connect_timeout=self.connect_timeout)
        else:
            path = Path(self.url.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
            if self.cache_kib is not None:
                conn.execute(f"PRAGMA cache_size=-{int(self.cache_kib)}")
            self._conn = conn
        return self._conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already gone: nothing to give back
                conn.close()

    @contextmanager
    def tx(self, write: bool = True) -> Iterator[Any]:
        """One transaction; threads take turns, a nested call joins the open transaction.

        On SQLite a ``write`` transaction takes the file's write lock at once (so it cannot
        fail half-way on a busy file); a read-only one takes no lock (WAL readers never wait).
        """
        with self._lock:
            if self._cursor is not None:
                yield self._cursor
                return
            conn = self._connection()
            try:
                if self.is_pg:
                    with conn.transaction(), conn.cursor() as cur:
                        self._cursor = cur
                        yield cur
                else:
                    cur = conn.cursor()
                    cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    self._cursor = cur
                    try:
                        yield cur
                    except BaseException:
                        cur.execute("ROLLBACK")
                        raise
                    else:
                        cur.execute("COMMIT")
            except BaseException:
                if self.is_pg and _is_lost(conn):
                    self._drop()  # the server went away: the next tx() connects afresh
                raise
            finally:
                self._cursor = None

    def close(self) -> None:
        with self._lock:
            self._drop()


def _is_lost(conn: Any) -> bool:
    """A psycopg connection that is closed or broken (SQLite connections are never lost)."""
    return bool(getattr(conn, "closed", False) or getattr(conn, "broken", False))
