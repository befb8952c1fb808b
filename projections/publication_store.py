"""Where publications are kept: immutable rows, versioned per period, with their files.

They live beside the views (the views' SQLite file, or the PostgreSQL database) in tables of
their own that no replay touches. A row is never changed: publishing a period again adds a
version, and triggers refuse any UPDATE or DELETE (whoever drops them to edit a row is caught
by ``publish --verify``). The files (CSV, XLSX, PDF) are stored with the row, so that any
process serving the reports can hand them out.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

KINDS = ("csv", "xlsx", "pdf")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
_IMMUTABLE = "publications are never changed; publish the period again for a new version"


@dataclass(frozen=True)
class StoredFile:
    kind: str
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Publication:
    """One version of a period's publication, as stored."""

    period: str
    version: int
    recorded_at: str
    ruleset: str
    sha256: str
    created_at: str
    content: bytes  # the canonical JSON, as stored
    files: tuple[StoredFile, ...]

    def summary(self) -> dict[str, Any]:
        return {"period": self.period, "version": self.version,
                "recorded_at": self.recorded_at, "ruleset": self.ruleset,
                "sha256": self.sha256, "created_at": self.created_at}


# The largest version a store can hold (a 64-bit integer in both dialects): a larger one
# asked for is simply not there.
MAX_VERSION = 2**63 - 1


def file_name(period: str, version: int, kind: str) -> str:
    return f"motcua-{period}-v{version}.{kind}"


class PublicationStore:
    """The publications of one database; both dialects behind one small API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_pg = not url.startswith("sqlite:///")
        self._lock = threading.Lock()
        if self.is_pg:
            import psycopg

            self._conn: Any = psycopg.connect(url, autocommit=False)
        else:
            path = Path(url.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, timeout=30, isolation_level=None,
                                         check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # An official record: durable when the command says it is (the views can be
            # rebuilt from the event store; a publication's instant of recording cannot).
            self._conn.execute("PRAGMA synchronous=FULL")
        self._create()

    def close(self) -> None:
        self._conn.close()

    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.is_pg else sql

    @contextmanager
    def _tx(self, write: bool = False) -> Iterator[Any]:
        with self._lock:
            if self.is_pg:
                with self._conn.transaction(), self._conn.cursor() as cur:
                    yield cur
                return
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def _create(self) -> None:
        blob = "BYTEA" if self.is_pg else "BLOB"
        with self._tx(write=True) as c:
            if self.is_pg:
                c.execute("SELECT pg_advisory_xact_lock(7660013)")
            c.execute("CREATE TABLE IF NOT EXISTS publications (period TEXT NOT NULL, version "
                      "INTEGER NOT NULL, recorded_at TEXT NOT NULL, ruleset TEXT NOT NULL, "
                      f"sha256 TEXT NOT NULL, created_at TEXT NOT NULL, content {blob} NOT NULL, "
                      "PRIMARY KEY (period, version))")
            c.execute("CREATE TABLE IF NOT EXISTS publication_files (period TEXT NOT NULL, "
                      "version INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, "
                      f"sha256 TEXT NOT NULL, body {blob} NOT NULL, "
                      "PRIMARY KEY (period, version, kind))")
            for table in ("publications", "publication_files"):
                self._guard(c, table)

    def _guard(self, c: Any, table: str) -> None:
        """Triggers that refuse to change or delete a stored row."""
        if not self.is_pg:
            for op in ("UPDATE", "DELETE"):
                c.execute(f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON "
                          f"{table} BEGIN SELECT RAISE(ABORT, '{_IMMUTABLE}'); END")
            return
        c.execute("SELECT 1 FROM pg_trigger WHERE tgname = %s", (f"{table}_immutable",))
        if c.fetchone() is None:
            c.execute("CREATE OR REPLACE FUNCTION motcua_publication_immutable() RETURNS "
                      f"trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{_IMMUTABLE}'; "
                      "END $$")
            c.execute(f"CREATE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                      "FOR EACH ROW EXECUTE FUNCTION motcua_publication_immutable()")

    # ----- write ---------------------------------------------------------------------------

    def add(self, *, period: str, recorded_at: str, ruleset: str, content: bytes,
            sha256: str, files: Mapping[str, bytes]) -> Publication:
        """Store a new version of ``period`` with its files, in one transaction."""
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self._tx(write=True) as c:
            if self.is_pg:  # two publishers of one period take turns for the next version
                c.execute("SELECT pg_advisory_xact_lock(7660014)")
            c.execute(self._q("SELECT COALESCE(MAX(version), 0) FROM publications WHERE "
                              "period = ?"), (period,))
            version = int(c.fetchone()[0]) + 1
            c.execute(self._q("INSERT INTO publications (period, version, recorded_at, ruleset, "
                              "sha256, created_at, content) VALUES (?,?,?,?,?,?,?)"),
                      (period, version, recorded_at, ruleset, sha256, created, content))
            stored = []
            for kind, body in files.items():
                f = StoredFile(kind, file_name(period, version, kind),
                               hashlib.sha256(body).hexdigest(), len(body))
                c.execute(self._q("INSERT INTO publication_files (period, version, kind, name, "
                                  "sha256, body) VALUES (?,?,?,?,?,?)"),
                          (period, version, kind, f.name, f.sha256, body))
                stored.append(f)
        return Publication(period, version, recorded_at, ruleset, sha256, created, content,
                           tuple(stored))

    # ----- read ----------------------------------------------------------------------------

    def summaries(self, period: str | None = None) -> list[dict[str, Any]]:
        """Every stored version (of one period, when given), newest period and version first."""
        sql = "SELECT period, version, recorded_at, ruleset, sha256, created_at FROM publications"
        params: tuple[Any, ...] = ()
        if period is not None:
            sql += " WHERE period = ?"
            params = (period,)
        with self._tx() as c:
            c.execute(self._q(sql + " ORDER BY period DESC, version DESC"), params)
            rows = c.fetchall()
        keys = ("period", "version", "recorded_at", "ruleset", "sha256", "created_at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def get(self, period: str, version: int | None = None) -> Publication | None:
        """A version of a period's publication (the latest when ``version`` is None)."""
        if version is not None and not 1 <= version <= MAX_VERSION:
            return None
        with self._tx() as c:
            if version is None:
                c.execute(self._q("SELECT MAX(version) FROM publications WHERE period = ?"),
                          (period,))
                row = c.fetchone()
                if row is None or row[0] is None:
                    return None
                version = int(row[0])
            c.execute(self._q("SELECT recorded_at, ruleset, sha256, created_at, content FROM "
                              "publications WHERE period = ? AND version = ?"), (period, version))
            row = c.fetchone()
            if row is None:
                return None
            c.execute(self._q("SELECT kind, name, sha256, length(body) FROM publication_files "
                              "WHERE period = ? AND version = ? ORDER BY kind"), (period, version))
            files = tuple(StoredFile(k, n, s, int(size)) for k, n, s, size in c.fetchall())
        return Publication(period, version, row[0], row[1], row[2], row[3], bytes(row[4]), files)

    def file(self, period: str, version: int, name: str) -> tuple[str, bytes] | None:
        """(kind, bytes) of a stored file, by its name."""
        if not 1 <= version <= MAX_VERSION:
            return None
        with self._tx() as c:
            c.execute(self._q("SELECT kind, body FROM publication_files WHERE period = ? AND "
                              "version = ? AND name = ?"), (period, version, name))
            row = c.fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))

    def file_bodies(self, period: str, version: int) -> dict[str, bytes]:
        """Every stored file of a version by kind (for checking them against their hashes)."""
        with self._tx() as c:
            c.execute(self._q("SELECT kind, body FROM publication_files WHERE period = ? AND "
                              "version = ?"), (period, version))
            return {str(k): bytes(b) for k, b in c.fetchall()}
