"""When an alert is due: pure decisions from a subject's facts, the calendar and the clock.

Four rules, each with a window of instants in which it holds (seconds since the epoch):

- ``due_soon``: an open dossier appears in ``at-risk --within N`` (accountability §5): from the
  start (00:00 local) of the first day whose ``add_working_days(day, N)`` reaches the local
  due date, up to the due time.
- ``apology_due``: the last day an apology can still be issued in time (at least
  ``apology_notice`` before the due time, spec §4): from the start of the last working day on
  or before the local date of ``due − notice``, up to ``due − notice``; only while no apology
  was issued.
- ``overdue``: the open dossier is past its due time: from one second after it, for ever.
- ``feedback_due``: an unanswered feedback whose last on-time day (5.2) is within N working
  days: from the start of the first such day to the end of that last day.

A dossier waiting on the applicant has no window (its clock is stopped); a finished subject has
none. ``alert_id`` is a digest of (subscription, rule, subject, due time), so the same decision
taken again (a restart, a replay) is the same alert.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

from kernel.calendar import VN_TZ, WorkCalendar, end_of_local_day, local_date
from projections.facts import (
    APOLOGY_ISSUED,
    OPEN,
    WAITING_ON_APPLICANT,
    DossierFacts,
    FeedbackFacts,
)

RULES: Final = ("due_soon", "apology_due", "overdue", "feedback_due")
FOREVER: Final = 2**62


@dataclass(frozen=True)
class Subject:
    """What the rules read of an open dossier or an unanswered feedback."""

    kind: str  # "dossier" | "feedback"
    sid: str
    agency: str
    due_s: int  # the due instant (a feedback: the end of its last on-time day)
    waiting: bool
    apology_issued: bool
    holder: tuple[str, str | None, str] | None


@dataclass(frozen=True)
class Subscription:
    """Who wants which alerts of which agencies (their subtrees, by id prefix)."""

    id: str
    agencies: tuple[str, ...]
    rules: tuple[str, ...]
    within: int

    def covers(self, agency: str) -> bool:
        return any(agency == a or agency.startswith(a + ".") for a in self.agencies)


def subject_of(kind: str, sid: str, facts: Sequence[Any] | None) -> Subject | None:
    """The subject the rules judge, or ``None`` when nothing can be due any more (finished,
    answered, or not a dossier or feedback)."""
    if facts is None:
        return None
    if kind == "dossier":
        f = DossierFacts._make(facts)
        if f.end_day != -1:
            return None
        unit, official, step = f.holder
        return Subject(kind, sid, f.agency, f.due_s, bool(f.flags & WAITING_ON_APPLICANT),
                       bool(f.flags & APOLOGY_ISSUED), (unit, official, step))
    if kind == "feedback":
        fb = FeedbackFacts._make(facts)
        if fb.judged != OPEN:
            return None
        end = end_of_local_day(date.fromordinal(fb.due_day))
        return Subject(kind, sid, fb.agency, int(end.timestamp()), False, False, None)
    return None


def start_of(d: date) -> int:
    """00:00 local time of a day, in seconds."""
    return int(datetime(d.year, d.month, d.day, tzinfo=VN_TZ).timestamp())


def first_day_within(calendar: WorkCalendar, due: date, n: int) -> date:
    """The earliest day ``d`` with ``add_working_days(d, n) >= due``."""
    d = due
    while calendar.add_working_days(d - timedelta(days=1), n) >= due:
        d -= timedelta(days=1)
    return d


def last_working_day(calendar: WorkCalendar, on_or_before: date) -> date:
    d = on_or_before
    while not calendar.is_working_day(d):
        d -= timedelta(days=1)
    return d


# The calendar walks behind a window's start, remembered: a subject is decided again at every
# change of its facts and many share a due time (17:00 of a day). A calendar is immutable, and
# these caches hold it by identity.
@lru_cache(maxsize=65_536)
def _within_from(calendar: WorkCalendar, due_s: int, within: int) -> int:
    """00:00 local of the first day within ``within`` working days of the due instant."""
    due_day = local_date(datetime.fromtimestamp(due_s, tz=VN_TZ))
    return start_of(first_day_within(calendar, due_day, within))


@lru_cache(maxsize=65_536)
def _last_working_day_from(calendar: WorkCalendar, instant_s: int) -> int:
    """00:00 local of the last working day on or before the local date of ``instant_s``."""
    day = last_working_day(calendar, local_date(datetime.fromtimestamp(instant_s, tz=VN_TZ)))
    return start_of(day)


def window(rule: str, s: Subject, within: int, calendar: WorkCalendar,
           notice_s: int) -> tuple[int, int] | None:
    """[first, last] instants (seconds) in which ``rule`` holds for ``s``, or ``None``."""
    if s.waiting:
        return None
    if s.kind == "feedback":
        if rule != "feedback_due":
            return None
        return _within_from(calendar, s.due_s, within), s.due_s
    if rule == "due_soon":
        return _within_from(calendar, s.due_s, within), s.due_s
    if rule == "apology_due":
        if s.apology_issued:
            return None
        last = s.due_s - notice_s
        return _last_working_day_from(calendar, last), last
    if rule == "overdue":
        return s.due_s + 1, FOREVER
    return None


def alert_id(subscription: str, rule: str, s: Subject) -> str:
    """Stable for (subscription, rule, subject, due time)."""
    key = f"{subscription}|{rule}|{s.kind}:{s.sid}|{s.due_s}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


@dataclass(frozen=True)
class Decision:
    alert_id: str
    subscription: str
    rule: str
    subject: Subject
    fire_at: int


def decide(s: Subject, subs: Iterable[Subscription], now_s: int, calendar: WorkCalendar,
           notice_s: int) -> tuple[list[Decision], int | None]:
    """The alerts that hold for ``s`` at ``now_s``, and the next instant another may begin
    (``None``: none will unless the facts change)."""
    out: list[Decision] = []
    nxt: int | None = None
    for sub in subs:
        if not sub.covers(s.agency):
            continue
        for rule in sub.rules:
            w = window(rule, s, sub.within, calendar, notice_s)
            if w is None:
                continue
            first, last = w
            if first <= now_s <= last:
                out.append(Decision(alert_id(sub.id, rule, s), sub.id, rule, s, first))
            elif now_s < first and (nxt is None or first < nxt):
                nxt = first
    return out, nxt


def payload(d: Decision, created_s: float) -> dict[str, Any]:
    """The webhook body of contract/interface.md."""
    s = d.subject
    body: dict[str, Any] = {"alert_id": d.alert_id, "rule": d.rule}
    body["dossier_id" if s.kind == "dossier" else "feedback_id"] = s.sid
    body.update({
        "agency_id": s.agency,
        "due_at": datetime.fromtimestamp(s.due_s, tz=VN_TZ).isoformat(),
        "holder": None if s.holder is None else dict(zip(("unit", "official", "step"),
                                                         s.holder, strict=True)),
        "created_at": datetime.fromtimestamp(created_s, tz=VN_TZ).isoformat(
            timespec="seconds"),
    })
    return body
