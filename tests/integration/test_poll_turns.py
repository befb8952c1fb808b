"""The engine loop on a backlog spread over three partitions of the real broker: a poll that
comes back full from one partition is followed by more, so the partitions are recorded in turns.

The bundled broker hands one partition's records per fetch once a partition holds more than a
fetch's byte limit (about 19,000 actions with the default limit): the test lowers the limit to
16 KiB so that a few hundred actions show it."""

from __future__ import annotations

import threading
from pathlib import Path

from faults import lines_of, publish_lines, simulate, wait_for

from engine.runner import EngineLoop
from kernel import kafka as K
from kernel.broker import BundledBroker
from motcua.pipeline import engine_at


def test_a_full_poll_from_one_partition_is_followed_by_the_others_and_all_is_recorded_once(
        fresh_broker: BundledBroker, tmp_path: Path) -> None:
    """About 600 actions published over 3 partitions, read in batches of 20 (a poll takes up to
    400; one 16 KiB fetch holds about 46 of these actions, a full batch): the first poll holds
    records of more than one partition; then the loop records every action once (the store's
    accepted actions are the lines published, each once)."""
    lines = lines_of(simulate(2, 50))
    published = publish_lines(fresh_broker.bootstrap, lines)
    assert len(published.ranges) == 3
    engine = engine_at(f"sqlite:///{tmp_path / 's.db'}", hold_seconds=600.0)
    loop = EngineLoop(engine, fresh_broker.bootstrap, None, max_records=20, relay=False)
    stop = threading.Event()
    try:
        loop.setup()
        assert loop.consumer is not None
        tps = loop.consumer.assignment()
        loop.consumer.close()
        loop.consumer = K.consumer(fresh_broker.bootstrap, None, max_poll_records=loop.poll_records,
                                   fetch_max_bytes=16384)
        loop.consumer.assign(list(tps))
        # A further poll waits 100 ms for records: on a loaded machine it may come back empty,
        # so the first poll is taken up to three times (from the start each time).
        polled: dict = {}  # type: ignore[type-arg]
        for _ in range(3):
            loop.consumer.seek_to_beginning()
            polled.clear()
            wait_for(lambda: bool(polled.update(loop._poll()) or polled), "a first poll")
            if len(polled) >= 2:
                break
        assert sum(map(len, polled.values())) >= loop.max_records
        assert len(polled) >= 2, {tp.partition: len(r) for tp, r in polled.items()}
        loop._record(polled)
        thread = threading.Thread(target=loop.run, args=(stop,))
        thread.start()
        try:
            wait_for(lambda: all(loop.next_offset.get(p) == hi + 1
                                 for p, (_, hi) in published.ranges.items()),
                     "every partition recorded to its end")
        finally:
            stop.set()
            thread.join(10)
        with engine.store.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
            c.execute("SELECT count(*), count(DISTINCT akey) FROM motcua_intake "
                      "WHERE outcome = 'accepted'")
            rows, distinct = c.fetchone()
        assert rows == distinct == len(lines)
    finally:
        engine.close()
