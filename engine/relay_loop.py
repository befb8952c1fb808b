"""The relay on a thread of its own, beside a child engine (motcua.engine_process).

An engine loop relays between its batches; when ``motcua up`` runs its engine in a child
process, the child does not relay and the parent runs this loop instead, so that publishing
(≈ 16 µs of CPU an event) is done on the parent's core, not the engine's. It is the same
``Relay`` (positions in the store, moved only after the broker acknowledged a whole page), one
per store as before: the child's ``EngineLoop`` gets ``relay=False``.

A new events log (a restarted bundled broker, a recreated topic) is noticed by the topic's
identity, looked at every second, and by any failure to publish; either way the relay is built
again and ``Relay.new_log`` decides whether to publish everything again.
"""

from __future__ import annotations

import threading
import time

import structlog

from engine.relay import Relay
from engine.store import IntakeMixin
from kernel import kafka as K
from kernel.health import Guard
from kernel.idle import IdleWait
from kernel.kafka import LogIdentity, ensure_all_topics
from kernel.settings import EVENTS_TOPIC, KafkaSecurity

log = structlog.get_logger("motcua.relay")


class RelayLoop:
    """Publish what the store recorded until ``stop`` is set."""

    def __init__(self, store: IntakeMixin, bootstrap: str, security: KafkaSecurity | None,
                 *, partitions: int = 3, idle: IdleWait | None = None) -> None:
        self.store = store
        self.bootstrap = bootstrap
        self.security = security
        self.partitions = partitions
        self.idle = idle or IdleWait()  # between empty looks at the store (kernel.idle)
        self.identity = LogIdentity(bootstrap, security)
        self.relay: Relay | None = None
        self.log_id = ""
        self.guard = Guard("relay", log)

    def setup(self) -> None:
        """(Re)build the relay on the events topic as it is now."""
        self._drop()
        ensure_all_topics(self.bootstrap, self.security, self.partitions)
        relay = Relay(self.store, K.publisher(self.bootstrap, self.security))
        try:
            self.log_id = self.identity.of(EVENTS_TOPIC)
            relay.new_log(self.log_id)
        except BaseException:
            relay.producer.close(timeout=1)
            raise
        self.relay = relay
        log.info("relay_ready", log_id=self.log_id)

    def _drop(self) -> None:
        if self.relay is not None:  # after an error its producer may be unusable
            self.relay.producer.close(timeout=1)
            self.relay = None

    def run(self, stop: threading.Event) -> None:
        last_identity = 0.0
        while not stop.is_set():
            try:
                now = time.monotonic()
                if self.relay is None:
                    self.setup()
                    last_identity = now
                elif now - last_identity >= 1.0:
                    last_identity = now
                    if self.identity.of(EVENTS_TOPIC) != self.log_id:
                        log.warning("events_log_changed", old=self.log_id)
                        self.setup()
                assert self.relay is not None
                self.idle.after(bool(self.relay.run_once()), stop)  # (events published)
            except Exception as e:  # the broker or the database away, or a bug
                self._drop()
                self.guard.failed(e, stop)  # one log line per outage, and a backoff
                continue
            self.guard.ok()
        self._drop()
        self.identity.close()
