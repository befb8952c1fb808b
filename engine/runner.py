"""The engine role: consume ``motcua.actions``, record facts, run the timers, relay the outbox.

One thread owns the consumer (kafka-python consumers are not thread-safe). Positions live in the
event store, never in Kafka: on start each partition resumes after its stored offset. A log is
named by cluster id, topic id and an epoch; a new cluster or topic id, or a stored position above
the partition's end, is a new log that is read from its beginning, the (source, action_id) key
absorbing any repeat (DESIGN, "things that bite").
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import structlog
from eventsourcing.persistence import IntegrityError
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition

from engine.app import Engine, Message
from engine.beside import Prepared, prepare_into
from engine.in_hand import InHand
from engine.relay import Relay
from engine.store import FencedError
from kernel import kafka as K
from kernel.failures import REDO_LIMIT, describe, transient
from kernel.health import DATABASE, Guard, dependency_of
from kernel.kafka import LogIdentity, close_consumer, ensure_all_topics
from kernel.metrics import METRICS
from kernel.settings import ACTIONS_TOPIC, EVENTS_TOPIC, KafkaSecurity
from kernel.spool import spool_id

log = structlog.get_logger("motcua.engine")

EPOCH = f"epoch:{ACTIONS_TOPIC}"
# The records in hand are at most this many batches' worth, so that they hold several
# partitions' records, recorded in turns and in step (``engine.in_hand``): a broker hands a
# consumer of a backlog one partition's records per fetch (tansu: about 19,000 of them).
POLL_BATCHES = 20


def actions_log(engine: Engine, identity: str) -> str:
    """The engine's name of a ``motcua.actions`` log: the broker's identity (cluster id / topic
    id) and our epoch (bumped when a log turns out shorter than what was recorded of it)."""
    return f"{identity}#{engine.store.get_position(EPOCH)}"


def recorded_offset(engine: Engine, identity: str, partition: int) -> int | None:
    """The last offset of a ``motcua.actions`` partition the engine has recorded, or None."""
    return engine.position(actions_log(engine, identity), ACTIONS_TOPIC, partition)


class EngineLoop:
    """Consume, record, tick the timers and relay; until ``stop`` is set."""

    def __init__(
        self,
        engine: Engine,
        bootstrap: str,
        security: KafkaSecurity | None,
        *,
        partitions: int = 3,
        max_records: int = 2000,
        timer_every: float = 0.5,
        on_batch: Callable[[], None] | None = None,
        group: str | None = None,
        session_timeout_ms: int = 10_000,
        relay: bool = True,
    ) -> None:
        self.engine = engine
        # False: another thread or process relays this store (engine.relay_loop).
        self.relay_here = relay
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
        self.epochs: dict[int, int] = {}
        self.hand = InHand(max_records)  # fetched, not recorded yet
        self.came_empty = False  # the last poll asked for records and got none
        self.group = group
        self.session_timeout_ms = session_timeout_ms
        self.owner = f"engine@{socket.gethostname()}:{os.getpid()}"
        # Partitions the group gave us that take() has not claimed and seeked yet: the
        # rebalance listener runs on kafka-python's IO thread, where blocking consumer calls
        # (end_offsets) are refused, so the loop's own thread takes them after poll().
        self._assigned: list[TopicPartition] = []
        self.ready = threading.Event()
        self.guard = Guard("engine", log)
        self._resync = False
        # partition -> (first offset of the batch redone, times in a row): see _process.
        self._redos: dict[int, tuple[int, int]] = {}
        self._last_timer = 0.0
        # Something was recorded since the timers last ran: they run again as soon as the
        # loop has read every partition to its end (``_tick``).
        self._recorded = False
        self._last_identity = time.monotonic()

    # ----- setup ---------------------------------------------------------------------------

    def _epoch(self) -> int:
        return self.engine.store.get_position(EPOCH)

    def setup(self) -> None:
        """(Re)join the actions log: topics, log identity, positions, seeks, relay."""
        ensure_all_topics(self.bootstrap, self.security, self.partitions)
        self.log_id = actions_log(self.engine, self.identity.of(ACTIONS_TOPIC))
        if self.consumer is not None:
            close_consumer(self.consumer, self.session_timeout_ms)
        self.next_offset, self.epochs, self._assigned = {}, {}, []
        self.hand.clear()
        if self.group:
            self.consumer = K.consumer(
                self.bootstrap, self.security, max_poll_records=self.poll_records,
                group_id=self.group, session_timeout_ms=self.session_timeout_ms,
                heartbeat_interval_ms=max(500, self.session_timeout_ms // 5))
            self.consumer.subscribe([ACTIONS_TOPIC], listener=_Listener(self))
        else:
            self.consumer = K.consumer(self.bootstrap, self.security,
                                       max_poll_records=self.poll_records)
            tps = [TopicPartition(ACTIONS_TOPIC, p)
                   for p in K.partitions_for(self.consumer, ACTIONS_TOPIC)]
            self.consumer.assign(tps)
            self.take(tps)
        if self.relay is not None:  # after an error its producer may be unusable: renew it
            self.relay.producer.close(timeout=1)
            self.relay = None
        if self.relay_here:
            self.relay = Relay(self.engine.store, K.publisher(self.bootstrap, self.security))
            self.relay.new_log(self.identity.of(EVENTS_TOPIC))
        log.info("engine_ready", log_id=self.log_id, group=self.group)
        self.ready.set()

    def take(self, tps: list[TopicPartition]) -> None:
        """Own these partitions: claim them (fencing any previous owner), then resume each
        after its stored position."""
        assert self.consumer is not None
        if self.group and tps:
            # Another engine may have changed these partitions' subjects since this one last
            # owned them: what the cache remembers of them is stale.
            self.engine.cache.clear()
        for tp in tps:
            self.epochs[tp.partition] = self.engine.store.claim(ACTIONS_TOPIC, tp.partition,
                                                                self.owner)
        starts = {}
        for tp in tps:
            stored = self.engine.position(self.log_id, ACTIONS_TOPIC, tp.partition)
            starts[tp.partition] = 0 if stored is None else stored + 1
        if self._past_end(starts):
            # The log is shorter than what we recorded: a new log under the same ids.
            epoch = self._epoch() + 1
            self.engine.store.set_position(EPOCH, epoch)
            self.log_id = f"{self.log_id.rpartition('#')[0]}#{epoch}"
            starts = {p: 0 for p in starts}
            log.warning("actions_log_reset", log_id=self.log_id)
        for tp in tps:
            self.next_offset[tp.partition] = starts[tp.partition]
            self.consumer.seek(tp, starts[tp.partition])
            self.hand.taken(tp.partition, starts[tp.partition])
        log.info("partitions_assigned", role="engine", positions=starts)

    def _past_end(self, starts: dict[int, int]) -> bool:
        """Whether a partition resumes past its end: the log is shorter than what was recorded.

        The exact end costs a probe consumer and a fetch per partition (``K.end_offsets``),
        about a tenth of a second, on the way to the first batch; it is only asked when the
        cheap answer cannot settle it: a fresh store resumes every partition at 0, and the
        broker's listed end (tansu's may fall short of the true end, never past it) at or
        after every start means no start is past the true end either."""
        assert self.consumer is not None
        if not any(starts.values()):
            return False
        listed = K.end_offsets(self.consumer, ACTIONS_TOPIC, exact=False)
        if all(start <= listed.get(p, 0) for p, start in starts.items()):
            return False
        ends = K.exact_ends(self.consumer, ACTIONS_TOPIC, listed)
        return any(start > ends.get(p, 0) for p, start in starts.items())

    def drop(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            self.epochs.pop(tp.partition, None)
            self.next_offset.pop(tp.partition, None)
            self.hand.dropped(tp.partition)
        log.info("partitions_revoked", role="engine",
                 partitions=sorted(tp.partition for tp in tps))

    @property
    def poll_records(self) -> int:
        return self.max_records * POLL_BATCHES

    @property
    def relays(self) -> bool:
        """One relay for the whole store: the owner of actions partition 0 runs it (unless
        another thread or process relays, ``relay=False``)."""
        return self.relay is not None and 0 in self.epochs

    # ----- loop ----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        self._last_timer = 0.0
        self._last_identity = time.monotonic()
        while not stop.is_set():
            try:
                if self.consumer is None or not self.ready.is_set():
                    self.setup()
                    self._resync = False
                elif self._resync:  # after a database outage: read on from what is stored
                    self.take(sorted(self.consumer.assignment(), key=lambda tp: tp.partition))
                    self._resync = False
                assert self.consumer is not None
                polled = self._poll()
                if polled and self._new_broker_log():
                    continue  # the records may be the new log's: set up again, read it afresh
                self._record(polled)
                if self._assigned:
                    assigned, self._assigned = self._assigned, []
                    self.take(assigned)
                self._tick(caught_up=not (polled or self.hand.count()) or self._caught_up())
                if self.relays:
                    assert self.relay is not None
                    while self.relay.run_once() and not self._rejoin_asked():
                        pass
                if self.on_batch is not None:
                    self.on_batch()
            except Exception as e:  # the broker or the database away, or a bug
                if dependency_of(e) == DATABASE and self.consumer is not None:
                    # The Kafka side is fine: keep the consumer (and its group membership, a
                    # rejoin costs a rebalance) and take the partitions afresh once the store
                    # answers.
                    self._resync = True
                else:
                    self.ready.clear()  # set up again
                self.guard.failed(e, stop)  # one log line per outage, and a backoff
                continue
            self.guard.ok()
        self.close()

    def _poll(self) -> dict[TopicPartition, list[Any]]:
        """One poll, for the partitions with less than a turn in hand (the others are paused
        meanwhile: their records wait in the consumer); none if every partition has one."""
        assert self.consumer is not None
        owned = set(self.consumer.assignment())
        full = {tp for tp in owned
                if tp.partition in self.epochs and self.hand.has_batch(tp.partition)}
        self.came_empty = False
        if owned and full == owned and not self._rejoin_asked():
            return {}  # (a rebalance is joined by a poll, even one that fetches nothing)
        if full:
            self.consumer.pause(*full)
        if owned - full:
            self.consumer.resume(*(owned - full))
        room = max(self.max_records, self.poll_records - self.hand.count())
        polled = dict(self.consumer.poll(timeout_ms=100, max_records=room))
        self.came_empty = not polled
        return polled

    def _record(self, polled: dict[TopicPartition, list[Any]]) -> None:
        """Record a poll's records with those in hand, the partitions in turns of at most
        ``max_records`` each and in step (``engine.in_hand``; one transaction per turn, the
        next turn parsed beside its commit), the timers ticking between turns."""
        for tp, records in polled.items():
            if tp.partition in self.epochs:  # (a partition revoked meanwhile: read again)
                self.hand.add(tp.partition, records)
        stopped: set[int] = set()
        ns = self.engine.spool_ns
        taken = self.hand.turns(self.epochs, self._behind, in_step=not self.came_empty)
        turns = [(partition, [Message(ACTIONS_TOPIC, partition, r.offset, r.value,
                                      spool_id(r.headers, ns)) for r in records])
                 for partition, records in taken]
        ahead: Prepared = {}
        for i, (partition, msgs) in enumerate(turns):
            if i and self._rejoin_asked():
                # The group is rebalancing and waits for this member's next poll: no partition
                # moves (a dead engine's neither) until then, and a poll's records in hand take
                # seconds. The rest goes back in hand (kafka-python takes every partition back
                # at a rebalance: whoever gets one reads it from its stored position).
                self.hand.give_back([t for t in taken[i:] if t[0] not in stopped])
                log.info("turns_left_for_rebalance", turns=len(turns) - i)
                return
            if partition in stopped:
                continue
            if not self.ready.is_set():
                return  # set up again: every partition is read afresh from what is stored
            parsed, ahead = ahead, {}  # (a turn skipped above leaves its parse unused)
            # The next turn is parsed while this one's commit is written (engine.beside).
            nxt = turns[i + 1][1] if i + 1 < len(turns) else []
            if not self._process(partition, msgs, parsed,
                                 partial(prepare_into, ahead, nxt) if nxt
                                 else None):
                # Sought back to its stored position, or no longer ours: its later records
                # come again with a later poll (or go to the partition's new owner).
                stopped.add(partition)
                self.hand.forget(partition, self.next_offset.get(partition))
            self._tick()

    def _rejoin_asked(self) -> bool:
        """This member's group is rebalancing: it must poll to rejoin (``K.rejoin_asked``)."""
        return self.group is not None and self.consumer is not None \
            and K.rejoin_asked(self.consumer)

    def _end(self, partition: int) -> int | None:
        """The end the broker last reported for a partition (None: none yet)."""
        if self.consumer is None:
            return None
        end: int | None = self.consumer.highwater(TopicPartition(ACTIONS_TOPIC, partition))
        return end

    def _behind(self, partition: int) -> bool:
        """The partition is short of its last reported end (False while none is known)."""
        end = self._end(partition)
        return end is not None and self.next_offset.get(partition, 0) < end

    def _tick(self, caught_up: bool = False) -> None:
        """The timers and the log identity check, when they are due. The timers are also due
        the moment the loop has read every partition to its end after something was recorded
        (``caught_up``): what the last records make due (a dossier of the backlog past its due
        time becomes overdue) is recorded then, not up to ``timer_every`` later
        (docs/decisions.md)."""
        now = time.monotonic()
        if now - self._last_timer >= self.timer_every or (caught_up and self._recorded):
            self._last_timer = now
            self._recorded = False
            self._timers()
        if now - self._last_identity >= 2.0:
            self._last_identity = now
            self._check_identity()

    def _timers(self) -> None:
        """Hold expiry and the deadline watcher. With several engines, another one may settle
        the same row or dossier first: then this round is simply undone and tried again."""
        if not self.epochs:
            return
        try:
            released = 0
            if self.group:
                self.engine.owned = set(self.epochs)
                self.engine.forget_due()
                released = self.engine.release_arrived(set(self.epochs))
            refused: dict[str, int] = {}
            expired = self.engine.expire_holds(refused) if self._caught_up() else 0
            overdue = self.engine.record_overdue()
        except IntegrityError as e:
            log.info("timer_race", error=str(e))
            return
        except Exception as e:
            if transient(e):
                raise
            # Not the partition's fault: its actions go on being recorded; logged, not retried
            # in a tight loop (the next round comes after timer_every).
            log.error("timers_failed", error=describe(e))
            return
        _count_outcomes(refused)
        if released or expired or overdue:
            log.info("timers", holds_released=released, holds_expired=expired,
                     overdue_recorded=overdue)

    def _caught_up(self) -> bool:
        """Every partition this engine owns is read to the end the broker last reported.

        Only then may a held action's subject be taken for missing: after an outage longer
        than the hold, the subject may still be waiting in the unread backlog.
        """
        return all((end := self._end(p)) is not None and self.next_offset.get(p, 0) >= end
                   for p in self.epochs)

    def _new_broker_log(self) -> bool:
        """Whether the topic is another log now than the one this loop reads as.

        Asked after each poll that returned records: records fetched before a check that finds
        the same log are that log's (a log id never comes back), so they are recorded under
        their own log's name and never under a restarted broker's earlier one."""
        if self.identity.of(ACTIONS_TOPIC) == self.log_id.rpartition("#")[0]:
            return False
        log.warning("actions_log_changed", old=self.log_id)
        self.ready.clear()
        return True

    def _check_identity(self) -> None:
        current = actions_log(self.engine, self.identity.of(ACTIONS_TOPIC))
        if current != self.log_id:
            log.warning("actions_log_changed", old=self.log_id, new=current)
            self.ready.clear()

    def _process(self, partition: int, msgs: list[Message], parsed: Prepared | None = None,
                 during: Callable[[], None] | None = None) -> bool:
        """Record one partition's records in one transaction; False if the partition's later
        records must not follow them (it was sought back to its stored position, revoked or
        fenced, or the log is to be set up again)."""
        expected = self.next_offset.get(partition, 0)
        if msgs and msgs[0].offset < expected:
            # Offsets went backwards: either a new log, or a redelivery we already recorded.
            self._check_identity()
            if not self.ready.is_set():
                return False
        msgs = _each_offset_once(msgs, expected)
        if not msgs:
            return True
        epoch = self.epochs.get(partition)
        if epoch is None:  # revoked meanwhile
            return False
        if self.group:
            self.engine.owned = set(self.epochs)
            try:
                self.engine.release_arrived(set(self.epochs), min_age=0.0)
            except IntegrityError as e:  # another engine settled them first: fine
                log.info("release_race", error=str(e))
        t0 = time.perf_counter()
        # A race redone over and over from the same offset is no race: isolate the batch.
        redo = self._redos.get(partition)
        isolate = redo is not None and redo[0] == msgs[0].offset and redo[1] >= REDO_LIMIT
        try:
            with structlog.contextvars.bound_contextvars(
                    partition=partition, offsets=f"{msgs[0].offset}-{msgs[-1].offset}"):
                counts = self.engine.process(self.log_id, msgs, epoch=epoch, isolate=isolate,
                                             parsed=parsed, during=during)
        except FencedError as e:
            log.warning("engine_fenced", partition=partition, error=str(e))
            self.drop([TopicPartition(ACTIONS_TOPIC, partition)])
            return False
        except IntegrityError as e:  # a race with another engine: redo from the stored position
            same = redo is not None and redo[0] == msgs[0].offset
            self._redos[partition] = (msgs[0].offset, redo[1] + 1 if same and redo else 1)
            log.info("batch_redone", partition=partition, error=str(e))
            stored = self.engine.position(self.log_id, ACTIONS_TOPIC, partition)
            self.next_offset[partition] = 0 if stored is None else stored + 1
            assert self.consumer is not None
            self.consumer.seek(TopicPartition(ACTIONS_TOPIC, partition),
                               self.next_offset[partition])
            self.hand.forget(partition, self.next_offset[partition])
            return False
        self._redos.pop(partition, None)
        self._recorded = True
        METRICS.batch_seconds.observe(time.perf_counter() - t0)
        _count_outcomes(counts)
        self.next_offset[partition] = msgs[-1].offset + 1
        METRICS.engine_position.labels(partition=str(partition)).set(msgs[-1].offset)
        return True

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None
        if self.relay is not None:
            self.relay.producer.close()
            self.relay = None
        self.identity.close()


def _each_offset_once(msgs: list[Message], expected: int) -> list[Message]:
    """The records from ``expected`` on, each offset once and in order: a broker may hand the
    same records twice in one fetch (tansu does after a restart), and a repeat within a batch
    would be recorded twice in the ledger."""
    out = []
    for m in msgs:
        if m.offset >= expected:
            out.append(m)
            expected = m.offset + 1
    return out


def _count_outcomes(counts: dict[str, int]) -> None:
    """The Prometheus counters of a batch's (or a timer's) outcomes."""
    for outcome, n in counts.items():
        if outcome.startswith("rejected:"):
            METRICS.rejected.labels(reason=outcome.partition(":")[2]).inc(n)
        elif n > 0:
            METRICS.actions.labels(outcome=outcome).inc(n)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Consumer-group callbacks, run by kafka-python on its IO thread while the loop's thread
    waits in ``poll()``: every batch is committed before the next poll, so a revocation has
    nothing left to finish; an assignment is taken by the loop once ``poll()`` returns (records
    of a partition not yet taken are dropped, and it is then seeked to its stored position)."""

    def __init__(self, loop: EngineLoop) -> None:
        self.loop = loop

    def on_partitions_revoked(self, revoked: Any) -> None:
        gone = set(revoked)
        self.loop._assigned = [tp for tp in self.loop._assigned if tp not in gone]
        self.loop.drop(list(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.loop._assigned = [*self.loop._assigned, *assigned]
