"""The Kafka client a one-stop-shop system uses to send its actions to ``motcua.actions``.

    with ActionProducer("kafka-1:9092", source="daklak-igate") as p:
        p.emit("received", "H15.15-261005-0042", "2026-10-05T08:14:00+07:00",
               {"agency_id": "H15.15", "procedure_id": "1.001612", "channel": "online"})
        p.flush()      # returns once every emitted action is acknowledged

Every action is validated by the schema's one home (:func:`kernel.contract.actions.validate_action`)
before it is sent, so nothing invalid leaves the process. Records are keyed by subject id, so one
dossier's actions stay in order on one partition.

Delivery is at-least-once: a record counts as delivered only when the broker acknowledged it
*and* the log that acknowledged it is still the log of the topic (same cluster id, same topic
id). The bundled broker forgets everything when it restarts and even acknowledges records for a
topic it no longer has; the check catches that, and the client then recreates its Kafka producer,
re-creates the topic and sends the unconfirmed records again. A repeat is harmless: the engine
keeps one fact per (``source``, ``action_id``).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import structlog
from kafka.errors import KafkaError

from kernel import kafka as K
from kernel.contract.actions import SCHEMA, SUBJECT_FIELD, Action, validate_action
from kernel.errors import UserError
from kernel.kafka import LogIdentity
from kernel.settings import ACTIONS_TOPIC, KafkaSecurity
from producers.errors import DeliveryError, LogChangedError, ProducerError

__all__ = [
    "ActionProducer",
    "OnError",
    "Record",
    "ReliableSender",
    "Sent",
    "build_action",
    "derive_action_id",
]

log = structlog.get_logger("motcua.producer")

OnError = Callable[[Exception, int], None]
"""Called with the error and the attempt number (1, 2, …) before each retry."""

_ID_PREFIX = "sha256:"


def _log_retry(error: Exception, attempt: int) -> None:
    log.warning("producer_retry", attempt=attempt, error=repr(error))


# ----- actions -------------------------------------------------------------------------------


def derive_action_id(
    source: str, type_: str, subject_id: str, occurred_at: str, data: Mapping[str, Any]
) -> str:
    """A deterministic ``action_id``: the same action emitted twice gets the same id.

    So a sender that re-emits after a crash (without remembering what it sent) produces a
    repeat the engine absorbs, never a second fact.
    """
    canonical = orjson.dumps(
        [source, type_, subject_id, occurred_at, data], option=orjson.OPT_SORT_KEYS
    )
    return _ID_PREFIX + hashlib.sha256(canonical).hexdigest()[:48]


def build_action(
    source: str,
    type_: str,
    subject_id: str,
    occurred_at: datetime | str,
    data: Mapping[str, Any] | None = None,
    *,
    action_id: str | None = None,
) -> dict[str, Any]:
    """A ``motcua.action/1`` dict; datetimes and dates become RFC 3339 / ISO strings.

    Not validated here: a naive datetime, say, becomes a string without offset that
    ``validate_action`` then refuses with its usual reason.
    """
    subject_field = SUBJECT_FIELD.get(type_, "subject_id")
    # One JSON round trip turns datetime/date values anywhere in `data` into the strings the
    # schema wants, and copies `data` so later changes by the caller cannot alter what was sent.
    when, body = orjson.loads(orjson.dumps([occurred_at, dict(data or {})]))
    obj: dict[str, Any] = {
        "schema": SCHEMA,
        "action_id": action_id,
        "source": source,
        "type": type_,
        "occurred_at": when,
        subject_field: subject_id,
        "data": body,
    }
    if action_id is None:
        if isinstance(when, str) and isinstance(subject_id, str):
            obj["action_id"] = derive_action_id(source, type_, subject_id, when, body)
        else:  # left absent, for validate_action to name the real problem
            del obj["action_id"]
    return obj


@dataclass(frozen=True, slots=True)
class Record:
    """One validated action as Kafka sees it: key = subject id, value = UTF-8 JSON.

    ``headers`` travel with it (the forwarder marks each copy of a spooled line)."""

    action_id: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, action: Action, obj: Mapping[str, Any]) -> Record:
        return cls(action.action_id, action.subject_id.encode(), orjson.dumps(dict(obj)))


# ----- delivery ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sent:
    """A record handed to one Kafka producer; ``future`` is None when the hand-over failed.

    Once confirmed, ``future.value`` is the broker's ``RecordMetadata`` (partition, offset) in
    the log ``log_id``."""

    record: Record
    producer: Any
    future: Any
    log_id: str | None
    error: Exception | None = None

    @property
    def acked(self) -> bool:
        return self.future is not None and self.future.is_done and self.future.succeeded()


class ReliableSender:
    """Keyed records to one topic, confirmed by the log they landed in; thread-safe.

    ``retries`` bounds the recoveries (new Kafka producer, topic re-created, resend) of one
    ``deliver``; between them it backs off 0.2 s, 0.4 s, … up to 5 s, and each recovery first
    waits up to ``connect_timeout`` for the broker to answer.
    """

    def __init__(
        self,
        bootstrap: str,
        security: KafkaSecurity | None = None,
        *,
        topic: str = ACTIONS_TOPIC,
        partitions: int = 3,
        linger_ms: int = 20,
        retries: int = 8,
        ack_timeout: float = 15.0,
        connect_timeout: float = 10.0,
        on_error: OnError | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.security = security
        self.topic = topic
        self.partitions = partitions
        self.linger_ms = linger_ms
        self.retries = retries
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self.on_error: OnError = on_error or _log_retry
        self._lock = threading.RLock()
        self._producer: Any = None
        self._log_id: str | None = None
        self._identity = LogIdentity(bootstrap, security)
        self._closed = False

    # -- public ---------------------------------------------------------------------------

    def deliver(self, records: Iterable[Record]) -> None:
        """Send the records and return once each is confirmed; else raise ``DeliveryError``."""
        left, error = self.confirm(self.send(records))
        if left:
            raise self._failure(left, error)

    def send(self, records: Iterable[Record]) -> list[Sent]:
        """Hand the records to the Kafka producer without waiting; failures wait for confirm."""
        out: list[Sent] = []
        error: Exception | None = None
        for r in records:
            if error is not None:  # the broker is not there: do not wait once per record
                out.append(Sent(r, None, None, None, error))
                continue
            try:
                producer, log_id = self._connection()
                future = producer.send(self.topic, key=r.key, value=r.value,
                                       headers=list(r.headers) or None)
            except (KafkaError, UserError, OSError) as e:  # BrokerUnreachableError is a UserError
                error = e
                out.append(Sent(r, None, None, None, e))
            else:
                out.append(Sent(r, producer, future, log_id))
        return out

    def settle(self, sent: list[Sent]) -> tuple[list[Sent], list[Sent], Exception | None]:
        """Wait once for acknowledgements, without resending: (confirmed, failed, error), each
        in the order given."""
        failed, error = self._settle(sent)
        gone = {id(s) for s in failed}
        return [s for s in sent if id(s) not in gone], failed, error

    def partition_ids(self) -> list[int]:
        """The topic's partition numbers, from the producer's metadata."""
        producer, _ = self._connection()
        return sorted(producer.partitions_for(self.topic) or ())

    def current_log(self) -> str | None:
        """The topic's log identity now (cluster id / topic id); ``None`` without the topic."""
        return self._current_log()

    def confirm(self, sent: list[Sent]) -> tuple[list[Sent], Exception | None]:
        """Wait for acknowledgements, resending what failed; returns what is still unconfirmed."""
        attempt = 0
        while True:
            failed, error = self._settle(sent)
            if not failed:
                return [], None
            attempt += 1
            if attempt > self.retries:
                return failed, error
            self.on_error(error or ProducerError("unconfirmed records"), attempt)
            time.sleep(min(0.2 * 2 ** (attempt - 1), 5.0))
            sent = self.send(s.record for s in failed)

    def close(self, timeout: float = 5.0) -> None:
        """Close the Kafka producer (waiting up to ``timeout`` for what is in flight)."""
        with self._lock:
            self._closed = True
            producer, self._producer = self._producer, None
            self._identity.close()
        if producer is not None:
            _close_producer(producer, timeout)

    # -- internals ------------------------------------------------------------------------

    def _connection(self) -> tuple[Any, str]:
        """The current Kafka producer and the log identity it was created against."""
        with self._lock:
            if self._closed:
                raise ProducerError("The producer is closed.")
            if self._producer is None or self._log_id is None:
                K.wait_until_reachable(self.bootstrap, self.security, self.connect_timeout)
                K.ensure_topics(self.bootstrap, self.security, {self.topic: self.partitions})
                self._log_id = self._identity.of(self.topic)
                self._producer = K.producer(self.bootstrap, self.security, linger_ms=self.linger_ms)
            return self._producer, self._log_id

    def _current_log(self) -> str | None:
        """The topic's log identity now; ``None`` when the topic does not exist."""
        with self._lock:
            log_id = str(self._identity.of(self.topic))
        return None if log_id.endswith("/None") else log_id

    def _settle(self, sent: list[Sent]) -> tuple[list[Sent], Exception | None]:
        """Flush, then split ``sent`` (in order) into confirmed and failed."""
        error: Exception | None = None
        for producer in {
            id(s.producer): s.producer
            for s in sent
            if s.future is not None and not s.future.is_done
        }.values():
            try:
                producer.flush(timeout=self.ack_timeout)
            except KafkaError as e:  # KafkaTimeoutError: the broker did not answer in time
                error = e
        current: str | None = None
        if any(s.acked for s in sent):
            try:
                current = self._current_log()
            except (KafkaError, OSError) as e:
                error = error or e
        failed: list[Sent] = []
        for s in sent:
            if s.acked and current is not None and s.log_id == current:
                continue
            failed.append(s)
            if error is None:
                error = (
                    s.error
                    or _future_error(s)
                    or LogChangedError(
                        f"The log of {self.topic} changed after records were acknowledged "
                        f"(was {s.log_id}, now {current})."
                    )
                )
        for producer in {id(s.producer): s.producer for s in failed if s.producer}.values():
            self._discard(producer)
        return failed, error

    def _discard(self, producer: Any) -> None:
        """Drop a Kafka producer after an error: the next send connects afresh."""
        with self._lock:
            if self._producer is producer:
                self._producer = None
                self._log_id = None
        _close_producer(producer, 0)

    def _failure(self, left: list[Sent], error: Exception | None) -> DeliveryError:
        ids = tuple(s.record.action_id for s in left)
        err = DeliveryError(
            f"{len(ids)} action(s) were not acknowledged by Kafka at {self.bootstrap} after "
            f"{self.retries} retries (last error: {error!r}); sending them again is safe.",
            action_ids=ids,
        )
        err.__cause__ = error
        return err


def _future_error(s: Sent) -> Exception | None:
    if s.future is None:
        return None
    if not s.future.is_done:
        return TimeoutError("no acknowledgement from the broker in time")
    exc = s.future.exception
    if isinstance(exc, Exception):
        return exc
    return None


def _close_producer(producer: Any, timeout: float) -> None:
    try:
        producer.close(timeout=timeout)
    except KafkaError:
        # kafka-python 3.0's close() flushes first and raises on incomplete batches before it
        # stops the sender thread; stop it here, failing those batches (they are resent).
        producer._sender.force_close()


# ----- the client ----------------------------------------------------------------------------


class ActionProducer:
    """Emit validated actions of one ``source``; ``flush()`` waits until all are confirmed.

    Not thread-safe: use one per thread (they may share nothing). ``batch_size`` bounds the
    unconfirmed actions: the ``emit`` that reaches it flushes.
    """

    def __init__(
        self,
        bootstrap: str,
        security: KafkaSecurity | None = None,
        *,
        source: str,
        batch_size: int = 500,
        linger_ms: int = 20,
        retries: int = 8,
        on_error: OnError | None = None,
        partitions: int = 3,
        ack_timeout: float = 15.0,
        connect_timeout: float = 10.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.source = source
        self.batch_size = batch_size
        self._sender = ReliableSender(
            bootstrap, security, partitions=partitions, linger_ms=linger_ms, retries=retries,
            ack_timeout=ack_timeout, connect_timeout=connect_timeout, on_error=on_error,
        )  # fmt: skip
        self._pending: list[Sent] = []

    def emit(
        self,
        type: str,  # noqa: A002 - the contract's field name
        subject_id: str,
        occurred_at: datetime | str,
        data: Mapping[str, Any] | None = None,
        *,
        action_id: str | None = None,
    ) -> str:
        """Validate and send one action; returns its ``action_id``.

        Raises ``InvalidActionError`` (nothing is sent) for an action the schema refuses, and
        ``DeliveryError`` when a batch it completes cannot be confirmed.
        """
        obj = build_action(self.source, type, subject_id, occurred_at, data, action_id=action_id)
        action = validate_action(obj)
        self._pending.extend(self._sender.send([Record.of(action, obj)]))
        if len(self._pending) >= self.batch_size:
            self.flush()
        return action.action_id

    @property
    def unconfirmed(self) -> int:
        """Actions emitted and not yet confirmed."""
        return len(self._pending)

    def flush(self) -> None:
        """Return once every emitted action is acknowledged by the topic's current log.

        On ``DeliveryError`` the unconfirmed actions stay pending: a later ``flush`` tries again.
        """
        left, error = self._sender.confirm(self._pending)
        self._pending = left
        if left:
            raise self._sender._failure(left, error)

    def close(self) -> None:
        """Flush, then close the Kafka producer."""
        try:
            if self._pending:
                self.flush()
        finally:
            self._sender.close()

    def __enter__(self) -> ActionProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
