"""A deliberately naive "who made it late", written straight from spec/accountability.md §1–§4
and spec/766.md §4 and §6, to check the projection's control sheets and delays list.

It shares nothing with ``projections.controlsheet``, ``projections.facts``, ``kernel.officehours``
or ``kernel.calendar`` (nor with the scoring oracle, ``tests/oracle.py``): it replays actions into
plain per-dossier records (refusing, itself, the handovers §1 refuses), builds its own working-day
calendar from the ``holidays`` package, walks office time one working session at a time, and for
each question (agency subtree, period, now) judges every dossier again. Times are whole seconds
since the epoch: instants to the second, fractions dropped (§2).

Where the spec leaves a choice, the oracle takes the one docs/decisions.md records:
- "apology in time" is judged against the due time (with the waits completed so far) when the
  apology was issued, and ``apology_notice`` (one day) before it; a dossier with an apology in
  time is ``in_time`` even if another came late ("an apology_issued at least one day before");
- the step that "held the dossier at" an instant is the one whose [start, end) holds it: at a
  handover, the new step; before the reception, the first step; after the end, the last one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import holidays

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
FINISHING = ("resolved", "result_returned", "withdrawn")


def _s(text: str) -> int:
    """An RFC 3339 instant, to the second (fractions dropped)."""
    return math.floor(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def _day(t: int) -> date:
    return datetime.fromtimestamp(t, TZ).date()


def _at(d: date, seconds: int) -> int:
    """The instant ``seconds`` after local midnight of ``d``."""
    return int(datetime.combine(d, time(0), tzinfo=TZ).timestamp()) + seconds


# ----- the working-day calendar, from the holidays package ----------------------------------


class Calendar:
    """Spec/766.md §6: Mon–Fri, minus VN holidays, plus the package's make-up Saturdays, minus
    the rules' extra days off, plus the rules' make-up days."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.extra_off = {date.fromisoformat(d) for d in settings["extra_days_off"]}
        self.makeup = {date.fromisoformat(d) for d in settings["makeup_working_days"]}
        self.sessions = [(_clock(a), _clock(b)) for a, b in settings["office_hours"]]
        self._years: dict[int, tuple[set[date], set[date]]] = {}

    def is_working(self, d: date) -> bool:
        if d.year not in self._years:
            vn = holidays.country_holidays("VN", years=d.year)
            self._years[d.year] = (set(vn), set(getattr(vn, "weekend_workdays", ())))
        off, package_makeup = self._years[d.year]
        working = (d.weekday() < 5 and d not in off) or d in package_makeup
        return (working and d not in self.extra_off) or d in self.makeup

    def add_working_days(self, d: date, n: int) -> date:
        while n > 0:
            d += timedelta(days=1)
            n -= self.is_working(d)
        return d

    def sessions_on(self, d: date) -> list[tuple[int, int]]:
        """The office sessions of day ``d`` as instants, none on a day off."""
        return [(_at(d, a), _at(d, b)) for a, b in self.sessions] if self.is_working(d) else []

    def office_between(self, a: int, b: int) -> int:
        """Office seconds in [a, b), session by session."""
        total, d = 0, _day(a)
        while b > a and d <= _day(b):
            for s, e in self.sessions_on(d):
                total += max(0, min(b, e) - max(a, s))
            d += timedelta(days=1)
        return total

    def office_add(self, start: int, seconds: int) -> int:
        """The first instant at which ``seconds`` of office time have passed since ``start``."""
        left, d = seconds, _day(start)
        if left <= 0:
            return start
        while True:
            for s, e in self.sessions_on(d):
                lo = max(s, start)
                if lo < e:
                    if left <= e - lo:
                        return lo + left
                    left -= e - lo
            d += timedelta(days=1)


def _clock(text: str) -> int:
    t = time.fromisoformat(text)
    return t.hour * 3600 + t.minute * 60 + t.second


# ----- the records the actions leave ---------------------------------------------------------


@dataclass
class Step:
    name: str
    unit: str
    official: str | None
    start: int
    given_due: int | None
    budget: int | None  # office seconds, from the internal process when the step began


@dataclass
class Dossier:
    id: str
    agency: str
    procedure: str
    received: int
    base_due: int
    steps: list[Step]
    requests: list[int] = field(default_factory=list)
    completions: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    apologies: list[tuple[int, int]] = field(default_factory=list)  # (at, due then)

    @property
    def end(self) -> int | None:
        return min(self.ends) if self.ends else None

    def waits(self) -> list[tuple[int, int | None]]:
        """(requested, completed or None) of each wait on the applicant."""
        return [(r, self.completions[i] if i < len(self.completions) else None)
                for i, r in enumerate(self.requests)]

    def due(self) -> int:
        """The due time after the supplement shift (completed waits; spec/766.md §4)."""
        return self.base_due + sum(max(0, c - r) for r, c in self.waits() if c is not None)


@dataclass(frozen=True)
class Attribution:
    dossier: str
    unit: str
    official: str | None
    step: str
    overrun: int  # office seconds


class DelaysOracle:
    """The dossiers the actions leave, and the delays list of any view, recomputed naively."""

    def __init__(self, actions: Iterable[dict[str, Any]], settings: dict[str, Any]) -> None:
        self.cal = Calendar(settings)
        self.notice = int(settings["apology_notice_s"])
        self.parent: dict[str, str | None] = {}
        self.procedures: dict[str, dict[str, Any]] = {}
        self.dossiers: dict[str, Dossier] = {}
        self.refused: list[str] = []  # action ids of the handovers §1 refuses
        for a in actions:
            self._apply(a)

    # ----- replay --------------------------------------------------------------------------

    def _apply(self, a: dict[str, Any]) -> None:
        kind, data, at = a["type"], a.get("data") or {}, _s(a["occurred_at"])
        if kind == "agency_registered":
            self.parent[a["agency_id"]] = data.get("parent_id")
        elif kind == "procedure_published":
            self.procedures[a["procedure_id"]] = data
        elif kind == "received":
            due = _s(data["due_at"]) if data.get("due_at") else self._due(at, data["procedure_id"])
            first = Step("receive", data["agency_id"], data.get("official_id"), at, None,
                         self._budget(data["procedure_id"], "receive"))
            self.dossiers[a["dossier_id"]] = Dossier(a["dossier_id"], data["agency_id"],
                                                     data["procedure_id"], at, due, [first])
        elif "dossier_id" in a:
            self._dossier_action(self.dossiers[a["dossier_id"]], a, kind, data, at)

    def _dossier_action(self, d: Dossier, a: dict[str, Any], kind: str, data: dict[str, Any],
                        at: int) -> None:
        if kind == "handed_over":
            if at < d.steps[-1].start or (d.end is not None and at > d.end):
                self.refused.append(a["action_id"])
                return
            given = _s(data["step_due_at"]) if data.get("step_due_at") else None
            d.steps.append(Step(data["step"], data["to_unit"], data.get("to_official"), at,
                                given, self._budget(d.procedure, data["step"])))
        elif kind == "supplement_requested":
            d.requests.append(at)
        elif kind == "supplement_completed":
            d.completions.append(at)
        elif kind in FINISHING:
            d.ends.append(at)
        elif kind == "apology_issued":
            d.apologies.append((at, d.due()))

    def _due(self, at: int, procedure_id: str) -> int:
        """Spec/766.md §4: the due time from the procedure's processing time."""
        pt = self.procedures[procedure_id]["processing_time"]
        n, unit = int(pt["value"]), pt["unit"]
        if unit == "hours":
            return at + n * 3600
        day = _day(at)
        if unit == "working_days":
            day = self.cal.add_working_days(day, n)
        elif unit == "days":
            day += timedelta(days=n)
        else:
            month = day.month - 1 + n
            y, m = day.year + month // 12, month % 12 + 1
            for last in (day.day, 30, 29, 28):
                try:
                    day = date(y, m, last)
                    break
                except ValueError:
                    continue
        return _at(day, 86_399)

    def _budget(self, procedure_id: str, step: str) -> int | None:
        """The step's budget in office seconds, from the internal process as published now."""
        for s in self.procedures.get(procedure_id, {}).get("internal_process") or ():
            if s["step"] == step:
                seconds = Fraction(str(s["working_hours"])) * 3600
                assert seconds.denominator == 1, "budgets in whole seconds only"
                return int(seconds)
        return None


    # ----- judging at a view ending at e ---------------------------------------------------

    def agencies(self) -> set[str]:
        """Every agency the actions name: registered, parents and those of dossiers."""
        return (set(self.parent) | {p for p in self.parent.values() if p}
                | {d.agency for d in self.dossiers.values()})

    def in_subtree(self, agency: str, root: str) -> bool:
        seen = set()
        a: str | None = agency
        while a is not None and a not in seen:
            if a == root:
                return True
            seen.add(a)
            a = self.parent.get(a)
        return False

    def late(self, d: Dossier, e: int) -> bool:
        """Spec/766.md §4: not on time in a view ending at ``e``."""
        if len(d.requests) > 1:
            return True
        waits = d.waits()
        if waits and waits[-1][1] is None:  # still waiting on the applicant
            return waits[-1][0] > d.due()
        if d.end is not None:
            return d.end > d.due()
        return _day(e) > _day(d.due())

    def sheet(self, d: Dossier, e: int) -> list[tuple[Step, int | None, int | None]]:
        """(step, end or None if open, due time or None) of each line of the control sheet."""
        out = []
        for i, st in enumerate(d.steps):
            end = d.steps[i + 1].start if i + 1 < len(d.steps) else d.end
            due = st.given_due
            if due is None and st.budget is not None:
                due = self.cal.office_add(st.start, st.budget)
            if due is not None:
                for requested, completed in d.waits():
                    upto = completed if completed is not None else (end if end is not None else e)
                    if end is not None:
                        upto = min(upto, end)
                    due += max(0, upto - max(requested, st.start))
            out.append((st, end, due))
        return out

    def attribute(self, d: Dossier, e: int) -> list[Attribution]:
        """§3: the late steps with their overruns, else the holder at the due time."""
        out = []
        for st, end, due in self.sheet(d, e):
            if due is None:
                continue
            stop = end if end is not None else e
            if stop > due:
                out.append(Attribution(d.id, st.unit, st.official, st.name,
                                       self.cal.office_between(due, stop)))
        if out:
            return out
        due = d.due()
        holder = d.steps[0]
        for st in d.steps:
            if st.start <= due:
                holder = st
        stop = d.end if d.end is not None else e
        return [Attribution(d.id, holder.unit, holder.official, holder.name,
                            self.cal.office_between(due, stop))]

    def apology(self, d: Dossier) -> str:
        """§3: in time, late or missing."""
        if not d.apologies:
            return "missing"
        if any(at <= due - self.notice for at, due in d.apologies):
            return "in_time"
        return "late"

    # ----- the delays list -----------------------------------------------------------------

    def late_dossiers(self, root: str, first: date, last: date, e: int) -> list[Dossier]:
        return [d for d in self.dossiers.values()
                if self.in_subtree(d.agency, root) and first <= _day(d.received) <= last
                and self.late(d, e)]

    def delays(self, root: str, label: str, first: date, last: date, now: datetime,
               by: str = "unit") -> dict[str, Any]:
        """§4: the delays list of agency ``root``'s subtree over the days first … last."""
        e = min(math.floor(now.timestamp()), _at(last, 86_399))
        rows: dict[tuple[str, str | None], dict[str, Any]] = {}
        late = self.late_dossiers(root, first, last, e)
        for d in late:
            status = self.apology(d)
            for a in self.attribute(d, e):
                key = (a.unit, a.official if by == "official" else None)
                row = rows.setdefault(key, {"dossiers": {}, "steps": 0, "overrun": 0})
                row["dossiers"][d.id] = status
                row["steps"] += 1
                row["overrun"] += a.overrun
        out = []
        for (unit, official), row in rows.items():
            statuses = list(row["dossiers"].values())
            out.append({"unit": unit, "official": official,
                        "late_dossiers": len(statuses), "late_steps": row["steps"],
                        "overrun_hours": half_up_hours(row["overrun"]),
                        "apology_in_time": statuses.count("in_time"),
                        "apology_late": statuses.count("late"),
                        "apology_missing": statuses.count("missing")})
        out.sort(key=lambda r: (-r["late_dossiers"], -r["overrun_hours"], r["unit"],
                                (r["official"] is not None, r["official"] or "")))
        return {"agency_id": root, "period": label,
                "view_end": datetime.fromtimestamp(e, TZ).isoformat(), "by": by,
                "late_dossiers": len(late), "rows": out}


def half_up_hours(seconds: int) -> float:
    """Seconds as hours, rounded half up to 2 decimals (once, from the exact sum)."""
    hundredths = math.floor(Fraction(seconds, 36) + Fraction(1, 2))
    return float(Decimal(hundredths).scaleb(-2).quantize(Decimal("0.01"), ROUND_HALF_UP))
