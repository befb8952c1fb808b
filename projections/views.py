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

from engine.ruleset import Ruleset
from kernel.calendar import VN_TZ, local_date
from projections import fold as K
from projections.fold import Counters, add_into
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
                add_into(d, cell)
                for day, (n, clean) in counters.open_due[key].items():
                    if day >= e_day:
                        open_ok += n
                        open_clean_ok += clean
                for pid, vec in counters.procs[key].items():
                    acc = per_proc.get(pid)
                    if acc is None:
                        per_proc[pid] = list(vec)
                    else:
                        add_into(acc, vec)
            fcell = counters.fb_cells.get(key)
            if fcell is not None:
                add_into(fb, fcell)
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

    sets = procedure_sets(counters, agencies, per_proc)
    catalog = catalog_sets(counters, ruleset, tree.root(agency_id), period, view_end)
    n = d[K.N]
    counts: dict[str, tuple[int, int]] = {
        **{code: (len(num), len(den)) for code, (num, den) in catalog.items()},
        "DOSSIER_SYNC": (d[K.SYNCED], n),
        "ON_TIME": (d[K.ON_TIME] + open_ok, n),
        "AVG_PROCESSING_TIME": (d[K.PDAYS], d[K.FINISHED]),
        "ONLINE_FULL_PROCESS": (eligible_full, eligible_n),
        "PAYMENT_DOSSIER_ONLINE": (d[K.FEE_PAID], d[K.FEE]),
        **{code: (len(num), len(den)) for code, (num, den) in sets.items()},
        "ORIGINAL_RESULT_AVAILABLE": (d[K.E_RESULT], n),
        "DOSSIER_DIGITIZED": (dig_ok, n),
        "REUSED_DIGITIZED_DATA": (d[K.REUSED], n),
        "SYNCED_WITH_DVCQG_PERSONAL_STORAGE": (d[K.REPO], n),
        "CITIZEN_DATA_CONNECTED_DOSSIER": (d[K.POP], n),
        "ELECTRONIC_CERTIFIED_COPY": (cert_e, cert_n),
        "PETITION_CLASSIFICATION_TTHC": (fb[K.FB_PROCEDURE], fb[K.FB_N]),
        "PETITION_CLASSIFICATION_STAFF": (fb[K.FB_STAFF], fb[K.FB_N]),
        "PETITION_PROCESSING_ON_TIME": (fb[K.FB_ON_TIME] + fb_open_ok, fb[K.FB_N]),
        "PETITION_HANDLING_SATISFACTION": (fb[K.FB_GOOD] + fb_open_clean_ok, fb[K.FB_N]),
        "DOSSIER_RECEIVING_SATISFACTION": (d[K.GOOD54] + open_clean_ok, n),
    }
    return counts, view_end


def procedure_sets(
    counters: Counters, agencies: set[str], per_proc: dict[str, list[int]],
) -> dict[str, tuple[set[str], set[str]]]:
    """3.5, 3.5b and 4.5a as (numerator, denominator) sets of procedure ids: the subtree's own
    current (not repealed) procedures, and those with a qualifying dossier in the period."""
    own = [e for e in counters.procedures.values()
           if _active(e) and agencies.intersection(e.get("implementing_agency_ids", ()))]
    fee = {e["procedure_id"] for e in own if e.get("fee_bearing")}
    ind = {e["procedure_id"] for e in own if e.get("individual_applicants")}

    def having(ids: set[str], slot: int) -> set[str]:
        return {p for p in ids if p in per_proc and per_proc[p][slot] > 0}

    return {
        "PAYMENT_FORMALITY_FEE_DOSSIER": (having(fee, K.FEE), fee),
        "PAYMENT_FORMALITY_TRANSACTION": (having(fee, K.FEE_PAID), fee),
        "CITIZEN_DATA_CONNECTED_FORMALITY": (having(ind, K.POP), ind),
    }


def catalog_sets(
    counters: Counters, ruleset: Ruleset, authority: str, period: Period, view_end: datetime,
) -> dict[str, tuple[set[str], set[str]]]:
    """1.1, 1.2 and 1.3 for a publishing authority (spec §3) as (numerator, denominator) sets."""
    cal = ruleset.calendar
    last = min(period.end, local_date(view_end))
    published: set[str] = set()
    on_time: set[str] = set()
    public_on_time: set[str] = set()
    current: set[str] = set()
    complete: set[str] = set()
    for e in counters.procedures.values():
        if e.get("authority_id") != authority:
            continue
        pid = e["procedure_id"]
        publicized = [local_date(datetime.fromisoformat(t)) for t in e.get("publicized", ())]
        in_period = [dec for dec in e.get("decisions", ())
                     if period.start <= date.fromisoformat(dec["decision_date"]) <= last]
        if in_period:
            published.add(pid)
            ok_publish = ok_public = True
            for dec in in_period:
                level = dec.get("authority_level", "province")
                dd = date.fromisoformat(dec["decision_date"])
                n = ruleset.publish_on_time_working_days.get(level, 5)
                mm = ruleset.public_update_working_days.get(level, 5)
                effective = date.fromisoformat(dec["legal_basis_effective_date"])
                if cal.add_working_days(dd, n) > effective:
                    ok_publish = False
                deadline = cal.add_working_days(dd, mm)
                if not any(dd <= p <= deadline for p in publicized):
                    ok_public = False
            if ok_publish:
                on_time.add(pid)
            if ok_public:
                public_on_time.add(pid)
        if publicized and _active(e):
            current.add(pid)
            if e.get("parts_complete"):
                complete.add(pid)
    return {
        "PUBLISH_ON_TIME": (on_time, published),
        "PUBLIC_UPDATE_ON_TIME": (public_on_time, published),
        "PUBLIC_CONTENT_FULL": (complete, current),
    }


def dossier_membership(f: list[Any], procedures: dict[str, dict[str, Any]],
                       view_end_day: int) -> dict[str, tuple[bool, bool]]:
    """How one dossier counts in each dossier criterion: (in numerator, in denominator).

    The same rules as the counters (the fold's masks and the open-dossier rule at E), per
    dossier, for explaining a figure."""
    from engine.facts import on_time_at

    m = K.dossier_mask(f)
    e = procedures.get(f[2]) or {}

    def bit(slot: int) -> bool:
        return bool(m >> slot & 1)

    on_time = on_time_at(f[4], f[5], date.fromordinal(view_end_day))
    eligible = bool(e.get("full_online_eligible"))
    certified = bool(e.get("certified_copy"))
    digitized = bit(K.DIG_ERES) if e.get("paper_result_required") else bit(K.DIGITIZED)
    return {
        "DOSSIER_SYNC": (bit(K.SYNCED), True),
        "ON_TIME": (on_time, True),
        "AVG_PROCESSING_TIME": (bit(K.FINISHED), bit(K.FINISHED)),
        "ONLINE_FULL_PROCESS": (eligible and bit(K.FULL_ONLINE), eligible),
        "PAYMENT_DOSSIER_ONLINE": (bit(K.FEE_PAID), bit(K.FEE)),
        "ORIGINAL_RESULT_AVAILABLE": (bit(K.E_RESULT), True),
        "DOSSIER_DIGITIZED": (digitized, True),
        "REUSED_DIGITIZED_DATA": (bit(K.REUSED), True),
        "SYNCED_WITH_DVCQG_PERSONAL_STORAGE": (bit(K.REPO), True),
        "CITIZEN_DATA_CONNECTED_DOSSIER": (bit(K.POP), True),
        "ELECTRONIC_CERTIFIED_COPY": (certified and bit(K.E_RESULT), certified),
        "DOSSIER_RECEIVING_SATISFACTION": (on_time and bit(K.CLEAN), True),
    }


def feedback_membership(f: list[Any], view_end_day: int) -> dict[str, tuple[bool, bool]]:
    """How one feedback counts in each feedback criterion: (in numerator, in denominator)."""
    from engine.facts import on_time_at

    m = K.feedback_mask(f)
    on_time = on_time_at(f[4], f[5], date.fromordinal(view_end_day))
    clean = bool(m >> K.FB_CLEAN & 1)
    return {
        "PETITION_CLASSIFICATION_TTHC": (f[2] == "procedure", True),
        "PETITION_CLASSIFICATION_STAFF": (f[2] == "staff_conduct", True),
        "PETITION_PROCESSING_ON_TIME": (on_time, True),
        "PETITION_HANDLING_SATISFACTION": (on_time and clean, True),
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
