"""The order of ``motcua.events`` within a partition, and what a reader makes of a message.

The relay publishes a subject's events to one partition, in store order, and each message
carries two store positions: ``pos``, its own, and ``follows``, that of the message the relay
published to the same partition of the same log just before it (0 for a log's first). A reader
keeps, per partition, the highest position it applied, and takes each message in one of three
ways (``turn``):

- ``SEEN``: ``pos`` at or below it. A redelivery (the relay publishes at least once): skipped.
- ``AHEAD``: ``follows`` above it. An event in between never reached this reader because the
  log lost it: a broker that forgot its topics got them back, empty, and the relay went on
  publishing into them until it noticed the new log (up to two seconds). Applying this message
  would move the position past the lost events, and the relay's republication of the new log
  from its start would then skip them as redeliveries: the views would stay short of the
  history for good. It is left out (its offset is passed: the republication brings it again,
  in its turn).
- ``NEXT``: the event after what the reader applied. Applied.

A message without ``follows`` (from a relay before it) counts as following anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import structlog

from kernel.health import HEALTH
from kernel.settings import EVENTS_TOPIC

log = structlog.get_logger("motcua.events")

SEEN: Final = 0
NEXT: Final = 1
AHEAD: Final = 2


def turn(event: dict[str, Any], applied: int) -> int:
    """``SEEN``, ``NEXT`` or ``AHEAD``: ``event`` (a decoded ``motcua.events`` value) for a
    reader whose partition stands at store position ``applied``."""
    if event["pos"] <= applied:
        return SEEN
    if event.get("follows", 0) > applied:
        return AHEAD
    return NEXT


class EventsGapError(RuntimeError):
    """Events of a partition are missing from the log a reader reads (a new log that lost
    them): later ones wait until the relay publishes them again. What a reader's part of
    ``/healthz`` says meanwhile (``kernel.health``)."""

    def __init__(self, partition: int, applied: int) -> None:
        super().__init__(f"Events partition {partition} lacks the events after store position "
                         f"{applied}; waiting for the relay to publish them again")
        self.partition, self.applied = partition, applied


class Gaps:
    """A reader's partitions whose messages are ``AHEAD``: each waits at the position it had
    applied until it moves past it (the relay's republication came in turn). One warning per
    gap; its part of ``/healthz`` says ``degraded`` (dependency ``motcua.events``) while any
    partition waits (``report``, after every batch: a guard's recovery clears the part's
    marks, so they are set again each time)."""

    def __init__(self, part: str) -> None:
        self.part = part
        self.waiting: dict[int, int] = {}  # partition -> the position its later events wait at

    def ahead(self, partition: int, applied: int, **about: Any) -> None:
        """A message of ``partition`` was ``AHEAD`` of what it had ``applied``: left out."""
        if self.waiting.get(partition) != applied:
            log.warning("events_ahead_of_a_gap", part=self.part, partition=partition,
                        applied=applied, **about)
        self.waiting[partition] = applied

    def moved(self, positions: Mapping[int, int]) -> None:
        """The partitions' applied positions after a batch: those past their gap wait no more."""
        self.forget(p for p, pos in positions.items()
                    if p in self.waiting and pos > self.waiting[p])

    def forget(self, partitions: Iterable[int]) -> None:
        """These partitions wait here no more (moved on, or no longer this reader's)."""
        for p in list(partitions):
            self.waiting.pop(p, None)

    def report(self) -> None:
        """Mark or clear the reader's part of ``/healthz``."""
        if self.waiting:
            partition, applied = min(self.waiting.items())
            HEALTH.down(self.part, EVENTS_TOPIC, EventsGapError(partition, applied))
        else:
            HEALTH.up(self.part, EVENTS_TOPIC)
