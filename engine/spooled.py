"""The engine's side of the spool (``kernel.spool``): which copies are new, and settling them.

A message that carries this store's ``motcua-spool`` header is a copy of a spooled line. The
first copy the engine meets is processed as usual, and ``motcua_spool_done`` gets the line's id
with the copy's position IN THE SAME TRANSACTION as its outcome; every other copy is recorded as
a duplicate (no event, no dead letter). Two engines that meet two copies at once both try to
insert the id: the second insert fails, the batch is redone, and the copy is then a duplicate.
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
    Spooled,
    fresh_select,
    new_namespace,
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

    def spool_fresh(self, ids: Iterable[int]) -> set[int]:
        """The ids among ``ids`` whose line is spooled and not yet recorded."""
        ids = sorted(set(ids))
        out: set[int] = set()
        if not ids:
            return out
        with self._tx(commit=False) as c:
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                c.execute(self._sql(fresh_select(len(chunk))), chunk)
                out.update(int(r["id"]) for r in c.fetchall())
        return out

    def write_spool_done(self, c: Any, done: Sequence[tuple[int, str, int, int]]) -> None:
        """Settle spooled lines in the caller's transaction (a second settler fails here)."""
        if done:
            now = time.time()
            c.executemany(self._sql(DONE_INSERT),
                          [(i, log, part, off, now) for i, log, part, off in done])

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
