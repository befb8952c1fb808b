"""The relay's publishing cost, piece by piece: which Kafka client, and how the value is built.

    python benchmarks/relay_clients.py [--count 100000] [--rounds 3]

Starts one bundled broker (tansu) with a 3-partition ``motcua.events``-like topic and publishes
``count`` keyed messages of about 600 bytes to explicit partitions (the relay's ``partition_for``),
as the relay does: one call per message, then flush, every delivery checked. Two clients:

- ``kafka-python``: ``kernel.kafka.producer`` (acks=all), ``send`` + ``flush`` + ``future.get``;
- ``confluent``: confluent-kafka (librdkafka) ``produce`` with a delivery callback + ``flush``;
- ``Publisher``: the relay's own (``kernel.kafka.publisher``), a flush per page of 5,000.

And the value of one ``motcua.events`` message from a facts cache row, two ways: as the relay
built it before (decode the stored prev/facts JSON, encode the whole message), and
``event_value`` (splices the stored JSON bytes). Prints wall and CPU seconds and rates; the
broker's own CPU is not counted (another process).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.relay import partition_for  # noqa: E402
from kernel import kafka as K  # noqa: E402
from kernel.broker import BundledBroker  # noqa: E402

PARTITIONS = 3
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rows(count: int) -> list[tuple[Any, ...]]:
    """Facts cache rows shaped like the simulator's (prev and facts about 250 bytes each)."""
    out = []
    for i in range(count):
        sid = f"dossier/H{i % 15_000:05d}-2026-{i:07d}"
        facts = {"agency": f"unit-{i % 20:02d}", "procedure": f"1.{i % 300:06d}.000.00.00.H12",
                 "status": "processing", "received_at": "2026-03-02T08:15:00+07:00",
                 "due_at": "2026-03-16T17:00:00+07:00", "steps": i % 7, "online": bool(i % 2),
                 "late_steps": 0, "fees_paid": True, "channel": "portal", "level": 4}
        prev = dict(facts, status="received", steps=max(i % 7 - 1, 0))
        out.append((i + 1, "dossier", "StepCompleted", sid, "2026-03-05T10:20:30+07:00",
                    1_772_000_000_000_000 + i, orjson.dumps(prev), orjson.dumps(facts)))
    return out


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def build_values(batch: list[tuple[Any, ...]]) -> list[tuple[bytes, bytes, int]]:
    """(key, value, partition) of each row, the way the relay builds them."""
    from engine.relay import event_value

    out = []
    for row in batch:
        k = row[3].encode()
        out.append((k, event_value(row), partition_for(k, PARTITIONS)))
    return out


def kafka_python(bootstrap: str, topic: str, msgs: list[tuple[bytes, bytes, int]]) -> None:
    producer = K.producer(bootstrap)
    producer.partitions_for(topic)

    def run() -> None:
        futures = [producer.send(topic, key=k, value=v, partition=p) for k, v, p in msgs]
        producer.flush()
        for f in futures:
            f.get(timeout=30)

    report("kafka-python send+flush+get", len(msgs), *timed(run))
    producer.close()


def confluent(bootstrap: str, topic: str, msgs: list[tuple[bytes, bytes, int]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "enable.idempotence": False,
                         "max.in.flight.requests.per.connection": 1})
    producer.list_topics(topic, timeout=10)
    failed: list[Any] = []
    done = [0]

    def cb(err: Any, _msg: Any) -> None:
        if err is not None:
            failed.append(err)
        done[0] += 1

    def run() -> None:
        produce = producer.produce
        for k, v, p in msgs:
            try:
                produce(topic, v, k, p, on_delivery=cb)
            except BufferError:  # the local queue is full: serve callbacks, then again
                producer.poll(0.05)
                produce(topic, v, k, p, on_delivery=cb)
        producer.flush(30)

    report("confluent produce+flush", len(msgs), *timed(run))
    assert not failed and done[0] == len(msgs), (failed[:3], done[0])


def publisher(bootstrap: str, topic: str, msgs: list[tuple[bytes, bytes, int]]) -> None:
    """What the relay does: ``kernel.kafka.Publisher`` (confluent-kafka), pages of 5,000."""
    pub = K.publisher(bootstrap)
    pub.partitions_for(topic)

    def run() -> None:
        for i in range(0, len(msgs), 5000):
            for k, v, p in msgs[i:i + 5000]:
                pub.send(topic, v, k, p)
            pub.flush()

    report("Publisher (relay) pages of 5000", len(msgs), *timed(run))
    pub.close()


def values(batch: list[tuple[Any, ...]]) -> None:
    from engine.relay import event_value

    def old() -> None:  # the relay before event_value: decode the stored JSON, encode it all
        for row in batch:
            pos, kind, etype, sid, at, rec, prev, facts = row
            orjson.dumps({
                "pos": pos, "kind": kind, "type": etype, "sid": sid, "at": at,
                "recorded_at": (EPOCH + timedelta(microseconds=rec)).isoformat(),
                "prev": None if prev is None else orjson.loads(prev),
                "facts": None if facts is None else orjson.loads(facts)})

    def new() -> None:
        for row in batch:
            event_value(row)

    report("value: loads prev/facts + orjson.dumps", len(batch), *timed(old))
    report("value: event_value (spliced)", len(batch), *timed(new))


def report(what: str, n: int, wall: float, cpu: float) -> None:
    print(f"{what:40s} {n:>7d} msgs  wall {wall:6.3f} s  cpu {cpu:6.3f} s  "
          f"{n / wall:>9,.0f} msg/s  {cpu / n * 1e6:6.2f} µs cpu/msg", flush=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    batch = rows(args.count)
    msgs = build_values(batch)
    size = sum(len(v) for _, v, _ in msgs) / len(msgs)
    print(f"{args.count} messages, {size:.0f} bytes of value on average", flush=True)
    with tempfile.TemporaryDirectory() as tmp, BundledBroker(tmp) as broker:
        for r in range(args.rounds):
            for name, fn in (("kp", kafka_python), ("ck", confluent), ("pub", publisher)):
                topic = f"bench.{name}.{r}"
                K.ensure_topics(broker.bootstrap, None, {topic: PARTITIONS})
                fn(broker.bootstrap, topic, msgs)
            values(batch)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
