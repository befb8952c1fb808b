"""What to simulate: the province's size, its window, and how often everything in it happens.

Every probability and time fraction the generation draws against is a field here, with its
default. Probabilities are "of all dossiers" unless their description says of which ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date

_KIND = "kind"
_PROBABILITY = "probability"  # a probability or a fraction: in [0, 1]
_NON_NEGATIVE = "non-negative"
_ROUNDING = 1e-9  # shares that add up to 1 in decimal may exceed it by a rounding error


def _probability(default: float) -> float:
    return field(default=default, metadata={_KIND: _PROBABILITY})


def _non_negative(default: float) -> float:
    return field(default=default, metadata={_KIND: _NON_NEGATIVE})


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
    # Which block of procedure code numbers this province draws from (a national simulation
    # gives each province its own, so no two provinces publish one code with other terms).
    code_block: int = 0
    procedures: int = 80
    repealed: int = 2

    # --- receptions ---------------------------------------------------------------------------
    online_rate: float = _probability(0.26)
    """Dossiers filed online (every dossier received on a non-working day is)."""
    off_day_reception_percent: int = 8
    """Dossiers received on a non-working day, in percent of a working day's, in [0, 100]."""
    morning_reception_rate: float = _probability(0.55)
    """Of dossiers not filed online, those received in the morning session."""
    postal_rate: float = _probability(0.1)
    """Of dossiers not filed online, those that came by post (the rest: in person)."""

    # --- a dossier's reception ----------------------------------------------------------------
    due_at_rate: float = _probability(0.9)
    """Dossiers whose sender writes the due time (the rest leave it to the processing time)."""
    full_online_rate: float = _probability(0.9)
    """Of online dossiers of procedures eligible for it, those done fully online."""
    reused_data_rate: float = _probability(0.25)
    """Dossiers that reuse digitized data from earlier dossiers."""
    personal_repository_rate: float = _probability(0.3)
    """Of online dossiers, those filed with papers from the applicant's personal repository."""
    population_data_rate: float = _probability(0.55)
    """Of dossiers of procedures open to individuals, those checked against population data."""

    # --- early in the time allowed ------------------------------------------------------------
    early_span_divisor: int = 3
    """Sync, digitization and payment fall in the first 1/n of the time allowed (at most 3 h)."""
    synced_rate: float = _probability(0.95)
    """Dossiers synced to the national portal."""
    digitized_rate: float = _probability(0.21)
    """Dossiers whose papers are digitized."""
    online_payment_rate: float = _probability(0.88)
    """Of dossiers of fee-bearing procedures, those paid online."""
    national_gateway_rate: float = _probability(0.6)
    """Of online payments, those through the national portal's gateway (the rest: a local one)."""

    # --- on time or late ----------------------------------------------------------------------
    on_time_rate: float = _probability(0.886)
    """Dossiers resolved by their due time (the late chance is raised for the window's end)."""
    withdrawal_rate: float = _probability(0.02)
    """Dossiers withdrawn by the applicant (only on-time ones are)."""
    supplement_rate: float = _probability(0.08)
    """Dossiers asked for more papers."""
    second_supplement_rate_of_late: float = _probability(0.15)
    """Of late dossiers asked for more papers, those asked a second time."""
    supplement_ask_earliest: float = _probability(0.05)
    """A request for more papers comes at least this fraction of the time left in."""
    supplement_ask_latest: float = _probability(0.5)
    """A request for more papers comes at most this fraction of the time left in."""
    stuck_supplement_rate: float = _probability(0.08)
    """Of on-time dossiers asked once for more papers, those that never get them (stay open)."""
    on_time_resolve_earliest: float = _probability(0.03)
    """An on-time dossier is resolved at least this fraction of its time left in."""
    on_time_resolve_skew: float = _non_negative(1.3)
    """Exponent on the uniform draw of when in the rest of its time an on-time dossier is
    resolved; above 1 leans early."""
    long_delay_rate_of_late: float = _probability(0.1)
    """Of late dossiers, those late by a further 5 to 30 days."""
    apology_rate_of_late: float = _probability(0.5)
    """Of late dossiers, those whose agency apologizes and sets a new due time."""
    late_apology_rate: float = _probability(0.25)
    """Of apologies, those issued less than a day before the due time, or after it (late by
    the rules; the rest come in time)."""
    late_mark_rate_of_late: float = _probability(0.6)
    """Of late dossiers, those the sender itself marks late."""
    late_mark_divisor: int = 2
    """The sender's late mark comes in the first 1/n of the delay (and within an hour)."""

    # --- resolution and after -----------------------------------------------------------------
    rejected_rate: float = _probability(0.04)
    """Of resolved dossiers, those rejected."""
    stopped_rate: float = _probability(0.02)
    """Of resolved dossiers, those stopped (the rest are approved)."""
    e_result_rate: float = _probability(0.64)
    """Dossiers with an electronic result (only approved ones get one)."""
    e_result_pushed_rate: float = _probability(0.5)
    """Of electronic results, those pushed to the applicant's personal repository."""
    result_returned_rate: float = _probability(0.9)
    """Of resolved dossiers, those whose result is handed back to the applicant."""
    rating_rate: float = _probability(0.3)
    """Of resolved dossiers, those the applicant rates."""
    unsatisfied_rate: float = _probability(0.05)
    """Of ratings, the unsatisfied ones."""
    rating_scores_rate: float = _probability(0.5)
    """Of ratings, those that also score each criterion (progress, attitude, result)."""

    # --- the control sheet (phiếu kiểm soát): handovers between holders ------------------------
    handovers: bool = True
    """Whether dossiers are handed over at all (off: each stays with its receiving official,
    e.g. to measure what handovers cost)."""
    internal_process_rate: float = _probability(0.8)
    """Procedures published with an internal process (a budget of office hours per step)."""
    internal_budget_share: float = _probability(0.9)
    """The share of a procedure's processing time, in office hours, its step budgets add up to."""
    two_handover_rate: float = _probability(0.3)
    """Procedures whose dossiers go receive → process → return (handed over twice)."""
    four_handover_rate: float = _probability(0.3)
    """Procedures whose dossiers go receive → process → review → approve → return (four
    handovers; the rest skip the review: three)."""
    back_and_forth_rate: float = _probability(0.05)
    """Dossiers sent back from the step after processing to processing, and on again (two
    more handovers)."""
    official_named_rate: float = _probability(0.97)
    """Receptions and handovers that name the official (the rest name only the unit)."""
    slow_official_rate: float = _probability(0.15)
    """Officials who are slow."""
    step_overrun_rate: float = _probability(0.04)
    """Steps held by an ordinary official that overrun their budget (if the dossier's time
    allows; a late dossier's delay goes to an overrunning step)."""
    slow_step_overrun_rate: float = _probability(0.35)
    """Steps held by a slow official that overrun their budget (likewise)."""
    step_due_at_rate: float = _probability(0.1)
    """Handovers whose sender writes the step's due time (the end of the office day in which
    its budget runs out)."""

    # --- feedback (phản ánh, kiến nghị) -------------------------------------------------------
    feedback_per_dossier: float = _probability(0.01)
    """Dossiers followed by a feedback about their agency."""
    feedback_procedure_rate: float = _probability(0.6)
    """Of feedback, those about a procedure."""
    feedback_staff_conduct_rate: float = _probability(0.25)
    """Of feedback, those about staff conduct (the rest: other matters)."""
    feedback_linked_rate: float = _probability(0.6)
    """Of feedback after a dossier that was not withdrawn, those naming the dossier."""
    feedback_unanswered_rate: float = _probability(0.03)
    """Of feedback, those never answered."""
    feedback_answer_on_time_rate: float = _probability(0.9)
    """Of feedback, those unanswered or answered within 15 working days (one draw decides
    both: answered on time is this minus the unanswered rate)."""
    feedback_rating_rate: float = _probability(0.4)
    """Of answered feedback, those whose answer is rated."""
    feedback_unsatisfied_rate: float = _probability(0.15)
    """Of rated answers, the unsatisfied ones."""
    recomplaint_rate: float = _probability(0.05)
    """Of answered feedback, those complained about again."""

    # --- catalog ------------------------------------------------------------------------------
    commune_procedure_rate: float = _probability(0.4)
    """Procedures handled by every commune rather than one department (certified-copy ones
    always are)."""
    decided_before_window_rate: float = _probability(0.6)
    """Procedures decided before the window opens (the first three always are; the rest are
    decided in its first two thirds)."""
    publish_on_time_rate: float = _probability(0.9)
    """Procedures published at least five working days before their legal basis applies."""
    publicized_rate: float = _probability(0.95)
    """Procedures publicized on the national database."""
    publicize_on_time_rate: float = _probability(0.9)
    """Of publicized procedures, those publicized within five working days of the decision."""
    fee_bearing_rate: float = _probability(0.6)
    """Procedures with a fee (certified-copy ones always have one)."""
    full_online_eligible_rate: float = _probability(0.7)
    """Procedures that may be done fully online."""
    individual_procedure_rate: float = _probability(0.9)
    """Procedures open to individuals (certified-copy ones always are)."""
    paper_result_rate: float = _probability(0.3)
    """Procedures whose result must also be handed over on paper."""
    parts_complete_rate: float = _probability(0.95)
    """Procedures published with all their parts."""
    processing_in_working_days_rate: float = _probability(0.85)
    """Procedures whose processing time is counted in working days."""
    processing_in_hours_rate: float = _probability(0.08)
    """Procedures whose processing time is counted in hours."""
    processing_in_days_rate: float = _probability(0.05)
    """Procedures whose processing time is counted in calendar days (the rest: in months)."""
    popularity_exponent: float = _non_negative(0.8)
    """How unevenly dossiers spread over procedures: the k-th most popular has weight
    1 / k ** exponent (0: evenly)."""

    def __post_init__(self) -> None:
        for name, low in (
            ("agencies", 1),
            ("dossiers", 0),
            ("days", 1),
            ("procedures", 1),
            ("early_span_divisor", 1),
            ("late_mark_divisor", 1),
        ):
            if getattr(self, name) < low:
                raise ValueError(
                    f"SimConfig.{name} must be at least {low}, got {getattr(self, name)}."
                )
        if not 0 <= self.code_block < 70:  # codes have six digits: 70 blocks of 14,000
            raise ValueError(f"SimConfig.code_block must be in [0, 70), got {self.code_block}.")
        if not 0 <= self.repealed < self.procedures:
            raise ValueError(f"SimConfig.repealed must be in [0, procedures), got {self.repealed}.")
        if not 0 <= self.off_day_reception_percent <= 100:
            raise ValueError(
                "SimConfig.off_day_reception_percent must be between 0 and 100, "
                f"got {self.off_day_reception_percent}."
            )
        self._check_kinds()
        self._check_shares()

    def _check_kinds(self) -> None:
        for f in fields(self):
            kind, value = f.metadata.get(_KIND), getattr(self, f.name)
            if kind == _PROBABILITY and not 0.0 <= value <= 1.0:
                raise ValueError(f"SimConfig.{f.name} must be between 0 and 1, got {value}.")
            if kind == _NON_NEGATIVE and not value >= 0.0:
                raise ValueError(f"SimConfig.{f.name} must not be negative, got {value}.")

    def _check_shares(self) -> None:
        """Shares decided by one draw must leave room for each other."""
        for names in (
            ("rejected_rate", "stopped_rate"),
            ("feedback_procedure_rate", "feedback_staff_conduct_rate"),
            ("two_handover_rate", "four_handover_rate"),
            (
                "processing_in_working_days_rate",
                "processing_in_hours_rate",
                "processing_in_days_rate",
            ),
        ):
            total = sum(getattr(self, name) for name in names)
            if total > 1.0 + _ROUNDING:
                raise ValueError(
                    f"SimConfig.{' + '.join(names)} must not exceed 1, got {total:g}."
                )
        if self.supplement_ask_earliest > self.supplement_ask_latest:
            raise ValueError(
                "SimConfig.supplement_ask_earliest must not exceed supplement_ask_latest, got "
                f"{self.supplement_ask_earliest} > {self.supplement_ask_latest}."
            )


def probability_fields() -> tuple[str, ...]:
    """The names of the fields that are probabilities or fractions, each in [0, 1]."""
    return tuple(f.name for f in fields(SimConfig) if f.metadata.get(_KIND) == _PROBABILITY)
