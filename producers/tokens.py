"""Issuing, rotating and revoking the sources' bearer tokens (``motcua tokens``).

A token reads ``mct1.<token_id>.<secret>``. The token id is public: it finds the source's row.
The secret is never stored: the row holds a random per-token salt and ``sha256(salt || secret)``,
compared in constant time. The secret is 256 random bits, so a slow password hash (scrypt,
argon2) would add nothing against guessing and would cost every request; sha256 is enough.

Each source holds at most one token, of one kind: a **write** token (the HTTP bridge, and the
scope the engine checks for the source's Kafka actions) or a **read** token (official-level
data over HTTP). A scope entry covers the agency itself and every unit below it: ``H15`` covers
``H15``, ``H15.3`` and ``H15.3.7``, but not ``H150``. Rotating replaces the token and keeps its
kind and scope (the old one stops working at once); revoking deletes the row. The table, the
hashing and the verification live in :mod:`kernel.grants`, which the engine and the API read;
this module is the table's only writer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from kernel.grants import (
    READ,
    TABLE,
    WRITE,
    Database,
    Grant,
    digest,
    format_token,
    fresh_token,
    has_control_character,
    scope_entry_problem,
    verify_token,
)
from producers.errors import InvalidGrantError, SourceExistsError, UnknownSourceError

__all__ = ["READ", "TABLE", "WRITE", "Grant", "TokenStore", "parse_agencies"]

_SOURCE_MAX = 64  # the contract's limit on `source`
_ID_MAX = 64  # the contract's limit on an agency id


def parse_agencies(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"H15,H15.3"`` (or a list) as a scope: distinct ids in the given order."""
    items = text.split(",") if isinstance(text, str) else list(text)
    out: list[str] = []
    for raw in items:
        agency = raw.strip()
        if (problem := scope_entry_problem(agency, _ID_MAX)) is not None:
            raise InvalidGrantError(f"Agency {raw!r} is not an agency id ({problem}).")
        if agency not in out:
            out.append(agency)
    if not out:
        raise InvalidGrantError("A token needs at least one agency, e.g. --agencies H15.")
    return tuple(out)


def _check_source(source: str) -> str:
    if (not 1 <= len(source) <= _SOURCE_MAX or source != source.strip()
            or has_control_character(source)):
        raise InvalidGrantError(
            f"Source {source!r} must be 1 to {_SOURCE_MAX} characters without surrounding spaces "
            "or control characters."
        )
    return source


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class TokenStore:
    """The token table in ``database_url`` (``sqlite:///PATH`` or ``postgresql://…``).

    With ``create=False`` a SQLite file that does not exist is an error (``InvalidGrantError``)
    rather than a new empty database: listing, rotating or revoking needs the real one."""

    def __init__(self, database_url: str, *, create: bool = True) -> None:
        self._db = Database(database_url, create=create)
        if not create and self._db.missing_file():
            raise InvalidGrantError(
                f"The database {self._db.path} does not exist; check MOTCUA_DATABASE_URL "
                "(or MOTCUA_HOME).")
        self._db.ensure_schema()

    def close(self) -> None:
        self._db.close()

    def add(self, source: str, agencies: str | Iterable[str], *, read: bool = False) -> str:
        """Issue the first token of ``source``, a write token or (``read``) a read token;
        returns it (the only time it is seen)."""
        scope = parse_agencies(agencies)
        token_id, salt, secret = fresh_token()
        n = self._db.execute(
            f"INSERT INTO {TABLE} (source, token_id, salt, token_hash, agencies, created_at, "
            "kind) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source) DO NOTHING",
            (_check_source(source), token_id, salt.hex(), digest(salt, secret),
             ",".join(scope), _now(), READ if read else WRITE),
        )  # fmt: skip
        if n == 0:
            raise SourceExistsError(
                f"Source {source!r} already has a token; use `motcua tokens rotate {source}` "
                "to replace it."
            )
        return format_token(token_id, secret)

    def rotate(self, source: str) -> str:
        """Replace the token of ``source`` (same kind, same scope): the old one stops working;
        returns the new one."""
        token_id, salt, secret = fresh_token()
        n = self._db.execute(
            f"UPDATE {TABLE} SET token_id = ?, salt = ?, token_hash = ?, rotated_at = ? "
            "WHERE source = ?",
            (token_id, salt.hex(), digest(salt, secret), _now(), source),
        )
        if n == 0:
            raise _unknown(source)
        return format_token(token_id, secret)

    def revoke(self, source: str) -> None:
        """Delete the token of ``source``."""
        if self._db.execute(f"DELETE FROM {TABLE} WHERE source = ?", (source,)) == 0:
            raise _unknown(source)

    def grants(self) -> list[Grant]:
        """Every source with a token, by name (never the secret nor its digest)."""
        return [Grant.of_row(r) for r in self._db.rows(f"SELECT * FROM {TABLE} ORDER BY source")]

    def verify(self, token: str) -> Grant | None:
        """The grant of a valid token (either kind), else None; constant-time comparison."""
        return verify_token(self._db, token)


def _unknown(source: str) -> UnknownSourceError:
    return UnknownSourceError(
        f"Source {source!r} has no token; `motcua tokens list` shows the sources that do."
    )
