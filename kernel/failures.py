"""Isolation: one message a store cannot take must not stop its partition.

The schema (``kernel/contract``) refuses what it knows no store can hold. Whatever still fails in
a transaction of the engine or the projection is sorted here into two kinds:

- **transient** — the database or broker is away or busy (connection lost, lock timeout,
  deadlock, a race with another process): the batch is tried again as it is;
- **the batch's own** — anything else (PostgreSQL refusing a value, a bug on one message): the
  same batch would fail the same way forever. The engine splits it in halves until the one
  message that fails alone is found and dead-letters it (``unstorable`` for a failure the store
  reports, ``internal_error`` for any other) with its bytes; the projection folds the batch one
  event at a time and quarantines the one it cannot fold or store. The partition goes on.
"""

from __future__ import annotations

import sqlite3
import sys
from typing import Any

from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    OperationalError,
    PersistenceError,
)

from kernel.contract.bounds import storable

_TRANSIENT: tuple[type[BaseException], ...] = (
    OperationalError, InterfaceError, IntegrityError, sqlite3.OperationalError,
    ConnectionError, TimeoutError)
_STORE_ERRORS: tuple[type[BaseException], ...] = (PersistenceError, sqlite3.Error)


def loaded_driver() -> Any:
    """The PostgreSQL driver, where eventsourcing does not wrap its errors, if this process
    imported it: one that never did (a SQLite store) cannot have raised one of its errors, and
    is spared its import (a twentieth of a second at every start)."""
    return sys.modules.get("psycopg")


# After this many redos of the same batch for a race (IntegrityError), it is taken for the
# batch's own failure: a real race with another engine settles on the first redo.
REDO_LIMIT = 5


def transient(error: BaseException) -> bool:
    """Whether the same batch may well succeed when tried again."""
    pg = loaded_driver()
    return isinstance(error, _TRANSIENT) or (
        pg is not None and isinstance(error, (pg.OperationalError, pg.InterfaceError)))


def reason_of(error: BaseException) -> str:
    """The dead-letter reason of a message that fails alone: ``unstorable`` when the store
    refused it, ``internal_error`` for anything else."""
    pg = loaded_driver()
    stored = isinstance(error, _STORE_ERRORS) or (pg is not None and isinstance(error, pg.Error))
    return "unstorable" if stored else "internal_error"


def describe(error: BaseException, who: str = "engine", what: str = "action") -> str:
    """One storable sentence about a failure of ``who`` on one ``what``, never quoting more than
    the error's first line (a driver's message may quote the value it refused)."""
    lines = str(error).strip().splitlines()
    first = storable(lines[0])[:200].rstrip(".") if lines else ""
    detail = f"{type(error).__name__}: {first}" if first else type(error).__name__
    if reason_of(error) == "unstorable":
        return f"The store cannot record this {what} ({detail})."
    return f"The {who} failed on this {what} ({detail})."
