"""From the spool to ``motcua.actions``, and what an acknowledgement of the intake means.

:class:`Intake` is the way ``motcua ingest`` and the HTTP bridge take actions in:

1. the lines are committed to the spool (``kernel.spool``) — durable on our side;
2. the forwarder is woken to send them;
3. they are acknowledged: with the bundled broker (memory only) as soon as step 1 committed;
   with an external Kafka cluster only once the broker acknowledged every one with ``acks=all``
   (``kernel.kafka.producer``) in the topic's current log, as a Kafka producer would.

A :class:`Forwarder` runs in every process that has an engine, serves the bridge or ingests; only
the one holding the spool's lease sends (so lines leave in spool order, keyed by subject, and
are not sent twice for nothing). It sends the lines no broker has taken yet, and sends again
the lines whose copy is known lost: the topic's log changed (a new cluster or topic id: the
bundled broker restarted and forgot everything), or the engine read past the copy's offset
without recording the line. A line is done once the engine has recorded it
(``motcua_spool_done``); a repeat copy is recorded as a duplicate, never twice.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from kafka.errors import KafkaError

from kernel import kafka as K
from kernel.health import DATABASE, Guard, dependency_of
from kernel.metrics import METRICS
from kernel.settings import ACTIONS_TOPIC, KafkaSecurity, Settings
from kernel.spool import Spool, Spooled, SpoolRow, header
from producers.client import Record, ReliableSender
from producers.errors import DeliveryError

log = structlog.get_logger("motcua.forwarder")

Recorded = Callable[[str, int], int | None]
"""(log identity, partition) → the last offset of it the engine has recorded, or None."""


class ForwardError(KafkaError):  # type: ignore[misc]
    """The broker did not confirm every line of a page (they are sent again)."""


class Forwarder:
    """Sends the spool to ``motcua.actions`` while this process holds the lease."""

    LEASE_SECONDS = 5.0
    CHECK_EVERY = 2.0  # how often the topic's log and the engine's positions are looked at
    PRUNE_EVERY = 5.0

    def __init__(self, spool: Spool, bootstrap: str, security: KafkaSecurity | None, *,
                 partitions: int = 3, recorded: Recorded | None = None, page: int = 2000,
                 idle: float = 0.1, part: str = "forwarder") -> None:
        self.spool = spool
        self.bootstrap = bootstrap
        self.security = security
        self.partitions = partitions
        self.recorded = recorded
        self.page = page
        self.idle = idle
        self.sender = ReliableSender(bootstrap, security, partitions=partitions, linger_ms=5,
                                     retries=0, ack_timeout=5.0, connect_timeout=5.0)
        self.owner = f"{part}@{socket.gethostname()}:{os.getpid()}:{id(self) % 100_000}"
        self.guard = Guard(part, log)
        self._wake = threading.Event()
        self._holding = False
        self._lease_until = 0.0
        self._log: str | None = None
        self._checked = 0.0
        self._pruned = 0.0

    def poke(self) -> None:
        """New lines are spooled: send them now rather than at the next look."""
        self._wake.set()

    # ----- one round -----------------------------------------------------------------------

    def cycle(self) -> int:
        """The lease, the log, lost copies, then one page sent; how many lines were sent."""
        if not self._lease():
            return 0
        now = time.monotonic()
        if self._log is None or now - self._checked >= self.CHECK_EVERY:
            self._check()
            self._checked = now
        rows = self.spool.pending(self.page)
        if not rows:
            if now - self._pruned >= self.PRUNE_EVERY:
                self._pruned = now
                self.spool.prune()
                METRICS.spool_backlog.set(self.spool.backlog())
            return 0
        return self._send(rows)

    def _lease(self) -> bool:
        now = time.time()
        if self._holding and self._lease_until - now > self.LEASE_SECONDS / 2:
            return True
        held = self.spool.hold_lease(self.owner, self.LEASE_SECONDS)
        if held != self._holding:
            log.info("forwarder_lease_taken" if held else "forwarder_lease_lost",
                     owner=self.owner)
            self._log = None  # look at the log afresh: another holder may have seen a change
        self._holding = held
        self._lease_until = now + self.LEASE_SECONDS if held else 0.0
        return held

    def _check(self) -> None:
        """Mark for sending again what went to a log the topic no longer is, and what the
        engine read past without recording."""
        current = self.sender.current_log()
        if current is None:  # the broker came back without the topic
            K.ensure_topics(self.bootstrap, self.security, {ACTIONS_TOPIC: self.partitions})
            current = self.sender.current_log()
            if current is None:
                raise ForwardError(f"Topic {ACTIONS_TOPIC} could not be created.")
        if current != self._log:
            n = self.spool.resend_other_logs(current)
            if n:
                log.warning("spool_resend", reason="new_log", lines=n, log_id=current)
            self._log = current
        if self.recorded is None:
            return
        for p in range(self._partition_count()):
            upto = self.recorded(current, p)
            if upto is not None:
                n = self.spool.resend_passed(current, p, upto)
                if n:
                    log.warning("spool_resend", reason="read_past", lines=n, partition=p)

    def _partition_count(self) -> int:
        return max(self.partitions, len(self.sender.partition_ids()))

    def _send(self, rows: Sequence[SpoolRow]) -> int:
        ns = self.spool.namespace
        sent = self.sender.send([Record(f"spool:{r.id}", r.key, r.raw, (header(ns, r.id),))
                                 for r in rows])
        _, failed, error = self.sender.settle(sent)
        gone = {id(s) for s in failed}
        # Only the lines before the first failure count as sent: the rest go again, in order
        # (a copy that did land is then a repeat, recorded as a duplicate).
        done: list[tuple[int, str, int, int]] = []
        for r, s in zip(rows, sent, strict=True):
            if id(s) in gone or s.log_id is None:
                break
            md = s.future.value
            done.append((r.id, s.log_id, int(md.partition), int(md.offset)))
        self.spool.mark_sent(done)
        METRICS.forwarded.inc(len(done))
        if failed:
            raise ForwardError(f"{len(failed)} of {len(rows)} spooled lines were not confirmed "
                               f"by {self.bootstrap}: {error!r}") from error
        return len(done)

    # ----- the thread ----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Forward until ``stop``; survives any outage of the broker or the database."""
        while not stop.is_set():
            try:
                sent = self.cycle()
            except Exception as e:  # one log line per outage; backoff (Guard)
                self._holding = False  # renew (or lose) the lease before the next send
                self.guard.failed(e, stop)
                continue
            self.guard.ok()
            if not sent:
                self._wake.wait(self.idle if self._holding else 5 * self.idle)
                self._wake.clear()
        self.close()

    def close(self) -> None:
        if self._holding:
            try:
                self.spool.release_lease(self.owner)
            except Exception as e:  # the database is away: the lease simply expires
                log.info("forwarder_lease_not_released", error=repr(e))
            self._holding = False
        self.sender.close(timeout=1.0)


class Intake:
    """Actions in: spooled (durable), forwarded, acknowledged. Thread-safe."""

    def __init__(self, spool: Spool, forwarder: Forwarder, *, broker_ack: bool) -> None:
        self.spool = spool
        self.forwarder = forwarder
        self.broker_ack = broker_ack
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def open(cls, settings: Settings, bootstrap: str, *, recorded: Recorded | None = None,
             part: str = "forwarder") -> Intake:
        """The intake of ``settings``' store: acknowledged by the broker too when Kafka is
        external (``MOTCUA_KAFKA_BOOTSTRAP``)."""
        spool = Spool(settings.database_url)
        forwarder = Forwarder(spool, bootstrap, settings.kafka_security,
                              partitions=settings.partitions, recorded=recorded, part=part)
        return cls(spool, forwarder, broker_ack=settings.kafka_bootstrap is not None)

    def start(self) -> Intake:
        """Run the forwarder in a thread of its own."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.forwarder.run, args=(self._stop,),
                                            name="forwarder", daemon=True)
            self._thread.start()
        return self

    def submit(self, records: Sequence[tuple[bytes | None, bytes]], *,
               timeout: float = 30.0) -> Spooled:
        """Spool ``(key, line)`` records in order; return once they are acknowledged.

        Raises ``DeliveryError`` when an external broker did not take them within ``timeout``
        (they stay spooled and will be forwarded: sending them again is safe)."""
        spooled = self.spool_lines(records)
        if self.broker_ack:
            self.wait_sent(spooled, timeout)
        return spooled

    def spool_lines(self, records: Sequence[tuple[bytes | None, bytes]]) -> Spooled:
        """Commit ``(key, line)`` records in order and wake the forwarder; durable on return."""
        spooled = Spooled.of(self.spool.append(records))
        METRICS.spooled.inc(spooled.count)
        self.forwarder.poke()
        return spooled

    def wait_sent(self, spooled: Spooled, timeout: float,
                  progress: Callable[[int], Any] | None = None) -> None:
        """Block until a broker acknowledged every line of ``spooled`` (or the engine
        recorded it)."""
        deadline = time.monotonic() + timeout
        left = spooled.count
        while True:
            try:
                left = self.spool.unsent(spooled)
            except Exception as e:  # the lines are stored: a database blip only delays the look
                if dependency_of(e) != DATABASE or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
                continue
            if progress is not None:
                progress(spooled.count - left)
            if left == 0:
                return
            if time.monotonic() > deadline:
                raise DeliveryError(
                    f"{left:,} of {spooled.count:,} actions were not acknowledged by Kafka at "
                    f"{self.forwarder.bootstrap} within {timeout:g} s; they are kept and will "
                    "be forwarded, and sending them again is safe.")
            self.forwarder.poke()
            time.sleep(0.02)

    def close(self) -> None:
        """Stop the forwarder (releasing its lease) and close the spool."""
        self._stop.set()
        self.forwarder.poke()  # out of its idle wait now, not at the next look (up to 0.5 s)
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        else:
            self.forwarder.close()
        self.spool.close()
