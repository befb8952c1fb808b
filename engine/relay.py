"""The relay (outbox): from the event store's facts cache to Kafka.

Every recorded event goes to ``motcua.events`` (key: subject id; value: orjson carrying the store
position ``pos`` and the subject's facts before and after, read from ``motcua_facts``); dead
letters go to ``motcua.rejected`` (value: the action's original bytes; headers: reason, field,
message and the source position).

At-least-once by design: the relay records how far it got only after the broker acknowledged
everything up to there, so a crash repeats a tail, and consumers drop what they already applied
(projections by ``pos``). When the events topic is a new log (the bundled broker forgets
everything on restart), the relay starts again from the beginning of the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import orjson
import structlog
from kafka.partitioner.default import murmur2

from engine.store import IntakeMixin
from kernel.kafka import Publisher
from kernel.settings import EVENTS_TOPIC, REJECTED_TOPIC

log = structlog.get_logger("motcua.relay")

class RelayPartitionsError(RuntimeError):
    """The events topic came back with fewer partitions than its events are spread over."""


@lru_cache(maxsize=1 << 16)  # pure-Python murmur2 is ~15 µs a key; a subject has many events
def partition_for(key: bytes, partitions: int) -> int:
    """The events partition of a subject: Kafka's own murmur2 rule, stated here so that a
    replay knows which partition position covers an event."""
    return int((murmur2(key) & 0x7FFFFFFF) % partitions)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def event_message(row: Sequence[Any], follows: int = 0) -> tuple[str, dict[str, Any]]:
    """The ``motcua.events`` message of one facts cache row: (key, decoded value)."""
    return str(row[3]), orjson.loads(event_value(row, follows))


def event_value(row: Sequence[Any], follows: int = 0) -> bytes:
    """The ``motcua.events`` value of one facts cache row, as published: the row's fields, the
    position of the event published before it in its partition (``kernel.event_order``), the
    recording time as an ISO instant, and the stored prev/facts JSON spliced in as it is (not
    decoded and encoded again: that round trip was most of a message's cost)."""
    pos, kind, etype, sid, at, rec, prev, facts = row
    return orjson.dumps({
        "pos": pos, "follows": follows, "kind": kind, "type": etype, "sid": sid, "at": at,
        "recorded_at": _EPOCH + timedelta(microseconds=rec),  # orjson writes isoformat()
        "prev": None if prev is None else orjson.Fragment(prev),
        "facts": None if facts is None else orjson.Fragment(facts),
    })


class Relay:
    """Publishes what the engine recorded; positions live in the store."""

    EVENTS = "relay:events"
    REJECTED = "relay:rejected"
    LOG = "relay:log"
    PARTITIONS = "relay:partitions"

    def __init__(self, store: IntakeMixin, producer: Publisher, page: int = 5000) -> None:
        self.store = store
        self.producer = producer
        self.page = page
        self._events_pos = store.get_position(self.EVENTS)
        self._rejected_pos = store.get_position(self.REJECTED)
        self._partitions = store.get_position(self.PARTITIONS)
        self._checked = False  # the topic's partitions looked at since this relay was built
        self._last_in = self._chain()

    def _chain(self) -> dict[int, int]:
        """Per events partition, the position of the last event published there, up to the
        relay's position: each next message names it (``follows``, ``kernel.event_order``).

        Stored with the relay's position in one transaction after each page; a partition's
        value above that position (left by a relay from before the two were written together,
        or by the previous log) is not trusted: 0, which a reader takes as following anything.
        """
        if not self._events_pos:
            return {}
        stored = self.store.positions_like(f"{self.EVENTS}|")
        return {int(k.rsplit("|", 1)[1]): v for k, v in stored.items() if v <= self._events_pos}

    def new_log(self, log_id: str) -> None:
        """Start over if the output topics are not the log we published to last time."""
        # Known before anything is published: a replay that swaps in views before the relay's
        # first page must still cover every partition's position (else a partition it leaves
        # without one is folded again from its beginning, on top of the replayed views).
        self._note_partitions()
        known = self.store.get_position(f"{self.LOG}:{log_id}")
        if known:
            return
        log.info("relay_new_log", log_id=log_id, republish_from=0)
        self._events_pos = self._rejected_pos = 0
        self._last_in = {}
        self.store.set_positions({
            self.EVENTS: 0, self.REJECTED: 0, f"{self.LOG}:{log_id}": 1,
            **{f"{self.EVENTS}|{p}": 0 for p in range(self._partitions)}})

    def _note_partitions(self) -> int:
        """How many events partitions the events are spread over: the topic's count at the
        first look, recorded and then kept. A replay needs it to know which partition's position
        covers an event, and an event must never move to another partition: a broker that
        forgot its topics may get them back created by its own default (tansu makes 4
        partitions for any topic a client merely asks about), and the extra ones stay empty."""
        have = len(self.producer.partitions_for(EVENTS_TOPIC) or ())
        if not self._partitions:
            self._partitions = have or 1
            self.store.set_position(self.PARTITIONS, self._partitions)
        elif have < self._partitions:
            raise RelayPartitionsError(
                f"Topic {EVENTS_TOPIC} has {have} partitions, fewer than the "
                f"{self._partitions} its events are spread over; create it again with "
                f"{self._partitions} partitions (MOTCUA_PARTITIONS).")
        self._checked = True
        return self._partitions

    def run_once(self) -> int:
        """Publish one page of events and dead letters; returns how many were published."""
        n = self._events()
        n += self._rejected()
        return n

    def _events(self) -> int:
        notes = self.store.read_facts(self._events_pos + 1, self.page)
        if not notes:
            return 0
        # Looked at once per relay (a metadata round trip): a topic that lost partitions since
        # then fails the page's deliveries, and the engine's setup builds a new relay.
        n = self._partitions if self._checked else self._note_partitions()
        send = self.producer.send
        last_in = dict(self._last_in)
        for note in notes:
            k = note[3].encode()
            part = partition_for(k, n)
            send(EVENTS_TOPIC, event_value(note, last_in.get(part, 0)), k, part)
            last_in[part] = note[0]
        # Raises unless the broker acknowledged every message: then no position moves and the
        # page is published again (at least once), each message naming the same predecessor.
        self.producer.flush()
        # Per partition: what a waiting reader compares with the projection's position, and
        # where the chain of ``follows`` goes on (``_chain``); one transaction with the page's.
        self.store.set_positions({**{f"{self.EVENTS}|{p}": pos for p, pos in last_in.items()},
                                  self.EVENTS: notes[-1][0]})
        self._events_pos = notes[-1][0]
        self._last_in = last_in
        return len(notes)

    def _rejected(self) -> int:
        rows = self.store.dead_letters_after(self._rejected_pos, self.page)
        if not rows:
            return 0
        for r in rows:
            headers = [
                ("reason", str(r["reason"]).encode()),
                ("message", str(r["message"]).encode()),
                ("field", str(r["field"] or "").encode()),
                ("source_topic", str(r["topic"]).encode()),
                ("source_partition", str(r["part"]).encode()),
                ("source_offset", str(r["off"]).encode()),
            ]
            key = (r["akey"] or "").replace("\x1f", "/").encode() or None
            raw = bytes(r["raw"]) if r["raw"] is not None else b""
            self.producer.send(REJECTED_TOPIC, raw, key, headers=headers)
        self.producer.flush()
        self._rejected_pos = int(rows[-1]["id"])
        self.store.set_position(self.REJECTED, self._rejected_pos)
        return len(rows)
