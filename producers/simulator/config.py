"""What to simulate: the province's size, its window and the rates of everything it does."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date


@dataclass(frozen=True)
class SimConfig:
    """What to simulate; the rates default to figures like those provinces publish."""

    agencies: int = 20
    dossiers: int = 5000
    seed: int = 1
    start: date = date(2026, 1, 1)
    days: int = 300
    province_id: str = "H15"
    province_name: str = "Tỉnh Đắk Lắk"
    source: str = "daklak-igate"
    procedures: int = 80
    repealed: int = 2
    # dossier rates (of all dossiers unless said otherwise)
    on_time_rate: float = 0.886
    e_result_rate: float = 0.64
    digitized_rate: float = 0.21
    online_payment_rate: float = 0.88  # of fee-bearing dossiers
    online_rate: float = 0.26  # channel online
    full_online_rate: float = 0.9  # of online dossiers of eligible procedures
    due_at_rate: float = 0.9  # the rest leave the due time to the procedure's processing time
    supplement_rate: float = 0.08
    withdrawal_rate: float = 0.02
    rejected_rate: float = 0.04  # of resolved
    stopped_rate: float = 0.02  # of resolved
    result_returned_rate: float = 0.9  # of resolved
    apology_rate_of_late: float = 0.5
    late_mark_rate_of_late: float = 0.6
    rating_rate: float = 0.3  # of resolved
    unsatisfied_rate: float = 0.05  # of ratings
    synced_rate: float = 0.95
    reused_data_rate: float = 0.25
    personal_repository_rate: float = 0.3  # of online dossiers
    population_data_rate: float = 0.55  # of dossiers of procedures for individuals
    # feedback (phản ánh, kiến nghị)
    feedback_per_dossier: float = 0.01
    feedback_linked_rate: float = 0.6
    feedback_answer_on_time_rate: float = 0.9
    feedback_unanswered_rate: float = 0.03
    feedback_rating_rate: float = 0.4
    feedback_unsatisfied_rate: float = 0.15
    recomplaint_rate: float = 0.05
    # catalog
    publish_on_time_rate: float = 0.9
    publicized_rate: float = 0.95
    publicize_on_time_rate: float = 0.9

    def __post_init__(self) -> None:
        for name, low in (("agencies", 1), ("dossiers", 0), ("days", 1), ("procedures", 1)):
            if getattr(self, name) < low:
                raise ValueError(
                    f"SimConfig.{name} must be at least {low}, got {getattr(self, name)}."
                )
        if not 0 <= self.repealed < self.procedures:
            raise ValueError(f"SimConfig.repealed must be in [0, procedures), got {self.repealed}.")
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_rate", "_of_late")) and not 0.0 <= value <= 1.0:
                raise ValueError(f"SimConfig.{f.name} must be between 0 and 1, got {value}.")
        if self.feedback_per_dossier < 0:
            raise ValueError("SimConfig.feedback_per_dossier must not be negative.")
