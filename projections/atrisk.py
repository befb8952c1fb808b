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
from functools import lru_cache
from operator import itemgetter
from typing import Any, Protocol

from kernel.calendar import VN_TZ, local_date
from projections.controlsheet import instant, seconds
from projections.criteria import membership
from projections.facts import (
    APOLOGY_ISSUED,
    OPEN_ROW,
    WAITING_ON_APPLICANT,
)
from projections.fold import Counters
from projections.periods import Period, current_year, parse_period
from projections.ruleset import Ruleset
from projections.scoring import total_drop
from projections.views import Tree, UnknownAgencyError, gather, subject_counts

DEFAULT_WITHIN = 2


class OpenRows(Protocol):
    """The candidates of the list: the unfinished dossiers of these agencies due on or before
    a day, as ``facts.OPEN_ROW`` tuples (``ViewStore.open_rows``): columns of the view
    store's rows, so that its query decodes no facts."""

    def __call__(self, agencies: Iterable[str], due_by_day: int) -> list[tuple[Any, ...]]:
        ...


_ID, _DUE_DAY, _FLAGS, _DUE_S = (OPEN_ROW.index(c) for c in ("id", "due_day", "flags", "due_s"))


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
        self._lost: dict[tuple[int, int, bool, int], tuple[str, ...]] = {}
        self._stake: dict[tuple[str, str, tuple[str, ...]], Decimal] = {}

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
        its subtree's), in the order of ``self.plans``; kept with the counters until they
        change (the view's end day is in the key: the open dossiers are judged at it)."""
        _, period, e_day = self.year(year)
        return self.counters.derived(("at-risk own", agency, year, e_day),
                                     lambda: self._own(agency, period, e_day))

    def _own(self, agency: str, period: Period, e_day: int) -> list[tuple[int, int]]:
        lay, procedures = self.counters.dl, self.counters.procedures
        s = gather(self.counters, (agency,), period.months, e_day, procs=self.procs)
        return [subject_counts(p, lay, s.dossier, s.open_ok, s.per_proc, procedures)
                for p in self.plans.values()]

    def counts(self, agency: str, year: str) -> dict[str, tuple[int, int]]:
        """The timely criteria's counts of an agency's subtree for a reception year, judged at
        now: what ``views.counts_for`` gives for those criteria (kept like ``own``)."""
        e_day = self.year(year)[2]
        return self.counters.derived(("at-risk counts", agency, year, e_day),
                                     lambda: self._counts(agency, year))

    def _counts(self, agency: str, year: str) -> dict[str, tuple[int, int]]:
        nums = [0] * len(self.plans)
        dens = [0] * len(self.plans)
        for a in self.tree.subtree(agency):
            for i, (num, den) in enumerate(self.own(a, year)):
                nums[i] += num
                dens[i] += den
        return dict(zip(self.plans, zip(nums, dens, strict=True), strict=True))

    def lost(self, f: Any, e_day: int) -> tuple[str, ...]:
        """The timely criteria whose numerator holds ``f`` (a dossier's facts: its flags,
        judged and due_day) at a view ending on ``e_day`` and would not if it were late."""
        return self._lost_of(f.flags & self.mask, f.judged, f.due_day, e_day)

    def _lost_of(self, flags: int, judged: int, due_day: int, e_day: int) -> tuple[str, ...]:
        key = (flags, judged, due_day >= e_day, e_day)
        hit = self._lost.get(key)
        if hit is None:
            hit = tuple(c.code for c in self.timely
                        if membership(c, flags, judged, due_day, None, e_day, 0)[0]
                        and not membership(c, flags, 0, due_day, None, e_day, 0)[0])
            self._lost[key] = hit
        return hit

    def stake(self, agency: str, f: Any, lost: tuple[str, ...] | None = None) -> float:
        """The agency's total for the year of ``f``'s reception, minus the same total with
        ``f`` counted late (``lost``: the criteria that lose ``f``, when already known)."""
        year = f.month[:4]
        if lost is None:
            lost = self.lost(f, self.year(year)[2])
        return self._stake_of(agency, year, lost)

    def _stake_of(self, agency: str, year: str, lost: tuple[str, ...]) -> float:
        if not lost:
            return 0.0
        key = (agency, year, lost)
        hit = self._stake.get(key)
        if hit is None:
            ruleset = self.year(year)[0]
            hit = self._stake[key] = total_drop(ruleset, self.counts(agency, year), lost)
        return float(hit)

    def both(self, unit: str, agency: str, month: str, flags: int, judged: int,
             due_day: int) -> tuple[float, float]:
        """(stake for the dossier's own agency ``unit``, stake for the queried agency) of an
        open dossier received in ``month``: the view's end is the same for both (the year of
        reception, judged at now), so is what the dossier loses."""
        year = month[:4]
        lost = self._lost_of(flags & self.mask, judged, due_day, self.year(year)[2])
        return self._stake_of(unit, year, lost), self._stake_of(agency, year, lost)


def at_risk(counters: Counters, open_rows: OpenRows, rules_of: RulesOf, agency_id: str,
            now: datetime, within: int = DEFAULT_WITHIN) -> dict[str, Any]:
    """The at-risk list of ``contract/interface.md``: due soon, then open past due."""
    tree = Tree.of(counters)
    if agency_id not in tree.parent:
        raise UnknownAgencyError(agency_id)
    calendar = rules_of(current_year(now)).calendar
    last_day = calendar.add_working_days(local_date(now), within).toordinal()
    now_s = seconds(now)
    soon: list[tuple[Any, ...]] = []
    late: list[tuple[Any, ...]] = []
    agencies = counters.derived(("subtree", agency_id),
                                lambda: sorted(tree.subtree(agency_id)))
    for r in open_rows(agencies, last_day):
        if r[_FLAGS] & WAITING_ON_APPLICANT:
            continue
        if r[_DUE_S] >= now_s:
            if r[_DUE_DAY] <= last_day:
                soon.append(r)
        else:
            late.append(r)
    by_due = itemgetter(_DUE_S, _ID)
    soon.sort(key=by_due)
    late.sort(key=by_due)
    stakes = Stakes(counters, tree, rules_of, now)
    return {"agency_id": agency_id,
            "now": now.astimezone(VN_TZ).isoformat(timespec="seconds"),
            "within": within,
            "due_soon": _rows(soon, stakes, agency_id),
            "overdue_open": _rows(late, stakes, agency_id)}


def _rows(found: list[tuple[Any, ...]], stakes: Stakes,
          agency_id: str) -> list[dict[str, Any]]:
    """The list's rows, in one loop: thousands of rows, a few hundred distinct pairs of stakes
    (memoized here on what decides them, as in ``Stakes.both``, without a call per row)."""
    both, mask = stakes.both, stakes.mask
    years: dict[str, tuple[str, int]] = {}  # month -> (year, the view's end day)
    pairs: dict[tuple[Any, ...], tuple[float, float]] = {}
    out = []
    for sid, unit, month, judged, due_day, procedure, flags, due_s, h_unit, official, step in found:
        year = years.get(month)
        if year is None:
            year = years[month] = (month[:4], stakes.year(month[:4])[2])
        key = (unit, year[0], flags & mask, judged, due_day >= year[1])
        pair = pairs.get(key)
        if pair is None:
            pair = pairs[key] = both(unit, agency_id, month, flags, judged, due_day)
        out.append({"dossier_id": sid, "agency_id": unit, "procedure_id": procedure,
                    "due_at": due_at(due_s),
                    "holder": {"unit": h_unit, "official": official, "step": step},
                    "apology_issued": bool(flags & APOLOGY_ISSUED),
                    "stake_unit": pair[0], "stake": pair[1]})
    return out


@lru_cache(maxsize=1 << 16)
def due_at(s: int) -> str:
    """A due instant (seconds) as the list writes it (memoized: the same open dossiers'
    due times are listed again by every query until they finish)."""
    return instant(s).isoformat()
