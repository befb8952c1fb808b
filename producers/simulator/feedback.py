"""Feedback (phản ánh, kiến nghị) about an agency, sometimes about one of its dossiers."""

from __future__ import annotations

from typing import Any

from producers.simulator.clock import DAY, HOUR
from producers.simulator.province import Province


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
        at = t0 + between(HOUR, 20 * DAY)
        x = rng.random()
        data: dict[str, Any] = {
            "agency_id": agency,
            "classification": "procedure" if x < 0.6 else "staff_conduct" if x < 0.85 else "other",
        }
        if linkable and rng.random() < cfg.feedback_linked_rate:
            data["dossier_id"] = dossier_id
        push(at, "feedback_received", "feedback_id", feedback_id, data)
        x = rng.random()
        if x < cfg.feedback_unanswered_rate:
            return
        n = between(1, 15) if x < cfg.feedback_answer_on_time_rate else between(16, 30)
        answered = province.working.add(at // DAY, n) * DAY + 8 * HOUR + between(0, 9 * HOUR)
        push(answered, "feedback_answered", "feedback_id", feedback_id, {})
        later = answered
        if rng.random() < cfg.feedback_rating_rate:
            later += between(HOUR, 5 * DAY)
            push(
                later,
                "feedback_rated",
                "feedback_id",
                feedback_id,
                {"satisfied": rng.random() >= cfg.feedback_unsatisfied_rate},
            )
        if rng.random() < cfg.recomplaint_rate:
            push(
                later + between(DAY, 10 * DAY),
                "feedback_recomplained",
                "feedback_id",
                feedback_id,
                {},
            )
