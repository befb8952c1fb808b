"""The facts the index needs about a subject, derived from its domain state: their one home.

The engine records what happened (``engine.domain``); this module says what that is worth to
the index, as a compact list per subject, recomputed after every event and kept in the event
store's facts cache beside the event (``engine.store``, table ``motcua_facts``). The fold moves a
subject's contribution from its facts before an event to its facts after it, so it never reads
a subject. A change of any rule here (``FACTS_CODE_VERSION``) or of the lifecycle rules
(``kernel.lifecycle``) changes ``facts_version``; the engine then refuses to
record until ``motcua replay --rederive`` has recomputed the cache from the domain events.

Dossier facts (``DossierFacts``): agency, reception ``month`` (``YYYY-MM`` in Asia/Ho_Chi_Minh,
the cohort of spec §3), procedure, ``flags`` (the domain's marks plus the bits judged here),
``judged`` (``1`` on time, ``0`` late — both for good — or ``OPEN``: on time at a view's end E
exactly when the local date of E is not after ``due_day``, spec §4), ``due_day`` (ordinal of the
local date of the effective due time), ``processing_days`` (working days from reception to the
end of processing, ``-1`` while unfinished) and ``end_day`` (ordinal of the end's local date,
``-1`` while unfinished).

Feedback facts (``FeedbackFacts``): agency, month, classification, flags, judged and due_day,
with the petition rule (answered within N working days, spec §3 5.2) in place of the due time.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from typing import Any, Final, NamedTuple

import orjson

from engine.domain import marks as M
from engine.domain.catalog import Agency, Procedure
from engine.domain.dossier import Dossier
from engine.domain.feedback import Feedback
from kernel.calendar import local_date
from kernel.lifecycle import LifecycleRules, load_lifecycle
from projections import controlsheet as CS

# Bumped whenever a derivation rule below changes meaning.
FACTS_CODE_VERSION: Final = 4

OPEN: Final = -1

# The domain's marks are the first bits of the flags (one shared vocabulary) ...
FULL_ONLINE = M.FULL_ONLINE
FEE_REQUIRED = M.FEE_REQUIRED
PAID_ONLINE = M.PAID_ONLINE
DIGITIZED = M.DIGITIZED
E_RESULT = M.E_RESULT
PUSHED_TO_REPOSITORY = M.PUSHED_TO_REPOSITORY
FROM_PERSONAL_REPOSITORY = M.FROM_PERSONAL_REPOSITORY
REUSED_DIGITIZED_DATA = M.REUSED_DIGITIZED_DATA
POPULATION_DATA_USED = M.POPULATION_DATA_USED
SYNCED = M.SYNCED
RATED_UNSATISFIED = M.RATED_UNSATISFIED
FEEDBACK_LINKED = M.FEEDBACK_LINKED
FINISHED = M.FINISHED
WAITING_ON_APPLICANT = M.WAITING_ON_APPLICANT
WITHDRAWN = M.WITHDRAWN
APOLOGY_ISSUED = M.APOLOGY_ISSUED
SENDER_MARKED_LATE = M.SENDER_MARKED_LATE
OVERDUE_RECORDED = M.OVERDUE_RECORDED
ONLINE_CHANNEL = M.ONLINE_CHANNEL
RESOLVED = M.RESOLVED
MULTIPLE_SUPPLEMENTS = M.MULTIPLE_SUPPLEMENTS
# ... and these are judged here.
APOLOGY_IN_TIME: Final = 1 << 16

FB_ANSWERED = M.FB_ANSWERED
FB_RATED_UNSATISFIED = M.FB_RATED_UNSATISFIED
FB_RECOMPLAINED = M.FB_RECOMPLAINED
FB_LINKED_TO_DOSSIER = M.FB_LINKED_TO_DOSSIER
FB_ABOUT_PROCEDURE: Final = 1 << 4
FB_ABOUT_STAFF: Final = 1 << 5

FLAG_NAMES: Final = {
    "full_online": FULL_ONLINE, "fee_required": FEE_REQUIRED, "paid_online": PAID_ONLINE,
    "digitized": DIGITIZED, "e_result": E_RESULT, "pushed_to_repository": PUSHED_TO_REPOSITORY,
    "from_personal_repository": FROM_PERSONAL_REPOSITORY,
    "reused_digitized_data": REUSED_DIGITIZED_DATA, "population_data_used": POPULATION_DATA_USED,
    "synced": SYNCED, "rated_unsatisfied": RATED_UNSATISFIED, "feedback_linked": FEEDBACK_LINKED,
    "finished": FINISHED, "waiting_on_applicant": WAITING_ON_APPLICANT, "withdrawn": WITHDRAWN,
    "apology_issued": APOLOGY_ISSUED, "apology_in_time": APOLOGY_IN_TIME,
    "sender_marked_late": SENDER_MARKED_LATE, "overdue_recorded": OVERDUE_RECORDED,
    "online_channel": ONLINE_CHANNEL, "resolved": RESOLVED,
    "multiple_supplements": MULTIPLE_SUPPLEMENTS,
}
FEEDBACK_FLAG_NAMES: Final = {
    "answered": FB_ANSWERED, "rated_unsatisfied": FB_RATED_UNSATISFIED,
    "recomplained": FB_RECOMPLAINED, "linked_to_dossier": FB_LINKED_TO_DOSSIER,
    "about_procedure": FB_ABOUT_PROCEDURE, "about_staff": FB_ABOUT_STAFF,
}


class DossierFacts(NamedTuple):
    agency: str
    month: str
    procedure: str
    flags: int
    judged: int
    due_day: int
    processing_days: int
    end_day: int
    # The effective due instant, whole seconds since the epoch (the at-risk and delays lists).
    due_s: int
    # The current (last) step's holder: [unit, official or None, step].
    holder: list[Any]
    # While unfinished: the control sheet, packed (``controlsheet.Step.pack``), judged at a
    # view's end when the dossier is late there. Finished: None.
    sheet: list[Any] | None
    # Finished and late for good: who made it late, [[unit, official, step, overrun s], …].
    attrib: list[Any] | None


# What the at-risk list reads of an open dossier besides the indexed columns (agency, month,
# judged, due_day, end_day): the view store keeps these as columns of its dossier rows, so
# that the list's query decodes no facts (``risk_columns`` gives their values).
RISK_COLUMNS: Final = ("procedure", "flags", "due_s", "holder_unit", "holder_official",
                       "holder_step")


def risk_columns(f: list[Any]) -> tuple[Any, ...]:
    """A dossier's ``RISK_COLUMNS`` from its facts list."""
    unit, official, step = f[9]
    return f[2], f[3], f[8], unit, official, step


# A candidate of the at-risk list (an unfinished dossier) as the view store's query returns
# it: its id, indexed columns, then ``RISK_COLUMNS``.
OPEN_ROW: Final = ("id", "agency", "month", "judged", "due_day", *RISK_COLUMNS)


def open_row(sid: str, f: list[Any]) -> tuple[Any, ...]:
    """A dossier's ``OPEN_ROW`` from its facts list (what the view store's columns hold)."""
    return (sid, f[0], f[1], f[4], f[5], *risk_columns(f))


class FeedbackFacts(NamedTuple):
    agency: str
    month: str
    classification: str
    flags: int
    judged: int
    due_day: int


# Positions in the stored lists, for code that reads them raw (named by the tuples above).
AGENCY: Final = DossierFacts._fields.index("agency")
MONTH: Final = DossierFacts._fields.index("month")
PROCEDURE: Final = DossierFacts._fields.index("procedure")
CLASSIFICATION: Final = FeedbackFacts._fields.index("classification")
FLAGS: Final = DossierFacts._fields.index("flags")
JUDGED: Final = DossierFacts._fields.index("judged")
DUE_DAY: Final = DossierFacts._fields.index("due_day")
PROCESSING_DAYS: Final = DossierFacts._fields.index("processing_days")
END_DAY: Final = DossierFacts._fields.index("end_day")


def facts_version(rules: LifecycleRules) -> str:
    """A fingerprint of this module's rules and the settings, stored with the facts."""
    doc = {"code": FACTS_CODE_VERSION, **rules.settings()}
    digest = hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"{FACTS_CODE_VERSION}.{digest[:12]}"


def is_on_time(judged: int, due_day: int, view_end_day: date) -> bool:
    """The on-time rule of spec §4 for one subject, judged at a view whose end falls on a day."""
    if judged != OPEN:
        return judged == 1
    return view_end_day.toordinal() <= due_day


# ----- derivation ----------------------------------------------------------------------------


def effective_due(d: Dossier, rules: LifecycleRules) -> datetime:
    """The due time 2.1 judges by: the given one (or the apology's new date, if the rules say
    so) plus the time spent waiting on the applicant."""
    base = d.base_due
    if rules.apology_moves_due and d.apology_new_due is not None:
        base = d.apology_new_due
    return base + d.shift


def apology_in_time(d: Dossier, rules: LifecycleRules) -> bool:
    """An apology was issued at least ``apology_notice`` before the due time it apologised for
    (766 §4, accountability §3: the domain keeps the apology with the most notice)."""
    return (d.apology_at is not None and d.apology_due_then is not None
            and d.apology_at <= d.apology_due_then - rules.apology_notice)


def dossier_facts(d: Dossier, rules: LifecycleRules) -> DossierFacts:
    """The index facts of a dossier as it stands."""
    return DossierFacts(*_dossier_row(d, rules))


class _Memo:
    """What a dossier's facts take from its state that most events leave alone, as last
    derived (kept on the dossier, like the control sheet's memo): the facts are derived again
    after every event, and these parts (local dates, working days, the packed sheet) cost more
    than the rest. Each part is recomputed when what it is computed from changed."""

    __slots__ = ("rules", "received_at", "received", "month", "due", "due_s", "due_day",
                 "end_at", "processing_days", "end_day", "steps", "holder", "sheet")

    def __init__(self, rules: LifecycleRules) -> None:
        self.rules = rules
        self.received_at: datetime | None = None
        self.received = date.min
        self.month = ""
        self.due: datetime | None = None
        self.due_s = self.due_day = 0
        self.end_at: datetime | None = None
        self.processing_days = self.end_day = -1
        self.steps: list[CS.Step] | None = None
        self.holder: list[Any] = []
        self.sheet: list[Any] | None = None


def _dossier_row(d: Dossier, rules: LifecycleRules) -> list[Any]:
    """``dossier_facts`` as the list the facts cache stores."""
    m: _Memo | None = d.__dict__.get("_facts_memo")
    if m is None or m.rules is not rules:
        m = d.__dict__["_facts_memo"] = _Memo(rules)
    due = effective_due(d, rules)
    marks = d.marks
    if marks & MULTIPLE_SUPPLEMENTS:
        judged = 0
    elif d.pending_since is not None:
        # Waiting on the applicant (or finished while waiting): judged at the request time.
        judged = int(d.pending_since <= due)
    elif d.end_at is not None:
        judged = int(d.end_at <= due)
    else:
        judged = OPEN
    flags = marks | APOLOGY_IN_TIME if apology_in_time(d, rules) else marks
    if m.received_at is None or m.received_at != d.received_at:
        received = m.received = local_date(d.received_at)
        m.month = f"{received.year:04d}-{received.month:02d}"
        m.received_at, m.end_at = d.received_at, None
    if m.due is None or m.due != due:
        m.due, m.due_s, m.due_day = due, CS.seconds(due), local_date(due).toordinal()
    steps = CS.steps_of(d, rules)
    if steps is not m.steps:
        last = steps[-1]
        m.steps, m.holder, m.sheet = steps, [last.unit, last.official, last.step], None
    due_s = m.due_s
    sheet = attrib = None
    if d.end_at is not None:
        if m.end_at is None or m.end_at != d.end_at:
            end = local_date(d.end_at)
            m.processing_days = rules.calendar.working_days_between(m.received, end)
            m.end_at, m.end_day = d.end_at, end.toordinal()
        processing_days, end_day = m.processing_days, m.end_day
        if judged == 0:
            end_s = CS.seconds(d.end_at)
            attrib = [list(a) for a in CS.attribute(steps, due_s, end_s, end_s,
                                                     CS.office_clock(rules))]
    else:
        processing_days = end_day = -1
        if m.sheet is None:
            m.sheet = CS.packed_of(d, rules)
        sheet = m.sheet
    return [d.agency_id, m.month, d.procedure_id, flags, judged, m.due_day, processing_days,
            end_day, due_s, m.holder, sheet, attrib]


def answer_due(received_at: datetime, rules: LifecycleRules) -> date:
    """The last day a feedback may be answered on time (spec §3, 5.2)."""
    return rules.calendar.add_working_days(local_date(received_at),
                                           rules.petition_answer_working_days)


def feedback_facts(fb: Feedback, rules: LifecycleRules) -> FeedbackFacts:
    """The index facts of a feedback as it stands."""
    due_day = answer_due(fb.received_at, rules).toordinal()
    if fb.answered_at is None:
        judged = OPEN
    else:
        judged = int(local_date(fb.answered_at).toordinal() <= due_day)
    flags = fb.marks
    if fb.classification == "procedure":
        flags |= FB_ABOUT_PROCEDURE
    elif fb.classification == "staff_conduct":
        flags |= FB_ABOUT_STAFF
    received = local_date(fb.received_at)
    return FeedbackFacts(fb.agency_id, f"{received.year:04d}-{received.month:02d}",
                         fb.classification, flags, judged, due_day)


def derive(subject: Any, rules: LifecycleRules) -> Any:
    """The facts of any subject, as stored in the facts cache (lists and dicts only)."""
    if isinstance(subject, Dossier):
        return _dossier_row(subject, rules)
    if isinstance(subject, Feedback):
        return list(feedback_facts(subject, rules))
    if isinstance(subject, Procedure | Agency):
        return dict(subject.entry)
    raise TypeError(f"no facts for {type(subject).__name__}")


class Annotator:
    """What the engine calls after every event to get the subject's facts (the engine knows
    only that it gets a JSON value and a version to store with it)."""

    def __init__(self, rules: LifecycleRules | None = None) -> None:
        self.rules = rules or load_lifecycle()
        self.version = facts_version(self.rules)

    def __call__(self, subject: Any) -> Any:
        if type(subject) is Dossier:  # most events' subject: one call less than ``derive``
            return _dossier_row(subject, self.rules)
        return derive(subject, self.rules)


def flag_names(flags: int) -> list[str]:
    """The names of the dossier flags set in ``flags`` (for history and explain output)."""
    return [name for name, bit in FLAG_NAMES.items() if flags & bit]


def facts_of(subject: Any, rules: LifecycleRules | None = None) -> Any:
    """The facts of a subject under ``rules`` (the shipped lifecycle rules by default)."""
    return derive(subject, rules or load_lifecycle())
