"""A batch's commit on a helper thread, while the engine thread parses the next batch.

A durable SQLite commit (``synchronous=FULL``: the WAL's fsync; checkpoints are another
thread's, ``engine.checkpoint``) is one C call that releases the GIL; the engine thread waits
for it, doing nothing, once per batch. Parsing the next batch's messages (``prepare``) reads
nothing and changes nothing, so it can run meanwhile: ``insert_beside`` writes the batch's rows
as ``insert_events`` does, then commits on a helper thread while ``during`` runs on the
caller's, and returns (or raises the commit's error, translated as the library translates it)
only once both are done. Nothing else runs beside a commit: the next batch is handled, and the
store read, only after it.

On SQLite only the commit is moved, not the inserts: ``executemany`` releases the GIL around
every row, and each row would then wait for a thread switch (5 ms) from the parsing thread. On
PostgreSQL the whole transaction is: a dozen statements, one per table, each a wait for the
server (about a fifth of a batch's time with the server on the same machine).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteConnection, SQLiteCursor, SQLiteTransaction

from engine.intake import Message
from engine.store import SQLiteStore
from kernel.contract.actions import Action, InvalidActionError, parse_action

# What ``prepare`` made of messages: id(message) -> (the message, its action or refusal).
Prepared = dict[int, tuple[Message, Action | InvalidActionError]]


def parse_one(m: Message) -> Action | InvalidActionError:
    """A message's action, or why it is none."""
    try:
        return parse_action(m.value)
    except InvalidActionError as e:
        return e


def prepare(messages: Sequence[Message]) -> Prepared:
    """Each message parsed (or refused), for ``Engine.process``; reads and changes nothing, so
    it may run beside another batch's commit. A message whose parse fails otherwise than
    ``InvalidActionError`` is left out: it fails in its own batch, to be isolated there."""
    out: Prepared = {}
    for m in messages:
        try:
            out[id(m)] = (m, parse_one(m))
        except Exception:  # noqa: BLE001, S112 - parsed again in its own batch
            continue
    return out


def prepare_into(out: Prepared, messages: Sequence[Message]) -> None:
    """``prepare``, into ``out`` (the next turn's, filled beside this turn's commit)."""
    out.update(prepare(messages))


# The interpreter's switch interval while a helper thread and the caller's both run (_beside).
SWITCH_S = 0.0005


def _beside(work: Callable[[], object], during: Callable[[], None]) -> None:
    """``work`` on a helper thread while ``during`` runs on this one; returns when both are
    done, raising ``work``'s error here (``during``'s first, if both fail)."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as e:  # raised on the caller's thread, below
            failed.append(e)

    helper = threading.Thread(target=run, name="engine-commit", daemon=True)
    # Back from the database, the helper waits for the GIL until this thread is made to drop
    # it: after the switch interval (5 ms by default) each time, a dozen times a batch on
    # PostgreSQL. A shorter one while both run.
    switch = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_S)
    helper.start()
    try:
        during()
    finally:
        helper.join()  # whatever ``during`` did, the connection is not left mid-commit
        sys.setswitchinterval(switch)
    if failed:
        raise failed[0]


class _CommitBeside:
    """The connection, as ``SQLiteTransaction`` sees it: its commit runs on a helper thread."""

    def __init__(self, conn: SQLiteConnection, during: Callable[[], None]) -> None:
        self.conn = conn
        self.during = during

    def cursor(self) -> SQLiteCursor:
        return self.conn.cursor()

    def rollback(self) -> None:
        self.conn.rollback()

    def commit(self) -> None:
        _beside(self.conn.commit, self.during)


def insert_beside(recorder: Any, stored: Sequence[StoredEvent], during: Callable[[], None],
                  **kwargs: Any) -> None:
    """``recorder.insert_events(stored, **kwargs)`` with ``during`` run beside its commit (on
    SQLite) or beside the whole transaction (elsewhere: on PostgreSQL the server does the
    work of the inserts while the client waits, the GIL released, on one statement per
    table)."""
    if not isinstance(recorder, SQLiteStore):
        _beside(lambda: recorder.insert_events(stored, **kwargs), during)
        return
    with recorder.datastore.get_connection(commit=True) as conn, \
            SQLiteTransaction(_CommitBeside(conn, during),  # type: ignore[arg-type]
                              commit=True) as curs, curs:
        recorder._insert_events(curs, stored, **kwargs)
