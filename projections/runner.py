"""The projection role: fold ``motcua.events`` into the views, exactly once.

Each message carries its event-store position ``pos``. Per partition the projection keeps the
highest ``pos`` it applied, in the view store, written in the same transaction as the counters:
a message at or below it is a redelivery and a no-op, and one whose predecessor it has not
applied is ahead of events the log lost and waits for the relay's republication
(``kernel.event_order``). The Kafka offset is kept too, but only as
a place to resume reading; ``pos`` survives any broker reset, the offset does not.

Each events partition has its own table set of counters, written only by the process that owns
the partition (claimed with an epoch that fences a zombie); queries sum the table sets. So
several projection processes in one consumer group never write the same row.

Given a ``feed`` (``projections.feed``: the process holds the event store and owns every
partition), the loop reads the same events from the store's facts log instead of the broker,
with the same positions.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import orjson
import structlog
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition

from kernel import kafka as K
from kernel.event_order import AHEAD, NEXT, Gaps, turn
from kernel.failures import describe, transient
from kernel.health import DATABASE, Guard, dependency_of
from kernel.idle import IdleWait
from kernel.kafka import LogIdentity, close_consumer, ensure_all_topics
from kernel.metrics import METRICS
from kernel.settings import EVENTS_TOPIC, KafkaSecurity
from projections.feed import StoreFeed, settled, start_at
from projections.fold import Counters, merged
from projections.store import (
    BASE,
    GENERATION,
    StaleViewsError,
    ViewsFencedError,
    ViewStore,
)

log = structlog.get_logger("motcua.projection")
T = TypeVar("T")

# How long the broker may hold a fetch for more data: one hop of an action's way to the
# scores; 10 ms keeps a hop near 5 ms on the bundled broker (100 ms made it ~30 ms).
FETCH_WAIT_MS = 10


def owner_name(role: str) -> str:
    return f"{role}@{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 10_000}"


class ProjectionLoop:
    """Owns its partitions' counters; readers take ``lock`` while they look at them."""

    def __init__(self, store: ViewStore, bootstrap: str, security: KafkaSecurity | None,
                 *, partitions: int = 3, max_records: int = 5000, group: str | None = None,
                 session_timeout_ms: int = 10_000, feed: StoreFeed | None = None,
                 idle: IdleWait | None = None) -> None:
        self.store = store
        self.bootstrap = bootstrap
        self.security = security
        self.partitions = partitions
        self.max_records = max_records
        self.group = group
        self.session_timeout_ms = session_timeout_ms
        self.owner = owner_name("projection")
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.version = 0
        self.parts: dict[int, Counters] = {}
        self.epochs: dict[int, int] = {}
        self.base: Counters = Counters()
        self.positions: dict[str, int] = {}
        self.generation = 0
        self._merged: tuple[int, Counters] | None = None
        self.identity = LogIdentity(bootstrap, security)
        self.consumer: KafkaConsumer | None = None
        self.log_id = ""
        self.ready = threading.Event()
        self.guard = Guard("projection", log)
        self._resync = False
        self.gaps = Gaps("projection")  # partitions waiting for events their log lost
        # Reading the event store instead (``projections.feed``): its events partitions (the
        # relay's count) and the store position read up to.
        self.feed = feed
        self.idle = idle or IdleWait()  # between empty looks at the store (kernel.idle)
        self.feed_parts = 0
        self.cursor = 0
        self.reload()

    # ----- state ---------------------------------------------------------------------------

    @property
    def counters(self) -> Counters:
        """Everything this process knows, summed (the replay's base and its partitions);
        computed again only when something changed."""
        with self.lock:
            if self._merged is None or self._merged[0] != self.version:
                self._merged = (self.version, merged([self.base, *self.parts.values()]))
            return self._merged[1]

    def applied(self, partition: int) -> int:
        return self.positions.get(f"pos|{partition}", 0)

    def reload(self) -> None:
        """Take what the store says is applied (after an error, or after a replay's swap)."""
        with self.lock:
            self.positions = self.store.positions()
            self.generation = self.positions.get(GENERATION, 0)
            self.base = self.store.load(BASE)
            self.parts = {p: self.store.load(p) for p in self.parts}
            self.version += 1
            self.changed.notify_all()

    def take(self, partitions: list[int]) -> None:
        """Own these events partitions: claim them (fencing a previous owner), load their
        counters."""
        with self.lock:
            for p in partitions:
                self.epochs[p] = self.store.claim(p, self.owner)
                self.parts[p] = self.store.load(p)
            self.positions = self.store.positions()
            self.version += 1

    def _drop(self, partitions: list[int]) -> None:
        with self.lock:
            for p in partitions:
                self.parts.pop(p, None)
                self.epochs.pop(p, None)
            self.gaps.forget(partitions)
            self.gaps.report()
            self.version += 1

    # ----- Kafka ---------------------------------------------------------------------------

    def setup(self) -> None:
        ensure_all_topics(self.bootstrap, self.security, self.partitions)
        self.log_id = self.identity.of(EVENTS_TOPIC)
        if self.consumer is not None:
            close_consumer(self.consumer, self.session_timeout_ms)
        with self.lock:
            self.parts, self.epochs = {}, {}
            self.gaps.forget(list(self.gaps.waiting))
            self.gaps.report()
        self.reload()
        if self.group:
            self.consumer = K.consumer(
                self.bootstrap, self.security, max_poll_records=self.max_records,
                fetch_max_wait_ms=FETCH_WAIT_MS, group_id=self.group,
                session_timeout_ms=self.session_timeout_ms,
                heartbeat_interval_ms=max(500, self.session_timeout_ms // 5))
            self.consumer.subscribe([EVENTS_TOPIC], listener=_Listener(self))
        else:
            self.consumer = K.consumer(self.bootstrap, self.security,
                                       max_poll_records=self.max_records,
                                       fetch_max_wait_ms=FETCH_WAIT_MS)
            tps = [TopicPartition(EVENTS_TOPIC, p)
                   for p in K.partitions_for(self.consumer, EVENTS_TOPIC)]
            self.consumer.assign(tps)
            self.take([tp.partition for tp in tps])
            for tp in tps:
                self._seek(tp)
        log.info("projection_ready", log_id=self.log_id, group=self.group)
        self.ready.set()

    def resync(self) -> None:
        """Reload what the store says (after a replay's swap, or a database outage) and read on
        from its positions, keeping the consumer: leaving and rejoining the group would cost a
        rebalance (and tansu can leave a member that rejoins at the wrong moment without any
        partition)."""
        assert self.consumer is not None
        self.reload()
        for tp in self.consumer.assignment():
            self._seek(tp)
        self._resync = False
        log.info("projection_resynced", generation=self.generation)

    def _seek(self, tp: TopicPartition) -> None:
        assert self.consumer is not None
        self.consumer.seek(tp, self.positions.get(f"off|{self.log_id}|{tp.partition}", 0))

    def run(self, stop: threading.Event) -> None:
        last_identity = time.monotonic()
        while not stop.is_set():
            try:
                if self.feed is not None:
                    self.idle.after(self._read_store(), stop)
                else:
                    self._read_kafka()
                now = time.monotonic()
                if now - last_identity >= 2.0:
                    last_identity = now
                    if self.feed is None and self.identity.of(EVENTS_TOPIC) != self.log_id:
                        log.warning("events_log_changed", old=self.log_id)
                        self.ready.clear()
                    elif self.store.generation() != self.generation:
                        raise StaleViewsError("the views were replaced by a replay")
                    self._lag()
            except StaleViewsError:
                log.info("views_replaced_by_replay_reloading")
                self._resync = True
                continue
            except ViewsFencedError as e:
                log.warning("projection_fenced", error=str(e))
                self.ready.clear()
                continue
            except Exception as e:  # the broker or the database away, or a bug
                if dependency_of(e) == DATABASE and (self.consumer is not None
                                                     or self.feed is not None):
                    self._resync = True  # keep the consumer (or the feed): reload, go on
                else:
                    self.ready.clear()  # set up again
                self.guard.failed(e, stop)  # one log line per outage, and a backoff
                continue
            self.guard.ok()
        self.close()

    def _read_kafka(self) -> None:
        if self.consumer is None or not self.ready.is_set():
            self.setup()
            self._resync = False
        elif self._resync:
            self.resync()
        assert self.consumer is not None
        polled = self.consumer.poll(timeout_ms=100, max_records=self.max_records)
        if polled:
            self.apply(polled)

    # ----- the event store (``feed``) -----------------------------------------------------

    def _read_store(self) -> bool:
        """Fold the next page of the store's facts log; whether there was one."""
        assert self.feed is not None
        if not self.ready.is_set():
            if not self._setup_store():
                return False
        elif self._resync:
            self.reload()
            self.cursor = start_at(self.positions, self.feed_parts)
            self._resync = False
            log.info("projection_resynced", generation=self.generation, at=self.cursor)
        page = self.feed.page(self.cursor, self.max_records, self.feed_parts)
        if page:
            self.apply_page(page)
        return bool(page)

    def _setup_store(self) -> bool:
        """Own every events partition and go on from the lowest of their positions; False
        while the relay has not recorded how many there are."""
        assert self.feed is not None
        n = self.feed.partitions()
        if not n:
            return False
        with self.lock:
            self.parts, self.epochs = {}, {}
        self.reload()
        self.take(list(range(n)))
        self.feed_parts = n
        self.cursor = start_at(self.positions, n)
        self._resync = False
        log.info("projection_ready", source="event store", partitions=n, at=self.cursor)
        self.ready.set()
        return True

    def apply_page(self, page: list[tuple[int, tuple[Any, ...]]]) -> int:
        """Fold one page of the store (``StoreFeed.page``) and flush it with the positions, in
        one transaction; a failure that is not transient is handled as ``apply`` does."""
        return self._batch_or_each(lambda: self._apply_page(page),
                                   lambda: self._page_one_by_one(page))

    def _page_one_by_one(self, page: list[tuple[int, tuple[Any, ...]]]) -> int:
        with self.lock:  # what the failed attempt folded in memory is not in the store
            self.parts = {p: self.store.load(p) for p in self.parts}
        return self._each(page, lambda item: self._apply_page([item]), self._quarantine_row)

    def _quarantine_row(self, item: tuple[int, tuple[Any, ...]], error: Exception) -> None:
        part, row = item
        self._quarantine(part, row[0], settled(self.positions, self.feed_parts, row[0]),
                         error, offset=row[0])
        self.cursor = row[0]

    def _apply_page(self, page: list[tuple[int, tuple[Any, ...]]]) -> int:
        folded = skipped = 0
        loads = orjson.loads
        with self.lock:
            n = self.feed_parts
            parts = self.parts
            applied = {p: self.applied(p) for p in range(n)}
            for part, (pos, kind, sid, prev, facts) in page:
                if pos <= applied[part]:  # folded before a restart, or by a replay
                    skipped += 1
                    continue
                parts[part].fold_row(kind, sid, None if prev is None else loads(prev),
                                     None if facts is None else loads(facts))
                applied[part] = pos
                folded += 1
            self._flush(dict(parts), settled(self.positions, n, page[-1][1][0]))
            self.cursor = page[-1][1][0]
        METRICS.events_folded.inc(folded)
        METRICS.events_skipped.inc(skipped)
        return folded

    def apply(self, polled: dict[Any, list[Any]]) -> int:
        """Fold one poll's records and flush them with the positions, in one transaction.

        A failure that is not transient (``kernel.failures``) is the batch's own: the poll is
        folded again one record at a time, and a record that cannot be folded or stored is
        quarantined (``_quarantine``) so that its partition goes on."""
        return self._batch_or_each(lambda: self._apply(polled),
                                   lambda: self._apply_one_by_one(polled))

    def _batch_or_each(self, batch: Callable[[], int], each: Callable[[], int]) -> int:
        """``batch()``; when it fails for a reason that is not transient, ``each()``."""
        try:
            return batch()
        except (StaleViewsError, ViewsFencedError):
            raise
        except Exception as e:
            if transient(e):
                raise
            log.error("projection_batch_failed", error=describe(e, "projection", "batch"))
        return each()

    def _each(self, items: Iterable[T], apply_one: Callable[[T], int],
              quarantine: Callable[[T, Exception], None]) -> int:
        """Apply the items one at a time; quarantine one that fails for its own reason."""
        folded = 0
        for item in items:
            try:
                folded += apply_one(item)
            except (StaleViewsError, ViewsFencedError):
                raise
            except Exception as e:
                if transient(e):
                    raise
                quarantine(item, e)
        return folded

    def _apply_one_by_one(self, polled: dict[Any, list[Any]]) -> int:
        with self.lock:  # what the failed attempt folded in memory is not in the store
            for tp in polled:
                if tp.partition in self.parts:
                    self.parts[tp.partition] = self.store.load(tp.partition)
        return self._each([(tp, r) for tp, records in polled.items() for r in records],
                          lambda item: self._apply({item[0]: [item[1]]}),
                          lambda item, e: self._quarantine_record(item[0].partition, item[1], e))

    def _quarantine_record(self, partition: int, record: Any, error: Exception) -> None:
        try:
            pos = int(orjson.loads(record.value)["pos"])
        except Exception:
            pos = -1
        updates = {f"off|{self.log_id}|{partition}": record.offset + 1}
        if pos > self.applied(partition):
            updates[f"pos|{partition}"] = pos
        self._quarantine(partition, pos, updates, error, offset=record.offset)

    def _quarantine(self, partition: int, pos: int, updates: dict[str, int], error: Exception,
                    *, offset: int) -> None:
        """Step over an event that cannot be folded or stored: its positions move past it
        (``updates``) and a ``quarantined|PARTITION|OFFSET`` entry (value: its store position,
        or -1; read from the store, the offset is that position) records it beside them;
        counted in ``/metrics`` and shown by ``/healthz`` as degraded."""
        with self.lock:
            self.parts[partition] = self.store.load(partition)  # drop a half-done fold
            moved = {partition, *(int(k[4:]) for k in updates if k.startswith("pos|"))}
            updates = {**updates, f"quarantined|{partition}|{offset}": pos}
            self.store.flush_parts({}, updates, self.generation,
                                   {p: self.epochs[p] for p in moved})
            self.positions.update(updates)
            self.version += 1
        METRICS.events_quarantined.inc()
        log.error("event_quarantined", partition=partition, offset=offset, pos=pos,
                  error=describe(error, "projection", "event"))

    def quarantined(self) -> int:
        """How many events this projection's views stepped over (``_quarantine``)."""
        with self.lock:
            return sum(1 for k in self.positions if k.startswith("quarantined|"))

    def _apply(self, polled: dict[Any, list[Any]]) -> int:
        folded = skipped = ahead = 0
        with self.lock:
            updates: dict[str, int] = {}
            touched: dict[int, Counters] = {}
            for tp, records in polled.items():
                p = tp.partition
                counters = self.parts.get(p)
                if counters is None:  # not ours (any more): the rebalance will tell
                    continue
                touched[p] = counters
                applied = self.applied(p)
                for r in records:
                    ev = orjson.loads(r.value)
                    t = turn(ev, applied)
                    if t != NEXT:  # a redelivery, or ahead of events the log lost
                        if t == AHEAD:
                            ahead += 1
                            self.gaps.ahead(p, applied, pos=ev["pos"], follows=ev.get("follows"))
                        else:
                            skipped += 1
                        continue
                    counters.fold(ev)
                    applied = ev["pos"]
                    folded += 1
                updates[f"pos|{p}"] = applied
                updates[f"off|{self.log_id}|{p}"] = records[-1].offset + 1
            self._flush(touched, updates)
            self.gaps.moved({p: updates[f"pos|{p}"] for p in touched})
            self.gaps.report()
        METRICS.events_folded.inc(folded)
        METRICS.events_skipped.inc(skipped)
        METRICS.events_ahead.inc(ahead)
        return folded

    def _flush(self, touched: dict[int, Counters], updates: dict[str, int]) -> None:
        """Write the touched partitions' counters and the positions in one transaction, fenced
        by the generation and the partitions' epochs; then tell the readers (under the lock)."""
        try:
            self.store.flush_parts(touched, updates, self.generation,
                                   {p: self.epochs[p] for p in touched})
        except BaseException:
            # What was folded is not in the store: forget it (the loop reloads and seeks;
            # if the store is away, setup() reloads everything once it is back).
            try:
                for p in touched:
                    self.parts[p] = self.store.load(p)
            except Exception:
                self._resync = True  # reloaded (all of it) once the store answers
            raise
        self.positions.update(updates)
        self.version += 1
        self.changed.notify_all()
        for key, v in updates.items():
            if key.startswith("pos|"):
                METRICS.projection_position.labels(partition=key[4:]).set(v)

    def _lag(self) -> None:
        if self.feed is not None and self.ready.is_set():
            # Store positions recorded and not read yet (about one event each).
            METRICS.projection_lag.labels(partition="store").set(
                max(0, self.feed.last() - self.cursor))
            return
        if self.consumer is None:
            return
        for tp in self.consumer.assignment():
            hw = self.consumer.highwater(tp)
            if hw is not None:
                METRICS.projection_lag.labels(partition=str(tp.partition)).set(
                    max(0, hw - self.consumer.position(tp)))

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
        self.identity.close()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Consumer-group callbacks, called inside ``poll()`` on the loop's own thread."""

    def __init__(self, loop: ProjectionLoop) -> None:
        self.loop = loop

    def on_partitions_revoked(self, revoked: Any) -> None:
        # Every batch is flushed before the next poll, so there is nothing to finish here.
        self.loop._drop([tp.partition for tp in revoked])
        log.info("partitions_revoked", role="projection", partitions=sorted(
            tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        parts = [tp.partition for tp in assigned]
        self.loop.take(parts)
        for tp in assigned:
            self.loop._seek(tp)
        log.info("partitions_assigned", role="projection", partitions=sorted(parts))
