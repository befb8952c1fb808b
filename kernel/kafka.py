"""Thin Kafka client helpers: the one place Kafka clients are built.

kafka-python for everything but the relay, which publishes through a ``Publisher`` on
confluent-kafka (librdkafka): about ten times cheaper per message than kafka-python's ``send``
(benchmarks/relay_clients.py). Keys and values are raw ``bytes`` throughout; (de)serialisation
belongs to the caller. Consumers never commit to Kafka on their own: positions live in the store.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import confluent_kafka
import structlog
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from kernel import kafka_fetch
from kernel.errors import UserError
from kernel.kafka_fixes import built, close_failed_connects
from kernel.settings import ACTIONS_TOPIC, EVENTS_TOPIC, REJECTED_TOPIC, KafkaSecurity

log = structlog.get_logger("motcua.kafka")
close_failed_connects()  # kernel/kafka_fixes.py: every client of motcua is built here
kafka_fetch.install()  # kernel/kafka_fetch.py: half the CPU of a consumer's record loop

__all__ = [
    "BrokerUnreachableError",
    "PublishError",
    "Publisher",
    "TopicPartition",
    "admin",
    "cluster_id",
    "consumer",
    "end_offsets",
    "ensure_topics",
    "partitions_for",
    "producer",
    "publisher",
    "wait_until_reachable",
]


class BrokerUnreachableError(UserError):
    """No Kafka broker answered at the configured bootstrap address."""


def _common(bootstrap: str, security: KafkaSecurity | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "bootstrap_servers": [b.strip() for b in bootstrap.split(",")],
        # kafka-python backs off up to 30 s between reconnects by default; recover in ~2 s.
        "reconnect_backoff_max_ms": 2_000,
    }
    kwargs.update((security or KafkaSecurity()).client_kwargs())
    return kwargs


def producer(
    bootstrap: str, security: KafkaSecurity | None = None, **overrides: Any
) -> KafkaProducer:
    """A producer of raw bytes: acks=all, retries, a short linger so batches form."""
    config: dict[str, Any] = {
        "acks": "all",
        "linger_ms": 5,
        "retries": 10,
        "batch_size": 256 * 1024,
        # Not idempotent: tansu forgets producer ids on restart and an idempotent producer is
        # then broken for good. One request in flight keeps each partition in order on retry;
        # repeats are absorbed downstream ((source, action_id) keys, store positions).
        "enable_idempotence": False,
        "max_in_flight_requests_per_connection": 1,
        "request_timeout_ms": 15_000,
        "delivery_timeout_ms": 60_000,
        "max_block_ms": 15_000,
        "bootstrap_timeout_ms": 10_000,
        "allow_auto_create_topics": False,
        **_common(bootstrap, security),
    }
    config.update(overrides)
    return built(KafkaProducer, config)


class PublishError(KafkaError):  # type: ignore[misc]  # kafka-python's errors are untyped
    """The broker did not take every message of a batch: publish the batch again.

    A ``KafkaError``, so that a role's guard counts it as the broker being away."""


def librdkafka_security(security: KafkaSecurity | None) -> dict[str, Any]:
    """``KafkaSecurity`` (kafka-python names) in librdkafka's names; only what is set."""
    names = {"security_protocol": "security.protocol", "ssl_cafile": "ssl.ca.location",
             "ssl_certfile": "ssl.certificate.location", "ssl_keyfile": "ssl.key.location",
             "sasl_mechanism": "sasl.mechanism", "sasl_plain_username": "sasl.username",
             "sasl_plain_password": "sasl.password"}
    return {names[k]: v for k, v in (security or KafkaSecurity()).client_kwargs().items()}


class _Quiet:
    """librdkafka's log lines: dropped like kafka-python's (a role's guard logs one line per
    outage), except a critical one."""

    def log(self, level: int, fmt: str, *args: Any) -> None:
        if level >= 50:  # confluent-kafka maps syslog levels to logging's; CRITICAL is 50
            log.critical("librdkafka", line=fmt % args)


class Publisher:
    """A producer of raw bytes on librdkafka, acks=all, that answers for whole batches:
    ``send`` queues, ``flush`` returns once the broker acknowledged every message queued since
    the last ``flush`` and raises ``PublishError`` if any was not taken."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self._producer = confluent_kafka.Producer(dict(config))
        self._failed: list[str] = []
        self.timeout = float(config.get("message.timeout.ms", 30_000)) / 1000

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._failed.append(str(err))

    def partitions_for(self, topic: str) -> set[int] | None:
        """The partition numbers of ``topic``, None if the broker does not know it."""
        try:
            md = self._producer.list_topics(topic, timeout=min(self.timeout, 15.0))
        except confluent_kafka.KafkaException as exc:
            raise PublishError(f"No metadata for {topic}: {exc}") from None
        t = md.topics.get(topic)
        if t is None or t.error is not None or not t.partitions:
            return None
        return set(t.partitions)

    def send(self, topic: str, value: bytes, key: bytes | None = None,
             partition: int | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> None:
        """Queue one message (``partition`` None: librdkafka's partitioner picks)."""
        # (topic, value, key, partition, callback): -1 is librdkafka's "unassigned" partition.
        args = (topic, value, key, -1 if partition is None else partition, self._delivered)
        # Any: the stubs of confluent-kafka ≥ 2.13 type headers more narrowly than lists of
        # (str, bytes) pairs, which every version takes.
        kw: dict[str, Any] = {"headers": headers} if headers else {}
        try:
            try:
                self._producer.produce(*args, **kw)
            except BufferError:  # the local queue is full: let deliveries drain it, once
                self._producer.poll(1.0)
                self._producer.produce(*args, **kw)
        except (BufferError, confluent_kafka.KafkaException) as exc:
            raise PublishError(f"{topic} refused a message: {exc}") from None

    def flush(self) -> None:
        """Wait for every queued message's acknowledgement (at most its delivery timeout)."""
        left = self._producer.flush(self.timeout + 5)
        failed, self._failed = self._failed, []
        if left or failed:
            raise PublishError(f"{len(failed)} message(s) not taken, {left} unanswered"
                               + (f"; first: {failed[0]}" if failed else ""))

    def close(self, timeout: float = 5.0) -> None:
        """Drop what is still queued (a failed batch is published again by its caller) and
        let librdkafka finish what is in flight for up to ``timeout`` seconds."""
        with contextlib.suppress(Exception):
            self._producer.purge(in_queue=True, in_flight=False, blocking=False)
            self._producer.flush(timeout)
        self._failed = []


def publisher(
    bootstrap: str, security: KafkaSecurity | None = None, **overrides: Any
) -> Publisher:
    """The relay's ``Publisher``: acks=all, in order per partition on retry, a short linger."""
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        # As ``producer``: not idempotent (tansu forgets producer ids on restart), one request
        # in flight so a retry cannot reorder a partition (a projection drops a pos it has
        # passed: a reordered event would be lost to it).
        "enable.idempotence": False,
        "max.in.flight.requests.per.connection": 1,
        "message.timeout.ms": 30_000,
        "request.timeout.ms": 15_000,
        "reconnect.backoff.max.ms": 2_000,
        "allow.auto.create.topics": False,
        "logger": _Quiet(),
        **librdkafka_security(security),
    }
    config.update(overrides)
    return Publisher(config)


def consumer(
    bootstrap: str,
    security: KafkaSecurity | None = None,
    *,
    max_poll_records: int = 5000,
    **overrides: Any,
) -> KafkaConsumer:
    """A consumer that commits nothing on its own; no group unless ``group_id`` is given.

    Without a group, ``assign()`` partitions and ``seek()`` to the stored positions.
    """
    config: dict[str, Any] = {
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "max_poll_records": max_poll_records,
        "fetch_max_wait_ms": 100,
        "allow_auto_create_topics": False,
        "request_timeout_ms": 30_000,
        "bootstrap_timeout_ms": 10_000,
        **_common(bootstrap, security),
    }
    config.update(overrides)
    return built(KafkaConsumer, config)


def admin(
    bootstrap: str, security: KafkaSecurity | None = None, **overrides: Any
) -> KafkaAdminClient:
    """An admin client; close it when done (or use ``admin_client``)."""
    config: dict[str, Any] = {
        "request_timeout_ms": 10_000,
        "bootstrap_timeout_ms": 10_000,
        **_common(bootstrap, security),
    }
    config.update(overrides)
    try:
        return built(KafkaAdminClient, config)
    except KafkaError as exc:
        raise _unreachable(bootstrap, exc) from None


@contextlib.contextmanager
def admin_client(
    bootstrap: str, security: KafkaSecurity | None = None, **overrides: Any
) -> Iterator[KafkaAdminClient]:
    """``admin()`` as a context manager that always closes the client."""
    client = admin(bootstrap, security, **overrides)
    try:
        yield client
    finally:
        client.close()


def ensure_topics(
    bootstrap: str, security: KafkaSecurity | None, topics: Mapping[str, int]
) -> None:
    """Create each missing topic with its partition count; existing topics are left alone."""
    with admin_client(bootstrap, security) as client:
        existing = set(client.list_topics())
        missing = [
            NewTopic(name=t, num_partitions=n, replication_factor=1)
            for t, n in topics.items()
            if t not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent creator won
                client.create_topics(missing, raise_errors=False)
        _wait_for_topics(client, topics, timeout=10.0)


def _wait_for_topics(client: KafkaAdminClient, topics: Mapping[str, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        present = set(client.list_topics())
        if all(t in present for t in topics):
            return
        if time.monotonic() > deadline:
            absent = sorted(set(topics) - present)
            raise UserError(f"Kafka topics {', '.join(absent)} could not be created.")
        time.sleep(0.05)


def partitions_for(
    source: KafkaConsumer | str, topic: str, security: KafkaSecurity | None = None
) -> list[int]:
    """The partition numbers of ``topic`` (empty if it does not exist)."""
    if isinstance(source, str):
        with _temp_consumer(source, security) as c:
            return partitions_for(c, topic)
    parts = source.partitions_for_topic(topic)
    return sorted(parts) if parts else []


def end_offsets(
    source: KafkaConsumer | str,
    topic: str,
    security: KafkaSecurity | None = None,
    *,
    exact: bool = True,
) -> dict[int, int]:
    """``{partition: offset of the next message}`` for every partition of ``topic``.

    tansu 0.6 answers ListOffsets(latest) with the last *batch's* base offset + 1, short of the
    true end when that batch held several records; with ``exact`` (the default) each non-empty
    partition's end is taken from a Fetch response's high watermark instead, which is right.
    """
    if isinstance(source, str):
        with _temp_consumer(source, security) as c:
            return end_offsets(c, topic, exact=exact)
    tps = [TopicPartition(topic, p) for p in partitions_for(source, topic)]
    if not tps:
        return {}
    listed = {tp.partition: int(off) for tp, off in source.end_offsets(tps).items()}
    if not exact:
        return listed
    return exact_ends(source, topic, listed)


def exact_ends(source: KafkaConsumer, topic: str, listed: dict[int, int]) -> dict[int, int]:
    """The ends ``end_offsets(exact=False)`` listed, corrected with the high watermark of a
    fetch at each ``listed - 1`` (a partition listed empty is empty)."""
    if not any(listed.values()):
        return listed
    config = {k: v for k, v in source.config.items() if k in _CONNECTION_KEYS}
    probe = built(KafkaConsumer, {
        **config, "group_id": None, "enable_auto_commit": False, "max_poll_records": 1,
        "allow_auto_create_topics": False, "fetch_max_wait_ms": 50,  # tansu: 0 returns nothing
    })
    try:
        tps = {p: TopicPartition(topic, p) for p, end in listed.items() if end > 0}
        probe.assign(list(tps.values()))
        for p, tp in tps.items():
            probe.seek(tp, listed[p] - 1)
        deadline = time.monotonic() + 5.0
        pending = set(tps.values())
        while pending and time.monotonic() < deadline:
            probe.poll(200, max_records=1)
            done = {tp for tp in pending if probe.highwater(tp) is not None}
            probe.pause(*done)  # drop their buffered records; fetch the others
            pending -= done
        out = dict(listed)
        for p, tp in tps.items():
            hw = probe.highwater(tp)
            if hw is not None:
                out[p] = max(out[p], int(hw))
        return out
    finally:
        probe.close()


_CONNECTION_KEYS = {
    "bootstrap_servers", "client_dns_lookup", "request_timeout_ms", "bootstrap_timeout_ms",
    "security_protocol", "ssl_context", "ssl_check_hostname", "ssl_cafile", "ssl_certfile",
    "ssl_keyfile", "ssl_crlfile", "ssl_password", "ssl_ciphers", "sasl_mechanism",
    "sasl_plain_username", "sasl_plain_password", "sasl_kerberos_name",
    "sasl_kerberos_service_name", "sasl_kerberos_domain_name", "sasl_oauth_token_provider",
    "api_version",
}  # fmt: skip


@contextlib.contextmanager
def _temp_consumer(bootstrap: str, security: KafkaSecurity | None) -> Iterator[KafkaConsumer]:
    try:
        c = consumer(bootstrap, security)
    except KafkaError as exc:
        raise _unreachable(bootstrap, exc) from None
    try:
        yield c
    finally:
        c.close()


def cluster_id(bootstrap: str, security: KafkaSecurity | None = None) -> str:
    """The cluster id the broker reports (DescribeCluster, falling back to Metadata)."""
    with admin_client(bootstrap, security) as client:
        return str(client.describe_cluster()["cluster_id"])


def wait_until_reachable(
    bootstrap: str, security: KafkaSecurity | None = None, timeout: float = 10.0
) -> None:
    """Return once a broker answers a metadata request, else raise ``BrokerUnreachableError``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _unreachable(bootstrap, last)
        ms = max(int(remaining * 1000), 100)
        try:
            client = built(KafkaAdminClient, {
                **_common(bootstrap, security), "reconnect_backoff_max_ms": 200,
                "request_timeout_ms": ms, "bootstrap_timeout_ms": ms,
            })
        except (KafkaError, OSError) as exc:
            last = exc
            time.sleep(min(0.1, max(deadline - time.monotonic(), 0)))
            continue
        try:
            client.list_topics()
            return
        except (KafkaError, OSError) as exc:
            last = exc
        finally:
            client.close()


def _unreachable(bootstrap: str, cause: Exception | None) -> BrokerUnreachableError:
    del cause  # the sentence stays short; the cause is logged by the caller if wanted
    return BrokerUnreachableError(
        f"No Kafka broker answered at {bootstrap}; check MOTCUA_KAFKA_BOOTSTRAP "
        "(or unset it to use the bundled broker)."
    )


@dataclass
class LogIdentity:
    """Which Kafka log a topic currently is: cluster id + topic id (+ our epoch)."""

    bootstrap: str
    security: KafkaSecurity | None
    _admin: Any = field(default=None, repr=False)

    def of(self, topic: str) -> str:
        try:
            if self._admin is None:
                self._admin = admin(self.bootstrap, self.security)
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
    ensure_topics(bootstrap, security, {ACTIONS_TOPIC: partitions, EVENTS_TOPIC: partitions,
                                          REJECTED_TOPIC: 1})


def rejoin_asked(consumer: KafkaConsumer) -> bool:
    """A group member has heard that its group is rebalancing (a member came or went, and a
    heartbeat was answered "rebalance in progress"): it rejoins at its next ``poll``, and no
    partition moves before every member has. kafka-python has no public word for it
    (``tests/integration/test_kafka_group.py`` holds it to the library's behaviour)."""
    if not consumer.config.get("group_id"):
        return False
    return getattr(getattr(consumer, "_coordinator", None), "rejoin_needed", False) is True


def close_consumer(consumer: KafkaConsumer, session_timeout_ms: int) -> None:
    """Close a consumer that is being replaced (a new log, or after an error).

    A group member is first let finish any rejoin it has in flight (what it polls meanwhile is
    dropped: its replacement seeks to the stored positions): tansu completes a JoinGroup that
    crossed the member's LeaveGroup with the departed member as the group's leader, and then
    never gives any partition to a new member. A member that cannot settle in a session timeout
    is closed anyway.
    """
    # kafka-python has no public word for "not in the middle of a rebalance".
    stable = getattr(getattr(consumer, "_coordinator", None), "stable", None)
    if consumer.config.get("group_id") and callable(stable):
        deadline = time.monotonic() + session_timeout_ms / 1000
        try:
            while not stable() and time.monotonic() < deadline:
                consumer.poll(timeout_ms=200)
        except Exception as e:  # the broker may be gone for good: close all the same
            log.info("consumer_not_settled", error=repr(e))
    try:
        consumer.close()
    except Exception as e:
        log.info("consumer_close_failed", error=repr(e))
