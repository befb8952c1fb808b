"""The engine role: consume ``motcua.actions``, record facts, run the timers, relay the outbox.

One thread owns the consumer (kafka-python consumers are not thread-safe). Positions live in the
event store, never in Kafka: on start each partition resumes after its stored offset. A log is
named by cluster id, topic id and an epoch; a new cluster or topic id, or a stored position above
the partition's end, is a new log that is read from its beginning, the (source, action_id) key
absorbing any repeat (DESIGN, "things that bite").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from engine import kafka as K
from engine.app import Engine, Message
from engine.metrics import METRICS
from engine.relay import Relay
from engine.settings import ACTIONS_TOPIC, EVENTS_TOPIC, REJECTED_TOPIC, KafkaSecurity

log = structlog.get_logger("motcua.engine")


@dataclass
class LogIdentity:
    """Which Kafka log a topic currently is: cluster id + topic id (+ our epoch)."""

    bootstrap: str
    security: KafkaSecurity | None
    _admin: Any = field(default=None, repr=False)

    def of(self, topic: str) -> str:
        try:
            if self._admin is None:
                self._admin = K.admin(self.bootstrap, self.security)
            cluster = self._admin.describe_cluster()["cluster_id"]
            topics = self._admin.describe_topics([topic])
        except Exception:
            self.close()
            raise
        topic_id = topics[0].get("topic_id") if topics else None
        return f"{cluster}/{topic_id}"

    def close(self) -> None:
        if self._admin is not None:
            try:
                self._admin.close()
            finally:
                self._admin = None


def ensure_all_topics(bootstrap: str, security: KafkaSecurity | None, partitions: int) -> None:
    K.ensure_topics(bootstrap, security, {ACTIONS_TOPIC: partitions, EVENTS_TOPIC: partitions,
                                          REJECTED_TOPIC: 1})


class EngineLoop:
    """Consume, record, tick the timers and relay; until ``stop`` is set."""

    def __init__(
        self,
        engine: Engine,
        bootstrap: str,
        security: KafkaSecurity | None,
        *,
        partitions: int = 3,
        max_records: int = 5000,
        timer_every: float = 0.5,
        on_batch: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.bootstrap = bootstrap
        self.security = security
        self.partitions = partitions
        self.max_records = max_records
        self.timer_every = timer_every
        self.on_batch = on_batch
        self.identity = LogIdentity(bootstrap, security)
        self.consumer: KafkaConsumer | None = None
        self.relay: Relay | None = None
        self.log_id = ""
        self.next_offset: dict[int, int] = {}
        self.ready = threading.Event()

    # ----- setup ---------------------------------------------------------------------------

    def _epoch(self) -> int:
        return self.engine.store.get_position(f"epoch:{ACTIONS_TOPIC}")

    def setup(self) -> None:
        """(Re)join the actions log: topics, log identity, positions, seeks, relay."""
        ensure_all_topics(self.bootstrap, self.security, self.partitions)
        base = self.identity.of(ACTIONS_TOPIC)
        self.log_id = f"{base}#{self._epoch()}"
        if self.consumer is None:
            self.consumer = K.consumer(self.bootstrap, self.security,
                                       max_poll_records=self.max_records)
        parts = K.partitions_for(self.consumer, ACTIONS_TOPIC)
        tps = [TopicPartition(ACTIONS_TOPIC, p) for p in parts]
        self.consumer.assign(tps)
        ends = K.end_offsets(self.consumer, ACTIONS_TOPIC)
        stale = False
        for tp in tps:
            stored = self.engine.position(self.log_id, ACTIONS_TOPIC, tp.partition)
            start = 0 if stored is None else stored + 1
            if start > ends.get(tp.partition, 0):
                stale = True
            self.next_offset[tp.partition] = start
        if stale:
            # The log is shorter than what we recorded: a new log under the same ids.
            epoch = self._epoch() + 1
            self.engine.store.set_position(f"epoch:{ACTIONS_TOPIC}", epoch)
            self.log_id = f"{base}#{epoch}"
            self.next_offset = {tp.partition: 0 for tp in tps}
            log.warning("actions_log_reset", log_id=self.log_id)
        for tp in tps:
            self.consumer.seek(tp, self.next_offset[tp.partition])
        if self.relay is not None:  # after an error its producer may be unusable: renew it
            self.relay.producer.close(timeout=1)
        self.relay = Relay(self.engine.store, self.engine.app.recorder,
                           K.producer(self.bootstrap, self.security))
        self.relay.new_log(self.identity.of(EVENTS_TOPIC))
        log.info("engine_ready", log_id=self.log_id, positions=self.next_offset)
        self.ready.set()

    # ----- loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        last_timer = 0.0
        last_identity = time.monotonic()
        while not stop.is_set():
            try:
                if self.consumer is None or not self.ready.is_set():
                    self.setup()
                assert self.consumer is not None and self.relay is not None
                polled = self.consumer.poll(timeout_ms=100, max_records=self.max_records)
                for tp, records in polled.items():
                    self._process(tp.partition, [
                        Message(tp.topic, tp.partition, r.offset, r.value) for r in records])
                now = time.monotonic()
                if now - last_timer >= self.timer_every:
                    last_timer = now
                    expired = self.engine.expire_holds()
                    overdue = self.engine.record_overdue()
                    if expired or overdue:
                        log.info("timers", holds_expired=expired, overdue_recorded=overdue)
                if now - last_identity >= 2.0:
                    last_identity = now
                    self._check_identity()
                while self.relay.run_once():
                    pass
                if self.on_batch is not None:
                    self.on_batch()
            except KafkaError as e:
                log.warning("kafka_error", error=repr(e))
                self.ready.clear()
                time.sleep(0.5)
            except Exception:
                log.exception("engine_loop_error")
                self.ready.clear()
                time.sleep(0.5)
        self.close()

    def _check_identity(self) -> None:
        base = self.identity.of(ACTIONS_TOPIC)
        if not self.log_id.startswith(base + "#"):
            log.warning("actions_log_changed", old=self.log_id, new=base)
            self.ready.clear()

    def _process(self, partition: int, msgs: list[Message]) -> None:
        expected = self.next_offset.get(partition, 0)
        if msgs and msgs[0].offset < expected:
            # Offsets went backwards: either a new log, or a redelivery we already recorded.
            self._check_identity()
            if not self.ready.is_set():
                return
            msgs = [m for m in msgs if m.offset >= expected]
        if not msgs:
            return
        t0 = time.perf_counter()
        counts = self.engine.process(self.log_id, msgs)
        METRICS.batch_seconds.observe(time.perf_counter() - t0)
        for outcome, n in counts.items():
            if outcome.startswith("rejected:"):
                METRICS.rejected.labels(reason=outcome.partition(":")[2]).inc(n)
            elif n > 0:
                METRICS.actions.labels(outcome=outcome).inc(n)
        self.next_offset[partition] = msgs[-1].offset + 1
        METRICS.engine_position.labels(partition=str(partition)).set(msgs[-1].offset)

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
        if self.relay is not None:
            self.relay.producer.close()
            self.relay = None
        self.identity.close()
