"""Feedback (phản ánh, kiến nghị, PAKN) about procedures or staff conduct."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from engine import facts as F
from engine.domain.base import Cause, Subject, parse_iso
from engine.domain.errors import (
    AlreadyReceivedError,
    FeedbackAlreadyAnsweredError,
    TimeBeforeReceptionError,
)
from kernel.calendar import local_date


class Feedback(Subject):
    """One feedback's history; answered on time by the petition rule (spec §3, 5.2)."""

    def __init__(self) -> None:
        """State is set by the events' ``evolve()``."""

    feedback_id: str
    agency_id: str
    classification: str
    dossier_id: str | None
    received_at: datetime
    month: str
    due_day: int
    answered_at: datetime | None
    flags: int

    class Event(Subject.Event):
        pass

    class Received(Event, Subject.Created):
        feedback_id: str
        agency_id: str
        classification: str
        dossier_id: str | None
        answer_due: str

        def evolve(self, fb: Feedback) -> None:
            fb.feedback_id = self.feedback_id
            fb.agency_id = self.agency_id
            fb.classification = self.classification
            fb.dossier_id = self.dossier_id
            fb.received_at = parse_iso(self.at)
            fb.month = local_date(fb.received_at).strftime("%Y-%m")
            fb.due_day = date.fromisoformat(self.answer_due).toordinal()
            fb.answered_at = None
            fb.flags = F.FB_LINKED_TO_DOSSIER if self.dossier_id else 0

    class Answered(Event):
        def evolve(self, fb: Feedback) -> None:
            fb.answered_at = parse_iso(self.at)
            fb.flags |= F.FB_ANSWERED

    class Rated(Event):
        satisfied: bool

        def evolve(self, fb: Feedback) -> None:
            if self.satisfied:
                fb.flags &= ~F.FB_RATED_UNSATISFIED
            else:
                fb.flags |= F.FB_RATED_UNSATISFIED

    class Recomplained(Event):
        def evolve(self, fb: Feedback) -> None:
            fb.flags |= F.FB_RECOMPLAINED

    def compute_facts(self) -> list[Any]:
        if self.answered_at is None:
            judged = F.OPEN
        else:
            judged = int(local_date(self.answered_at).toordinal() <= self.due_day)
        return [self.agency_id, self.month, self.classification, self.flags, judged, self.due_day]

    @classmethod
    def receive(
        cls, *, id: Any, feedback_id: str, data: dict[str, Any], at: datetime,  # noqa: A002
        answer_due: date, cause: Cause | None,
    ) -> Feedback:
        feedback: Feedback = cls._open(
            cls.Received, id=id, sid=feedback_id, at=at, cause=cause, feedback_id=feedback_id,
            agency_id=data["agency_id"], classification=data["classification"],
            dossier_id=data.get("dossier_id"), answer_due=answer_due.isoformat(),
        )
        return feedback

    def receive_again(self) -> None:
        raise AlreadyReceivedError(f"Feedback {self.feedback_id} was already received.")

    def _guard(self, at: datetime, what: str) -> None:
        if at < self.received_at:
            raise TimeBeforeReceptionError(
                f"{what} at {at.isoformat()} is before feedback {self.feedback_id} was received.",
                field="occurred_at",
            )

    def answer(self, at: datetime, cause: Cause | None) -> None:
        self._guard(at, "feedback_answered")
        if self.answered_at is not None:
            raise FeedbackAlreadyAnsweredError(f"Feedback {self.feedback_id} was already answered.")
        self._emit(self.Answered, at, cause)

    def rate(self, satisfied: bool, at: datetime, cause: Cause | None) -> None:
        self._guard(at, "feedback_rated")
        self._emit(self.Rated, at, cause, satisfied=satisfied)

    def recomplain(self, at: datetime, cause: Cause | None) -> None:
        self._guard(at, "feedback_recomplained")
        self._emit(self.Recomplained, at, cause)
