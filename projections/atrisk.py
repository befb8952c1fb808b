"""``motcua at-risk``: the open dossiers about to fall due, and what they cost if they go late
(spec/accountability.md §5).

An agency subtree at ``now``: the open dossiers whose due time (after the supplement shift) is
at or after now and whose local due date is no later than ``add_working_days(local date of now,
N)``, by due time then id; and the open dossiers already past their due time. A dossier waiting
on the applicant is not listed: its clock is stopped and its due time moves with the wait.

The points at stake are the difference of two rounded totals, each exactly as the scorecard
computes it: the total for the year of the dossier's reception judged at now, and the same
total with this one dossier counted late. The total being a sum of rounded criterion points,
that difference is exactly the lost criteria's (``scoring.total_drop``), so only those
criteria's counts are gathered (``Stakes``). Which
numerators lose the dossier follows from the criteria registry: every timely dossier criterion
whose numerator holds it now and would not if it were late (2.1, and 5.4 unless the dossier
already lost it there).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any, Protocol

from kernel.calendar import VN_TZ, local_date
from projections.controlsheet import instant, seconds
from projections.criteria import membership
from projections.facts import APOLOGY_ISSUED, WAITING_ON_APPLICANT, DossierFacts
from projections.fold import Counters
from projections.periods import Period, current_year, parse_period
from projections.ruleset import Ruleset
from projections.scoring import total_drop
from projections.views import Tree, UnknownAgencyError, gather, subject_counts

DEFAULT_WITHIN = 2


class OpenRows(Protocol):
    def __call__(self, agencies: Iterable[str], due_by_day: int) -> list[tuple[str, list[Any]]]:
        ...


RulesOf = Callable[[Period], Ruleset]


class Stakes:
    """The points an agency's total loses if one open dossier goes late, memoized per (agency,
    reception year, lost criteria).

    The difference of the two totals is that of the lost criteria's rounded points alone
    (``scoring.total_drop``: the scorecard's total is a sum of rounded criterion points), so
    only the timely criteria's counts are needed. Those are sums over dossiers, hence an
    agency subtree's counts are the sum of its agencies' own: each agency's are gathered once
    (per reception year), without the per-procedure vectors unless a timely criterion reads
    them. ``views.counts_for`` then ``scoring.total_points`` twice give the same numbers (the
    unit tests compare them); this is the same arithmetic on less of the view."""

    def __init__(self, counters: Counters, tree: Tree, rules_of: RulesOf, now: datetime) -> None:
        self.counters = counters
        self.tree = tree
        self.rules_of = rules_of
        self.now = now
        self.timely = [c for c in counters.layout.registry.subject_criteria("dossier")
                       if c.timely]
        self.plans = {c.code: counters.dl.plans[c.code] for c in self.timely}
        self.procs = any(p.den_attr is not None or p.alt is not None
                         for p in self.plans.values())
        # The flags the timely criteria read: what a dossier loses depends on no other bit.
        self.mask = 0
        for c in self.timely:
            for need in (*c.den, *c.num):
                self.mask |= need.bits
        self._years: dict[str, tuple[Ruleset, Period, int]] = {}
        self._own: dict[tuple[str, str], list[tuple[int, int]]] = {}
        self._counts: dict[tuple[str, str], dict[str, tuple[int, int]]] = {}
        self._lost: dict[tuple[int, int, bool, int], tuple[str, ...]] = {}
        self._stake: dict[tuple[str, str, tuple[str, ...]], Decimal] = {}
        self._both: dict[tuple[str, str, str, int, int, bool], tuple[float, float]] = {}

    def year(self, year: str) -> tuple[Ruleset, Period, int]:
        """(ruleset, period, view end's day) of a reception year judged at now."""
        hit = self._years.get(year)
        if hit is None:
            period = parse_period(year)
            e_day = local_date(period.view_end(self.now)).toordinal()
            hit = self._years[year] = (self.rules_of(period), period, e_day)
        return hit

    def own(self, agency: str, year: str) -> list[tuple[int, int]]:
        """The timely criteria's (numerator, denominator) of one agency's own dossiers (not
        its subtree's), in the order of ``self.plans``."""
        key = (agency, year)
        hit = self._own.get(key)
        if hit is None:
            _, period, e_day = self.year(year)
            lay, procedures = self.counters.dl, self.counters.procedures
            s = gather(self.counters, (agency,), period.months, e_day, procs=self.procs)
            hit = self._own[key] = [subject_counts(p, lay, s.dossier, s.open_ok, s.per_proc,
                                                   procedures) for p in self.plans.values()]
        return hit

    def counts(self, agency: str, year: str) -> dict[str, tuple[int, int]]:
        """The timely criteria's counts of an agency's subtree for a reception year, judged at
        now: what ``views.counts_for`` gives for those criteria."""
        key = (agency, year)
        hit = self._counts.get(key)
        if hit is None:
            nums = [0] * len(self.plans)
            dens = [0] * len(self.plans)
            for a in self.tree.subtree(agency):
                for i, (num, den) in enumerate(self.own(a, year)):
                    nums[i] += num
                    dens[i] += den
            hit = self._counts[key] = dict(zip(self.plans, zip(nums, dens, strict=True),
                                               strict=True))
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
        if lost is None:
            lost = self.lost(f, self.year(year)[2])
        if not lost:
            return 0.0
        key = (agency, year, lost)
        hit = self._stake.get(key)
        if hit is None:
            ruleset = self.year(year)[0]
            hit = self._stake[key] = total_drop(ruleset, self.counts(agency, year), lost)
        return float(hit)

    def both(self, unit: str, agency: str, f: DossierFacts) -> tuple[float, float]:
        """(stake for the dossier's own agency, stake for the queried agency): the view's end
        is the same for both (the year of reception, judged at now), so is what ``f`` loses."""
        year = f.month[:4]
        e_day = self.year(year)[2]
        # Memoized on what decides both stakes (the key of ``lost`` and the two agencies):
        # a province's list has thousands of rows and a few hundred distinct pairs.
        key = (unit, agency, year, f.flags & self.mask, f.judged, f.due_day >= e_day)
        hit = self._both.get(key)
        if hit is None:
            lost = self.lost(f, e_day)
            hit = self._both[key] = (self.stake(unit, f, lost), self.stake(agency, f, lost))
        return hit


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
    soon.sort(key=itemgetter(0, 1))
    late.sort(key=itemgetter(0, 1))
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
