"""Feedback (phản ánh, kiến nghị) about an agency, sometimes about one of its dossiers."""

from __future__ import annotations

from typing import Any

from producers.simulator.clock import DAY, HOUR
from producers.simulator.province import Province

_FILED_AFTER = (HOUR, 20 * DAY)  # after the dossier's reception
# Answers are due within 15 working days; late ones take up to twice that.
_ANSWERED_ON_TIME = (1, 15)
_ANSWERED_LATE = (16, 30)
_ANSWER_HOURS = (8 * HOUR, 17 * HOUR)
_RATED_AFTER = (HOUR, 5 * DAY)
_RECOMPLAINED_AFTER = (DAY, 10 * DAY)


class FeedbackDesk:
    """The province's feedback channel; numbers its feedback in the order they are drawn."""

    def __init__(self, province: Province) -> None:
        self.province = province
        self.count = 0

    def maybe_file(self, agency: str, dossier_id: str, t0: int, *, linkable: bool) -> None:
        """Maybe a feedback after the dossier received at ``t0``, with its answer and rating."""
        province = self.province
        cfg, rng, between, push = province.cfg, province.rng, province.between, province.push
        if rng.random() >= cfg.feedback_per_dossier:
            return
        self.count += 1
        feedback_id = f"{cfg.province_id}-PAKN-{cfg.seed}-{self.count:06d}"
        at = t0 + between(*_FILED_AFTER)
        data: dict[str, Any] = {"agency_id": agency, "classification": self._classification()}
        if linkable and rng.random() < cfg.feedback_linked_rate:
            data["dossier_id"] = dossier_id
        push(at, "feedback_received", "feedback_id", feedback_id, data)
        x = rng.random()
        if x < cfg.feedback_unanswered_rate:
            return
        on_time = x < cfg.feedback_answer_on_time_rate
        n = between(*_ANSWERED_ON_TIME) if on_time else between(*_ANSWERED_LATE)
        answered = province.working.add(at // DAY, n) * DAY + between(*_ANSWER_HOURS)
        push(answered, "feedback_answered", "feedback_id", feedback_id, {})
        self._after_answer(feedback_id, answered)

    def _classification(self) -> str:
        """What the feedback is about."""
        cfg, x = self.province.cfg, self.province.rng.random()
        if x < cfg.feedback_procedure_rate:
            return "procedure"
        if x < cfg.feedback_procedure_rate + cfg.feedback_staff_conduct_rate:
            return "staff_conduct"
        return "other"

    def _after_answer(self, feedback_id: str, answered: int) -> None:
        """The rating of the answer, and a complaint about it again."""
        province = self.province
        cfg, rng, between, push = province.cfg, province.rng, province.between, province.push
        later = answered
        if rng.random() < cfg.feedback_rating_rate:
            later += between(*_RATED_AFTER)
            push(
                later,
                "feedback_rated",
                "feedback_id",
                feedback_id,
                {"satisfied": rng.random() >= cfg.feedback_unsatisfied_rate},
            )
        if rng.random() < cfg.recomplaint_rate:
            push(
                later + between(*_RECOMPLAINED_AFTER),
                "feedback_recomplained",
                "feedback_id",
                feedback_id,
                {},
            )
