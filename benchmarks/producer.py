"""The end-to-end benchmark's producer, run as its own process (as the provinces' systems are).

    python benchmarks/producer.py BOOTSTRAP NDJSON START COUNT RATE

Connects, prints ``ready``, waits for a line on stdin, then sends lines ``START:START+COUNT`` of
the NDJSON file to ``motcua.actions`` (keyed by subject id, as ``motcua ingest`` does) at RATE
actions/s (0: as fast as it can). Each send is timestamped with ``time.monotonic()`` (Linux
CLOCK_MONOTONIC: one clock for every process of the machine, so the pipeline process can compare
its own readings with it). Prints one JSON object: the send times, and the partition and offset
the broker gave each action.
"""

from __future__ import annotations

import sys
import time

import orjson

from kernel import kafka as K
from kernel.settings import ACTIONS_TOPIC
from motcua.ingest import subject_key


def main(argv: list[str]) -> int:
    bootstrap, path, start, count, rate = argv[0], argv[1], int(argv[2]), int(argv[3]), \
        float(argv[4])
    with open(path, "rb") as f:
        lines = [ln for ln in f.read().split(b"\n") if ln][start:start + count]
    keys = [subject_key(ln) for ln in lines]
    producer = K.producer(bootstrap)
    producer.partitions_for(ACTIONS_TOPIC)  # metadata and connection before the clock starts
    print("ready", flush=True)
    sys.stdin.readline()
    sent = [0.0] * len(lines)
    futures = []
    mono = time.monotonic
    send = producer.send
    t0 = mono()
    for i, line in enumerate(lines):
        if rate > 0:
            wait = t0 + i / rate - mono()
            if wait > 0:
                time.sleep(wait)
        sent[i] = mono()
        futures.append(send(ACTIONS_TOPIC, key=keys[i], value=line))
    producer.flush()
    t_flushed = mono()
    where = [f.get(timeout=60) for f in futures]
    producer.close()
    sys.stdout.write(orjson.dumps({
        "t0": t0, "t_flushed": t_flushed, "sent": sent,
        "partitions": [md.partition for md in where], "offsets": [md.offset for md in where],
    }).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
