"""Queries: scorecards, rankings and late lists assembled from the counters at query time.

Period = sum of months; agency = sum over its subtree (pooled, never averaged); open dossiers
are judged at the view's end E = min(now, period end) (spec §4) through the due-day
histograms; catalog criteria are computed for the publishing authority (the root of the
agency's tree) and shown by every agency below it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from kernel.calendar import VN_TZ, local_date
from projections.criteria import CatalogContext, CatalogCriterion, ProcedureCriterion, active
from projections.facts import (
    APOLOGY_IN_TIME,
    APOLOGY_ISSUED,
    FINISHED,
    MULTIPLE_SUPPLEMENTS,
    OPEN,
    WAITING_ON_APPLICANT,
    DossierFacts,
)
from projections.fold import Counters, add_into
from projections.layout import Plan, SubjectLayout
from projections.periods import Period
from projections.ruleset import Ruleset
from projections.scoring import build_scorecard


class UnknownAgencyError(LookupError):
    pass


@dataclass(frozen=True)
class Tree:
    """The agency tree as the catalog and the dossiers know it."""

    parent: dict[str, str | None]
    children: dict[str, list[str]]
    level: dict[str, str]
    name: dict[str, str]

    @classmethod
    def build(cls, counters: Counters) -> Tree:
        parent: dict[str, str | None] = {}
        level: dict[str, str] = {}
        name: dict[str, str] = {}
        for aid, e in counters.agencies.items():
            parent[aid] = e.get("parent_id")
            level[aid] = e.get("level", "")
            name[aid] = e.get("name", aid)
        for aid, _ in list(counters.cells) + list(counters.fb_cells):
            parent.setdefault(aid, None)
            level.setdefault(aid, "")
            name.setdefault(aid, aid)
        children: dict[str, list[str]] = {a: [] for a in parent}
        for a, p in list(parent.items()):  # (a parent not registered yet is added as a root)
            if p is not None:
                children.setdefault(p, []).append(a)
                parent.setdefault(p, None)
                level.setdefault(p, "")
                name.setdefault(p, p)
        return cls(parent, children, level, name)

    @classmethod
    def of(cls, counters: Counters) -> Tree:
        """The tree of ``counters``, built once per version of them (``Counters.derived``);
        read-only, shared by the queries of that version."""
        return counters.derived("tree", lambda: cls.build(counters))

    def subtree(self, agency_id: str) -> set[str]:
        out: set[str] = set()
        stack = [agency_id]
        while stack:
            a = stack.pop()
            if a in out:
                continue
            out.add(a)
            stack.extend(self.children.get(a, ()))
        return out

    def root(self, agency_id: str) -> str:
        seen = set()
        a = agency_id
        while self.parent.get(a) is not None and a not in seen:
            seen.add(a)
            a = self.parent[a]  # type: ignore[assignment]
        return a


@dataclass
class Sums:
    """The counters of a view (an agency subtree over a period, judged at E), added up."""

    dossier: list[int]
    feedback: list[int]
    open_ok: list[int]  # open dossiers on time at E, per timely feature
    fb_open_ok: list[int]
    per_proc: dict[str, list[int]]


def gather(counters: Counters, agencies: Iterable[str], months: Iterable[str],
           e_day: int, procs: bool = True) -> Sums:
    """Add up the cells, the open histograms (due day ≥ E's date) and the per-procedure
    vectors of some agencies and months (``procs=False``: not the per-procedure vectors, for
    a caller that reads no criterion with a procedure attribute; ``per_proc`` stays empty)."""
    dl, fl = counters.dl, counters.fl
    s = Sums([0] * dl.slots, [0] * fl.slots, [0] * len(dl.timely), [0] * len(fl.timely), {})
    cells, fb_cells = counters.cells, counters.fb_cells
    months = tuple(months)
    for a in agencies:
        for m in months:
            key = (a, m)
            cell = cells.get(key)
            if cell is not None:
                add_into(s.dossier, cell)
                for day, vec in counters.open_due[key].items():
                    if day >= e_day:
                        add_into(s.open_ok, vec)
                if procs:
                    for pid, vec in counters.procs[key].items():
                        acc = s.per_proc.get(pid)
                        if acc is None:
                            s.per_proc[pid] = list(vec)
                        else:
                            add_into(acc, vec)
            fcell = fb_cells.get(key)
            if fcell is not None:
                add_into(s.feedback, fcell)
                for day, vec in counters.fb_open_due[key].items():
                    if day >= e_day:
                        add_into(s.fb_open_ok, vec)
    return s


def _attr(procedures: dict[str, dict[str, Any]], pid: str, name: str) -> bool:
    e = procedures.get(pid)
    return bool(e and e.get(name))  # unknown procedure: attributes count as false (§4)


def subject_counts(plan: Plan, lay: SubjectLayout, cell: list[int], open_ok: list[int],
                   per_proc: dict[str, list[int]],
                   procedures: dict[str, dict[str, Any]]) -> tuple[int, int]:
    """(numerator, denominator) of one dossier or feedback criterion from a view's sums."""
    pi = lay.proc_index
    if plan.den_attr is not None:
        num = den = 0
        for pid, v in per_proc.items():
            if _attr(procedures, pid, plan.den_attr):
                den += v[pi[plan.den]]
                num += v[pi[plan.num]]
        return num, den
    den = cell[plan.den]
    if plan.alt is not None:
        assert plan.alt_attr is not None
        num = sum(v[pi[plan.alt if _attr(procedures, pid, plan.alt_attr) else plan.num]]
                  for pid, v in per_proc.items())
        return num, den
    if plan.sum_slot is not None:
        return cell[plan.sum_slot], den
    if plan.timely is not None:
        return cell[lay.n_features + plan.timely] + open_ok[plan.timely], den
    return cell[plan.num], den


def procedure_members(counters: Counters, agencies: set[str], per_proc: dict[str, list[int]],
                      c: ProcedureCriterion,
                      memo: dict[Any, Any] | None = None) -> tuple[set[str], set[str]]:
    """A procedure criterion as (numerator, denominator) sets of procedure ids: the subtree's
    own current procedures with the attribute, and those with a qualifying dossier.

    With ``memo`` (many agencies of the same counters) the procedures are indexed once by
    implementing agency, the same rule looked up instead of scanned."""
    if memo is None:
        den = {e["procedure_id"] for e in counters.procedures.values()
               if active(e) and e.get(c.proc_attr)
               and agencies.intersection(e.get("implementing_agency_ids", ()))}
    else:
        index = memo.get(("procedures by agency", c.proc_attr))
        if index is None:
            index = memo[("procedures by agency", c.proc_attr)] = {}
            for e in counters.procedures.values():
                if active(e) and e.get(c.proc_attr):
                    for a in e.get("implementing_agency_ids", ()):
                        index.setdefault(a, set()).add(e["procedure_id"])
        den = set().union(*(index[a] for a in agencies if a in index))
    slot = counters.layout.procedure_slots[c.code]
    return {p for p in den if p in per_proc and per_proc[p][slot] > 0}, den


def catalog_context(ruleset: Ruleset, period: Period, view_end: datetime) -> CatalogContext:
    return CatalogContext(period.start, min(period.end, local_date(view_end)), ruleset.calendar,
                          ruleset.publish_on_time_working_days,
                          ruleset.public_update_working_days)


def catalog_members(counters: Counters, authority: str, ctx: CatalogContext,
                    c: CatalogCriterion) -> tuple[set[str], set[str]]:
    """A catalog criterion for a publishing authority (spec §3) as (numerator, denominator)
    sets of procedure ids."""
    num: set[str] = set()
    den: set[str] = set()
    for e in counters.procedures.values():
        if e.get("authority_id") != authority:
            continue
        in_num, in_den = c.judge(e, ctx)
        if in_den:
            den.add(e["procedure_id"])
            if in_num:
                num.add(e["procedure_id"])
    return num, den


def counts_for(
    counters: Counters, ruleset: Ruleset, tree: Tree, agency_id: str, period: Period,
    now: datetime, memo: dict[Any, Any] | None = None,
) -> tuple[dict[str, tuple[int, int]], datetime]:
    """Numerator and denominator of every criterion for an agency's subtree over a period.

    ``memo`` (optional, for many calls on the same counters) keeps the catalog criteria's
    counts of a publishing authority (every agency under it shows the same values) and an
    index of the procedures by implementing agency."""
    view_end = period.view_end(now)
    agencies = tree.subtree(agency_id)
    s = gather(counters, agencies, period.months, local_date(view_end).toordinal())
    registry = counters.layout.registry
    counts: dict[str, tuple[int, int]] = {}
    for lay, cell, open_ok in ((counters.dl, s.dossier, s.open_ok),
                               (counters.fl, s.feedback, s.fb_open_ok)):
        for code, plan in lay.plans.items():
            counts[code] = subject_counts(plan, lay, cell, open_ok, s.per_proc,
                                          counters.procedures)
    for pc in registry.procedure_criteria():
        num, den = procedure_members(counters, agencies, s.per_proc, pc, memo)
        counts[pc.code] = (len(num), len(den))
    ctx = catalog_context(ruleset, period, view_end)
    authority = tree.root(agency_id)
    for cc in registry.catalog_criteria():
        key = (cc.code, authority, ctx.start, ctx.last, ruleset.name)
        hit = memo.get(key) if memo is not None else None
        if hit is None:
            num, den = catalog_members(counters, authority, ctx, cc)
            hit = (len(num), len(den))
            if memo is not None:
                memo[key] = hit
        counts[cc.code] = hit
    return counts, view_end


def scorecard(
    counters: Counters, ruleset: Ruleset, agency_id: str, period: Period, now: datetime,
    tree: Tree | None = None,
) -> dict[str, Any]:
    """The full scorecard JSON of ``contract/interface.md``."""
    tree = tree or Tree.build(counters)
    if agency_id not in tree.parent:
        raise UnknownAgencyError(agency_id)
    counts, view_end = counts_for(counters, ruleset, tree, agency_id, period, now)
    card = build_scorecard(ruleset, counts, agency_id=agency_id, period=period.label,
                           view_end=view_end.astimezone(VN_TZ).isoformat(timespec="seconds"))
    card["agency_name"] = tree.name.get(agency_id, agency_id)
    card["level"] = tree.level.get(agency_id, "")
    return card


def ranking(
    counters: Counters, ruleset: Ruleset, period: Period, now: datetime,
    level: str | None = None, agencies: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Agencies ranked by total, ties broken by agency id (spec §5)."""
    tree = Tree.build(counters)
    ids = list(agencies) if agencies is not None else sorted(tree.parent)
    if level:
        ids = [a for a in ids if tree.level.get(a) == level]
    rows = []
    view_end = period.view_end(now)
    for a in ids:
        card = scorecard(counters, ruleset, a, period, now, tree)
        rows.append({
            "agency_id": a, "agency_name": card["agency_name"], "level": card["level"],
            "parent_id": tree.parent.get(a), "total": card["total"],
            "classification": card["classification"],
            "groups": {g["key"]: g["score"] for g in card["groups"]},
        })
    rows.sort(key=lambda r: (-r["total"], r["agency_id"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return {"period": period.label, "view_end": view_end.astimezone(VN_TZ).isoformat(
        timespec="seconds"), "ruleset": ruleset.name, "level": level, "ranking": rows}


def overdue_list(
    rows: Iterable[tuple[str, list[Any]]], counters: Counters, ruleset: Ruleset,
    agency_id: str, period: Period, now: datetime,
) -> dict[str, Any]:
    """The late-dossier list provinces publish: finished late, or open past due at E."""
    view_end = period.view_end(now)
    e_date = local_date(view_end)
    e_day = e_date.toordinal()
    cal = ruleset.calendar
    out = []
    for dossier_id, row in rows:
        f = DossierFacts._make(row)
        late = f.judged == 0 or (f.judged == OPEN and f.due_day < e_day)
        if not late:
            continue
        due = date.fromordinal(f.due_day)
        finished = bool(f.flags & FINISHED)
        end = date.fromordinal(f.end_day) if finished and f.end_day > 0 else None
        upto = end if end is not None else e_date
        out.append({
            "dossier_id": dossier_id,
            "agency_id": f.agency,
            "agency_name": counters.agencies.get(f.agency, {}).get("name", f.agency),
            "procedure_id": f.procedure,
            "reception_month": f.month,
            "due_date": due.isoformat(),
            "status": ("finished" if finished else
                       "waiting_on_applicant" if f.flags & WAITING_ON_APPLICANT else "open"),
            "end_date": end.isoformat() if end else None,
            "days_late": max(cal.working_days_between(due, upto), 0),
            "multiple_supplements": bool(f.flags & MULTIPLE_SUPPLEMENTS),
            "apology_issued": bool(f.flags & APOLOGY_ISSUED),
            "apology_in_time": bool(f.flags & APOLOGY_IN_TIME),
        })
    out.sort(key=lambda r: (-r["days_late"], r["dossier_id"]))
    return {"agency_id": agency_id, "period": period.label,
            "view_end": view_end.astimezone(VN_TZ).isoformat(timespec="seconds"),
            "count": len(out), "dossiers": out}
