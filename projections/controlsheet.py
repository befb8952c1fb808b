"""The control sheet (phiếu kiểm soát) and who made a late dossier late: one home for
spec/accountability.md §1–§3.

A dossier's steps come from its ``received`` (the ``receive`` step) and its handovers; a step
ends where the next starts and the last at the end of processing. A step's due time is the
sender's ``step_due_at``, else its budget of office hours from its start (the procedure's
internal process), else none; waits on the applicant inside a step move its due time later by
their wall-clock overlap (a wait not completed counts to the step's end, or, for the open step,
to the view's end). Times here are whole seconds since the epoch (instants to the second).

A dossier late by the 766 rule is attributed to its late steps (each with its holder and its
overrun in office hours), or, when no step is late, to the holder of the step that held it at
its due time, with the office hours from that due time to the end of processing (or the view's
end).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from kernel.calendar import VN_TZ
from kernel.lifecycle import LifecycleRules
from kernel.officehours import OfficeClock
from projections.rounding import ratio_half_up

Attribution = tuple[str, str | None, str, int]  # unit, official, step, overrun seconds


@cache
def office_clock(rules: LifecycleRules) -> OfficeClock:
    return OfficeClock(rules.calendar, rules.office_hours)


def seconds(t: datetime) -> int:
    """An instant to the second (fractions dropped), as seconds since the epoch."""
    return int(t.timestamp() // 1)


def instant(s: int) -> datetime:
    return datetime.fromtimestamp(s, tz=VN_TZ)


class Step(NamedTuple):
    """One line of the control sheet, in whole seconds."""

    step: str
    unit: str
    official: str | None
    start: int
    end: int | None  # None: the open step
    due: int | None  # with the waits that ended in it; None: no due time
    pending: int | None  # where a wait still pending inside the open step began

    def due_at(self, e: int) -> int | None:
        """The due time at a view ending at ``e`` (a pending wait counts up to ``e``)."""
        if self.due is None:
            return None
        if self.end is None and self.pending is not None:
            return self.due + max(e - self.pending, 0)
        return self.due

    def late_at(self, e: int) -> bool:
        due = self.due_at(e)
        if due is None:
            return False
        return self.end > due if self.end is not None else e > due

    def pack(self) -> list[Any]:
        """The compact form kept in the facts (the end follows from the next step)."""
        return [self.step, self.unit, self.official, self.start, self.due, self.pending]


def unpack(packed: Sequence[Sequence[Any]], end: int | None) -> list[Step]:
    """Steps from their compact form and the end of processing (``None`` if open)."""
    out = []
    for i, (step, unit, official, start, due, pending) in enumerate(packed):
        stop = packed[i + 1][3] if i + 1 < len(packed) else end
        out.append(Step(step, unit, official, start, stop, due, pending))
    return out


class _Sheet:
    """A dossier's control sheet as last derived, kept on the dossier (a sheet is derived again
    after every event; most events change nothing in it, a handover only adds a line).

    A step is a function of its own line (name, holder, start, due time or budget), its end
    (the next line's start, or the end of processing) and the waits; so a step of the last
    sheet is kept as it is while its line, its end and the waits are equal to what it was
    derived from (lines are only appended: a handover keeps all steps but the last). The
    costly part of a line, its start and its due time before any wait (an office-hours sum),
    is kept per line whatever the waits."""

    __slots__ = ("rules", "clock", "lines", "waits", "end_at", "bases", "spans", "steps",
                 "packed")

    def __init__(self, rules: LifecycleRules) -> None:
        self.rules = rules
        self.clock = office_clock(rules)
        # What the sheet was derived from: the dossier's lists of lines and of waits, its end.
        self.lines: list[Any] = []
        self.waits: list[Any] | None = None
        self.end_at: datetime | None = None
        self.bases: list[tuple[int, int | None]] = []  # per line: start, due before waits
        self.spans: list[tuple[int, int | None]] = []  # the waits, in seconds
        self.steps: list[Step] = []
        self.packed: list[list[Any]] | None = None  # the steps' ``pack()``, once asked


def steps_of(d: Any, rules: LifecycleRules) -> list[Step]:
    """The control sheet of a dossier as it stands: the same list while the dossier's lists of
    lines and of waits and its end are the same objects (the domain replaces them to change
    them, never edits them in place), else a new one that keeps the steps that are equal."""
    m: _Sheet | None = d.__dict__.get("_sheet")
    lines, waits, end_at = d.steps, d.waits, d.end_at
    if m is None or m.rules is not rules:
        m = d.__dict__["_sheet"] = _Sheet(rules)
    elif lines is m.lines and waits is m.waits and end_at is m.end_at:
        return m.steps
    keep, spans = _rebase(m, lines), m.spans
    if waits is not m.waits:
        now = [(seconds(a), seconds(b) if b is not None else None) for a, b in waits]
        if now != spans:
            spans, keep = now, 0
    end = seconds(end_at) if end_at is not None else None
    bases, old, n = m.bases, m.steps, len(lines)
    if keep and old[keep - 1].end != (bases[keep][0] if keep < n else end):
        keep -= 1  # the last step kept ends elsewhere now
    out = old[:keep]
    for i in range(keep, n):
        out.append(_step(lines[i], bases[i], bases[i + 1][0] if i + 1 < n else end, spans))
    # Only now, all derived: what it was derived from.
    m.lines, m.waits, m.end_at, m.spans, m.steps = lines, waits, end_at, spans, out
    if m.packed is not None:
        m.packed = m.packed[:keep]
    return out


def packed_of(d: Any, rules: LifecycleRules) -> list[list[Any]]:
    """The control sheet of a dossier in the compact form the facts keep (``Step.pack``): the
    same list while ``steps_of`` gives the same one, else a new list (one handed out is never
    changed: the facts before an event keep it), in which a kept step keeps its packed line."""
    steps = steps_of(d, rules)
    m: _Sheet = d.__dict__["_sheet"]
    packed = m.packed
    if packed is None:
        packed = m.packed = []
    if len(packed) < len(steps):  # a new list (``steps_of`` cuts a copy): not handed out yet
        packed += [st.pack() for st in steps[len(packed):]]
    return packed


def _rebase(m: _Sheet, lines: list[Any]) -> int:
    """Bring ``m.bases`` to the dossier's ``lines``; the number of lines that were kept."""
    old, bases = m.lines, m.bases
    # Equal lines have equal bases (whether the same objects or not); the usual case, a
    # handover, keeps every old line (compared at C speed, by identity first).
    k = len(old)
    if k > len(lines) or lines[:k] != old:
        k, top = 0, min(k, len(lines))
        while k < top and old[k] == lines[k]:
            k += 1
    del bases[k:]
    for line in lines[k:]:
        start, given_due, budget = seconds(line[3]), line[4], line[5]
        if given_due is not None:
            due: int | None = seconds(given_due)
        elif budget is not None:
            due = m.clock.add_seconds(start, budget)
        else:
            due = None
        bases.append((start, due))
    return k


def _step(line: Sequence[Any], base: tuple[int, int | None], e: int | None,
          spans: Sequence[tuple[int, int | None]]) -> Step:
    """One step from its line, start and due time before waits, end, and the waits."""
    s, due = base
    pending = None
    for ws, we in spans:
        if we is None and e is None:  # pending in the open step: counted at the view
            pending = max(ws, s)
        elif due is not None:
            hi = we if we is not None else e
            assert hi is not None  # a pending wait here means the step is closed
            top = hi if e is None else min(hi, e)
            due += max(0, top - max(ws, s))
    return Step(line[0], line[1], line[2], s, e, due, pending)


def holder_at(steps: Sequence[Step], t: int) -> Step:
    """The step that held the dossier at ``t`` (the first step, if ``t`` is before all)."""
    holder = steps[0]
    for st in steps:
        if st.start <= t:
            holder = st
    return holder


def attribute(steps: Sequence[Step], due: int, end: int | None, e: int,
              clock: OfficeClock) -> list[Attribution]:
    """Who made a late dossier late, judged at a view ending at ``e`` (accountability §3)."""
    late = []
    for st in steps:
        if st.late_at(e):
            step_due = st.due_at(e)
            assert step_due is not None
            upto = st.end if st.end is not None else e
            late.append((st.unit, st.official, st.step,
                         clock.between(instant(step_due), instant(upto))))
    if late:
        return late
    h = holder_at(steps, due)
    return [(h.unit, h.official, h.step,
             clock.between(instant(due), instant(end if end is not None else e)))]


# ----- the delays list's counting (accountability §4) ----------------------------------------

# ("u": by unit | "o": by official | "t": the total, unit, official)
DelayKey = tuple[str, str, str | None]
IN_TIME, LATE, MISSING = 0, 1, 2
# [late dossiers, late steps, overrun seconds, apology in time, apology late, apology missing]
WIDTH = 6


def contributions(attrib: Sequence[Sequence[Any]], apology: int) -> dict[DelayKey, list[int]]:
    """What one late dossier adds to the delays list's rows: per unit and per (unit,
    official), one late dossier, its attributions there, their overruns and its apology
    status; and one to the total of late dossiers."""
    out: dict[DelayKey, list[int]] = {("t", "", None): [1, 0, 0, 0, 0, 0]}
    for by in ("u", "o"):
        for a in attrib:
            key: DelayKey = (by, a[0], a[1] if by == "o" else None)
            v = out.get(key)
            if v is None:
                v = out[key] = [1, 0, 0, 0, 0, 0]
                v[3 + apology] = 1
            v[1] += 1
            v[2] += int(a[3])
    return out


def apology_status(flags: int, issued: int, in_time: int) -> int:
    """``IN_TIME``, ``LATE`` or ``MISSING`` from a dossier's flags."""
    if not flags & issued:
        return MISSING
    return IN_TIME if flags & in_time else LATE


# ----- the control sheet as people read it ---------------------------------------------------


def control_sheet(d: Any, rules: LifecycleRules, now: datetime) -> list[dict[str, Any]]:
    """Every step of a dossier with its holder, start, end, due time and result at ``now``:
    ``on_time``, ``late`` (with the overrun in office hours), ``open`` (not late yet) or
    ``no_due``."""
    clock = office_clock(rules)
    e = seconds(now)
    out = []
    for st in steps_of(d, rules):
        due = st.due_at(e)
        end = st.end
        if due is None:
            result, overrun = "no_due", None
        elif (end if end is not None else e) > due:
            result = "late"
            overrun = hours(clock.between(instant(due), instant(end if end is not None else e)))
        else:
            result, overrun = ("on_time" if end is not None else "open"), 0.0
        out.append({"step": st.step, "unit": st.unit, "official": st.official,
                    "start": _iso(st.start), "end": _iso(end), "due": _iso(due),
                    "result": result, "overrun_hours": overrun})
    return out


def hours(overrun_s: int) -> float:
    """Seconds of office time as hours, rounded half up to 2 decimals (accountability §2):
    the one rounding of every overrun shown."""
    return ratio_half_up(overrun_s, 3600)


def _iso(s: int | None) -> str | None:
    return None if s is None else instant(s).isoformat()
