"""The simulator's config: every rate is a named field in [0, 1], and nonsense is refused."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import pytest

from producers.simulator import SimConfig
from producers.simulator.config import probability_fields

DEFAULT = SimConfig()
PROBABILITIES = probability_fields()


def test_every_rate_field_is_a_probability_with_a_default_in_range() -> None:
    """Fields named as rates are all checked as probabilities, and their defaults are in [0, 1]."""
    named_as_rates = {
        f.name for f in fields(SimConfig) if f.name.endswith(("_rate", "_of_late", "_per_dossier"))
    }
    assert named_as_rates <= set(PROBABILITIES)
    for name in PROBABILITIES:
        value = getattr(DEFAULT, name)
        assert isinstance(value, float), name
        assert 0.0 <= value <= 1.0, name


def test_every_float_field_is_validated() -> None:
    """No float field escapes validation: each is a probability or a checked non-negative."""
    floats = [f for f in fields(SimConfig) if f.type in ("float", float)]
    assert len(floats) > len(PROBABILITIES) > 0
    for f in floats:
        assert f.metadata.get("kind") in ("probability", "non-negative"), f.name


@pytest.mark.parametrize("name", PROBABILITIES)
@pytest.mark.parametrize("value", [-0.01, 1.01, float("nan")])
def test_an_out_of_range_rate_is_refused_by_name(name: str, value: float) -> None:
    """A probability outside [0, 1] is refused, the message naming the field and the range."""
    with pytest.raises(ValueError, match=rf"SimConfig\.{name} must be between 0 and 1"):
        change: dict[str, Any] = {name: value}  # the field is named at run time
        replace(DEFAULT, **change)


def test_rates_at_the_bounds_are_accepted() -> None:
    """0 and 1 are valid rates (where their shares still fit together)."""
    replace(DEFAULT, on_time_rate=0.0, e_result_rate=1.0, supplement_ask_latest=1.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rejected_rate": 0.7, "stopped_rate": 0.4}, "rejected_rate \\+ stopped_rate"),
        ({"feedback_staff_conduct_rate": 0.5}, "feedback_procedure_rate \\+ "),
        ({"processing_in_hours_rate": 0.2}, "processing_in_working_days_rate \\+ "),
        ({"two_handover_rate": 0.8}, "two_handover_rate \\+ four_handover_rate"),
        ({"supplement_ask_earliest": 0.6}, "supplement_ask_earliest must not exceed"),
        ({"on_time_resolve_skew": -1.0}, "on_time_resolve_skew must not be negative"),
        ({"popularity_exponent": -0.5}, "popularity_exponent must not be negative"),
        ({"early_span_divisor": 0}, "early_span_divisor must be at least 1"),
        ({"late_mark_divisor": 0}, "late_mark_divisor must be at least 1"),
        ({"off_day_reception_percent": 101}, "off_day_reception_percent must be between"),
    ],
)
def test_inconsistent_settings_are_refused(changes: dict[str, Any], message: str) -> None:
    """Shares of one draw that add up past 1, or a reversed window or divisor 0, are refused."""
    with pytest.raises(ValueError, match=message):
        replace(DEFAULT, **changes)

