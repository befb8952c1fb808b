"""The alerting role: ``motcua.events`` → the subjects it follows → decisions → the outbox.

Like the projection it keeps, per events partition, the highest store position ``pos`` it
applied (``alert_positions``, written in the same transaction as the subjects): a message at or
below it is a redelivery and a no-op, one ahead of events the log lost waits for the relay's
republication (``kernel.event_order``). Its own consumer group (``…-alerts``) lets several
processes share the partitions; decisions are idempotent (an alert id is inserted once), so two
processes deciding the same subject never make two alerts.

Decisions come from a clock (injected; the wall clock in production) and the facts: on every
tick (0.2 s; not after every polled batch, so a backlog's subjects are not decided again and
again), the subjects whose ``next_at`` has come are decided (``rules.decide``) and given the
next instant at which one of their alerts may begin. With no live subscription nothing is
decided: adding one makes every followed subject due again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import orjson
import structlog
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition

from kernel import kafka as K
from kernel.event_order import AHEAD, NEXT, Gaps, turn
from kernel.health import Guard
from kernel.idle import LONGEST_S, IdleWait
from kernel.kafka import LogIdentity, close_consumer, ensure_all_topics
from kernel.lifecycle import LifecycleRules
from kernel.metrics import METRICS
from kernel.settings import EVENTS_TOPIC, KafkaSecurity
from projections.alerts.deliver import Dispatcher
from projections.alerts.rules import Decision, decide, subject_of
from projections.alerts.store import AlertStore
from projections.facts import AGENCY
from projections.feed import StoreFeed, settled, start_at

log = structlog.get_logger("motcua.alerts")


PART = "alerts"  # this role's part of /healthz
_POS_KEYS = {p: f"pos|{p}" for p in range(64)}  # the usual partitions' position names
_FOLLOWED = frozenset({"dossier", "feedback"})  # the kinds of subject alerts are about


class Decider:
    """Follows the subjects and decides their alerts (no Kafka: tests feed it events)."""

    def __init__(self, store: AlertStore, rules: LifecycleRules,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.rules = rules
        self.clock = clock
        self.notice_s = int(rules.apology_notice.total_seconds())
        self.positions = store.positions()
        # The partitions whose later events wait for events the log lost, until the relay
        # publishes them again (``kernel.event_order``).
        self.gaps = Gaps(PART)

    def follow(self, events: Iterable[tuple[int, dict[str, Any]]],
               offsets: dict[str, int] | None = None,
               through: tuple[int, int] | None = None) -> int:
        """Take events (partition, ``motcua.events`` message) not applied yet, and move the
        positions (and the Kafka ``offsets``, a place to resume) with them; how many.
        ``through`` (partitions, position): the events came from the store, every row up to
        that position read: each of those partitions stands there at least
        (``projections.feed``).

        ``events`` is read once, in order, and no event is kept past its turn (only the latest
        facts of each subject): a caller decoding lazily never holds a whole batch of decoded
        messages, whose many small objects are what the garbage collector pays for."""
        latest: dict[tuple[str, str], tuple[list[Any] | None, Any]] = {}
        updates: dict[str, int] = dict(offsets or {})
        keys = _POS_KEYS
        n = 0
        for part, ev in events:
            key = keys.get(part) or f"pos|{part}"
            applied = updates.get(key, self.positions.get(key, 0))
            t = turn(ev, applied)
            if t != NEXT:  # a redelivery, or ahead of events the log lost (kernel.event_order)
                if t == AHEAD:
                    self.gaps.ahead(part, applied)
                continue
            updates[key] = ev["pos"]
            kind = ev["kind"]
            if kind in _FOLLOWED:
                latest[(kind, ev["sid"])] = (ev["facts"], ev.get("recorded_at"))
            n += 1
        if through is not None:
            updates.update(settled({**self.positions, **updates}, *through))
        ups, drops = [], []
        for (kind, sid), (facts, recorded) in latest.items():
            if subject_of(kind, sid, facts) is None:
                drops.append((kind, sid))
            else:
                assert facts is not None
                ups.append((kind, sid, str(facts[AGENCY]), facts, seconds(recorded)))
        self.store.follow(ups, drops, updates)
        self.positions.update(updates)
        self.gaps.moved({int(k[4:]): v for k, v in updates.items() if k.startswith("pos|")})
        return n

    def decide(self) -> int:
        """Decide the subjects due now; how many alerts were added to the outbox.

        Without a live subscription nothing is decided and the subjects stay due as they are:
        no alert can hold, and adding a subscription makes every subject due anyway
        (``AlertStore.add``), so deciding them now would only be undone then."""
        now = self.clock()
        now_s = int(now)
        subs = self.store.subscriptions()
        if not subs:
            return 0
        added = 0
        while True:
            rows = self.store.due_subjects(now_s)
            if not rows:
                return added
            decisions: list[Decision] = []
            nexts: dict[tuple[str, str], int | None] = {}
            for kind, sid, facts, seen in rows:
                s = subject_of(kind, sid, facts)
                if s is None:
                    nexts[(kind, sid)] = None
                    continue
                found, nxt = decide(s, subs, now_s, self.rules.calendar, self.notice_s)
                decisions += found
                nexts[(kind, sid)] = nxt
                for d in found:
                    METRICS.alert_decision_seconds.observe(max(0.0, now - max(d.fire_at,
                                                                             seen or 0.0)))
            new = self.store.decided(decisions, nexts, now)
            added += len(new)
            for rule in new:
                METRICS.alerts_decided.labels(rule=rule).inc()
            if new:
                log.info("alerts_decided", added=len(new))


def seconds(recorded_at: Any) -> float:
    """When an event was recorded (seconds since the epoch), from its ``recorded_at`` (the
    ISO instant the relay writes, or the store's µs when read from the store), for the
    decision latency; now when it has none."""
    if isinstance(recorded_at, int):
        return recorded_at / 1e6
    try:
        return datetime.fromisoformat(recorded_at).timestamp()
    except (TypeError, ValueError):
        return time.time()


class AlertLoop:
    """The role in a process: a consumer of ``motcua.events`` feeding a ``Decider`` (or, with
    a ``feed``, the same events read from the event store: ``projections.feed``), and a thread
    delivering the outbox (``Dispatcher``)."""

    def __init__(self, decider: Decider, dispatcher: Dispatcher, bootstrap: str,
                 security: KafkaSecurity | None, *, partitions: int = 3,
                 group: str | None = None, session_timeout_ms: int = 10_000,
                 tick: float = 0.2, feed: StoreFeed | None = None,
                 idle: IdleWait | None = None) -> None:
        self.decider = decider
        self.dispatcher = dispatcher
        self.bootstrap = bootstrap
        self.security = security
        self.partitions = partitions
        self.group = group
        self.session_timeout_ms = session_timeout_ms
        self.tick = tick
        self.identity = LogIdentity(bootstrap, security)
        self.consumer: KafkaConsumer | None = None
        self.log_id = ""
        self.ready = threading.Event()
        self.guard = Guard(PART, log)
        self.deliver_guard = Guard("alert-delivery", log)
        self.feed = feed
        # Between empty looks at the store (kernel.idle): it decides once a tick, so a look
        # every 50 ms at most while events come, and less often once none has come for a while.
        short = min(tick, 0.05)
        self.idle = idle or IdleWait(short=short, longest=max(short, LONGEST_S))
        self.feed_parts = 0
        self.cursor = 0

    def setup(self) -> None:
        ensure_all_topics(self.bootstrap, self.security, self.partitions)
        self.log_id = self.identity.of(EVENTS_TOPIC)
        if self.consumer is not None:
            close_consumer(self.consumer, self.session_timeout_ms)
        self.decider.positions = self.decider.store.positions()
        if self.group:
            self.consumer = K.consumer(self.bootstrap, self.security, group_id=self.group,
                                       session_timeout_ms=self.session_timeout_ms,
                                       heartbeat_interval_ms=max(500,
                                                                 self.session_timeout_ms // 5))
            self.consumer.subscribe([EVENTS_TOPIC], listener=_Listener(self))
        else:
            self.consumer = K.consumer(self.bootstrap, self.security)
            tps = [TopicPartition(EVENTS_TOPIC, p)
                   for p in K.partitions_for(self.consumer, EVENTS_TOPIC)]
            self.consumer.assign(tps)
            for tp in tps:
                self.seek(tp)
        log.info("alerts_ready", log_id=self.log_id, group=self.group)
        self.ready.set()

    def seek(self, tp: TopicPartition) -> None:
        assert self.consumer is not None
        self.consumer.seek(tp, self.decider.positions.get(f"off|{self.log_id}|{tp.partition}",
                                                          0))

    def run(self, stop: threading.Event) -> None:
        """Follow the events and decide, until ``stop``."""
        last_tick = 0.0
        while not stop.is_set():
            try:
                if self.feed is not None:
                    self.idle.after(self._read_store(), stop)
                else:
                    if self.consumer is None or not self.ready.is_set():
                        self.setup()
                    assert self.consumer is not None
                    polled = self.consumer.poll(timeout_ms=100, max_records=5000)
                    if polled:
                        self.apply(polled)
                # Decided once a tick, not after every poll: while a backlog goes through,
                # a subject changed by several polls of one tick is decided once, and an
                # alert still waits at most a tick (p99 target 1 s).
                if time.monotonic() - last_tick >= self.tick:
                    last_tick = time.monotonic()
                    self.decider.decide()
            except Exception as e:  # the broker or the database away, or a bug
                self.ready.clear()
                self.guard.failed(e, stop)
                continue
            self.guard.ok()
        if self.consumer is not None:
            self.consumer.close()
        self.identity.close()

    def _read_store(self) -> bool:
        """Follow the next page of the event store's facts log; whether there was one."""
        assert self.feed is not None
        if not self.ready.is_set():
            n = self.feed.partitions()
            if not n:  # the relay has not looked at the events topic yet
                return False
            self.decider.positions = self.decider.store.positions()
            self.feed_parts, self.cursor = n, start_at(self.decider.positions, n)
            log.info("alerts_ready", source="event store", partitions=n, at=self.cursor)
            self.ready.set()
        page = self.feed.page(self.cursor, 5000, self.feed_parts)
        if not page:
            return False
        loads = orjson.loads
        last = page[-1][1][0]
        self.decider.follow(
            ((part, {"pos": pos, "kind": kind, "sid": sid, "recorded_at": rec,
                     "facts": loads(facts) if facts is not None and kind in _FOLLOWED else None})
             for part, (pos, kind, sid, rec, facts) in page),
            through=(self.feed_parts, last))
        self.cursor = last
        return True

    def apply(self, polled: dict[Any, list[Any]]) -> None:
        """Follow one poll's messages, decoded one at a time as ``Decider.follow`` takes them
        (a decoded batch held whole costs more in garbage collection than its decoding)."""
        events = ((tp.partition, orjson.loads(r.value)) for tp, rs in polled.items() for r in rs)
        offsets = {f"off|{self.log_id}|{tp.partition}": rs[-1].offset + 1
                   for tp, rs in polled.items() if rs}
        self.decider.follow(events, offsets)
        self.decider.gaps.report()  # /healthz, as the projection's

    def deliver(self, stop: threading.Event) -> None:
        """Deliver the outbox until ``stop``."""
        while not stop.is_set():
            try:
                if self.dispatcher.run_once() == 0:
                    stop.wait(self.tick)
            except Exception as e:
                self.deliver_guard.failed(e, stop)
                continue
            self.deliver_guard.ok()


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: AlertLoop) -> None:
        self.loop = loop

    def on_partitions_revoked(self, revoked: Any) -> None:
        # Every batch is recorded before the next poll; a partition no longer ours no longer
        # waits here for events its log lost (its new owner does).
        self.loop.decider.gaps.forget(tp.partition for tp in revoked)
        self.loop.decider.gaps.report()

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.loop.decider.positions = self.loop.decider.store.positions()
        for tp in assigned:
            self.loop.seek(tp)
