"""kafka-python's record loop, replaced (``kernel/kafka_fetch.py``), on the bundled broker's own
fetches: a topic written by both producers motcua uses (kafka-python's, as ``motcua ingest``
does, and librdkafka's, as the relay does; keys, headers, values of every length, gzip) reads
the same, record for record and field for field, through motcua's loop and the library's."""

from __future__ import annotations

import uuid
from typing import Any

from kafka import TopicPartition
from kafka.consumer.fetcher import Fetcher

from kernel import kafka as K
from kernel.broker import BundledBroker
from kernel.kafka_fetch import _unpack_records, library_loop

SIZES = [0, 1, 63, 64, 500, 8191, 8192, 30_000]


def _read_all(bootstrap: str, topic: str, expected: int) -> list[tuple[Any, ...]]:
    c = K.consumer(bootstrap, max_poll_records=1000)
    try:
        tps = [TopicPartition(topic, p) for p in K.partitions_for(c, topic)]
        c.assign(tps)
        out: list[tuple[Any, ...]] = []
        for _ in range(200):
            for records in c.poll(timeout_ms=200).values():
                out.extend(tuple(r) for r in records)
            if len(out) >= expected:
                break
        return sorted(out, key=lambda r: (r[1], r[3]))  # (partition, offset)
    finally:
        c.close()


def test_the_brokers_fetches_read_the_same_through_both_loops(broker: BundledBroker) -> None:
    topic = f"fetch-loop-{uuid.uuid4().hex[:8]}"
    K.ensure_topics(broker.bootstrap, None, {topic: 3})
    n = 0
    kp = K.producer(broker.bootstrap)
    gz = K.producer(broker.bootstrap, compression_type="gzip")
    pub = K.publisher(broker.bootstrap)
    try:
        for i in range(600):
            value = bytes([65 + i % 26]) * SIZES[i % len(SIZES)]
            key = None if i % 4 == 0 else f"dossier-{i % 50}".encode()
            headers = [("spool", str(i).encode()), ("tên", b"")][: i % 3]
            (gz if i % 5 == 0 else kp).send(topic, value=value, key=key, headers=headers)
            pub.send(topic, value, key=key, headers=headers or None)
            n += 2
        kp.flush()
        gz.flush()
        pub.flush()
    finally:
        kp.close()
        gz.close()
        pub.close()

    assert Fetcher.PartitionRecords._unpack_records is _unpack_records
    ours = _read_all(broker.bootstrap, topic, n)
    with library_loop():
        library = _read_all(broker.bootstrap, topic, n)
    assert len(ours) == n
    assert ours == library
    assert {len(r[8]) for r in ours} == {0, 1, 2}  # headers: none, one, two
    assert {len(r[7]) for r in ours} == set(SIZES)  # values of every varint length
