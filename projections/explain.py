"""``motcua explain``: the dossiers, feedback or procedures behind a criterion's figure.

A province looking for its lost points wants the list of what is in the denominator but not in
the numerator, and why. Each subject is classified by the criterion's own declaration in the
registry (``projections.criteria.membership``), the same one the counters are compiled from, so
the lists add up to the scorecard's figures.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from kernel.calendar import VN_TZ, local_date
from projections.controlsheet import hours, seconds
from projections.criteria import (
    CatalogCriterion,
    ProcedureCriterion,
    SubjectCriterion,
    late_why,
    membership,
)
from projections.delays import attribution_at
from projections.facts import DossierFacts, FeedbackFacts
from projections.fold import Counters
from projections.periods import Period
from projections.ruleset import Ruleset
from projections.store import ViewStore
from projections.views import (
    Tree,
    UnknownAgencyError,
    catalog_context,
    catalog_members,
    gather,
    procedure_members,
)


def explain(
    views: ViewStore, counters: Counters, ruleset: Ruleset, agency_id: str, period: Period,
    now: datetime, code: str,
) -> dict[str, Any]:
    """The subjects behind the numerator and denominator of one criterion."""
    criterion = ruleset.criterion(code)
    tree = Tree.build(counters)
    if agency_id not in tree.parent:
        raise UnknownAgencyError(agency_id)
    view_end = period.view_end(now)
    out: dict[str, Any] = {
        "agency_id": agency_id, "period": period.label,
        "view_end": view_end.astimezone(VN_TZ).isoformat(timespec="seconds"),
        "ruleset": ruleset.name,
        "criterion": {"id": criterion.id, "code": criterion.code, "name_vi": criterion.name_vi,
                      "name_en": criterion.name_en},
    }
    declared = counters.layout.registry.by_code[code]
    if isinstance(declared, SubjectCriterion):
        out.update(_subjects(views, counters, ruleset, tree.subtree(agency_id), period,
                             view_end, declared))
    else:
        out.update(_procedures(counters, ruleset, tree, agency_id, period, view_end, declared))
    return out


def _subjects(views: ViewStore, counters: Counters, ruleset: Ruleset, agencies: set[str],
              period: Period, view_end: datetime, c: SubjectCriterion) -> dict[str, Any]:
    e_day = local_date(view_end).toordinal()
    table = "dossiers" if c.subject == "dossier" else "feedback"
    answer_days = ruleset.lifecycle.petition_answer_working_days
    counted: list[dict[str, Any]] = []
    not_counted: list[dict[str, Any]] = []
    numerator = denominator = 0
    for sid, row in sorted(views.subject_rows(table, agencies, period.months)):
        item: dict[str, Any] = {"id": sid, "agency_id": row[0], "month": row[1]}
        attrs = None
        if c.subject == "dossier":
            f = DossierFacts._make(row)
            attrs = counters.procedures.get(f.procedure)
            item["procedure_id"] = f.procedure
            item["due_date"] = date.fromordinal(f.due_day).isoformat()
            flags, judged, due_day = f.flags, f.judged, f.due_day
        else:
            fb = FeedbackFacts._make(row[:6])
            flags, judged, due_day = fb.flags, fb.judged, fb.due_day
        in_num, in_den, why = membership(c, flags, judged, due_day, attrs, e_day, answer_days)
        if not in_den:
            continue
        denominator += 1
        if c.sum_of is not None:
            value = max(int(row[DossierFacts._fields.index(c.sum_of)]), 0)
            numerator += value
            item[c.sum_of] = row[DossierFacts._fields.index(c.sum_of)]
            counted.append(item)
        elif in_num:
            numerator += 1
            counted.append(item)
        else:
            item["why"] = "; ".join(why) or "not counted"
            if c.timely and c.subject == "dossier" and late_why(
                    "dossier", f.judged, f.due_day, f.flags, e_day, answer_days):
                item["lost_by"] = lost_by(f, view_end, ruleset)
            not_counted.append(item)
    return {"kind": c.subject, "numerator": numerator, "denominator": denominator,
            "counted": counted, "not_counted": not_counted}


def lost_by(f: DossierFacts, view_end: datetime, ruleset: Ruleset) -> list[dict[str, Any]]:
    """Which steps and holders made a late dossier late (accountability §3)."""
    if f.attrib is not None:
        attrib = [tuple(a) for a in f.attrib]
    elif f.sheet is not None:
        attrib = attribution_at(f, seconds(view_end), ruleset)
    else:
        return []
    return [{"step": a[2], "unit": a[0], "official": a[1], "overrun_hours": hours(int(a[3]))}
            for a in attrib]


def _procedures(counters: Counters, ruleset: Ruleset, tree: Tree, agency_id: str,
                period: Period, view_end: datetime,
                c: ProcedureCriterion | CatalogCriterion) -> dict[str, Any]:
    if isinstance(c, ProcedureCriterion):
        agencies = tree.subtree(agency_id)
        s = gather(counters, agencies, period.months, local_date(view_end).toordinal())
        num, den = procedure_members(counters, agencies, s.per_proc, c)
    else:
        num, den = catalog_members(counters, tree.root(agency_id),
                                   catalog_context(ruleset, period, view_end), c)
    counted: list[dict[str, Any]] = []
    not_counted: list[dict[str, Any]] = []
    for pid in sorted(den):
        item = {"id": pid, "name": counters.procedures.get(pid, {}).get("name", pid)}
        if pid in num:
            counted.append(item)
        else:
            item["why"] = c.why
            not_counted.append(item)
    return {"kind": "procedure", "numerator": len(num), "denominator": len(den),
            "counted": counted, "not_counted": not_counted}
