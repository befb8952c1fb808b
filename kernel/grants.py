"""Who may write or read what: the sources' grants, their hashed tokens, and the scope rule.

A **grant** gives a source (a one-stop-shop system, or a reader such as an inspectorate) a set
of agencies: a scope entry covers the agency itself and every unit below it by id prefix (``H15``
covers ``H15``, ``H15.3`` and ``H15.3.7``, not ``H150``). A grant is of one kind: a *write* grant
lets the source send actions for its agencies (the HTTP bridge, and the engine's check of actions
arriving on Kafka); a *read* grant lets its holder read official-level data of its agencies over
HTTP. Neither is the other.

The grants live in the table ``motcua_producer_tokens`` of ``MOTCUA_DATABASE_URL``, next to the
events, so backing up the store backs up who may write to it. A token reads
``mct1.<token_id>.<secret>``; the table holds the token id, a random salt and
``sha256(salt || secret)``, compared in constant time. ``producers.tokens.TokenStore`` issues,
rotates and revokes them (the only writer of the table); this module is what the engine and the
API need to read it, and the one home of the scope rule (:func:`references`,
:func:`check_action`), which the bridge (403) and the engine (dead letter) both apply.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kernel.contract.actions import Action
from kernel.errors import RefusedActionError


def has_control_character(text: str) -> bool:
    """Whether ``text`` holds a C0 control character or DEL: never part of a name, an id or a
    URL a user means (the names of sources and agencies, webhook URLs)."""
    return any(c < " " or c == "\x7f" for c in text)


def scope_entry_problem(agency: str, limit: int = 64) -> str | None:
    """What makes ``agency`` no scope entry (a token's or an alert subscription's), or None: it
    must be an agency id, 1 to ``limit`` characters, no space or control character; and no
    ``*``, since an entry already covers its subtree by prefix (``H15`` covers ``H15.*``)."""
    if not agency or len(agency) > limit:
        return f"1 to {limit} characters"
    if any(c.isspace() for c in agency) or has_control_character(agency):
        return "no space or control character"
    if "*" in agency:
        return f"no '*': {agency.split('*')[0].rstrip('.') or 'an agency'} already covers its units"
    return None


TABLE = "motcua_producer_tokens"
WRITE = "write"
READ = "read"
KINDS = (WRITE, READ)
PREFIX = "mct1"
_DUMMY_SALT = bytes(16)

SCHEMA = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    source TEXT PRIMARY KEY,
    token_id TEXT NOT NULL UNIQUE,
    salt TEXT NOT NULL,
    token_hash TEXT NOT NULL,
    agencies TEXT NOT NULL,
    created_at TEXT NOT NULL,
    rotated_at TEXT,
    kind TEXT NOT NULL DEFAULT '{WRITE}'
)"""
# Tables made before read tokens existed have no ``kind``: every row there is a write token.
_ADD_KIND = f"ALTER TABLE {TABLE} ADD COLUMN kind TEXT NOT NULL DEFAULT '{WRITE}'"


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token lets its source do: write (or read) for ``agencies`` and the units below."""

    source: str
    agencies: tuple[str, ...]
    token_id: str
    created_at: str
    rotated_at: str | None = None
    kind: str = WRITE

    def covers(self, agency_id: str) -> bool:
        """True when ``agency_id`` is a scope entry or a unit below one (``H15`` → ``H15.*``)."""
        return any(agency_id == a or agency_id.startswith(a + ".") for a in self.agencies)

    def may_write(self, agency_id: str) -> bool:
        """True for a write grant that covers ``agency_id``; a read grant writes nothing."""
        return self.kind == WRITE and self.covers(agency_id)

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> Grant:
        return cls(str(row["source"]), tuple(str(row["agencies"]).split(",")),
                   str(row["token_id"]), str(row["created_at"]), row.get("rotated_at"),
                   str(row.get("kind") or WRITE))


# ----- tokens ----------------------------------------------------------------------------------


def digest(salt: bytes, secret: str) -> str:
    """``sha256(salt || secret)`` as hex: what the table keeps of a token."""
    return hashlib.sha256(salt + secret.encode()).hexdigest()


def fresh_token() -> tuple[str, bytes, str]:
    """A new (token id, salt, secret): 64-bit public id, 128-bit salt, 256-bit secret."""
    return secrets.token_hex(8), secrets.token_bytes(16), secrets.token_urlsafe(32)


def format_token(token_id: str, secret: str) -> str:
    return f"{PREFIX}.{token_id}.{secret}"


def split_token(token: str) -> tuple[str, str] | None:
    """(token id, secret) of a well-formed token, else None."""
    parts = token.split(".")
    if len(token) > 200 or len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None without one."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def verify_token(db: Database, token: str) -> Grant | None:
    """The grant of a valid token, else None; the comparison takes constant time."""
    parts = split_token(token)
    if parts is None:
        return None
    token_id, secret = parts
    rows = db.rows(f"SELECT * FROM {TABLE} WHERE token_id = ?", (token_id,))
    if not rows:
        digest(_DUMMY_SALT, secret)  # the same work as for a known id
        return None
    row = rows[0]
    if not hmac.compare_digest(digest(bytes.fromhex(row["salt"]), secret), row["token_hash"]):
        return None
    return Grant.of_row(row)


# ----- the scope rule --------------------------------------------------------------------------

SubjectAgencies = Callable[[str, str], Sequence[tuple[str, str]] | None]
"""(kind, subject id) → the agencies an existing subject belongs to, as (attribute, agency id)
pairs (a dossier's ``agency_id``; a procedure's ``authority_id`` and ``implementing_agency_ids``;
an agency's ``parent_id``), or None when the subject is not known."""


@dataclass(frozen=True, slots=True)
class Reference:
    """An agency an action brings in: through its own ``field``, or through the existing
    subject that field names (``via``: what of that subject names the agency)."""

    field: str
    agency: str
    via: str | None = None
    value: str | None = None  # what ``field`` holds, when the agency comes ``via`` a subject


class OutOfScopeError(RefusedActionError):
    """An action refers to an agency outside its source's write scope."""

    reason = "agency_out_of_scope"


class SourceNotRegisteredError(RefusedActionError):
    """An action of a source without any grant, where grants are required."""

    reason = "source_not_registered"


def references(action: Action, existing: SubjectAgencies | None = None) -> Iterator[Reference]:
    """Every agency ``action`` refers to: the ones it names, then (with ``existing``) the ones
    of the subject it changes and of the dossier a feedback names."""
    data, kind = action.data, action.type
    if kind in ("received", "feedback_received"):
        yield Reference("data.agency_id", data["agency_id"])
    elif kind == "agency_registered":
        yield Reference("agency_id", action.subject_id)
        if data.get("parent_id") is not None:
            yield Reference("data.parent_id", data["parent_id"])
    elif kind == "procedure_published":
        yield Reference("data.authority_id", data["authority_id"])
        for i, agency in enumerate(data["implementing_agency_ids"]):
            yield Reference(f"data.implementing_agency_ids[{i}]", agency)
    if existing is None:
        return
    subject_kind = action.subject_field.removesuffix("_id")
    for attr, agency in existing(subject_kind, action.subject_id) or ():
        yield Reference(action.subject_field, agency, f"current {attr}", action.subject_id)
    if kind == "feedback_received" and data.get("dossier_id"):
        for attr, agency in existing("dossier", data["dossier_id"]) or ():
            yield Reference("data.dossier_id", agency, attr, str(data["dossier_id"]))


def out_of_scope(grant: Grant, ref: Reference) -> OutOfScopeError:
    """The refusal of ``ref`` for ``grant``: one sentence naming the field and the agency."""
    what = f"{ref.field} {ref.value!r}, whose {ref.via} is {ref.agency!r}," if ref.via else \
        f"{ref.field} {ref.agency!r}"
    scope = f"the agencies of {grant.source!r} ({', '.join(grant.agencies)})"
    if grant.kind != WRITE:
        scope = f"what {grant.source!r} may write (it holds a read token only)"
    return OutOfScopeError(f"{what} is outside {scope}.", field=ref.field)


def check_action(grant: Grant, action: Action, existing: SubjectAgencies | None = None) -> None:
    """Raise :class:`OutOfScopeError` for the first agency of ``action`` that ``grant`` may not
    write for."""
    for ref in references(action, existing):
        if not grant.may_write(ref.agency):
            raise out_of_scope(grant, ref)


@dataclass(frozen=True)
class Scopes:
    """The grants by source, as read at one moment; ``require``: refuse a source that
    has none (``MOTCUA_REQUIRE_GRANTS``)."""

    by_source: Mapping[str, Grant]
    require: bool = False

    def of(self, source: str) -> Grant | None:
        return self.by_source.get(source)

    def check(self, action: Action, existing: SubjectAgencies | None = None) -> None:
        """Refuse an action of a granted source that refers to an agency outside its scope
        (an ungranted source is checked only when grants are required: refused)."""
        grant = self.by_source.get(action.source)
        if grant is None:
            if self.require:
                raise SourceNotRegisteredError(
                    f"Source {action.source!r} has no grant, and MOTCUA_REQUIRE_GRANTS refuses "
                    "actions of unregistered sources.", field="source")
            return
        check_action(grant, action, existing)


class GrantBook:
    """The grants table, read-only: token verification, and the scopes with a short cache
    (``ttl`` seconds: a new, rotated or revoked grant is seen by the engine within it)."""

    def __init__(self, database_url: str, *, require: bool = False, ttl: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.db = Database(database_url)
        self.require = require
        self.ttl = ttl
        self.clock = clock
        self._scopes: Scopes | None = None
        self._loaded = 0.0
        self._lock = threading.Lock()

    def close(self) -> None:
        self.db.close()

    def verify(self, token: str) -> Grant | None:
        """The grant of a valid token (of either kind), else None."""
        try:
            return verify_token(self.db, token)
        except Exception as e:
            if self.db.missing_table(e):
                return None
            raise

    def all(self) -> list[Grant]:
        """Every grant, by source (none while no token was ever issued)."""
        try:
            rows = self.db.rows(f"SELECT * FROM {TABLE} ORDER BY source")
        except Exception as e:
            if self.db.missing_table(e):
                return []
            raise
        return [Grant.of_row(r) for r in rows]

    def scopes(self) -> Scopes:
        """The grants by source, read again once ``ttl`` has passed; a database error raises
        (the engine's batch is then redone, never judged without its grants)."""
        with self._lock:
            now = self.clock()
            if self._scopes is None or now - self._loaded >= self.ttl:
                self._scopes = Scopes({g.source: g for g in self.all()}, self.require)
                self._loaded = now
            return self._scopes

    def scope_of(self, source: str) -> Grant | None:
        """The grant of ``source`` (cached), or None when it has none."""
        return self.scopes().of(source)


# ----- the table -------------------------------------------------------------------------------


class Database:
    """Just enough of SQLite and PostgreSQL for one small table; ``?`` placeholders.

    A SQLite file is created only with ``create`` (issuing a token): a reader, or a command
    given a mistyped path, never leaves an empty database behind."""

    def __init__(self, url: str, *, create: bool = False) -> None:
        self.url = url
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        self.create = create
        self._lock = threading.Lock()
        self._pg: Any = None
        if not self.postgres:
            self.path = Path(url.removeprefix("sqlite:///"))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement in its own transaction; returns the rows it changed."""
        return int(self._run(sql, params, fetch=False)[0])

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of a query, as dicts by column name."""
        columns, rows = self._run(sql, params, fetch=True)
        return [dict(zip(columns, r, strict=True)) for r in rows]

    def ensure_schema(self) -> None:
        """Create the table, or add the ``kind`` column to one made before read tokens."""
        if not self.postgres and self.create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.execute(SCHEMA)
        except Exception as e:  # PostgreSQL: another process created it at the same moment
            if type(e).__name__ not in ("UniqueViolation", "DuplicateTable"):
                raise
        if self.postgres:
            self.execute(_ADD_KIND.replace("ADD COLUMN", "ADD COLUMN IF NOT EXISTS"))
        elif "kind" not in {r["name"] for r in self.rows(f"PRAGMA table_info({TABLE})")}:
            self.execute(_ADD_KIND)

    def missing_table(self, e: Exception) -> bool:
        """True when ``e`` says the table (or the SQLite file) does not exist: no token was
        ever issued there."""
        if isinstance(e, sqlite3.OperationalError):
            return "no such table" in str(e) or not self.path.exists()
        return type(e).__name__ == "UndefinedTable"

    def missing_file(self) -> bool:
        """True for a SQLite database whose file does not exist."""
        return not self.postgres and not self.path.exists()

    def _run(self, sql: str, params: Sequence[Any], *, fetch: bool) -> tuple[Any, Any]:
        if not self.postgres:
            # A connection per call: cheap for SQLite, and safe from any request thread.
            target = str(self.path) if self.create else \
                f"file:{quote(str(self.path))}?mode=rw"
            conn = sqlite3.connect(target, timeout=30, isolation_level=None,
                                   uri=not self.create)
            try:
                cur = conn.execute(sql, tuple(params))
                return _result(cur, fetch)
            finally:
                conn.close()
        import psycopg

        with self._lock:
            for attempt in (1, 2):
                if self._pg is None or self._pg.closed:
                    self._pg = psycopg.connect(self.url, autocommit=True)
                try:
                    return _result(self._pg.execute(sql.replace("?", "%s"), tuple(params)),
                                   fetch)
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


def _result(cur: Any, fetch: bool) -> tuple[Any, Any]:
    if not fetch:
        return cur.rowcount, None
    return [d[0] for d in cur.description or ()], [tuple(r) for r in cur.fetchall()]
