"""A deliberately naive scorer, written straight from spec/766.md §2–§6, to check the projection.

It shares nothing with the engine or the projections: not the facts, not ``projections.fold``
or ``projections.views``, not the working-day calendar (``kernel.calendar``) and not the points
step (``projections.scoring``). It replays the accepted actions (in the order the engine applied
them) into plain records, and for each question (agency, period, now) walks every dossier,
feedback and procedure again. Working days are walked one day at a time from spec §6 (the
``holidays`` package's VN list and make-up Saturdays, then the lifecycle rules' extra days off and
make-up days, read as data); points follow spec §2 in exact fractions from the spec §1 table.
The only things it takes from the code are the lifecycle rules' settings, as plain data.

Where the spec is silent the oracle does what the engine does; each such choice is listed in
docs/decisions.md, "Scoring decisions".
"""

from __future__ import annotations

import calendar as _months
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import holidays

from projections.ruleset import Ruleset

VN = ZoneInfo("Asia/Ho_Chi_Minh")

# ----- working days, the slow way (spec §6) ---------------------------------------------------


class Days:
    """``add_working_days`` and working-day counts by walking the calendar one day at a time.

    A working day is Monday to Friday, minus the VN public holidays of the ``holidays`` package
    (with the days off it substitutes for a worked Saturday), plus the Saturdays it lists as
    make-up working days, minus the extra days off and plus the make-up working days of the
    lifecycle rules (spec §6)."""

    def __init__(self, rules: dict[str, Any]) -> None:
        self.extra_off = {date.fromisoformat(d) for d in rules["extra_days_off"]}
        self.makeup = {date.fromisoformat(d) for d in rules["makeup_working_days"]}
        self.vn: dict[int, Any] = {}
        self.known: dict[date, bool] = {}  # the walk asks about the same days again and again

    def is_working(self, d: date) -> bool:
        known = self.known.get(d)
        if known is None:
            known = self.known[d] = self._working(d)
        return known

    def _working(self, d: date) -> bool:
        vn = self.vn.get(d.year)
        if vn is None:
            vn = self.vn[d.year] = holidays.country_holidays("VN", years=d.year)
        working = d.weekday() < 5
        if d in vn:
            working = False
        if d in vn.weekend_workdays:
            working = True
        if d in self.extra_off:
            working = False
        if d in self.makeup:
            working = True
        return working

    def add(self, d: date, n: int) -> date:
        """The n-th working day after ``d`` (``d`` itself not counted)."""
        while n > 0:
            d += timedelta(days=1)
            if self.is_working(d):
                n -= 1
        return d

    def between(self, start: date, end: date) -> int:
        """Working days in (start, end]."""
        n = 0
        d = start
        while d < end:
            d += timedelta(days=1)
            n += self.is_working(d)
        return n


def local_date(instant: datetime) -> date:
    return instant.astimezone(VN).date()


def end_of_day(d: date) -> datetime:
    return datetime.combine(d, time(23, 59, 59), tzinfo=VN)


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _plus_months(d: date, n: int) -> date:
    """The same day n months later; the month's last day when it is shorter."""
    m = d.month - 1 + n
    y, m = d.year + m // 12, m % 12 + 1
    return date(y, m, min(d.day, _months.monthrange(y, m)[1]))


# ----- ratio to points (spec §1 table, §2 rule) -----------------------------------------------

# Ruleset portal-2026 as spec §1 lists it: group → [(code, max, target)]; shown-only criteria
# have max 0 and no target.
SPEC_GROUPS: dict[str, list[tuple[str, int, Fraction | None]]] = {
    "transparency": [("PUBLISH_ON_TIME", 6, Fraction(1)), ("PUBLIC_UPDATE_ON_TIME", 4, Fraction(1)),
                     ("PUBLIC_CONTENT_FULL", 2, Fraction(1)), ("DOSSIER_SYNC", 6, Fraction(1))],
    "progress": [("ON_TIME", 20, Fraction(1)), ("AVG_PROCESSING_TIME", 0, None)],
    "online_service": [("ONLINE_FULL_PROCESS", 12, Fraction(1))],
    "payment": [("PAYMENT_DOSSIER_ONLINE", 6, Fraction(1)),
                ("PAYMENT_FORMALITY_FEE_DOSSIER", 2, Fraction(4, 5)),
                ("PAYMENT_FORMALITY_TRANSACTION", 2, Fraction(4, 5))],
    "digitization": [("ORIGINAL_RESULT_AVAILABLE", 6, Fraction(1)),
                     ("DOSSIER_DIGITIZED", 4, Fraction(1)),
                     ("REUSED_DIGITIZED_DATA", 2, Fraction(4, 5)),
                     ("SYNCED_WITH_DVCQG_PERSONAL_STORAGE", 4, Fraction(1)),
                     ("CITIZEN_DATA_CONNECTED_FORMALITY", 2, Fraction(1)),
                     ("CITIZEN_DATA_CONNECTED_DOSSIER", 2, Fraction(1)),
                     ("ELECTRONIC_CERTIFIED_COPY", 2, Fraction(1))],
    "satisfaction": [("PETITION_CLASSIFICATION_TTHC", 0, None),
                     ("PETITION_CLASSIFICATION_STAFF", 0, None),
                     ("PETITION_PROCESSING_ON_TIME", 6, Fraction(1)),
                     ("PETITION_HANDLING_SATISFACTION", 6, Fraction(1)),
                     ("DOSSIER_RECEIVING_SATISFACTION", 6, Fraction(9, 10))],
}
# Spec §2: with nothing to count, the feedback criteria, 4.6 and (a decision) the catalog and
# procedure criteria score full points; the dossier criteria score 0.
FULL_WHEN_EMPTY = frozenset({
    "PETITION_PROCESSING_ON_TIME", "PETITION_HANDLING_SATISFACTION", "ELECTRONIC_CERTIFIED_COPY",
    "PUBLISH_ON_TIME", "PUBLIC_UPDATE_ON_TIME", "PUBLIC_CONTENT_FULL",
    "PAYMENT_FORMALITY_FEE_DOSSIER", "PAYMENT_FORMALITY_TRANSACTION",
    "CITIZEN_DATA_CONNECTED_FORMALITY"})
# Spec §3, 1.1 and 1.2: N and M working days by the publishing authority's level.
PUBLISH_DAYS = {"province": 5, "ministry": 20}
PUBLIC_DAYS = {"province": 5, "ministry": 10}


def half_up(x: Fraction) -> Fraction:
    """Rounded to 2 decimals, a half going up (points are never negative)."""
    return Fraction(math.floor(x * 100 + Fraction(1, 2)), 100)


def points(code: str, maximum: int, target: Fraction | None, n: int, d: int) -> Fraction:
    """Spec §2: round_half_up_2(max × min(1, ratio / target)); a zero denominator gives 0 or
    full points."""
    if maximum == 0 or target is None:
        return Fraction(0)
    if d == 0:
        return Fraction(maximum) if code in FULL_WHEN_EMPTY else Fraction(0)
    return half_up(maximum * min(Fraction(1), Fraction(n, d) / target))


def score(counts: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """Criterion points, group scores (sums of rounded points) and the total, exactly."""
    by_code = {code: points(code, mx, target, *counts[code])
               for crits in SPEC_GROUPS.values() for code, mx, target in crits}
    groups = {key: sum((by_code[code] for code, _, _ in crits), Fraction(0))
              for key, crits in SPEC_GROUPS.items()}
    total = sum(groups.values(), Fraction(0))
    return {"points": by_code, "groups": groups, "total": float(total), "exact_total": total}


# ----- the records the actions build ----------------------------------------------------------


@dataclass
class Dossier:
    id: str
    agency: str
    procedure: str
    received_at: datetime
    base_due: datetime
    data: dict[str, Any]
    synced: bool = False
    digitized: bool = False
    paid_online: bool = False
    e_result: bool = False
    pushed: bool = False
    satisfied: bool | None = None  # the latest rating
    requests: list[datetime] = field(default_factory=list)
    completions: list[datetime] = field(default_factory=list)
    ends: list[datetime] = field(default_factory=list)  # resolved, result_returned, withdrawn
    apology_due: datetime | None = None


@dataclass
class Feedback:
    id: str
    agency: str
    classification: str
    dossier_id: str | None
    received_at: datetime
    answered_at: datetime | None = None
    satisfied: bool | None = None
    recomplained: bool = False


@dataclass
class Procedure:
    id: str
    entry: dict[str, Any]
    decisions: list[dict[str, Any]] = field(default_factory=list)
    # (when decided, processing time) of each publication decision.
    processing_times: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)
    publicized: list[datetime] = field(default_factory=list)
    repealed: bool = False


class Oracle:
    """The world the accepted actions leave, and every criterion counted over it by brute force."""

    def __init__(self, actions: Iterable[dict[str, Any]], ruleset: Ruleset) -> None:
        self.ruleset_name = ruleset.name
        # The lifecycle rules as plain data (what the facts version fingerprints).
        self.rules = ruleset.lifecycle.settings()
        self.days = Days(self.rules)
        self.dossiers: dict[str, Dossier] = {}
        self.feedback: dict[str, Feedback] = {}
        self.procedures: dict[str, Procedure] = {}
        self.parent: dict[str, str | None] = {}
        for a in actions:
            self._apply(a)

    # ----- replay --------------------------------------------------------------------------

    def _apply(self, a: dict[str, Any]) -> None:
        t, data, at = a["type"], a.get("data") or {}, _t(a["occurred_at"])
        if t == "agency_registered":
            self.parent[a["agency_id"]] = data.get("parent_id")
        elif t == "procedure_published":
            p = self.procedures.get(a["procedure_id"])
            if p is None:
                p = self.procedures[a["procedure_id"]] = Procedure(a["procedure_id"], {})
            p.entry = dict(data)  # a later decision amends the procedure: latest values count
            p.decisions.append(data)
            p.processing_times.append((at, data["processing_time"]))
        elif t == "procedure_publicized":
            self.procedures[a["procedure_id"]].publicized.append(at)
        elif t == "procedure_repealed":
            self.procedures[a["procedure_id"]].repealed = True
        elif t == "received":
            self.dossiers[a["dossier_id"]] = Dossier(
                a["dossier_id"], data["agency_id"], data["procedure_id"], at,
                self._due(at, data), dict(data))
        elif t == "feedback_received":
            self.feedback[a["feedback_id"]] = Feedback(
                a["feedback_id"], data["agency_id"], data["classification"],
                data.get("dossier_id"), at)
        elif "dossier_id" in a:
            self._dossier_action(self.dossiers[a["dossier_id"]], t, data, at)
        elif "feedback_id" in a:
            fb = self.feedback[a["feedback_id"]]
            if t == "feedback_answered":
                fb.answered_at = at
            elif t == "feedback_rated":
                fb.satisfied = bool(data["satisfied"])
            elif t == "feedback_recomplained":
                fb.recomplained = True

    def _due(self, at: datetime, data: dict[str, Any]) -> datetime:
        """Spec §4: ``due_at``, else the procedure's processing time in force at the reception
        (docs/decisions.md: the latest decision dated at or before it, else the earliest)."""
        if data.get("due_at"):
            return _t(data["due_at"])
        p = self.procedures[data["procedure_id"]]  # the engine refuses it otherwise
        dated = sorted(p.processing_times, key=lambda x: x[0])
        before = [pt for when, pt in dated if when <= at]
        pt = before[-1] if before else dated[0][1]
        n, unit = int(pt["value"]), pt["unit"]
        if unit == "hours":
            return at + timedelta(hours=n)
        day = local_date(at)
        if unit == "working_days":
            return end_of_day(self.days.add(day, n))
        if unit == "days":
            return end_of_day(day + timedelta(days=n))
        return end_of_day(_plus_months(day, n))

    @staticmethod
    def _dossier_action(d: Dossier, t: str, data: dict[str, Any], at: datetime) -> None:
        if t == "synced":
            d.synced = True
        elif t == "digitized":
            d.digitized = True
        elif t == "paid_online":
            d.paid_online = True
        elif t == "e_result_issued":
            d.e_result = True
            d.pushed = d.pushed or bool(data.get("pushed_to_repository"))
        elif t == "rated":
            d.satisfied = bool(data["satisfied"])
        elif t == "supplement_requested":
            d.requests.append(at)
        elif t == "supplement_completed":
            d.completions.append(at)
        elif t in ("resolved", "result_returned", "withdrawn"):
            d.ends.append(at)
        elif t == "apology_issued":
            d.apology_due = _t(data["new_due_at"])

    # ----- the tree and the catalog --------------------------------------------------------

    def ancestors(self, agency: str) -> list[str]:
        chain = [agency]
        while self.parent.get(chain[-1]) is not None and len(chain) < 100:
            chain.append(self.parent[chain[-1]])  # type: ignore[arg-type]
        return chain

    def in_subtree(self, agency: str, root: str) -> bool:
        return root in self.ancestors(agency)

    def attr(self, procedure_id: str, name: str) -> bool:
        """A procedure attribute as the catalog has it now; unknown procedures count false."""
        p = self.procedures.get(procedure_id)
        return bool(p and p.entry.get(name))

    # ----- one dossier ---------------------------------------------------------------------

    def due(self, d: Dossier) -> datetime:
        """The due time after the supplement shift (and the apology, if the ruleset says so)."""
        base = d.base_due
        if self.rules["apology_moves_due"] and d.apology_due is not None:
            base = d.apology_due
        shift = timedelta(0)
        for asked, done in zip(d.requests, d.completions, strict=False):
            shift += max(done - asked, timedelta(0))
        return base + shift

    def on_time(self, d: Dossier, view_end: datetime) -> bool:
        """Spec §4, judged for a view ending at ``view_end``."""
        if len(d.requests) > 1:
            return False
        due = self.due(d)
        if len(d.requests) > len(d.completions):  # still waiting on the applicant
            return d.requests[-1] <= due
        if d.ends:
            return min(d.ends) <= due
        return local_date(view_end) <= local_date(due)

    # ----- the counts ----------------------------------------------------------------------

    def counts(self, agency: str, start: date, end: date,
               now: datetime) -> dict[str, tuple[int, int]]:
        """Every criterion's (numerator, denominator) for ``agency``'s subtree over a period."""
        view_end = min(now, end_of_day(end))
        ds = [d for d in self.dossiers.values()
              if self.in_subtree(d.agency, agency) and start <= local_date(d.received_at) <= end]
        fbs = [f for f in self.feedback.values()
               if self.in_subtree(f.agency, agency) and start <= local_date(f.received_at) <= end]
        out: dict[str, tuple[int, int]] = {}
        n = len(ds)

        def count(pred: Any, among: list[Any]) -> tuple[int, int]:
            return sum(1 for x in among if pred(x)), len(among)

        out["DOSSIER_SYNC"] = count(lambda d: d.synced, ds)
        out["ON_TIME"] = count(lambda d: self.on_time(d, view_end), ds)
        finished = [d for d in ds if d.ends]
        out["AVG_PROCESSING_TIME"] = (
            sum(self.days.between(local_date(d.received_at), local_date(min(d.ends)))
                for d in finished), len(finished))
        eligible = [d for d in ds if self.attr(d.procedure, "full_online_eligible")]
        out["ONLINE_FULL_PROCESS"] = count(lambda d: d.data.get("full_online"), eligible)
        fee = [d for d in ds if d.data.get("fee_required")]
        out["PAYMENT_DOSSIER_ONLINE"] = count(lambda d: d.paid_online, fee)
        out["ORIGINAL_RESULT_AVAILABLE"] = count(lambda d: d.e_result, ds)
        out["DOSSIER_DIGITIZED"] = count(
            lambda d: d.digitized and (d.e_result or not self.attr(d.procedure,
                                                                   "paper_result_required")), ds)
        out["REUSED_DIGITIZED_DATA"] = count(lambda d: d.data.get("reused_digitized_data"), ds)
        out["SYNCED_WITH_DVCQG_PERSONAL_STORAGE"] = count(
            lambda d: d.data.get("from_personal_repository") or d.pushed, ds)
        out["CITIZEN_DATA_CONNECTED_DOSSIER"] = count(
            lambda d: d.data.get("population_data_used"), ds)
        certified = [d for d in ds if self.attr(d.procedure, "certified_copy")]
        out["ELECTRONIC_CERTIFIED_COPY"] = count(lambda d: d.e_result, certified)
        linked = {f.dossier_id for f in self.feedback.values() if f.dossier_id}
        out["DOSSIER_RECEIVING_SATISFACTION"] = (
            n - sum(1 for d in ds if d.satisfied is False or d.id in linked
                    or not self.on_time(d, view_end)), n)

        # Procedure criteria: the subtree's current (not repealed) procedures.
        own = [p for p in self.procedures.values() if not p.repealed and any(
            self.in_subtree(a, agency) for a in p.entry.get("implementing_agency_ids", ()))]
        fee_procs = [p.id for p in own if p.entry.get("fee_bearing")]
        ind_procs = [p.id for p in own if p.entry.get("individual_applicants")]
        out["PAYMENT_FORMALITY_FEE_DOSSIER"] = count(
            lambda pid: any(d.procedure == pid and d.data.get("fee_required") for d in ds),
            fee_procs)
        out["PAYMENT_FORMALITY_TRANSACTION"] = count(
            lambda pid: any(d.procedure == pid and d.paid_online for d in ds), fee_procs)
        out["CITIZEN_DATA_CONNECTED_FORMALITY"] = count(
            lambda pid: any(d.procedure == pid and d.data.get("population_data_used")
                            for d in ds), ind_procs)

        out.update(self.catalog_counts(self.ancestors(agency)[-1], start, end, view_end))

        # Feedback.
        def answered_on_time(f: Feedback) -> bool:
            deadline = self.days.add(local_date(f.received_at),
                                     self.rules["petition_answer_working_days"])
            if f.answered_at is not None:
                return local_date(f.answered_at) <= deadline
            return local_date(view_end) <= deadline

        out["PETITION_CLASSIFICATION_TTHC"] = count(lambda f: f.classification == "procedure", fbs)
        out["PETITION_CLASSIFICATION_STAFF"] = count(
            lambda f: f.classification == "staff_conduct", fbs)
        out["PETITION_PROCESSING_ON_TIME"] = count(answered_on_time, fbs)
        out["PETITION_HANDLING_SATISFACTION"] = (
            len(fbs) - sum(1 for f in fbs if f.satisfied is False or f.recomplained
                           or not answered_on_time(f)), len(fbs))
        return out

    def catalog_counts(self, authority: str, start: date, end: date,
                       view_end: datetime) -> dict[str, tuple[int, int]]:
        """1.1, 1.2 and 1.3 for the publishing authority (the root of the agency's tree)."""
        last = min(end, local_date(view_end))  # a live view's period ends now
        published = on_time = public_on_time = 0
        current = complete = 0
        for p in self.procedures.values():
            if p.entry.get("authority_id") != authority:
                continue
            decisions = [x for x in p.decisions
                         if start <= date.fromisoformat(x["decision_date"]) <= last]
            if decisions:
                published += 1
                ok_publish = ok_public = True
                for x in decisions:
                    level = x["authority_level"]
                    dd = date.fromisoformat(x["decision_date"])
                    n, m = PUBLISH_DAYS[level], PUBLIC_DAYS[level]
                    if self.days.add(dd, n) > date.fromisoformat(x["legal_basis_effective_date"]):
                        ok_publish = False
                    deadline = self.days.add(dd, m)
                    if not any(dd <= local_date(t) <= deadline for t in p.publicized):
                        ok_public = False
                on_time += ok_publish
                public_on_time += ok_public
            if p.publicized and not p.repealed:
                current += 1
                complete += bool(p.entry.get("parts_complete"))
        return {
            "PUBLISH_ON_TIME": (on_time, published),
            "PUBLIC_UPDATE_ON_TIME": (public_on_time, published),
            "PUBLIC_CONTENT_FULL": (complete, current),
        }

    def scorecard(self, agency: str, start: date, end: date, now: datetime) -> dict[str, Any]:
        """Points by criterion and group, and the total (spec §2), of ``agency`` for a period."""
        assert self.ruleset_name == "portal-2026", "the oracle scores by the spec's §1 table"
        return score(self.counts(agency, start, end, now))

    def agencies(self) -> set[str]:
        """Every agency the actions name: registered, parents, and those of dossiers or feedback."""
        out = set(self.parent) | {p for p in self.parent.values() if p}
        out |= {d.agency for d in self.dossiers.values()}
        out |= {f.agency for f in self.feedback.values()}
        return out
