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

from engine.calendar import VN_TZ, local_date
from engine.ruleset import Ruleset
from projections import fold as K
from projections.fold import Counters
from projections.periods import Period
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
        for a, p in parent.items():
            if p is not None:
                children.setdefault(p, []).append(a)
                parent.setdefault(p, None)
        return cls(parent, children, level, name)

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


def _sum_into(acc: list[int], vec: list[int]) -> None:
    for i, v in enumerate(vec):
        if v:
            acc[i] += v


def _active(entry: dict[str, Any]) -> bool:
    return entry.get("repealed") is None


def counts_for(
    counters: Counters, ruleset: Ruleset, tree: Tree, agency_id: str, period: Period,
    now: datetime,
) -> tuple[dict[str, tuple[int, int]], datetime]:
    """Numerator and denominator of every criterion for an agency's subtree over a period."""
    view_end = period.view_end(now)
    e_day = local_date(view_end).toordinal()
    agencies = tree.subtree(agency_id)
    months = period.months
    d = [0] * K.SLOTS
    fb = [0] * K.FB_SLOTS
    open_ok = open_clean_ok = fb_open_ok = fb_open_clean_ok = 0
    per_proc: dict[str, list[int]] = {}
    cells = counters.cells
    for a in agencies:
        for m in months:
            key = (a, m)
            cell = cells.get(key)
            if cell is not None:
                _sum_into(d, cell)
                for day, (n, clean) in counters.open_due[key].items():
                    if day >= e_day:
                        open_ok += n
                        open_clean_ok += clean
                for pid, vec in counters.procs[key].items():
                    acc = per_proc.get(pid)
                    if acc is None:
                        per_proc[pid] = list(vec)
                    else:
                        _sum_into(acc, vec)
            fcell = counters.fb_cells.get(key)
            if fcell is not None:
                _sum_into(fb, fcell)
                for day, (n, clean) in counters.fb_open_due[key].items():
                    if day >= e_day:
                        fb_open_ok += n
                        fb_open_clean_ok += clean
    procs = counters.procedures

    def attr(pid: str, name: str) -> bool:
        e = procs.get(pid)
        return bool(e and e.get(name))  # unknown procedure: attributes count as false (§4)

    eligible_n = eligible_full = cert_n = cert_e = dig_ok = 0
    for pid, v in per_proc.items():
        if attr(pid, "full_online_eligible"):
            eligible_n += v[K.N]
            eligible_full += v[K.FULL_ONLINE]
        if attr(pid, "certified_copy"):
            cert_n += v[K.N]
            cert_e += v[K.E_RESULT]
        dig_ok += v[K.DIG_ERES] if attr(pid, "paper_result_required") else v[K.DIGITIZED]

    # Procedure criteria: the agency subtree's own, current (not repealed) procedures.
    own = [e for e in procs.values()
           if _active(e) and agencies.intersection(e.get("implementing_agency_ids", ()))]
    fee_procs = {e["procedure_id"] for e in own if e.get("fee_bearing")}
    ind_procs = {e["procedure_id"] for e in own if e.get("individual_applicants")}
    fee_any = sum(1 for p in fee_procs if per_proc.get(p, [0] * K.SLOTS)[K.FEE] > 0)
    fee_paid = sum(1 for p in fee_procs if per_proc.get(p, [0] * K.SLOTS)[K.FEE_PAID] > 0)
    pop_any = sum(1 for p in ind_procs if per_proc.get(p, [0] * K.SLOTS)[K.POP] > 0)

    catalog = catalog_counts(counters, ruleset, tree.root(agency_id), period, view_end)
    n = d[K.N]
    counts: dict[str, tuple[int, int]] = {
        **catalog,
        "DOSSIER_SYNC": (d[K.SYNCED], n),
        "ON_TIME": (d[K.ON_TIME] + open_ok, n),
        "AVG_PROCESSING_TIME": (d[K.PDAYS], d[K.FINISHED]),
        "ONLINE_FULL_PROCESS": (eligible_full, eligible_n),
        "PAYMENT_DOSSIER_ONLINE": (d[K.FEE_PAID], d[K.FEE]),
        "PAYMENT_FORMALITY_FEE_DOSSIER": (fee_any, len(fee_procs)),
        "PAYMENT_FORMALITY_TRANSACTION": (fee_paid, len(fee_procs)),
        "ORIGINAL_RESULT_AVAILABLE": (d[K.E_RESULT], n),
        "DOSSIER_DIGITIZED": (dig_ok, n),
        "REUSED_DIGITIZED_DATA": (d[K.REUSED], n),
        "SYNCED_WITH_DVCQG_PERSONAL_STORAGE": (d[K.REPO], n),
        "CITIZEN_DATA_CONNECTED_FORMALITY": (pop_any, len(ind_procs)),
        "CITIZEN_DATA_CONNECTED_DOSSIER": (d[K.POP], n),
        "ELECTRONIC_CERTIFIED_COPY": (cert_e, cert_n),
        "PETITION_CLASSIFICATION_TTHC": (fb[K.FB_PROCEDURE], fb[K.FB_N]),
        "PETITION_CLASSIFICATION_STAFF": (fb[K.FB_STAFF], fb[K.FB_N]),
        "PETITION_PROCESSING_ON_TIME": (fb[K.FB_ON_TIME] + fb_open_ok, fb[K.FB_N]),
        "PETITION_HANDLING_SATISFACTION": (fb[K.FB_GOOD] + fb_open_clean_ok, fb[K.FB_N]),
        "DOSSIER_RECEIVING_SATISFACTION": (d[K.GOOD54] + open_clean_ok, n),
    }
    return counts, view_end


def catalog_counts(
    counters: Counters, ruleset: Ruleset, authority: str, period: Period, view_end: datetime,
) -> dict[str, tuple[int, int]]:
    """1.1, 1.2 and 1.3 for a publishing authority (spec §3, catalog criteria)."""
    cal = ruleset.calendar
    e_day = local_date(view_end)
    last = min(period.end, e_day)
    published = on_time = public_on_time = 0
    current = complete = 0
    for e in counters.procedures.values():
        if e.get("authority_id") != authority:
            continue
        publicized = [local_date(datetime.fromisoformat(t)) for t in e.get("publicized", ())]
        in_period = [dec for dec in e.get("decisions", ())
                     if period.start <= date.fromisoformat(dec["decision_date"]) <= last]
        if in_period:
            published += 1
            ok_publish = ok_public = True
            for dec in in_period:
                level = dec.get("authority_level", "province")
                dd = date.fromisoformat(dec["decision_date"])
                n = ruleset.publish_on_time_working_days.get(level, 5)
                mm = ruleset.public_update_working_days.get(level, 5)
                if cal.add_working_days(dd, n) > date.fromisoformat(dec["legal_basis_effective_date"]):
                    ok_publish = False
                deadline = cal.add_working_days(dd, mm)
                if not any(dd <= p <= deadline for p in publicized):
                    ok_public = False
            on_time += ok_publish
            public_on_time += ok_public
        if publicized and _active(e):
            current += 1
            complete += bool(e.get("parts_complete"))
    return {
        "PUBLISH_ON_TIME": (on_time, published),
        "PUBLIC_UPDATE_ON_TIME": (public_on_time, published),
        "PUBLIC_CONTENT_FULL": (complete, current),
    }


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
    from engine import facts as F

    view_end = period.view_end(now)
    e_date = local_date(view_end)
    e_day = e_date.toordinal()
    cal = ruleset.calendar
    out = []
    for dossier_id, f in rows:
        judged, due_day, flags = f[F.JUDGED], f[F.DUE_DAY], f[F.FLAGS]
        late = judged == 0 or (judged == F.OPEN and due_day < e_day)
        if not late:
            continue
        due = date.fromordinal(due_day)
        finished = bool(flags & F.FINISHED)
        end = date.fromordinal(f[F.END_DAY]) if finished and f[F.END_DAY] > 0 else None
        upto = end if end is not None else e_date
        out.append({
            "dossier_id": dossier_id,
            "agency_id": f[F.AGENCY],
            "agency_name": counters.agencies.get(f[F.AGENCY], {}).get("name", f[F.AGENCY]),
            "procedure_id": f[F.PROCEDURE],
            "reception_month": f[F.MONTH],
            "due_date": due.isoformat(),
            "status": ("finished" if finished else
                       "waiting_on_applicant" if flags & F.WAITING_ON_APPLICANT else "open"),
            "end_date": end.isoformat() if end else None,
            "days_late": max(cal.working_days_between(due, upto), 0),
            "multiple_supplements": bool(flags & F.MULTIPLE_SUPPLEMENTS),
            "apology_issued": bool(flags & F.APOLOGY_ISSUED),
            "apology_in_time": bool(flags & F.APOLOGY_IN_TIME),
        })
    out.sort(key=lambda r: (-r["days_late"], r["dossier_id"]))
    return {"agency_id": agency_id, "period": period.label,
            "view_end": view_end.astimezone(VN_TZ).isoformat(timespec="seconds"),
            "count": len(out), "dossiers": out}
