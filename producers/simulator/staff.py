"""Who holds the dossiers: each agency's units and their officials, some of them slow.

An agency's roster is drawn from a random source of its own (the seed and the agency id), so it
does not depend on when the agency first receives a dossier, and a test can ask who is slow.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from producers.simulator.config import SimConfig
from producers.simulator.names import COMMUNE_UNITS, DEPARTMENT_UNITS, LEADERSHIP_UNIT

_DESK = (2, 4)  # officials at the one-stop-shop desk, who receive and return dossiers
_PROCESSING_UNITS = (2, 3)
_UNIT_POOL = (2, 4)  # officials of a processing unit; the first is its head, who reviews
_LEADERS = (1, 3)


@dataclass(frozen=True, slots=True)
class Holder:
    """Who holds a step: a unit and one of its officials."""

    unit: str
    official: str
    slow: bool


@dataclass(frozen=True, slots=True)
class Roster:
    """An agency's holders: its desk (the agency itself), its processing units and leaders."""

    desk: tuple[Holder, ...]
    units: tuple[tuple[Holder, ...], ...]
    leaders: tuple[Holder, ...]

    def officials(self) -> list[Holder]:
        """Every official of the agency."""
        return [*self.desk, *(h for pool in self.units for h in pool), *self.leaders]


class Staff:
    """The rosters of a province's agencies, drawn when first asked for."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self._rosters: dict[str, Roster] = {}

    def roster(self, agency: str, commune: bool) -> Roster:
        """The roster of ``agency`` (a commune's units are its civil servants' desks)."""
        roster = self._rosters.get(agency)
        if roster is None:
            roster = self._rosters[agency] = _draw(self.cfg, agency, commune)
        return roster


def _draw(cfg: SimConfig, agency: str, commune: bool) -> Roster:
    rng = random.Random(f"{cfg.seed}/{agency}")
    count = 0

    def pool(unit: str, size: tuple[int, int]) -> tuple[Holder, ...]:
        nonlocal count
        out = []
        for _ in range(rng.randint(*size)):
            count += 1
            slow = rng.random() < cfg.slow_official_rate
            out.append(Holder(unit, f"cb-{agency}-{count:02d}", slow))
        return tuple(out)

    names = list(COMMUNE_UNITS if commune else DEPARTMENT_UNITS)
    chosen = rng.sample(names, min(len(names), rng.randint(*_PROCESSING_UNITS)))
    desk = pool(agency, _DESK)
    units = tuple(pool(f"{agency}/{name}", _UNIT_POOL) for name in chosen)
    leaders = pool(f"{agency}/{LEADERSHIP_UNIT}", _LEADERS)
    return Roster(desk, units, leaders)
