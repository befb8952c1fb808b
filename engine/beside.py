"""A batch's SQLite commit on a helper thread, while the engine thread parses the next batch.

A durable SQLite commit (``synchronous=FULL``: the WAL's fsync, and now and then a checkpoint) is
one C call that releases the GIL; the engine thread waits for it, doing nothing, once per batch.
Parsing the next batch's messages (``prepare``) reads nothing and changes nothing, so it
can run meanwhile: ``insert_beside`` writes the batch's rows as ``insert_events`` does, then
commits on a helper thread while ``during`` runs on the caller's, and returns (or raises the
commit's error, translated as the library translates it) only once both are done. Nothing
else runs beside a commit: the next batch is handled, and the store read, only after it.

Only the commit is moved, not the inserts: ``executemany`` releases the GIL around every row,
and a row's worth of work on another thread then waits for a thread switch (5 ms) each time.
"""

from __future__ import annotations

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
        failed: list[BaseException] = []

        def commit() -> None:
            try:
                self.conn.commit()
            except BaseException as e:  # raised on the caller's thread, below
                failed.append(e)

        helper = threading.Thread(target=commit, name="engine-commit", daemon=True)
        helper.start()
        try:
            self.during()
        finally:
            helper.join()  # whatever ``during`` did, the connection is not left mid-commit
        if failed:
            raise failed[0]


def insert_beside(recorder: Any, stored: Sequence[StoredEvent], during: Callable[[], None],
                  **kwargs: Any) -> None:
    """``recorder.insert_events(stored, **kwargs)``, running ``during`` beside its commit on
    SQLite (after it elsewhere)."""
    if not isinstance(recorder, SQLiteStore):
        recorder.insert_events(stored, **kwargs)
        during()
        return
    with recorder.datastore.get_connection(commit=True) as conn, \
            SQLiteTransaction(_CommitBeside(conn, during),  # type: ignore[arg-type]
                              commit=True) as curs, curs:
        recorder._insert_events(curs, stored, **kwargs)
