"""The intake ledger's held rows, as the engine's timers and batches read them (one home,
two dialects; a mixin of ``engine.store.IntakeMixin``)."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any


class HeldRowsMixin:
    """Reads of the held rows of ``motcua_intake``."""

    def _sql(self, statement: str) -> str:
        raise NotImplementedError

    def _tx(self, commit: bool) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def held_for(self, subjects: Iterable[str]) -> list[dict[str, Any]]:
        """Held rows of the given subjects, oldest business time first."""
        subjects = list(subjects)
        if not subjects:
            return []
        rows: list[dict[str, Any]] = []
        with self._tx(commit=False) as c:
            for i in range(0, len(subjects), 500):
                chunk = subjects[i:i + 500]
                c.execute(
                    self._sql("SELECT id, log, topic, part, off, akey, subject, raw FROM "
                              "motcua_intake WHERE outcome='held' AND subject IN "
                              f"({','.join('?' * len(chunk))})"),
                    chunk,
                )
                rows.extend(dict(r) for r in c.fetchall())
        return rows

    def held_older_than(self, recorded_before: float, limit: int = 1000) -> list[dict[str, Any]]:
        with self._tx(commit=False) as c:
            c.execute(
                self._sql("SELECT id, log, topic, part, off, akey, subject, raw FROM motcua_intake "
                          "WHERE outcome='held' AND recorded_at < ? ORDER BY id LIMIT ?"),
                (recorded_before, limit),
            )
            return [dict(r) for r in c.fetchall()]

    def held_subjects(self, recorded_before: float,
                      limit: int = 1000) -> list[tuple[str, int]]:
        """(subject, actions partition) of held rows recorded before a time (-1: internal)."""
        with self._tx(commit=False) as c:
            c.execute(
                self._sql("SELECT subject, part FROM motcua_intake WHERE outcome='held' AND "
                          "recorded_at < ? GROUP BY subject, part LIMIT ?"),
                (recorded_before, limit),
            )
            return [(str(r["subject"]), int(r["part"])) for r in c.fetchall()]

    def held_summary(self) -> tuple[dict[int, int], set[str]]:
        """Held rows per actions partition, and the subjects of the held internal rows
        (partition -1: a feedback's link), in one query."""
        per_part: dict[int, int] = {}
        links: set[str] = set()
        with self._tx(commit=False) as c:
            c.execute("SELECT part, CASE WHEN part < 0 THEN subject END AS subject, "
                      "COUNT(*) AS n FROM motcua_intake WHERE outcome='held' GROUP BY 1, 2")
            for r in c.fetchall():
                part = int(r["part"])
                per_part[part] = per_part.get(part, 0) + int(r["n"])
                if r["subject"] is not None:
                    links.add(str(r["subject"]))
        return per_part, links

    def held_rows_of_parts(self) -> list[tuple[str, int]]:
        """(subject, actions partition) of every held row of an actions partition."""
        with self._tx(commit=False) as c:
            c.execute("SELECT subject, part FROM motcua_intake WHERE outcome='held' AND "
                      "part >= 0")
            return [(str(r["subject"]), int(r["part"])) for r in c.fetchall()]

    def held_count(self) -> int:
        with self._tx(commit=False) as c:
            c.execute("SELECT COUNT(*) AS n FROM motcua_intake WHERE outcome='held'")
            return int(c.fetchone()["n"])
