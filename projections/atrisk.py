"""``motcua at-risk``: the open dossiers about to fall due, and what they cost if they go late
(spec/accountability.md §5).

An agency subtree at ``now``: the open dossiers whose due time (after the supplement shift) is
at or after now and whose local due date is no later than ``add_working_days(local date of now,
N)``, by due time then id; and the open dossiers already past their due time. A dossier waiting
on the applicant is not listed: its clock is stopped and its due time moves with the wait.

The points at stake are the difference of two rounded totals, each exactly as the scorecard
computes it (``views.counts_for`` then ``scoring.total_points``): the total for the year of the
dossier's reception judged at now, and the same total with this one dossier counted late. Which
numerators lose the dossier follows from the criteria registry: every timely dossier criterion
whose numerator holds it now and would not if it were late (2.1, and 5.4 unless the dossier
already lost it there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from kernel.calendar import VN_TZ, local_date
from projections.controlsheet import instant, seconds
from projections.criteria import membership
from projections.facts import APOLOGY_ISSUED, WAITING_ON_APPLICANT, DossierFacts
from projections.fold import Counters
from projections.periods import Period, current_year, parse_period
from projections.ruleset import Ruleset
from projections.scoring import total_points
from projections.views import Tree, UnknownAgencyError, counts_for

DEFAULT_WITHIN = 2


class OpenRows(Protocol):
    def __call__(self, agencies: Iterable[str], due_by_day: int) -> list[tuple[str, list[Any]]]:
        ...


RulesOf = Callable[[Period], Ruleset]


class Stakes:
    """The points an agency's total loses if one open dossier goes late, memoized per (agency,
    reception year) for the counts and per (agency, year, lost numerators) for the totals."""

    def __init__(self, counters: Counters, tree: Tree, rules_of: RulesOf, now: datetime) -> None:
        self.counters = counters
        self.tree = tree
        self.rules_of = rules_of
        self.now = now
        self.timely = [c for c in counters.layout.registry.subject_criteria("dossier")
                       if c.timely]
        # The flags the timely criteria read: what a dossier loses depends on no other bit.
        self.mask = 0
        for c in self.timely:
            for need in (*c.den, *c.num):
                self.mask |= need.bits
        self._memo: dict[Any, Any] = {}
        self._base: dict[tuple[str, str], tuple[Ruleset, dict[str, tuple[int, int]], int,
                                                Decimal]] = {}
        self._lost: dict[tuple[int, int, bool, int], tuple[str, ...]] = {}
        self._stake: dict[tuple[str, str, tuple[str, ...]], Decimal] = {}

    def base(self, agency: str, year: str) -> tuple[Ruleset, dict[str, tuple[int, int]], int,
                                                    Decimal]:
        """(ruleset, counts, view end's day, total) of an agency's subtree for a year."""
        key = (agency, year)
        hit = self._base.get(key)
        if hit is None:
            period = parse_period(year)
            ruleset = self.rules_of(period)
            counts, view_end = counts_for(self.counters, ruleset, self.tree, agency, period,
                                          self.now, self._memo)
            hit = (ruleset, counts, local_date(view_end).toordinal(),
                   total_points(ruleset, counts))
            self._base[key] = hit
        return hit

    def lost(self, f: DossierFacts, e_day: int) -> tuple[str, ...]:
        """The timely criteria whose numerator holds ``f`` at a view ending on ``e_day`` and
        would not if it were late."""
        flags = f.flags & self.mask
        key = (flags, f.judged, f.due_day >= e_day, e_day)
        hit = self._lost.get(key)
        if hit is None:
            hit = tuple(c.code for c in self.timely
                        if membership(c, flags, f.judged, f.due_day, None, e_day, 0)[0]
                        and not membership(c, flags, 0, f.due_day, None, e_day, 0)[0])
            self._lost[key] = hit
        return hit

    def stake(self, agency: str, f: DossierFacts, lost: tuple[str, ...] | None = None) -> float:
        """The agency's total for the year of ``f``'s reception, minus the same total with
        ``f`` counted late (``lost``: the criteria that lose ``f``, when already known)."""
        year = f.month[:4]
        ruleset, counts, e_day, total = self.base(agency, year)
        if lost is None:
            lost = self.lost(f, e_day)
        if not lost:
            return 0.0
        key = (agency, year, lost)
        hit = self._stake.get(key)
        if hit is None:
            late = dict(counts)
            for code in lost:
                num, den = late[code]
                late[code] = (num - 1, den)
            hit = self._stake[key] = total - total_points(ruleset, late)
        return float(hit)

    def both(self, unit: str, agency: str, f: DossierFacts) -> tuple[float, float]:
        """(stake for the dossier's own agency, stake for the queried agency): the view's end
        is the same for both (the year of reception, judged at now), so is what ``f`` loses."""
        e_day = self.base(agency, f.month[:4])[2]
        lost = self.lost(f, e_day)
        return self.stake(unit, f, lost), self.stake(agency, f, lost)


def at_risk(counters: Counters, open_rows: OpenRows, rules_of: RulesOf, agency_id: str,
            now: datetime, within: int = DEFAULT_WITHIN) -> dict[str, Any]:
    """The at-risk list of ``contract/interface.md``: due soon, then open past due."""
    tree = Tree.build(counters)
    if agency_id not in tree.parent:
        raise UnknownAgencyError(agency_id)
    calendar = rules_of(current_year(now)).calendar
    last_day = calendar.add_working_days(local_date(now), within).toordinal()
    now_s = seconds(now)
    stakes = Stakes(counters, tree, rules_of, now)
    soon: list[tuple[int, str, DossierFacts]] = []
    late: list[tuple[int, str, DossierFacts]] = []
    for sid, raw in open_rows(sorted(tree.subtree(agency_id)), last_day):
        f = DossierFacts._make(raw)
        if f.end_day != -1 or f.flags & WAITING_ON_APPLICANT:
            continue
        if f.due_s >= now_s:
            if f.due_day <= last_day:
                soon.append((f.due_s, sid, f))
        else:
            late.append((f.due_s, sid, f))
    soon.sort(key=lambda r: r[:2])
    late.sort(key=lambda r: r[:2])
    return {"agency_id": agency_id,
            "now": now.astimezone(VN_TZ).isoformat(timespec="seconds"),
            "within": within,
            "due_soon": [_row(sid, f, stakes, agency_id) for _, sid, f in soon],
            "overdue_open": [_row(sid, f, stakes, agency_id) for _, sid, f in late]}


def _row(sid: str, f: DossierFacts, stakes: Stakes, agency_id: str) -> dict[str, Any]:
    unit, official, step = f.holder
    stake_unit, stake = stakes.both(f.agency, agency_id, f)
    return {"dossier_id": sid, "agency_id": f.agency, "procedure_id": f.procedure,
            "due_at": instant(f.due_s).isoformat(),
            "holder": {"unit": unit, "official": official, "step": step},
            "apology_issued": bool(f.flags & APOLOGY_ISSUED),
            "stake_unit": stake_unit, "stake": stake}
