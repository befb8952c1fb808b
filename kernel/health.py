"""Which dependencies the roles of this process can reach: for ``/healthz``, the logs and metrics.

A role loop wraps each round in a :class:`Guard`: a failure marks the dependency it names
(``database``, ``kafka``, or ``internal`` for anything else) as down for that role, logs ONE line
when that is news, and backs off (0.2 s, 0.4 s, … up to 5 s) before the next try; the first round
that succeeds marks the role's dependencies up again and logs one line saying how long they were
away. So an outage of minutes is two log lines, not one per retry.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from kafka.errors import KafkaError

from kernel.failures import loaded_driver
from kernel.kafka import BrokerUnreachableError
from kernel.metrics import METRICS

DATABASE = "database"
KAFKA = "kafka"
INTERNAL = "internal"


@dataclass(frozen=True)
class Down:
    """A dependency one part of the process cannot reach, since when, and the last error."""

    part: str
    dependency: str
    since: float
    error: str


class Health:
    """The dependencies each part (engine, projection, forwarder, serve, bridge) cannot reach."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down: dict[tuple[str, str], Down] = {}
        # Health files of this process's children (motcua.engine_process), read by ``report``.
        self.foreign: list[Path] = []

    def down(self, part: str, dependency: str, error: BaseException) -> bool:
        """Note that ``part`` cannot reach ``dependency``; True when that is news."""
        text = _describe(error)
        with self._lock:
            key = (part, dependency)
            was = self._down.get(key)
            self._down[key] = Down(part, dependency, was.since if was else time.time(), text)
        METRICS.dependency_up.labels(part=part, dependency=dependency).set(0)
        return was is None

    def up(self, part: str, dependency: str | None = None) -> list[Down]:
        """``part`` reaches ``dependency`` (all of them when None) again; what had been down."""
        with self._lock:
            gone = [d for k, d in self._down.items()
                    if k[0] == part and dependency in (None, k[1])]
            for d in gone:
                del self._down[(d.part, d.dependency)]
        for d in gone:
            METRICS.dependency_up.labels(part=part, dependency=d.dependency).set(1)
        return gone

    def report(self) -> dict[str, Any]:
        """``{"status": "ok"}``, or ``"degraded"`` with each part's unreachable dependency
        (this process's, and those its children wrote with ``write``)."""
        with self._lock:
            down = sorted(self._down.values(), key=lambda d: (d.part, d.dependency))
        degraded = [
            {"part": d.part, "dependency": d.dependency,
             "since": datetime.fromtimestamp(d.since, UTC).isoformat(timespec="seconds"),
             "error": d.error} for d in down]
        for path in list(self.foreign):
            try:
                degraded += orjson.loads(path.read_bytes())
            except (OSError, orjson.JSONDecodeError):  # not written yet, or being replaced
                continue
        if not degraded:
            return {"status": "ok", "degraded": []}
        return {"status": "degraded", "degraded": degraded}

    def write(self, path: Path) -> None:
        """Write what this process cannot reach, for a parent's ``report`` (atomically)."""
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(self.report()["degraded"]))
        os.replace(tmp, path)


HEALTH = Health()


def dependency_of(error: BaseException) -> str:
    """What a failure says is unreachable: ``database``, ``kafka``, or ``internal``."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, KafkaError | BrokerUnreachableError):
            return KAFKA
        if isinstance(seen, sqlite3.OperationalError) or _is_db_error(seen):
            return DATABASE
        seen = seen.__cause__ or seen.__context__
    return INTERNAL


def _db_errors() -> tuple[type[Exception], ...]:
    """psycopg's and eventsourcing's connection-level errors (a server shutting down is one),
    and psycopg_pool's timeout. The driver's only where this process imported it: one that
    never did (a store on SQLite) cannot meet its errors, and is spared its import (a
    twentieth of a second at every start)."""
    from eventsourcing import persistence

    out: list[type[Exception]] = [persistence.OperationalError, persistence.InterfaceError]
    if (pg := loaded_driver()) is not None:
        out += [pg.OperationalError, pg.InterfaceError]
    if (pool := sys.modules.get("psycopg_pool")) is not None:
        out.append(pool.PoolTimeout)
    return tuple(out)


def outage_errors() -> tuple[type[Exception], ...]:
    """What a dependency that is away raises (an HTTP request meeting one answers 503)."""
    return (*_db_errors(), sqlite3.OperationalError, KafkaError, BrokerUnreachableError)


def _is_db_error(error: BaseException) -> bool:
    return isinstance(error, _db_errors())


def _describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}".strip().rstrip(":")
    return text if len(text) <= 200 else text[:197] + "..."


class Backoff:
    """Delays between retries: ``first``, doubling, at most ``most`` seconds."""

    def __init__(self, first: float = 0.2, most: float = 5.0) -> None:
        self.first = first
        self.most = most
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * 2, self.most)
        return delay

    def reset(self) -> None:
        self._next = self.first


class Guard:
    """One role loop's failures: health, one log line per change of state, backoff."""

    def __init__(self, part: str, log: Any, health: Health = HEALTH,
                 backoff: Backoff | None = None) -> None:
        self.part = part
        self.log = log
        self.health = health
        self.backoff = backoff or Backoff()
        self.failing = False

    def failed(self, error: BaseException, stop: threading.Event | None = None) -> str:
        """Note a failed round and wait before the next; returns the dependency blamed."""
        dependency = dependency_of(error)
        if self.health.down(self.part, dependency, error):
            if dependency == INTERNAL:  # a bug, not an outage: its traceback once
                self.log.error("role_failing", part=self.part, error=_describe(error),
                               exc_info=error)
            else:
                self.log.warning("dependency_unreachable", part=self.part,
                                 dependency=dependency, error=_describe(error))
        self.failing = True
        delay = self.backoff.next()
        if stop is not None:
            stop.wait(delay)
        else:
            time.sleep(delay)
        return dependency

    def ok(self) -> None:
        """A round succeeded: whatever was down for this part is back."""
        if not self.failing:
            return
        self.failing = False
        self.backoff.reset()
        now = time.time()
        for d in self.health.up(self.part):
            self.log.info("dependency_reachable", part=self.part, dependency=d.dependency,
                          down_seconds=round(now - d.since, 1))
