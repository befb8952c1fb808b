"""The Dossier (hồ sơ): its lifecycle rules and its due time.

Commands are verbs (``digitize()``, ``resolve()``); events are facts (``Digitized``,
``Resolved``). The state records what happened (``marks``, times, the supplement waits); what
it is worth to the index is derived elsewhere (``projections.facts``). The rules are tabled in
docs/lifecycle.md.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from engine.domain import marks as M
from engine.domain.base import Cause, Subject, parse_iso
from engine.domain.errors import (
    AlreadyReceivedError,
    AlreadyResolvedError,
    AlreadyReturnedError,
    DossierFinishedError,
    DossierWithdrawnError,
    EResultAlreadyIssuedError,
    NoFeeObligationError,
    NoSupplementRequestError,
    NotResolvedError,
    OutOfOrderError,
    SupplementPendingError,
    TimeBeforeReceptionError,
)

# What a v1 ``Received`` (or snapshot) becomes: v1 did not record where its due time came
# from, and the recorded due_at is what the index uses either way (docs/schema-evolution.md).
DUE_SOURCE_V1 = "action"


def _drop(state: dict[str, Any], *keys: str) -> None:
    for k in keys:
        state.pop(k, None)


class Dossier(Subject):
    """One dossier's authoritative history."""

    # v2 keeps ``due_source``; v3 keeps no index facts (``month``, ``facts``, processing days,
    # the ruleset's ``apology_moves_due``) and names its bits ``marks``.
    class_version = 3

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["due_source"] = DUE_SOURCE_V1

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> None:
        state["marks"] = state.pop("flags", 0) & ~(1 << 16)  # the old "apology in time" bit
        state.setdefault("apology_at", None)
        state.setdefault("apology_due_then", None)
        state.setdefault("official_id", None)
        state.setdefault("steps", [["receive", state.get("agency_id"), None,
                                    state.get("received_at"), None, None]])
        state.setdefault("waits", [])
        _drop(state, "month", "facts", "processing_days", "apology_moves_due", "_due_memo")

    def __init__(self) -> None:
        """State is set by the events' ``evolve()``."""

    # State, set only by events' apply().
    dossier_id: str
    agency_id: str
    procedure_id: str
    channel: str
    official_id: str | None
    received_at: datetime
    base_due: datetime
    marks: int
    supplement_requests: int
    pending_since: datetime | None
    shift: timedelta
    end_at: datetime | None
    # Of the apology issued with the most notice: when, and the due time (with the waits so
    # far) it apologised for.
    apology_at: datetime | None
    apology_due_then: datetime | None
    apology_new_due: datetime | None
    returned: bool
    due_source: str
    # The control sheet (phiếu kiểm soát): one entry per step, in order of start:
    # [step, unit, official, start, due given by the sender, budget in office hours]. A step
    # ends where the next one starts; the last one at the end of processing.
    steps: list[list[Any]]
    # Waits on the applicant: [supplement requested at, completed at or None].
    waits: list[list[Any]]

    class Event(Subject.Event):
        pass

    class Received(Event, Subject.Created):
        """v2 adds ``due_source``: ``"action"`` when the action gave ``due_at``, ``"catalog"``
        when it was computed from the procedure's processing time. v3 drops the ruleset's
        ``apology_moves_due`` (a scoring rule, not a fact) and adds the receiving official."""

        class_version = 3

        dossier_id: str
        agency_id: str
        procedure_id: str
        channel: str
        due_at: str
        flags: int
        due_source: str
        official_id: str | None
        receive_budget: float | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["due_source"] = DUE_SOURCE_V1

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            _drop(state, "apology_moves_due", "prev", "facts")
            state.setdefault("official_id", None)
            state.setdefault("receive_budget", None)

        def evolve(self, d: Dossier) -> None:
            d.due_source = self.due_source
            d.dossier_id = self.dossier_id
            d.agency_id = self.agency_id
            d.procedure_id = self.procedure_id
            d.channel = self.channel
            d.official_id = self.official_id
            d.received_at = parse_iso(self.at)
            d.base_due = parse_iso(self.due_at)
            d.marks = self.flags
            d.supplement_requests = 0
            d.pending_since = None
            d.shift = timedelta(0)
            d.end_at = None
            d.apology_at = None
            d.apology_due_then = None
            d.apology_new_due = None
            d.returned = False
            d.steps = [["receive", self.agency_id, self.official_id, d.received_at, None,
                        self.receive_budget]]
            d.waits = []

    class Digitized(Event):
        components: int

        def evolve(self, d: Dossier) -> None:
            d.marks |= M.DIGITIZED

    class PaidOnline(Event):
        gateway: str
        amount_vnd: int

        def evolve(self, d: Dossier) -> None:
            d.marks |= M.PAID_ONLINE

    class SupplementRequested(Event):
        reason: str | None

        def evolve(self, d: Dossier) -> None:
            d.supplement_requests += 1
            d.pending_since = parse_iso(self.at)
            d.waits = [*d.waits, [d.pending_since, None]]
            d.marks |= M.WAITING_ON_APPLICANT
            if d.supplement_requests > 1:
                d.marks |= M.MULTIPLE_SUPPLEMENTS

    class SupplementCompleted(Event):
        def evolve(self, d: Dossier) -> None:
            assert d.pending_since is not None
            d.shift += max(parse_iso(self.at) - d.pending_since, timedelta(0))
            d.waits = [*d.waits[:-1], [d.waits[-1][0], parse_iso(self.at)]]
            d.pending_since = None
            d.marks &= ~M.WAITING_ON_APPLICANT

    class _Finishing(Event):
        """v2 no longer records ``processing_days`` (an index fact, derived by readers)."""

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            _drop(state, "processing_days", "prev", "facts")

        def finish(self, d: Dossier) -> None:
            at = parse_iso(self.at)
            if d.end_at is None or at < d.end_at:
                d.end_at = at
            d.marks |= M.FINISHED

    class Resolved(_Finishing):
        outcome: str

        def evolve(self, d: Dossier) -> None:
            self.finish(d)
            d.marks |= M.RESOLVED

    class ResultReturned(_Finishing):
        def evolve(self, d: Dossier) -> None:
            self.finish(d)
            d.returned = True

    class Withdrawn(_Finishing):
        def evolve(self, d: Dossier) -> None:
            self.finish(d)
            d.marks |= M.WITHDRAWN

    class EResultIssued(Event):
        result_ref: str
        pushed_to_repository: bool

        def evolve(self, d: Dossier) -> None:
            d.marks |= M.E_RESULT
            if self.pushed_to_repository:
                d.marks |= M.PUSHED_TO_REPOSITORY

    class MarkedLate(Event):
        reason: str | None

        def evolve(self, d: Dossier) -> None:
            d.marks |= M.SENDER_MARKED_LATE

    class ApologyIssued(Event):
        """v2 no longer records ``in_time``: readers judge it from the times."""

        class_version = 2

        new_due_at: str
        reason: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            _drop(state, "in_time", "prev", "facts")

        def evolve(self, d: Dossier) -> None:
            d.marks |= M.APOLOGY_ISSUED
            at, due_then = parse_iso(self.at), d.due()
            # One apology in time is enough (accountability §3): keep the one with most notice.
            if (d.apology_at is None or d.apology_due_then is None
                    or due_then - at > d.apology_due_then - d.apology_at):
                d.apology_at, d.apology_due_then = at, due_then
            d.apology_new_due = parse_iso(self.new_due_at)

    class Synced(Event):
        def evolve(self, d: Dossier) -> None:
            d.marks |= M.SYNCED

    class Rated(Event):
        satisfied: bool
        scores: dict[str, int] | None

        def evolve(self, d: Dossier) -> None:
            if self.satisfied:
                d.marks &= ~M.RATED_UNSATISFIED
            else:
                d.marks |= M.RATED_UNSATISFIED

    class FeedbackLinked(Event):
        feedback_id: str

        def evolve(self, d: Dossier) -> None:
            d.marks |= M.FEEDBACK_LINKED

    class HandedOver(Event):
        """A line of the control sheet: the dossier passes to another holder for a step."""

        to_unit: str
        to_official: str | None
        step: str
        step_due_at: str | None
        budget: float | None

        def evolve(self, d: Dossier) -> None:
            due = parse_iso(self.step_due_at) if self.step_due_at else None
            d.steps = [*d.steps, [self.step, self.to_unit, self.to_official, parse_iso(self.at),
                                  due, self.budget]]

    class BecameOverdue(Event):
        """Recorded by the engine's deadline watcher at the due time (the "late" fact)."""

        def evolve(self, d: Dossier) -> None:
            d.marks |= M.OVERDUE_RECORDED

    # ----- derived -------------------------------------------------------------------------

    def due(self) -> datetime:
        """The due time the citizen was given, moved by the time spent waiting on them."""
        return self.base_due + self.shift

    @property
    def is_finished(self) -> bool:
        return self.end_at is not None

    @property
    def is_withdrawn(self) -> bool:
        return bool(self.marks & M.WITHDRAWN)

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
        receive_budget: float | None = None,
    ) -> Dossier:
        marks = 0
        for name, bit in M.RECEIVED_MARKS.items():
            if data.get(name):
                marks |= bit
        if data.get("channel") == "online":
            marks |= M.ONLINE_CHANNEL
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
            flags=marks,
            due_source="catalog" if data.get("due_at") is None else "action",
            official_id=data.get("official_id"),
            receive_budget=receive_budget,
        )
        return dossier

    def hand_over(self, to_unit: str, to_official: str | None, step: str,
                  step_due_at: datetime | None, budget: float | None, at: datetime,
                  cause: Cause | None) -> None:
        """A handover (chuyển hồ sơ): ends the current step and starts the next one."""
        self._guard(at, "handed_over")
        current = self.steps[-1][3]
        if at < current:
            raise OutOfOrderError(
                f"handed_over at {at.isoformat()} is before the current step "
                f"({self.steps[-1][0]}) of dossier {self.dossier_id} started "
                f"({current.isoformat()}).", field="occurred_at")
        if self.end_at is not None and at > self.end_at:
            raise OutOfOrderError(
                f"handed_over at {at.isoformat()} is after dossier {self.dossier_id} finished "
                f"processing ({self.end_at.isoformat()}).", field="occurred_at")
        self._emit(self.HandedOver, at, cause, to_unit=to_unit, to_official=to_official,
                   step=step, step_due_at=step_due_at.isoformat() if step_due_at else None,
                   budget=budget)

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
        if not self.marks & M.FEE_REQUIRED:
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

    def resolve(self, outcome: str, at: datetime, cause: Cause | None) -> None:
        self._guard(at, "resolved")
        if self.marks & M.RESOLVED:
            raise AlreadyResolvedError(f"Dossier {self.dossier_id} was already resolved.")
        self._emit(self.Resolved, at, cause, outcome=outcome)

    def return_result(self, at: datetime, cause: Cause | None) -> None:
        self._guard(at, "result_returned")
        if not self.marks & M.RESOLVED:
            raise NotResolvedError(
                f"Dossier {self.dossier_id} is not resolved; no result to return."
            )
        if self.returned:
            raise AlreadyReturnedError(f"Dossier {self.dossier_id}'s result was already returned.")
        self._emit(self.ResultReturned, at, cause)

    def withdraw(self, at: datetime, cause: Cause | None) -> None:
        self._guard_unfinished(at, "withdrawn")
        self._emit(self.Withdrawn, at, cause)

    def issue_e_result(
        self, result_ref: str, pushed: bool, at: datetime, cause: Cause | None
    ) -> None:
        self._guard(at, "e_result_issued")
        if not self.marks & M.RESOLVED:
            raise NotResolvedError(
                f"Dossier {self.dossier_id} is not resolved; an e-result comes only after "
                "resolution."
            )
        if self.marks & M.E_RESULT:
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
        self._emit(self.ApologyIssued, at, cause, new_due_at=new_due_at.isoformat(),
                   reason=reason)

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
            or self.marks & M.OVERDUE_RECORDED
            or due > now
        ):
            return False
        self._emit(self.BecameOverdue, due, {"source": "motcua", "reason": "deadline_passed"})
        return True
