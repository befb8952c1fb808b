"""A dossier's control sheet (phiếu kiểm soát): who holds it, step by step, and when it moves.

The dossier's end is drawn first (on time or late, spec/766.md §4); its steps are then laid out
between its reception and that end, in office time and outside the waits on the applicant. Each
step takes a share of its budget, or overruns it: by chance (more often for slow officials), or
because the dossier is late and its delay has to be somewhere, which is what makes a late
dossier late step by step (spec/accountability.md §3). Handovers are the steps' starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from producers.simulator.catalog import Procedure
from producers.simulator.clock import DAY, DUE_TIME_OF_DAY, MINUTE, format_time
from producers.simulator.province import Province
from producers.simulator.staff import Holder, Staff

_PACE = (0.3, 1.0)  # a step on time takes this share of its budget
_OVERRUN = (0.1, 1.5)  # an overrunning step takes its budget and this share more, if it can
_MIN_STEP = MINUTE  # office time: shorter spans are laid out in wall time instead

# (time, type, data) of one dossier's action.
Event = tuple[int, str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _Step:
    name: str
    holder: Holder
    budget: int  # office seconds; what the layout aims at, published or not
    chance: float  # of overrunning


class ControlSheets:
    """Draws the receiving official and the handovers of the province's dossiers."""

    def __init__(self, province: Province) -> None:
        self.province = province
        self.cfg = province.cfg
        self.staff = Staff(province.cfg)
        self.office = province.office

    def receiver(self, agency: str) -> Holder:
        """The desk official who receives a dossier at ``agency``."""
        desk = self.staff.roster(agency, agency in self.province.communes).desk
        return desk[int(self.province.rng.random() * len(desk))]

    def named(self) -> bool:
        """Whether the sender names the official (not only the unit)."""
        return self.province.rng.random() < self.cfg.official_named_rate

    def hand_over(self, receiver: Holder, t0: int, p: Procedure, *, planned_end: int,
                  cut: int, waits: list[tuple[int, int]], late: bool) -> list[Event]:
        """The handovers of a dossier received at ``t0`` whose steps are laid out up to
        ``planned_end`` around the ``waits``, those before ``cut`` (its end or withdrawal)."""
        steps = self._steps(receiver, p)
        spans = _active(t0, planned_end, waits)
        lengths = [self.office.between(a, b) for a, b in spans]
        total = sum(lengths)
        if total >= len(steps) * _MIN_STEP:
            starts = self._starts(spans, lengths, self._durations(steps, total, late))
        else:  # no office time to speak of (e.g. an online dossier dealt with on a Sunday)
            n = len(steps)
            starts = [t0 + (planned_end - t0) * k // n for k in range(1, n)]
        out = []
        for k, at in enumerate(starts, start=1):
            if at >= cut or at <= t0:
                break
            out.append((at, "handed_over", self._data(steps[k], at)))
        return out

    def _steps(self, receiver: Holder, p: Procedure) -> list[_Step]:
        """The steps from reception, their holders, and maybe a trip back to processing."""
        cfg, rng = self.cfg, self.province.rng
        agency = receiver.unit
        roster = self.staff.roster(agency, agency in self.province.communes)
        unit = roster.units[p.slot % len(roster.units)]
        holders = {
            "receive": receiver,
            "process": unit[int(rng.random() * len(unit))],
            "review": unit[0],
            "approve": roster.leaders[int(rng.random() * len(roster.leaders))],
            "return": roster.desk[int(rng.random() * len(roster.desk))],
        }
        route = list(zip(p.route, p.budgets, strict=True))
        if rng.random() < cfg.back_and_forth_rate:
            after = p.route.index("process") + 1
            route[after + 1:after + 1] = [route[after - 1], route[after]]
        return [_Step(name, holders[name], budget,
                      cfg.slow_step_overrun_rate if holders[name].slow else cfg.step_overrun_rate)
                for name, budget in route]

    def _durations(self, steps: list[_Step], total: int, late: bool) -> list[int]:
        """Office seconds per step, adding up to ``total``: steps on time take at most their
        budget, overrunning ones more; when the budgets cannot hold the time, or the dossier is
        late, some step overruns (one held by a slow official, more likely)."""
        r = self.province.rng.random
        budgets = [s.budget for s in steps]
        over = [r() < s.chance for s in steps]
        if (late or total > sum(budgets)) and not any(over):
            over[self._pick(steps)] = True
        if total > sum(budgets):
            spans = [b if o else b * (_PACE[0] + (_PACE[1] - _PACE[0]) * r())
                     for b, o in zip(budgets, over, strict=True)]
            weights = [r() + 0.1 if o else 0.0 for o in over]
            extra = (total - sum(spans)) / sum(weights)
            spans = [d + w * extra for d, w in zip(spans, weights, strict=True)]
        else:
            grown = [b * (1 + _OVERRUN[0] + (_OVERRUN[1] - _OVERRUN[0]) * r()) if o else 0.0
                     for b, o in zip(budgets, over, strict=True)]
            room = sum(b for b, o in zip(budgets, over, strict=True) if not o)
            left = total - sum(grown)
            if room and 0 < left <= room:
                spans = [g if o else b * left / room
                         for b, g, o in zip(budgets, grown, over, strict=True)]
            else:  # no room to overrun: every step takes the same share of its budget
                spans = [b * total / sum(budgets) for b in budgets]
        return _whole(spans, total)

    def _pick(self, steps: list[_Step]) -> int:
        """The step a delay goes to: drawn by its chance of overrunning times its budget (the
        long steps, and the slow officials, hold most delays)."""
        weights = [s.chance * s.budget for s in steps]
        x = self.province.rng.random() * sum(weights)
        for i, w in enumerate(weights):
            x -= w
            if x < 0:
                return i
        return len(steps) - 1

    def _starts(self, spans: list[tuple[int, int]], lengths: list[int],
                durations: list[int]) -> list[int]:
        """When each step after the first starts: its office-time offset placed in the spans."""
        out, offset, i, before = [], 0, 0, 0
        for d in durations[:-1]:
            offset += d
            while i < len(spans) - 1 and offset > before + lengths[i]:
                before += lengths[i]
                i += 1
            out.append(self.office.add(spans[i][0], offset - before))
        return out

    def _data(self, step: _Step, at: int) -> dict[str, Any]:
        data: dict[str, Any] = {"to_unit": step.holder.unit}
        if self.named():
            data["to_official"] = step.holder.official
        data["step"] = step.name
        if self.province.rng.random() < self.cfg.step_due_at_rate:
            runs_out = self.office.add(at, step.budget)
            data["step_due_at"] = format_time(runs_out // DAY * DAY + DUE_TIME_OF_DAY)
        return data


def _active(t0: int, end: int, waits: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The spans of [t0, end) outside the waits on the applicant."""
    out, at = [], t0
    for a, b in sorted(waits):
        if a > at:
            out.append((at, min(a, end)))
        at = max(at, b)
    if at < end:
        out.append((at, end))
    return [(a, b) for a, b in out if a < b] or [(t0, max(t0, end))]


def _whole(spans: list[float], total: int) -> list[int]:
    """Whole seconds, each at least one, adding up to ``total``."""
    out = [max(1, int(d)) for d in spans]
    out[-1] = max(1, total - sum(out[:-1]))
    return out
