"""Per-source bearer tokens for the HTTP bridge, kept hashed in the event store's database.

A token reads ``mct1.<token_id>.<secret>``. The token id is public: it finds the source's row.
The secret is never stored: the row holds a random per-token salt and ``sha256(salt || secret)``,
compared in constant time. The secret is 256 random bits, so a slow password hash (scrypt,
argon2) would add nothing against guessing and would cost every request; sha256 is enough.

Each source holds at most one token, with the agencies it may report for. A scope entry covers
the agency itself and every unit below it: ``H15`` covers ``H15``, ``H15.3`` and ``H15.3.7``, but
not ``H150``. Rotating replaces the token (the old one stops working at once); revoking deletes
the row. The table lives in ``MOTCUA_DATABASE_URL`` (SQLite file or PostgreSQL database), next
to the events, so backing up the store backs up who may write to it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from producers.errors import InvalidGrantError, SourceExistsError, UnknownSourceError

TABLE = "motcua_producer_tokens"
_PREFIX = "mct1"
_SOURCE_MAX = 64  # the contract's limit on `source`
_ID_MAX = 64  # the contract's limit on an agency id
_DUMMY_SALT = bytes(16)

_SCHEMA = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    source TEXT PRIMARY KEY,
    token_id TEXT NOT NULL UNIQUE,
    salt TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    agencies TEXT NOT NULL,
    created_at TEXT NOT NULL,
    rotated_at TEXT
)"""


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token lets its source do: report for ``agencies`` and the units below them."""

    source: str
    agencies: tuple[str, ...]
    token_id: str
    created_at: str
    rotated_at: str | None = None

    def covers(self, agency_id: str) -> bool:
        """True when ``agency_id`` is a scope entry or a unit below one (``H15`` → ``H15.*``)."""
        return any(agency_id == a or agency_id.startswith(a + ".") for a in self.agencies)


def parse_agencies(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"H15,H15.3"`` (or a list) as a scope: distinct ids in the given order."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for raw in items:
        agency = raw.strip()
        if not agency or len(agency) > _ID_MAX or any(c.isspace() for c in agency):
            raise InvalidGrantError(
                f"Agency {raw!r} is not an agency id (1 to {_ID_MAX} characters, no spaces)."
            )
        if agency not in out:
            out.append(agency)
    if not out:
        raise InvalidGrantError("A token needs at least one agency, e.g. --agencies H15.")
    return tuple(out)


def _check_source(source: str) -> str:
    if not 1 <= len(source) <= _SOURCE_MAX or source != source.strip():
        raise InvalidGrantError(
            f"Source {source!r} must be 1 to {_SOURCE_MAX} characters without surrounding spaces."
        )
    return source


def _digest(salt: bytes, secret: str) -> str:
    return hashlib.sha256(salt + secret.encode()).hexdigest()


def _split(token: str) -> tuple[str, str] | None:
    """(token id, secret) of a well-formed token, else None."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _PREFIX or not parts[1] or not parts[2]:
        return None
    if len(token) > 200:
        return None
    return parts[1], parts[2]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class TokenStore:
    """The token table in ``database_url`` (``sqlite:///PATH`` or ``postgresql://…``)."""

    def __init__(self, database_url: str) -> None:
        self._db = _Database(database_url)
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def add(self, source: str, agencies: str | Iterable[str]) -> str:
        """Issue the first token of ``source``; returns it (the only time it is seen)."""
        scope = parse_agencies(agencies)
        token_id, salt, secret = _fresh()
        n = self._db.execute(
            f"INSERT INTO {TABLE} (source, token_id, salt, token_hash, agencies, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (source) DO NOTHING",
            (_check_source(source), token_id, salt.hex(), _digest(salt, secret),
             ",".join(scope), _now()),
        )  # fmt: skip
        if n == 0:
            raise SourceExistsError(
                f"Source {source!r} already has a token; use `motcua tokens rotate {source}` "
                "to replace it."
            )
        return f"{_PREFIX}.{token_id}.{secret}"

    def rotate(self, source: str) -> str:
        """Replace the token of ``source``: the old one stops working; returns the new one."""
        token_id, salt, secret = _fresh()
        n = self._db.execute(
            f"UPDATE {TABLE} SET token_id = ?, salt = ?, token_hash = ?, rotated_at = ? "
            "WHERE source = ?",
            (token_id, salt.hex(), _digest(salt, secret), _now(), source),
        )
        if n == 0:
            raise _unknown(source)
        return f"{_PREFIX}.{token_id}.{secret}"

    def revoke(self, source: str) -> None:
        """Delete the token of ``source``."""
        if self._db.execute(f"DELETE FROM {TABLE} WHERE source = ?", (source,)) == 0:
            raise _unknown(source)

    def grants(self) -> list[Grant]:
        """Every source with a token, by name (never the secret nor its digest)."""
        rows = self._db.query(
            f"SELECT source, agencies, token_id, created_at, rotated_at FROM {TABLE} "
            "ORDER BY source"
        )
        return [Grant(r[0], tuple(r[1].split(",")), r[2], r[3], r[4]) for r in rows]

    def verify(self, token: str) -> Grant | None:
        """The grant of a valid token, else None; the comparison takes constant time."""
        parts = _split(token)
        if parts is None:
            return None
        token_id, secret = parts
        rows = self._db.query(
            f"SELECT source, agencies, salt, token_hash, created_at, rotated_at FROM {TABLE} "
            "WHERE token_id = ?",
            (token_id,),
        )
        if not rows:
            _digest(_DUMMY_SALT, secret)  # the same work as for a known id
            return None
        source, agencies, salt, stored, created, rotated = rows[0]
        if not hmac.compare_digest(_digest(bytes.fromhex(salt), secret), stored):
            return None
        return Grant(source, tuple(agencies.split(",")), token_id, created, rotated)


def _fresh() -> tuple[str, bytes, str]:
    return secrets.token_hex(8), secrets.token_bytes(16), secrets.token_urlsafe(32)


def _unknown(source: str) -> UnknownSourceError:
    return UnknownSourceError(
        f"Source {source!r} has no token; `motcua tokens list` shows the sources that do."
    )


class _Database:
    """Just enough of SQLite and PostgreSQL for one small table; ``?`` placeholders."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        self._lock = threading.Lock()
        self._pg: Any = None
        if not self.postgres:
            self.path = Path(url.removeprefix("sqlite:///"))
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in its own transaction; returns the rows it changed."""
        return int(self._run(sql, params, fetch=False))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self._run(sql, params, fetch=True)
        return rows

    def _run(self, sql: str, params: Sequence[Any], *, fetch: bool) -> Any:
        if not self.postgres:
            # A connection per call: cheap for SQLite, and safe from any request thread.
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                cur = conn.execute(sql, tuple(params))
                return [tuple(r) for r in cur.fetchall()] if fetch else cur.rowcount
            finally:
                conn.close()
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                if self._pg is None or self._pg.closed:
                    self._pg = psycopg.connect(self.url, autocommit=True)
                try:
                    cur = self._pg.execute(sql.replace("?", "%s"), tuple(params))
                    return [tuple(r) for r in cur.fetchall()] if fetch else cur.rowcount
                except psycopg.OperationalError:
                    self._pg.close()  # a dropped connection: reconnect once
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            if self._pg is not None:
                self._pg.close()
                self._pg = None
