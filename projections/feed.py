"""The events of ``motcua.events``, read straight from the event store's facts log.

A projection or alerting role in the process that holds the event store and owns every events
partition (``motcua up``, ``motcua demo``: not the consumer-group roles) reads what the relay
publishes from where the relay reads it, instead of consuming it back from the broker: the
same rows (``read_facts``), in store order, each assigned to the events partition the relay
publishes it to (``partition_for`` over the count the relay recorded, ``Relay.PARTITIONS``).
That saves each reader Kafka's fetches, their parsing and a JSON decode of every message, and
the broker serving them (docs/decisions.md, "In one process the views read the event store").

Positions keep their meaning (``kernel.event_order``): per events partition, the highest store
position whose events are all applied. A reader of the store has read every partition up to
the last row of a page, so after a page every partition stands at least at that row; the
views a Kafka reader keeps and the views this reader keeps are interchangeable. The log has no
gaps to wait for (no ``AHEAD``): what the store holds is committed, in position order, and the
relay reads it the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.relay import Relay, partition_for

# What the projection folds of a row, and what the alerting follows (each starts with the
# position, the kind and the subject: the subject is what the partition is reckoned from).
PROJECTION_COLUMNS = "pos, kind, sid, prev, facts"
ALERTING_COLUMNS = "pos, kind, sid, recorded_us, facts"


class StoreFeed:
    """Pages of an event store's facts log, each row with its events partition."""

    def __init__(self, store: Any, columns: str) -> None:
        if not columns.startswith("pos, kind, sid"):
            raise ValueError(f"A feed's columns start with pos, kind, sid, not {columns!r}.")
        self.store = store
        self.columns = columns

    def partitions(self) -> int:
        """How many events partitions the relay spreads the events over (0 until the relay
        has looked at the events topic once: a reader waits for it, so that an event is
        counted under the partition the relay publishes it to)."""
        return int(self.store.get_position(Relay.PARTITIONS))

    def page(self, after: int, limit: int, partitions: int) -> list[tuple[int, tuple[Any, ...]]]:
        """Up to ``limit`` rows after store position ``after``, in order, as (partition,
        row of ``columns``)."""
        rows = self.store.read_facts(after + 1, limit, columns=self.columns)
        return [(partition_for(r[2].encode(), partitions), r) for r in rows]

    def last(self) -> int:
        """The highest store position recorded (0 when none)."""
        return int(self.store.last_fact())


def start_at(positions: Mapping[str, int], partitions: int) -> int:
    """Where a reader of the store goes on from: the lowest of its partitions' positions
    (every event at or below it is applied; above it, some partition may still need one)."""
    return min((positions.get(f"pos|{p}", 0) for p in range(partitions)), default=0)


def settled(positions: Mapping[str, int], partitions: int, through: int) -> dict[str, int]:
    """The partitions' positions once every row up to ``through`` was read: each at least
    there."""
    return {f"pos|{p}": max(positions.get(f"pos|{p}", 0), through) for p in range(partitions)}

