"""The peer benchmark's other pipelines, each run as its own process on the same topic.

    python benchmarks/peer_apps.py quix BOOTSTRAP COUNT STATE_DIR GROUP
    python benchmarks/peer_apps.py bare BOOTSTRAP COUNT
    python benchmarks/peer_apps.py bare-library BOOTSTRAP COUNT
    python benchmarks/peer_apps.py confluent BOOTSTRAP COUNT

Each reads ``motcua.actions`` from the beginning until it has handled COUNT messages and prints
one JSON object: ``t_first`` / ``t_last`` (``time.monotonic()`` at its first and last message:
Linux CLOCK_MONOTONIC, one clock for every process of the machine, so the parent can compare
them with its own readings), ``cpu_first`` / ``cpu_last`` (``time.process_time()`` then: the
CPU of every thread of the process, the client library's included) and what it counted.

- ``quix``: what a Python team would build instead of motcua: a Quix Streams application with a
  stateful ``apply`` per message. Per dossier (the message key) it keeps the dossier's state in
  Quix's RocksDB state (with its changelog topic, at-least-once, the defaults); per (agency,
  reception month) it keeps counters: received, resolved, resolved on time (``occurred_at`` of
  ``resolved`` at or before the ``due_at`` of ``received``), and one per other action type.
  The counters live in a plain dict: Quix state is scoped to the message key, and a second
  key space would need ``group_by`` (a repartition topic), which makes the peer slower, not
  faster. ``t_closed`` is when ``app.run()`` returned after the final checkpoint.
- ``bare``: kafka-python (the client motcua uses, configured as motcua configures it, its
  records read by motcua's loop, ``kernel/kafka_fetch.py``) with ``orjson.loads`` per message:
  the ceiling of any pipeline on motcua's Kafka reader.
- ``bare-library``: the same loop with kafka-python's own record loop, as a user's loop on the
  library would read.
- ``confluent``: the same loop on confluent-kafka (librdkafka), for the client comparison.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import Counter, defaultdict
from typing import Any

import orjson

TOPIC = "motcua.actions"


def _emit(**fields: Any) -> None:
    sys.stdout.write(orjson.dumps(fields).decode() + "\n")
    sys.stdout.flush()


# --------------------------------------------------------------------------- Quix Streams


def _patch_quix_retention() -> None:
    """tansu describes topics without ``retention.ms``; Quix derives its changelog topics'
    config from it (KeyError). Fill it in from the topic's explicit config (else "-1")."""
    from quixstreams.models.topics.manager import TopicManager

    original = TopicManager._configure_topic

    def configure(self: Any, topic: Any, broker_topic: Any) -> Any:
        out = original(self, topic, broker_topic)
        extra = dict(out.broker_config.extra_config)
        if "retention.ms" not in extra:
            wanted = (topic.create_config.extra_config if topic.create_config else {}) or {}
            extra["retention.ms"] = wanted.get("retention.ms", "-1")
            cfg = out.broker_config
            out.broker_config = type(cfg)(num_partitions=cfg.num_partitions,
                                          replication_factor=cfg.replication_factor,
                                          extra_config=extra)
        return out

    # (unused-ignore: where quixstreams is not installed, mypy sees Any here)
    TopicManager._configure_topic = configure  # type: ignore[method-assign, unused-ignore]


def run_quix(bootstrap: str, count: int, state_dir: str, group: str) -> None:
    from quixstreams import Application
    from quixstreams.models.topics import TopicConfig

    _patch_quix_retention()
    app = Application(
        broker_address=bootstrap, consumer_group=group, auto_offset_reset="earliest",
        state_dir=state_dir, processing_guarantee="at-least-once", loglevel="WARNING",
        # tansu answers JoinGroup after half the session timeout (librdkafka's default: 45 s).
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
    )
    topic = app.topic(TOPIC, value_deserializer="json", key_deserializer="str",
                      config=TopicConfig(num_partitions=3, replication_factor=1,
                                         extra_config={"retention.ms": "-1",
                                                       "retention.bytes": "-1"}))
    cells: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    seen = {"n": 0, "dossier": 0, "orphans": 0, "other": 0}
    marks = {"t_first": 0.0, "t_last": 0.0, "cpu_first": 0.0, "cpu_last": 0.0}

    def step(value: dict[str, Any], state: Any) -> None:
        now = time.monotonic()
        if not seen["n"]:
            marks["t_first"] = now
            marks["cpu_first"] = time.process_time()
        seen["n"] += 1
        kind = str(value.get("type"))
        if "dossier_id" in value:
            seen["dossier"] += 1
            d = state.get("d")
            if kind == "received":
                data = value["data"]
                d = {"agency": data["agency_id"], "month": value["occurred_at"][:7],
                     "due": data.get("due_at"), "steps": 0, "last": kind}
                cells[(d["agency"], d["month"])]["received"] += 1
            elif d is None:
                seen["orphans"] += 1
            else:
                cell = cells[(d["agency"], d["month"])]
                cell[kind] += 1
                if kind == "resolved" and (d["due"] is None
                                           or value["occurred_at"] <= d["due"]):
                    cell["resolved_on_time"] += 1
                elif kind == "apology_issued":
                    d["due"] = value["data"].get("new_due_at", d["due"])
                d["steps"] += 1
                d["last"] = kind
            if d is not None:
                state.set("d", d)
        else:
            seen["other"] += 1
        if seen["n"] == count:
            marks["t_last"] = now
            marks["cpu_last"] = time.process_time()
            app.stop()

    sdf = app.dataframe(topic)
    sdf = sdf.update(step, stateful=True)
    app.run()
    t_closed = time.monotonic()
    _emit(**marks, t_closed=t_closed, **seen,
          cells=len(cells), received=sum(c["received"] for c in cells.values()),
          resolved=sum(c["resolved"] for c in cells.values()),
          on_time=sum(c["resolved_on_time"] for c in cells.values()))


# --------------------------------------------------------------------------- bare loops


def run_bare(bootstrap: str, count: int, library: bool = False) -> None:
    from kernel.kafka_fetch import library_loop

    # kafka-python as shipped (its own record loop), or as motcua reads with it.
    with library_loop() if library else contextlib.nullcontext():
        _bare(bootstrap, count)


def _bare(bootstrap: str, count: int) -> None:
    from kernel import kafka as K

    consumer = K.consumer(bootstrap)  # motcua's settings: max_poll_records 5000, no group
    tps = [K.TopicPartition(TOPIC, p) for p in K.partitions_for(consumer, TOPIC)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    n = 0
    t_first = cpu_first = 0.0
    loads = orjson.loads
    while n < count:
        for records in consumer.poll(timeout_ms=100).values():
            if not n:
                t_first, cpu_first = time.monotonic(), time.process_time()
            for r in records:
                loads(r.value)
            n += len(records)
    t_last, cpu_last = time.monotonic(), time.process_time()
    consumer.close()
    _emit(t_first=t_first, t_last=t_last, cpu_first=cpu_first, cpu_last=cpu_last, n=n)


def run_confluent(bootstrap: str, count: int) -> None:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "peer-bare-confluent",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    meta = consumer.list_topics(TOPIC, timeout=10)
    consumer.assign([TopicPartition(TOPIC, p, 0) for p in meta.topics[TOPIC].partitions])
    n = 0
    t_first = cpu_first = 0.0
    loads = orjson.loads
    while n < count:
        msgs = consumer.consume(num_messages=5000, timeout=0.1)
        if msgs and not n:
            t_first, cpu_first = time.monotonic(), time.process_time()
        for m in msgs:
            if m.error() is None:
                # The backlog has no tombstones; no check in the baseline's loop (newer
                # confluent-kafka types the value as bytes | None, older ones are untyped).
                loads(m.value())  # type: ignore[arg-type, unused-ignore]
                n += 1
    t_last, cpu_last = time.monotonic(), time.process_time()
    consumer.close()
    _emit(t_first=t_first, t_last=t_last, cpu_first=cpu_first, cpu_last=cpu_last, n=n)


def main(argv: list[str]) -> int:
    what, bootstrap, count = argv[0], argv[1], int(argv[2])
    if what == "quix":
        run_quix(bootstrap, count, argv[3], argv[4])
    elif what in ("bare", "bare-library"):
        run_bare(bootstrap, count, library=what == "bare-library")
    elif what == "confluent":
        run_confluent(bootstrap, count)
    else:
        raise SystemExit(f"unknown pipeline {what!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
