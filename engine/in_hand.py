"""The records an engine loop fetched and has not recorded yet, and the turns it records them
in: rounds of one turn (at most a batch) per partition, in partition order, that keep the
partitions in step (docs/decisions.md, "Partitions in step").

No turn takes a partition more than a batch past what the partition furthest back, of those
behind their end, can reach with its records in hand (how far each has got is counted in
offsets since it was taken). A partition with none in hand thus holds the others back until a
poll brings its records (``EngineLoop._poll`` pauses the partitions that have a batch in
hand, so that poll fetches the short one); after a poll that came back empty one round goes
as it comes, so a partition the broker is slow to serve stops the others for a poll at most.
A partition just taken starts with a turn of ``1 / FIRST_TURN_SHARE`` of a batch: the head
of each partition of a new log (a province's catalog) is recorded before the dossiers behind
it on the others. So an action of a backlog rarely waits for a subject whose partition has
not been read as far (a procedure published on another partition, a dossier a feedback
names).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

FIRST_TURN_SHARE = 10


class InHand:
    """Per partition: its records in hand, in order, and how far its turns have got."""

    def __init__(self, batch: int) -> None:
        self.batch = batch
        self.fetched: dict[int, list[Any]] = {}
        self.fresh: set[int] = set()  # taken, first turn still to come
        self.start: dict[int, int] = {}  # the offset it was taken at
        self.turned: dict[int, int] = {}  # the offset its next turn starts at

    def clear(self) -> None:
        self.fetched, self.fresh, self.start, self.turned = {}, set(), {}, {}

    def taken(self, partition: int, offset: int) -> None:
        """The partition is (again) read from ``offset``."""
        self.fetched.pop(partition, None)
        self.fresh.add(partition)
        self.start[partition] = self.turned[partition] = offset

    def dropped(self, partition: int) -> None:
        """The partition is no longer read here."""
        for d in (self.fetched, self.start, self.turned):
            d.pop(partition, None)
        self.fresh.discard(partition)

    def forget(self, partition: int, resume_at: int | None) -> None:
        """Its records in hand are not to be recorded: it is read again from ``resume_at``
        (sought back to its stored position), or not here any more (``None``)."""
        self.fetched.pop(partition, None)
        if resume_at is not None:
            self.turned[partition] = resume_at

    def add(self, partition: int, records: list[Any]) -> None:
        self.fetched.setdefault(partition, []).extend(records)

    def give_back(self, turns: list[tuple[int, list[Any]]]) -> None:
        """Turns taken out of hand and not recorded: their records back at the head of their
        partitions, in order, each partition's turns to start again at its first one."""
        back: dict[int, list[Any]] = {}
        for partition, records in turns:
            back.setdefault(partition, []).extend(records)
        for partition, records in back.items():
            if records:
                self.fetched[partition] = records + self.fetched.get(partition, [])
                self.turned[partition] = records[0].offset

    def count(self) -> int:
        """Records in hand, all partitions."""
        return sum(map(len, self.fetched.values()))

    def has_batch(self, partition: int) -> bool:
        return len(self.fetched.get(partition, ())) >= self.batch

    def progress(self, partition: int) -> int:
        """How far (in offsets) the partition's turns have got since it was taken."""
        return self.turned.get(partition, 0) - self.start.get(partition, 0)

    def turns(self, owned: Iterable[int], behind: Callable[[int], bool],
              in_step: bool = True) -> list[tuple[int, list[Any]]]:
        """The records in hand as (partition, records) turns, taken out of hand; ``behind``
        tells whether an owned partition with none in hand is behind its end (so holds the
        others back); ``in_step`` False: the first round goes as it comes."""
        owned = list(owned)
        turns: list[tuple[int, list[Any]]] = []
        while True:
            reach = self._reach(owned, behind) if in_step else None
            rnd = []
            for partition in sorted(self.fetched):
                records = self.fetched[partition]
                size = min(self.batch, len(records))
                if reach is not None:
                    size = min(size, reach + self.batch - self.progress(partition))
                if partition in self.fresh and size > 0:
                    self.fresh.discard(partition)
                    size = min(size, max(1, self.batch // FIRST_TURN_SHARE))
                if size <= 0:
                    continue
                turn, self.fetched[partition] = records[:size], records[size:]
                self.turned[partition] = turn[-1].offset + 1
                rnd.append((partition, turn))
            if not rnd:
                return turns
            turns += rnd
            in_step = True

    def _reach(self, owned: list[int], behind: Callable[[int], bool]) -> int | None:
        """How far the partition furthest back can get with its records in hand, of those
        behind their end; None if none is."""
        reach = None
        for p in owned:
            in_hand = len(self.fetched.get(p, ()))
            if not in_hand and not behind(p):
                continue  # at its end (or no end known yet): holds nothing back
            can = self.progress(p) + in_hand
            reach = can if reach is None else min(reach, can)
        return reach
