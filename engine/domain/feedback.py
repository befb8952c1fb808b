"""Feedback (phản ánh, kiến nghị, PAKN) about procedures or staff conduct."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.domain import marks as M
from engine.domain.base import Cause, Subject, parse_iso
from engine.domain.errors import (
    AlreadyReceivedError,
    FeedbackAlreadyAnsweredError,
    TimeBeforeReceptionError,
)


class Feedback(Subject):
    """One feedback's history: received, answered, rated, complained about again."""

    # v2 keeps no index facts (the answer deadline and the month are derived by readers).
    class_version = 2

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        state["marks"] = state.pop("flags", 0)
        for key in ("month", "due_day", "facts"):
            state.pop(key, None)

    def __init__(self) -> None:
        """State is set by the events' ``evolve()``."""

    feedback_id: str
    agency_id: str
    classification: str
    dossier_id: str | None
    received_at: datetime
    answered_at: datetime | None
    marks: int

    class Event(Subject.Event):
        pass

    class Received(Event, Subject.Created):
        """v2 no longer records ``answer_due`` (the petition rule is the index's, not ours)."""

        class_version = 2

        feedback_id: str
        agency_id: str
        classification: str
        dossier_id: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            for key in ("answer_due", "prev", "facts"):
                state.pop(key, None)

        def evolve(self, fb: Feedback) -> None:
            fb.feedback_id = self.feedback_id
            fb.agency_id = self.agency_id
            fb.classification = self.classification
            fb.dossier_id = self.dossier_id
            fb.received_at = parse_iso(self.at)
            fb.answered_at = None
            fb.marks = M.FB_LINKED_TO_DOSSIER if self.dossier_id else 0

    class Answered(Event):
        def evolve(self, fb: Feedback) -> None:
            fb.answered_at = parse_iso(self.at)
            fb.marks |= M.FB_ANSWERED

    class Rated(Event):
        satisfied: bool

        def evolve(self, fb: Feedback) -> None:
            if self.satisfied:
                fb.marks &= ~M.FB_RATED_UNSATISFIED
            else:
                fb.marks |= M.FB_RATED_UNSATISFIED

    class Recomplained(Event):
        def evolve(self, fb: Feedback) -> None:
            fb.marks |= M.FB_RECOMPLAINED

    @classmethod
    def receive(
        cls, *, id: Any, feedback_id: str, data: dict[str, Any], at: datetime,  # noqa: A002
        cause: Cause | None,
    ) -> Feedback:
        feedback: Feedback = cls._open(
            cls.Received, id=id, sid=feedback_id, at=at, cause=cause, feedback_id=feedback_id,
            agency_id=data["agency_id"], classification=data["classification"],
            dossier_id=data.get("dossier_id"),
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
