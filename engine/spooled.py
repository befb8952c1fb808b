"""The engine's side of the spool (``kernel.spool``): which copies count, and settling them.

A message that carries this store's ``motcua-spool`` header is a copy of a spooled line. The
copy that counts is processed as usual, and ``motcua_spool_done`` gets the line's id with the
copy's position IN THE SAME TRANSACTION as its outcome; every other copy is recorded as a
duplicate (no event, no dead letter). Two engines that meet two copies at once both try to
insert the id: the second insert fails, the batch is redone, and the copy is then a duplicate.

A copy counts only if no older line of its subject (same key) is still unrecorded: a broker
that restarts in the middle of a page may keep a later line's copy while an earlier one is lost,
and applying them out of order would refuse valid actions (a result returned before its
resolution). Such a copy is recorded as a duplicate and its line marked to be sent again; the
forwarder sends the older line first.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from kernel.spool import (
    DONE_INSERT,
    NAMESPACE_INSERT,
    NAMESPACE_SELECT,
    RESEND_UPDATE,
    Spooled,
    fresh_select,
    new_namespace,
    queue_select,
)


class SpoolMixin:
    """Spool reads and writes on the event store's recorder (two dialects)."""

    def _sql(self, statement: str) -> str:
        raise NotImplementedError

    def _tx(self, commit: bool) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def spool_namespace(self) -> str:
        """This store's spool namespace (created with the tables' first use)."""
        with self._tx(commit=True) as c:
            c.execute(self._sql(NAMESPACE_INSERT), (new_namespace(),))
            c.execute(NAMESPACE_SELECT)
            return str(c.fetchone()["value"])

    def spool_fresh(self, ids: Iterable[int]) -> dict[int, bytes | None]:
        """The ids among ``ids`` whose line is spooled and not yet recorded, with its key."""
        out: dict[int, bytes | None] = {}
        for chunk in _chunks(sorted(set(ids))):
            with self._tx(commit=False) as c:
                c.execute(self._sql(fresh_select(len(chunk))), chunk)
                out.update((int(r["id"]), None if r["key"] is None else bytes(r["key"]))
                           for r in c.fetchall())
        return out

    def spool_queues(self, keys: Iterable[bytes]) -> dict[bytes, list[int]]:
        """Per key (subject), the ids of its lines not yet recorded, oldest first."""
        out: dict[bytes, list[int]] = {}
        for chunk in _chunks(sorted(set(keys))):
            with self._tx(commit=False) as c:
                c.execute(self._sql(queue_select(len(chunk))), chunk)
                for r in c.fetchall():
                    out.setdefault(bytes(r["key"]), []).append(int(r["id"]))
        return out

    def write_spool_done(self, c: Any, done: Sequence[tuple[int, str, int, int]],
                         resend: Sequence[int] = ()) -> None:
        """Settle spooled lines in the caller's transaction (a second settler fails here), and
        mark the lines whose copy came too early to be sent again."""
        if done:
            now = time.time()
            c.executemany(self._sql(DONE_INSERT),
                          [(i, log, part, off, now) for i, log, part, off in done])
        if resend:
            c.executemany(self._sql(RESEND_UPDATE), [(i,) for i in resend])

    def spool_summary(self, spooled: Spooled) -> list[tuple[str, str | None, int]]:
        """(outcome, reason, count) of the recorded lines of a submission: what the engine
        made of the copy that settled each."""
        out: list[tuple[str, str | None, int]] = []
        with self._tx(commit=False) as c:
            for lo, hi in spooled.ranges:
                c.execute(self._sql(
                    "SELECT i.outcome AS outcome, i.reason AS reason, COUNT(*) AS n FROM "
                    "motcua_spool_done d JOIN motcua_intake i ON i.log = d.log AND i.part = "
                    "d.part AND i.off = d.off AND i.topic = 'motcua.actions' WHERE d.id "
                    "BETWEEN ? AND ? GROUP BY i.outcome, i.reason"), (lo, hi))
                out.extend((r["outcome"], r["reason"], int(r["n"])) for r in c.fetchall())
        return out


def _chunks(items: list[Any], size: int = 500) -> Iterable[list[Any]]:
    return (items[i:i + size] for i in range(0, len(items), size))
