"""What the parts of one simulated province share: its random source, its calendar and the
actions drawn so far that wait for their time."""

from __future__ import annotations

import heapq
import random
from typing import Any

from kernel.calendar import WorkCalendar
from producers.simulator.clock import DAY, OfficeTime, WorkingDays
from producers.simulator.config import SimConfig

# A scheduled action: (time, sequence, type, subject field, subject id, data).
Scheduled = tuple[int, int, str, str, str, dict[str, Any]]


class Province:
    """One province's state while it is drawn; every draw comes from ``rng``, in one order."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.calendar = WorkCalendar()
        self.working = WorkingDays(self.calendar)
        self.office = OfficeTime(self.working)
        self.communes: set[str] = set()  # filled when the agency tree is drawn
        self.horizon = (cfg.start.toordinal() + cfg.days) * DAY
        self.heap: list[Scheduled] = []
        self.seq = 0

    def between(self, low: int, high: int) -> int:
        """A uniform integer in [low, high]; ``randint`` costs three Python frames a draw."""
        return low + int(self.rng.random() * (high - low + 1))

    def push(
        self, t: int, type_: str, subject_field: str, subject: str, data: dict[str, Any]
    ) -> None:
        """Schedule an action at ``t``, unless it falls after the window."""
        if t < self.horizon:
            self.seq += 1
            heapq.heappush(self.heap, (t, self.seq, type_, subject_field, subject, data))
