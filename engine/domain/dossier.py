"""The Dossier (hồ sơ): its lifecycle rules, its due time and the facts the index needs.

Commands are verbs (``digitize()``, ``resolve()``); events are facts (``Digitized``,
``Resolved``). Every event carries the dossier's index facts before (``prev``) and after
(``facts``) it, in the layout of ``engine.facts``. The rules are tabled in docs/lifecycle.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from engine import facts as F
from engine.domain.base import Cause, Subject, parse_iso
from engine.domain.errors import (
    AlreadyReceivedError,
    AlreadyResolvedError,
    AlreadyReturnedError,
    DossierFinishedError,
    DossierWithdrawnError,
    EResultAlreadyIssuedError,
    InvalidDueTimeError,
    NoDueTimeError,
    NoFeeObligationError,
    NoSupplementRequestError,
    NotResolvedError,
    SupplementPendingError,
    TimeBeforeReceptionError,
)
from kernel.calendar import WorkCalendar, add_processing_time, local_date

RECEIVED_FLAGS = {
    "full_online": F.FULL_ONLINE,
    "fee_required": F.FEE_REQUIRED,
    "reused_digitized_data": F.REUSED_DIGITIZED_DATA,
    "from_personal_repository": F.FROM_PERSONAL_REPOSITORY,
    "population_data_used": F.POPULATION_DATA_USED,
}


def compute_due(
    received_at: datetime,
    due_at: datetime | None,
    processing_time: dict[str, Any] | None,
    calendar: WorkCalendar,
) -> datetime:
    """The due time of spec §4: ``due_at`` if given, else from the procedure's processing time."""
    if due_at is not None:
        if due_at < received_at:
            raise InvalidDueTimeError(
                f"due_at {due_at.isoformat()} is before the reception time "
                f"{received_at.isoformat()}.",
                field="data.due_at",
            )
        return due_at
    if not processing_time:
        raise NoDueTimeError(
            "The received action has no due_at and its procedure has no known processing time.",
            field="data.due_at",
        )
    return add_processing_time(received_at, int(processing_time["value"]),
                               str(processing_time["unit"]), calendar)


# What a v1 ``Received`` (or snapshot) becomes: v1 did not record where its due time came
# from, and the recorded due_at is what the index uses either way (docs/schema-evolution.md).
DUE_SOURCE_V1 = "action"


class Dossier(Subject):
    """One dossier's authoritative history."""

    # v2 keeps ``due_source`` (see ``Received``); a v1 snapshot lacks it.
    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["due_source"] = DUE_SOURCE_V1

    def __init__(self) -> None:
        """State is set by the events' ``evolve()``."""

    # State, set only by events' apply().
    dossier_id: str
    agency_id: str
    procedure_id: str
    channel: str
    received_at: datetime
    base_due: datetime
    month: str
    flags: int
    apology_moves_due: bool
    supplement_requests: int
    pending_since: datetime | None
    shift: timedelta
    end_at: datetime | None
    apology_new_due: datetime | None
    processing_days: int
    returned: bool
    due_source: str
    facts: list[Any]

    class Event(Subject.Event):
        pass

    class Received(Event, Subject.Created):
        """v2 adds ``due_source``: ``"action"`` when the action gave ``due_at``, ``"catalog"``
        when it was computed from the procedure's processing time."""

        class_version = 2

        dossier_id: str
        agency_id: str
        procedure_id: str
        channel: str
        due_at: str
        flags: int
        apology_moves_due: bool
        due_source: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["due_source"] = DUE_SOURCE_V1

        def evolve(self, d: Dossier) -> None:
            d.due_source = self.due_source
            d.dossier_id = self.dossier_id
            d.agency_id = self.agency_id
            d.procedure_id = self.procedure_id
            d.channel = self.channel
            d.received_at = parse_iso(self.at)
            d.base_due = parse_iso(self.due_at)
            d.month = local_date(d.received_at).strftime("%Y-%m")
            d.flags = self.flags
            d.apology_moves_due = self.apology_moves_due
            d.supplement_requests = 0
            d.pending_since = None
            d.shift = timedelta(0)
            d.end_at = None
            d.apology_new_due = None
            d.processing_days = -1
            d.returned = False

    class Digitized(Event):
        components: int

        def evolve(self, d: Dossier) -> None:
            d.flags |= F.DIGITIZED

    class PaidOnline(Event):
        gateway: str
        amount_vnd: int

        def evolve(self, d: Dossier) -> None:
            d.flags |= F.PAID_ONLINE

    class SupplementRequested(Event):
        reason: str | None

        def evolve(self, d: Dossier) -> None:
            d.supplement_requests += 1
            d.pending_since = parse_iso(self.at)
            d.flags |= F.WAITING_ON_APPLICANT
            if d.supplement_requests > 1:
                d.flags |= F.MULTIPLE_SUPPLEMENTS

    class SupplementCompleted(Event):
        def evolve(self, d: Dossier) -> None:
            assert d.pending_since is not None
            d.shift += max(parse_iso(self.at) - d.pending_since, timedelta(0))
            d.pending_since = None
            d.flags &= ~F.WAITING_ON_APPLICANT

    class _Finishing(Event):
        processing_days: int

        def finish(self, d: Dossier) -> None:
            at = parse_iso(self.at)
            if d.end_at is None or at < d.end_at:
                d.end_at = at
                d.processing_days = self.processing_days
            d.flags |= F.FINISHED

    class Resolved(_Finishing):
        outcome: str

        def evolve(self, d: Dossier) -> None:
            self.finish(d)
            d.flags |= F.RESOLVED

    class ResultReturned(_Finishing):
        def evolve(self, d: Dossier) -> None:
            self.finish(d)
            d.returned = True

    class Withdrawn(_Finishing):
        def evolve(self, d: Dossier) -> None:
            self.finish(d)
            d.flags |= F.WITHDRAWN

    class EResultIssued(Event):
        result_ref: str
        pushed_to_repository: bool

        def evolve(self, d: Dossier) -> None:
            d.flags |= F.E_RESULT
            if self.pushed_to_repository:
                d.flags |= F.PUSHED_TO_REPOSITORY

    class MarkedLate(Event):
        reason: str | None

        def evolve(self, d: Dossier) -> None:
            d.flags |= F.SENDER_MARKED_LATE

    class ApologyIssued(Event):
        new_due_at: str
        reason: str
        in_time: bool

        def evolve(self, d: Dossier) -> None:
            d.flags |= F.APOLOGY_ISSUED
            if self.in_time:
                d.flags |= F.APOLOGY_IN_TIME
            else:
                d.flags &= ~F.APOLOGY_IN_TIME
            d.apology_new_due = parse_iso(self.new_due_at)

    class Synced(Event):
        def evolve(self, d: Dossier) -> None:
            d.flags |= F.SYNCED

    class Rated(Event):
        satisfied: bool
        scores: dict[str, int] | None

        def evolve(self, d: Dossier) -> None:
            if self.satisfied:
                d.flags &= ~F.RATED_UNSATISFIED
            else:
                d.flags |= F.RATED_UNSATISFIED

    class FeedbackLinked(Event):
        feedback_id: str

        def evolve(self, d: Dossier) -> None:
            d.flags |= F.FEEDBACK_LINKED

    class BecameOverdue(Event):
        """Recorded by the engine's deadline watcher at the due time (the "late" fact)."""

        def evolve(self, d: Dossier) -> None:
            d.flags |= F.OVERDUE_RECORDED

    # ----- derived -------------------------------------------------------------------------

    def due(self) -> datetime:
        """The effective due time: the base (or the apology's date, if the ruleset says so)
        plus the supplement shift."""
        base = self.base_due
        if self.apology_moves_due and self.apology_new_due is not None:
            base = self.apology_new_due
        return base + self.shift

    def judged(self) -> int:
        """Spec §4: ``1``/``0`` when on time or late for good, ``facts.OPEN`` when judged at E."""
        if self.flags & F.MULTIPLE_SUPPLEMENTS:
            return 0
        due = self.due()
        if self.pending_since is not None:
            # Waiting on the applicant (or finished while waiting): judged at the request time.
            return int(self.pending_since <= due)
        if self.end_at is not None:
            return int(self.end_at <= due)
        return F.OPEN

    def _due_day(self) -> int:
        due = self.due()
        memo = self.__dict__.get("_due_memo")
        if memo is None or memo[0] != due:
            memo = self.__dict__["_due_memo"] = (due, local_date(due).toordinal())
        return int(memo[1])

    def compute_facts(self) -> list[Any]:
        return [
            self.agency_id,
            self.month,
            self.procedure_id,
            self.flags,
            self.judged(),
            self._due_day(),
            self.processing_days,
            local_date(self.end_at).toordinal() if self.end_at is not None else -1,
        ]

    @property
    def is_finished(self) -> bool:
        return self.end_at is not None

    @property
    def is_withdrawn(self) -> bool:
        return bool(self.flags & F.WITHDRAWN)

    # ----- commands ------------------------------------------------------------------------

    @classmethod
    def receive(
        cls,
        *,
        id: Any,  # noqa: A002 - eventsourcing's name
        dossier_id: str,
        data: dict[str, Any],
        at: datetime,
        due_at: datetime,
        cause: Cause | None,
        apology_moves_due: bool,
    ) -> Dossier:
        flags = 0
        for name, bit in RECEIVED_FLAGS.items():
            if data.get(name):
                flags |= bit
        if data.get("channel") == "online":
            flags |= F.ONLINE_CHANNEL
        dossier: Dossier = cls._open(
            cls.Received,
            id=id,
            sid=dossier_id,
            at=at,
            cause=cause,
            dossier_id=dossier_id,
            agency_id=data["agency_id"],
            procedure_id=data["procedure_id"],
            channel=data["channel"],
            due_at=due_at.isoformat(),
            flags=flags,
            apology_moves_due=apology_moves_due,
            due_source="catalog" if data.get("due_at") is None else "action",
        )
        return dossier

    def _guard(self, at: datetime, what: str) -> None:
        if self.is_withdrawn:
            raise DossierWithdrawnError(
                f"Dossier {self.dossier_id} was withdrawn; {what} is not allowed after that."
            )
        if at < self.received_at:
            raise TimeBeforeReceptionError(
                f"{what} at {at.isoformat()} is before dossier {self.dossier_id} was received "
                f"({self.received_at.isoformat()}).",
                field="occurred_at",
            )

    def _guard_unfinished(self, at: datetime, what: str) -> None:
        self._guard(at, what)
        if self.is_finished:
            raise DossierFinishedError(
                f"Dossier {self.dossier_id} has finished processing; {what} is not allowed."
            )

    def receive_again(self) -> None:
        raise AlreadyReceivedError(f"Dossier {self.dossier_id} was already received.")

    def digitize(self, components: int, at: datetime, cause: Cause | None) -> None:
        self._guard(at, "digitized")
        self._emit(self.Digitized, at, cause, components=components)

    def pay_online(self, gateway: str, amount_vnd: int, at: datetime, cause: Cause | None) -> None:
        self._guard(at, "paid_online")
        if not self.flags & F.FEE_REQUIRED:
            raise NoFeeObligationError(
                f"Dossier {self.dossier_id} has no fee obligation (fee_required was false).",
                field="type",
            )
        self._emit(self.PaidOnline, at, cause, gateway=gateway, amount_vnd=amount_vnd)

    def request_supplement(self, reason: str | None, at: datetime, cause: Cause | None) -> None:
        self._guard_unfinished(at, "supplement_requested")
        if self.pending_since is not None:
            raise SupplementPendingError(
                f"Dossier {self.dossier_id} already waits on a supplement requested at "
                f"{self.pending_since.isoformat()}."
            )
        self._emit(self.SupplementRequested, at, cause, reason=reason)

    def complete_supplement(self, at: datetime, cause: Cause | None) -> None:
        self._guard(at, "supplement_completed")
        if self.pending_since is None:
            raise NoSupplementRequestError(
                f"Dossier {self.dossier_id} has no pending supplement request to complete."
            )
        if self.is_finished:
            raise DossierFinishedError(
                f"Dossier {self.dossier_id} has finished processing; "
                "supplement_completed is not allowed."
            )
        self._emit(self.SupplementCompleted, at, cause)

    def _processing_days(self, at: datetime, calendar: WorkCalendar) -> int:
        return calendar.working_days_between(local_date(self.received_at), local_date(at))

    def resolve(
        self, outcome: str, at: datetime, cause: Cause | None, calendar: WorkCalendar
    ) -> None:
        self._guard(at, "resolved")
        if self.flags & F.RESOLVED:
            raise AlreadyResolvedError(f"Dossier {self.dossier_id} was already resolved.")
        self._emit(
            self.Resolved,
            at,
            cause,
            outcome=outcome,
            processing_days=self._processing_days(at, calendar),
        )

    def return_result(self, at: datetime, cause: Cause | None, calendar: WorkCalendar) -> None:
        self._guard(at, "result_returned")
        if not self.flags & F.RESOLVED:
            raise NotResolvedError(
                f"Dossier {self.dossier_id} is not resolved; no result to return."
            )
        if self.returned:
            raise AlreadyReturnedError(f"Dossier {self.dossier_id}'s result was already returned.")
        self._emit(
            self.ResultReturned, at, cause, processing_days=self._processing_days(at, calendar)
        )

    def withdraw(self, at: datetime, cause: Cause | None, calendar: WorkCalendar) -> None:
        self._guard_unfinished(at, "withdrawn")
        self._emit(self.Withdrawn, at, cause, processing_days=self._processing_days(at, calendar))

    def issue_e_result(
        self, result_ref: str, pushed: bool, at: datetime, cause: Cause | None
    ) -> None:
        self._guard(at, "e_result_issued")
        if not self.flags & F.RESOLVED:
            raise NotResolvedError(
                f"Dossier {self.dossier_id} is not resolved; an e-result comes only after "
                "resolution."
            )
        if self.flags & F.E_RESULT:
            raise EResultAlreadyIssuedError(f"Dossier {self.dossier_id} already has an e-result.")
        self._emit(
            self.EResultIssued, at, cause, result_ref=result_ref, pushed_to_repository=pushed
        )

    def mark_late(self, reason: str | None, at: datetime, cause: Cause | None) -> None:
        self._guard(at, "late")
        self._emit(self.MarkedLate, at, cause, reason=reason)

    def issue_apology(
        self, new_due_at: datetime, reason: str, at: datetime, cause: Cause | None
    ) -> None:
        self._guard_unfinished(at, "apology_issued")
        original_due = self.base_due + self.shift
        in_time = at <= original_due - timedelta(days=1)
        self._emit(
            self.ApologyIssued,
            at,
            cause,
            new_due_at=new_due_at.isoformat(),
            reason=reason,
            in_time=in_time,
        )

    def sync(self, at: datetime, cause: Cause | None) -> None:
        self._guard(at, "synced")
        self._emit(self.Synced, at, cause)

    def rate(
        self, satisfied: bool, scores: dict[str, int] | None, at: datetime, cause: Cause | None
    ) -> None:
        self._guard(at, "rated")
        self._emit(self.Rated, at, cause, satisfied=satisfied, scores=scores)

    def link_feedback(self, feedback_id: str, at: datetime, cause: Cause | None) -> None:
        """Feedback about this dossier (5.4). Also after a withdrawal: the spec subtracts every
        dossier with feedback linked to it, and the score must not depend on arrival order."""
        self._emit(self.FeedbackLinked, at, cause, feedback_id=feedback_id)

    def record_overdue(self, now: datetime) -> bool:
        """Record the engine's own "late" fact at the due time, once; ``False`` if not due."""
        due = self.due()
        if (
            self.is_finished
            or self.pending_since is not None
            or self.flags & F.OVERDUE_RECORDED
            or due > now
        ):
            return False
        self._emit(self.BecameOverdue, due, {"source": "motcua", "reason": "deadline_passed"})
        return True
