"""The engine loop on a backlog spread over three partitions of the real broker, fetched one
partition at a time: the partitions are recorded in step, and every action once.

The bundled broker hands one partition's records per fetch once a partition holds more than a
fetch's byte limit (about 19,000 actions with the default limit): the test lowers the limit to
16 KiB so that a few hundred actions show it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from faults import lines_of, publish_lines, simulate, wait_for
from kafka import TopicPartition

from engine.app import Message
from engine.runner import EngineLoop
from engine.store import SQLiteStore
from kernel import kafka as K
from kernel.broker import BundledBroker
from kernel.settings import ACTIONS_TOPIC
from motcua.pipeline import engine_at


def test_a_backlog_fetched_one_partition_at_a_time_is_recorded_in_step_and_once(
        fresh_broker: BundledBroker, tmp_path: Path) -> None:
    """About 600 actions published over 3 partitions, read in batches of 20 (one 16 KiB fetch
    holds about 46 of these actions): once the broker has told the loop every partition's end,
    no turn takes its partition more than three batches past another partition that is not
    at its end (a round's turn, on top of one batch ahead of what the partition furthest back
    has in hand; ``engine.in_hand``); and the loop records every action once (the store's
    accepted actions are the lines published, each once)."""
    lines = lines_of(simulate(2, 50))
    published = publish_lines(fresh_broker.bootstrap, lines)
    assert len(published.ranges) == 3
    ends = {p: hi + 1 for p, (_, hi) in published.ranges.items()}
    engine = engine_at(f"sqlite:///{tmp_path / 's.db'}", hold_seconds=600.0)
    loop = EngineLoop(engine, fresh_broker.bootstrap, None, max_records=20, relay=False)
    stop = threading.Event()
    leads: list[int] = []
    record = loop._process

    def process(partition: int, msgs: list[Message], *args: Any, **kwargs: Any) -> bool:
        ok = record(partition, msgs, *args, **kwargs)
        assert loop.consumer is not None
        if all(loop.consumer.highwater(TopicPartition(ACTIONS_TOPIC, p)) is not None
               for p in ends):
            at = {p: loop.next_offset.get(p, 0) for p in ends}
            behind = [at[p] for p in ends if at[p] < ends[p]]
            if behind:
                leads.append(at[partition] - min(behind))
        return ok

    loop._process = process  # type: ignore[method-assign]
    try:
        loop.setup()
        assert loop.consumer is not None
        tps = loop.consumer.assignment()
        loop.consumer.close()
        loop.consumer = K.consumer(fresh_broker.bootstrap, None, max_poll_records=loop.poll_records,
                                   fetch_max_bytes=16384)
        loop.consumer.assign(list(tps))
        thread = threading.Thread(target=loop.run, args=(stop,))
        thread.start()
        try:
            wait_for(lambda: all(loop.next_offset.get(p) == end for p, end in ends.items()),
                     "every partition recorded to its end")
        finally:
            stop.set()
            thread.join(10)
        assert leads, "no turn was recorded with every partition's end known"
        assert max(leads) <= 3 * loop.max_records, leads
        store = engine.store
        assert isinstance(store, SQLiteStore)
        with store.datastore.transaction(commit=False) as c:
            c.execute("SELECT count(*), count(DISTINCT akey) FROM motcua_intake "
                      "WHERE outcome = 'accepted'")
            rows, distinct = c.fetchone()
        assert rows == distinct == len(lines)
    finally:
        engine.close()
