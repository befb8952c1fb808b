"""Where the HTTP API reads the views from: the live projection, or the view store of another one.

``LiveSource`` shares the counters of a ``ProjectionLoop`` running in the same process (its lock,
its ``changed`` condition, its version). ``StoreSource`` serves a standalone ``motcua serve``
process: it keeps its own copy of the counters and reloads it from the view store when the
store's positions moved, checking at most every ``check_every`` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, Protocol, TypeVar

from kernel.lifecycle import load_lifecycle
from projections.controlsheet import control_sheet
from projections.fold import Counters
from projections.store import ViewStore

LateRows = list[tuple[str, list[Any]]]
T = TypeVar("T")


class HistoryUnavailableError(RuntimeError):
    """This process has no event store to read a dossier's history from."""


class ViewSource(Protocol):
    """What the API needs from the projection: a consistent snapshot and change notification."""

    def snapshot(self) -> AbstractContextManager[Counters]:
        """The counters, held still (under a lock) for the duration of the ``with`` block."""
        ...

    def version(self) -> int:
        """A number that changes whenever the counters change."""
        ...

    def wait_for_change(self, version: int, timeout: float) -> int:
        """Block until the version differs from ``version`` or ``timeout`` passes; the version."""
        ...

    def late_rows(self, agencies: Iterable[str], months: Sequence[str]) -> LateRows:
        """The stored facts of late (or possibly late) dossiers of these agencies and months."""
        ...

    def unfinished_late_rows(self, agencies: Iterable[str], months: Sequence[str],
                             before_day: int) -> LateRows:
        """Dossiers not finished and late at a view ending before ``before_day``."""
        ...

    def history(self, dossier_id: str, now: datetime) -> dict[str, Any] | None:
        """A dossier's recorded events and its control sheet at ``now``, or ``None``."""
        ...

    def read(self, fn: Callable[[ViewStore], T]) -> T:
        """``fn(view store)``, run while no one else uses the store's connection."""
        ...

    def position(self) -> int:
        """The highest event-store position folded into the views (0 when none)."""
        ...

    def quarantined(self) -> int:
        """How many events the projection stepped over, unable to fold or store them."""
        ...


def _history(engine: Any, dossier_id: str, now: datetime) -> dict[str, Any] | None:
    if engine is None:
        raise HistoryUnavailableError(
            "This server has no event store attached, so dossier histories cannot be read here."
        )
    return dossier_history(engine, dossier_id, now)


def dossier_history(engine: Any, dossier_id: str, now: datetime) -> dict[str, Any] | None:
    """``{"dossier_id", "events", "control_sheet"}`` (contract/interface.md), the control sheet
    judged at ``now`` under the engine's lifecycle rules."""
    events = engine.history("dossier", dossier_id)
    if events is None:
        return None
    rules = getattr(engine.annotate, "rules", None) or load_lifecycle()
    sheet = control_sheet(engine.subject("dossier", dossier_id), rules, now)
    return {"dossier_id": dossier_id, "events": events, "control_sheet": sheet}


def _applied_max(positions: dict[str, int]) -> int:
    return max((v for k, v in positions.items() if k.startswith("pos|")), default=0)


def _quarantined(positions: dict[str, int]) -> int:
    return sum(1 for k in positions if k.startswith("quarantined|"))


class LiveSource:
    """The counters of a projection loop in this process (``motcua up`` / ``motcua demo``)."""

    def __init__(self, loop: Any, store: ViewStore, engine: Any = None) -> None:
        self.loop = loop
        self.store = store
        self.engine = engine

    @contextmanager
    def snapshot(self) -> Iterator[Counters]:
        with self.loop.lock:
            yield self.loop.counters

    def version(self) -> int:
        return int(self.loop.version)

    def wait_for_change(self, version: int, timeout: float) -> int:
        with self.loop.changed:
            self.loop.changed.wait_for(lambda: self.loop.version != version, timeout)
            return int(self.loop.version)

    def late_rows(self, agencies: Iterable[str], months: Sequence[str]) -> LateRows:
        # The loop flushes through the same connection under its lock: share it.
        with self.loop.lock:
            return self.store.late_rows(agencies, months)

    def unfinished_late_rows(self, agencies: Iterable[str], months: Sequence[str],
                             before_day: int) -> LateRows:
        with self.loop.lock:
            return self.store.unfinished_late_rows(agencies, months, before_day)

    def history(self, dossier_id: str, now: datetime) -> dict[str, Any] | None:
        return _history(self.engine, dossier_id, now)

    def read(self, fn: Callable[[ViewStore], T]) -> T:
        with self.loop.lock:
            return fn(self.store)

    def position(self) -> int:
        with self.loop.lock:
            return _applied_max(self.loop.positions)

    def quarantined(self) -> int:
        with self.loop.lock:
            return _quarantined(self.loop.positions)


class StoreSource:
    """The views as another process's projection stored them (``motcua serve``)."""

    def __init__(self, store: ViewStore, engine: Any = None, *, check_every: float = 0.5) -> None:
        self.store = store
        self.engine = engine
        self.check_every = check_every
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._positions = store.positions()
        self._counters = store.load()
        self._version = 1
        self._checked = time.monotonic()

    def refresh(self, force: bool = False) -> None:
        """Reload the counters if the store's positions moved (checked at most every 0.5 s)."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._checked < self.check_every:
                return
            self._checked = now
            positions = self.store.positions()
            if positions == self._positions and not force:
                return
            # Positions first: counters read after them are at least as new, never older.
            self._counters = self.store.load()
            self._positions = positions
            self._version += 1
            self._changed.notify_all()

    @contextmanager
    def snapshot(self) -> Iterator[Counters]:
        self.refresh()
        with self._lock:
            yield self._counters

    def version(self) -> int:
        self.refresh()
        return self._version

    def wait_for_change(self, version: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                self.refresh()
                if self._version != version:
                    return self._version
                left = deadline - time.monotonic()
                if left <= 0:
                    return self._version
                # Another waiter may reload first and notify; else look again after check_every.
                self._changed.wait(min(left, self.check_every))

    def late_rows(self, agencies: Iterable[str], months: Sequence[str]) -> LateRows:
        with self._lock:  # one connection: one transaction at a time
            return self.store.late_rows(agencies, months)

    def unfinished_late_rows(self, agencies: Iterable[str], months: Sequence[str],
                             before_day: int) -> LateRows:
        with self._lock:
            return self.store.unfinished_late_rows(agencies, months, before_day)

    def history(self, dossier_id: str, now: datetime) -> dict[str, Any] | None:
        return _history(self.engine, dossier_id, now)

    def read(self, fn: Callable[[ViewStore], T]) -> T:
        with self._lock:
            return fn(self.store)

    def position(self) -> int:
        self.refresh()
        return _applied_max(self._positions)

    def quarantined(self) -> int:
        self.refresh()
        return _quarantined(self._positions)
