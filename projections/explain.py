"""``motcua explain``: the dossiers, feedback or procedures behind a criterion's figure.

A province looking for its lost points wants the list of what is in the denominator but not in
the numerator, and why. Each subject is classified with the same rules as the counters
(``views.dossier_membership`` and friends), so the lists add up to the scorecard's figures.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from engine import facts as F
from engine.ruleset import Ruleset
from kernel.calendar import VN_TZ, local_date
from projections import fold as K
from projections.fold import Counters
from projections.periods import Period
from projections.store import ViewStore
from projections.views import (
    Tree,
    UnknownAgencyError,
    catalog_sets,
    dossier_membership,
    feedback_membership,
    procedure_sets,
)

DOSSIER_CODES = frozenset(dossier_membership([
    "", "", "", 0, 1, 0, 0, -1], {}, 1))
FEEDBACK_CODES = frozenset(feedback_membership(["", "", "", 0, 1, 0], 1))
PROCEDURE_CODES = frozenset({"PAYMENT_FORMALITY_FEE_DOSSIER", "PAYMENT_FORMALITY_TRANSACTION",
                             "CITIZEN_DATA_CONNECTED_FORMALITY"})
CATALOG_CODES = frozenset({"PUBLISH_ON_TIME", "PUBLIC_UPDATE_ON_TIME", "PUBLIC_CONTENT_FULL"})


def _why_dossier(code: str, f: list[Any], e_day: int) -> str:
    flags, judged = f[F.FLAGS], f[F.JUDGED]
    due = date.fromordinal(f[F.DUE_DAY]).isoformat()
    if code in ("ON_TIME", "DOSSIER_RECEIVING_SATISFACTION"):
        reasons = []
        if judged == 0:
            reasons.append("more than one supplement request" if flags & F.MULTIPLE_SUPPLEMENTS
                           else f"finished after its due time ({due})")
        elif judged == F.OPEN and f[F.DUE_DAY] < e_day:
            reasons.append(f"still open past its due date {due}")
        if code == "DOSSIER_RECEIVING_SATISFACTION":
            if flags & F.RATED_UNSATISFIED:
                reasons.append("rated not satisfied")
            if flags & F.FEEDBACK_LINKED:
                reasons.append("has feedback about it")
        return "; ".join(reasons) or "counted"
    missing = {
        "DOSSIER_SYNC": "not synced to the national portal",
        "ONLINE_FULL_PROCESS": "not processed fully online",
        "PAYMENT_DOSSIER_ONLINE": "fee not paid online",
        "ORIGINAL_RESULT_AVAILABLE": "no electronic result",
        "DOSSIER_DIGITIZED": "not digitized (or no e-result where a paper result is required)",
        "REUSED_DIGITIZED_DATA": "did not reuse digitized data",
        "SYNCED_WITH_DVCQG_PERSONAL_STORAGE": "nothing taken from or pushed to the citizen's "
                                              "data repository",
        "CITIZEN_DATA_CONNECTED_DOSSIER": "population data not used",
        "ELECTRONIC_CERTIFIED_COPY": "no electronic result",
        "AVG_PROCESSING_TIME": "not finished",
    }
    return missing.get(code, "not counted")


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
    e_day = local_date(view_end).toordinal()
    agencies = tree.subtree(agency_id)
    out: dict[str, Any] = {
        "agency_id": agency_id, "period": period.label,
        "view_end": view_end.astimezone(VN_TZ).isoformat(timespec="seconds"),
        "criterion": {"id": criterion.id, "code": criterion.code, "name_vi": criterion.name_vi,
                      "name_en": criterion.name_en},
    }
    counted: list[dict[str, Any]] = []
    not_counted: list[dict[str, Any]] = []
    if code in DOSSIER_CODES or code in FEEDBACK_CODES:
        kind = "dossier" if code in DOSSIER_CODES else "feedback"
        rows = views.subject_rows("dossiers" if kind == "dossier" else "feedback", agencies,
                                  period.months)
        numerator = denominator = 0
        for sid, f in sorted(rows):
            if kind == "dossier":
                in_num, in_den = dossier_membership(f, counters.procedures, e_day)[code]
            else:
                in_num, in_den = feedback_membership(f, e_day)[code]
            if not in_den:
                continue
            item = {"id": sid, "agency_id": f[0], "month": f[1]}
            if kind == "dossier":
                item["procedure_id"] = f[2]
                item["due_date"] = date.fromordinal(f[F.DUE_DAY]).isoformat()
            if code == "AVG_PROCESSING_TIME":
                numerator += max(f[F.PROCESSING_DAYS], 0)
                item["processing_days"] = f[F.PROCESSING_DAYS]
                counted.append(item)
                denominator += 1
                continue
            denominator += 1
            if in_num:
                numerator += 1
                counted.append(item)
            else:
                item["why"] = (_why_dossier(code, f, e_day) if kind == "dossier"
                               else _why_feedback(code, f, e_day))
                not_counted.append(item)
        out.update(kind=kind, numerator=numerator, denominator=denominator)
    else:
        if code in PROCEDURE_CODES:
            per_proc: dict[str, list[int]] = {}
            for a in agencies:
                for m in period.months:
                    for pid, vec in counters.procs.get((a, m), {}).items():
                        acc = per_proc.setdefault(pid, [0] * K.SLOTS)
                        for i, v in enumerate(vec):
                            acc[i] += v
            num, den = procedure_sets(counters, agencies, per_proc)[code]
        elif code in CATALOG_CODES:
            num, den = catalog_sets(counters, ruleset, tree.root(agency_id), period,
                                    view_end)[code]
        else:  # shown-only criteria with no subject list
            num, den = set(), set()
        for pid in sorted(den):
            item = {"id": pid, "name": counters.procedures.get(pid, {}).get("name", pid)}
            if pid in num:
                counted.append(item)
            else:
                item["why"] = _why_procedure(code)
                not_counted.append(item)
        out.update(kind="procedure", numerator=len(num), denominator=len(den))
    out["counted"] = counted
    out["not_counted"] = not_counted
    return out


def _why_feedback(code: str, f: list[Any], e_day: int) -> str:
    if code.startswith("PETITION_CLASSIFICATION"):
        return f"classified as {f[2]}"
    reasons = []
    if f[F.JUDGED] == 0:
        reasons.append("answered after 15 working days")
    elif f[F.JUDGED] == F.OPEN and f[F.DUE_DAY] < e_day:
        reasons.append("unanswered past 15 working days")
    if code == "PETITION_HANDLING_SATISFACTION":
        if f[F.FLAGS] & F.FB_RATED_UNSATISFIED:
            reasons.append("rated not satisfied")
        if f[F.FLAGS] & F.FB_RECOMPLAINED:
            reasons.append("complained about again")
    return "; ".join(reasons) or "not counted"


def _why_procedure(code: str) -> str:
    return {
        "PAYMENT_FORMALITY_FEE_DOSSIER": "no fee-bearing dossier in the period",
        "PAYMENT_FORMALITY_TRANSACTION": "no dossier paid online in the period",
        "CITIZEN_DATA_CONNECTED_FORMALITY": "no dossier used population data in the period",
        "PUBLISH_ON_TIME": "a publication decision was late for its legal basis",
        "PUBLIC_UPDATE_ON_TIME": "not made public in the national database in time",
        "PUBLIC_CONTENT_FULL": "published parts incomplete",
    }.get(code, "not counted")
