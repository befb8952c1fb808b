"""The engine's working set: recently used aggregates, and which subjects are known absent.

Reading an aggregate back from the store replays its events, which costs more than applying an
action, so the engine keeps the subjects it touched (LRU, bounded). One query per batch tells
which uncached subjects exist at all (``prefetch``); the rest are known absent and need no read.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from engine.domain.base import Subject, subject_uuid
from kernel.settings import ENGINE_CACHE


class SubjectCache:
    """Aggregates by id, most recently used last; at most ``size`` of them."""

    def __init__(self, repository: Any, store: Any, size: int = ENGINE_CACHE) -> None:
        self.repository = repository
        self.store = store
        self.size = size
        self._aggregates: OrderedDict[UUID, Subject] = OrderedDict()
        self._ids: dict[str, UUID] = {}
        # Subjects known not to exist yet (filled per batch by one query).
        self._absent: set[UUID] = set()

    def uuid(self, kind: str, subject_id: str) -> UUID:
        """The aggregate id of a subject (memoized: it is a hash)."""
        key = f"{kind}:{subject_id}"
        u = self._ids.get(key)
        if u is None:
            if len(self._ids) > self.size:
                self._ids.clear()
            u = self._ids[key] = subject_uuid(kind, subject_id)
        return u

    def prefetch(self, ids: Iterable[UUID]) -> None:
        """One query tells which uncached subjects of a batch exist; the rest need no read."""
        unknown = list({i for i in ids if i not in self._aggregates})
        self._absent.clear()
        if unknown:
            found = self.store.existing(unknown)
            self._absent.update(i for i in unknown if i not in found)

    def assume_absent(self, ids: Iterable[UUID]) -> None:
        """Take these subjects as known absent without asking the store (benchmarks of the
        domain step on an empty store)."""
        self._absent = set(ids)

    def get(self, sid: UUID) -> Subject | None:
        """The aggregate, from the cache or the store; ``None`` if it does not exist."""
        agg = self._aggregates.get(sid)
        if agg is not None:
            self._aggregates.move_to_end(sid)
            return agg
        if sid in self._absent:
            return None
        try:
            found: Subject = self.repository.get(sid)
        except AggregateNotFoundError:
            return None
        self.remember(found)
        return found

    def remember(self, agg: Subject) -> None:
        self._absent.discard(agg.id)
        self._aggregates[agg.id] = agg
        self._aggregates.move_to_end(agg.id)
        while len(self._aggregates) > self.size:
            self._aggregates.popitem(last=False)

    def forget(self, ids: Iterable[UUID]) -> None:
        """Drop aggregates whose cached state may be wrong (a failed commit, another engine)."""
        for i in ids:
            self._aggregates.pop(i, None)

    def forget_unsaved(self) -> None:
        """Drop every aggregate holding events not collected for a write (a batch failed
        before its commit, maybe before it noted what it touched)."""
        for i in [i for i, agg in self._aggregates.items() if agg.pending_events]:
            del self._aggregates[i]

    def forget_absent(self) -> None:
        """"Absent" is only ever true of the last batch's query."""
        self._absent.clear()

    def clear(self) -> None:
        self._aggregates.clear()
        self._absent.clear()
