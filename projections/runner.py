"""The projection role: fold ``motcua.events`` into the views, exactly once.

Each message carries its event-store position ``pos``. Per partition the projection keeps the
highest ``pos`` it applied, in the view store, written in the same transaction as the counters:
a message at or below it is a redelivery and a no-op. The Kafka offset is kept too, but only as
a place to resume reading; ``pos`` survives any broker reset, the offset does not.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import structlog
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from engine import kafka as K
from engine.metrics import METRICS
from engine.runner import LogIdentity, ensure_all_topics
from engine.settings import EVENTS_TOPIC, KafkaSecurity
from projections.fold import Counters
from projections.store import GENERATION, StaleViewsError, ViewStore

log = structlog.get_logger("motcua.projection")


class ProjectionLoop:
    """Owns the counters; readers take ``lock`` while they look at them."""

    def __init__(self, store: ViewStore, bootstrap: str, security: KafkaSecurity | None,
                 *, partitions: int = 3, max_records: int = 5000) -> None:
        self.store = store
        self.bootstrap = bootstrap
        self.security = security
        self.partitions = partitions
        self.max_records = max_records
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.version = 0
        self.counters: Counters = store.load()
        self.positions: dict[str, int] = store.positions()
        self.generation = self.positions.get(GENERATION, 0)
        self.identity = LogIdentity(bootstrap, security)
        self.consumer: KafkaConsumer | None = None
        self.log_id = ""
        self.ready = threading.Event()

    def applied(self, partition: int) -> int:
        return self.positions.get(f"pos|{partition}", 0)

    def applied_max(self) -> int:
        return max((v for k, v in self.positions.items() if k.startswith("pos|")), default=0)

    def setup(self) -> None:
        ensure_all_topics(self.bootstrap, self.security, self.partitions)
        self.log_id = self.identity.of(EVENTS_TOPIC)
        if self.consumer is None:
            self.consumer = K.consumer(self.bootstrap, self.security,
                                       max_poll_records=self.max_records)
        tps = [TopicPartition(EVENTS_TOPIC, p)
               for p in K.partitions_for(self.consumer, EVENTS_TOPIC)]
        self.consumer.assign(tps)
        for tp in tps:
            off = self.positions.get(f"off|{self.log_id}|{tp.partition}", 0)
            self.consumer.seek(tp, off)
        log.info("projection_ready", log_id=self.log_id)
        self.ready.set()

    def run(self, stop: threading.Event) -> None:
        last_identity = time.monotonic()
        while not stop.is_set():
            try:
                if self.consumer is None or not self.ready.is_set():
                    self.setup()
                assert self.consumer is not None
                polled = self.consumer.poll(timeout_ms=100, max_records=self.max_records)
                if polled:
                    self.apply(polled)
                now = time.monotonic()
                if now - last_identity >= 2.0:
                    last_identity = now
                    if self.identity.of(EVENTS_TOPIC) != self.log_id:
                        log.warning("events_log_changed", old=self.log_id)
                        self.ready.clear()
                    self._lag()
            except KafkaError as e:
                log.warning("kafka_error", error=repr(e))
                self.ready.clear()
                time.sleep(0.5)
            except StaleViewsError:
                log.info("views_replaced_by_replay_reloading")
                self.ready.clear()
                self.reload()
            except Exception:
                log.exception("projection_loop_error")
                self.ready.clear()
                self.reload()
                time.sleep(0.5)
        self.close()

    def reload(self) -> None:
        """Forget unflushed state: take what the store says is applied (and its generation)."""
        with self.lock:
            self.counters = self.store.load()
            self.positions = self.store.positions()
            self.generation = self.positions.get(GENERATION, 0)
            self.version += 1
            self.changed.notify_all()

    def apply(self, polled: dict[Any, list[Any]]) -> int:
        """Fold one poll's records and flush them with the positions, in one transaction."""
        folded = skipped = 0
        with self.lock:
            updates: dict[str, int] = {}
            for tp, records in polled.items():
                p = tp.partition
                applied = self.applied(p)
                for r in records:
                    ev = orjson.loads(r.value)
                    pos = ev["pos"]
                    if pos <= applied:
                        skipped += 1
                        continue
                    self.counters.fold(ev)
                    applied = pos
                    folded += 1
                updates[f"pos|{p}"] = applied
                updates[f"off|{self.log_id}|{p}"] = records[-1].offset + 1
            self.store.flush(self.counters, updates, self.generation)
            self.positions.update(updates)
            self.version += 1
            self.changed.notify_all()
        METRICS.events_folded.inc(folded)
        METRICS.events_skipped.inc(skipped)
        for key, v in updates.items():
            if key.startswith("pos|"):
                METRICS.projection_position.labels(partition=key[4:]).set(v)
        return folded

    def _lag(self) -> None:
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
