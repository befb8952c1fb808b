"""Periods as users type them (spec §5): the four forms, ASCII digits only."""

from __future__ import annotations

from datetime import date

import pytest

from projections.periods import PeriodError, parse_period


@pytest.mark.parametrize("text, label, start, end, months", [
    ("2026", "2026", date(2026, 1, 1), date(2026, 12, 31), 12),
    (" 2026-H2 ", "2026-H2", date(2026, 7, 1), date(2026, 12, 31), 6),
    ("2026-Q1", "2026-Q1", date(2026, 1, 1), date(2026, 3, 31), 3),
    ("2024-02", "2024-02", date(2024, 2, 1), date(2024, 2, 29), 1),
])
def test_the_four_forms(text: str, label: str, start: date, end: date, months: int) -> None:
    p = parse_period(text)
    assert (p.label, p.start, p.end, len(p.months)) == (label, start, end, months)


@pytest.mark.parametrize("text", [
    "２０２６",  # full-width digits: another spelling of 2026 would be another publication series
    "٢٠٢٦-Q١",  # Arabic-Indic digits
    "2026-１０", "2026-13", "2026-00", "2026-Q5", "2026-q4", "2026-h1", "2026-1", "26", "",
])
def test_anything_else_is_one_sentence_naming_it(text: str) -> None:
    with pytest.raises(PeriodError) as e:
        parse_period(text)
    assert repr(text) in str(e.value) and "\n" not in str(e.value)
