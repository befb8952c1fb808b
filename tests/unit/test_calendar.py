"""Working days per spec/766.md §6; every expected date is read off a 2026 wall calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from kernel.calendar import VN_TZ, WorkCalendar, end_of_local_day, local_date
from kernel.errors import ConfigurationError

CAL = WorkCalendar()


def test_friday_plus_one_working_day_is_monday() -> None:
    """Fri 9 Oct 2026 + 1 skips Sat 10 and Sun 11 and lands on Mon 12 Oct."""
    assert CAL.add_working_days(date(2026, 10, 9), 1) == date(2026, 10, 12)


def test_zero_working_days_returns_the_day_itself_even_on_a_weekend() -> None:
    """n = 0 is the start date unchanged, whatever kind of day it is (Sat 10 Oct 2026)."""
    assert CAL.add_working_days(date(2026, 10, 10), 0) == date(2026, 10, 10)


def test_negative_working_days_are_refused() -> None:
    """add_working_days only counts forward."""
    with pytest.raises(ValueError):
        CAL.add_working_days(date(2026, 10, 9), -1)


def test_vietnam_cultural_day_24_november_2026_is_not_a_working_day() -> None:
    """The holidays package lists Tue 24 Nov 2026 (Vietnam Cultural Day) as a VN holiday."""
    assert not CAL.is_working_day(date(2026, 11, 24))


def test_adding_across_24_november_skips_it() -> None:
    """Mon 23 Nov + 1: Tue 24 is off, so the first working day after is Wed 25 Nov."""
    assert CAL.add_working_days(date(2026, 11, 23), 1) == date(2026, 11, 25)


def test_counting_across_24_november_leaves_it_out() -> None:
    """(Mon 23, Fri 27 Nov] holds Tue 24 (off), Wed 25, Thu 26, Fri 27: 3 working days."""
    assert CAL.working_days_between(date(2026, 11, 23), date(2026, 11, 27)) == 3


def test_lunar_new_year_week_2026_is_skipped() -> None:
    """Tết 2026 is Mon 16 – Fri 20 Feb, so Fri 13 Feb + 1 is Mon 23 Feb."""
    assert CAL.add_working_days(date(2026, 2, 13), 1) == date(2026, 2, 23)
    # (Fri 13, Mon 23 Feb]: 16–20 off, 21–22 weekend, 23 working → 1.
    assert CAL.working_days_between(date(2026, 2, 13), date(2026, 2, 23)) == 1


def test_national_day_2026_break_is_skipped() -> None:
    """Mon 31 Aug (substitute), Tue 1 and Wed 2 Sep are off: Fri 28 Aug + 1 is Thu 3 Sep."""
    assert CAL.add_working_days(date(2026, 8, 28), 1) == date(2026, 9, 3)


def test_package_make_up_saturday_22_august_2026_is_a_working_day() -> None:
    """The package swaps Mon 31 Aug off for Sat 22 Aug on, and the calendar honours the swap."""
    assert CAL.is_working_day(date(2026, 8, 22))
    # Fri 21 Aug + 1 is therefore Sat 22 Aug, not Mon 24 Aug.
    assert CAL.add_working_days(date(2026, 8, 21), 1) == date(2026, 8, 22)


def test_configured_make_up_saturday_counts_as_a_working_day() -> None:
    """A ruleset make-up day on Sat 10 Oct 2026 makes Fri 9 Oct + 1 land on that Saturday."""
    cal = WorkCalendar(makeup_working_days=[date(2026, 10, 10)])
    assert cal.is_working_day(date(2026, 10, 10))
    assert cal.add_working_days(date(2026, 10, 9), 1) == date(2026, 10, 10)
    # (Fri 9, Mon 12 Oct]: Sat 10 (make-up) and Mon 12 → 2.
    assert cal.working_days_between(date(2026, 10, 9), date(2026, 10, 12)) == 2


def test_configured_extra_day_off_does_not_count() -> None:
    """An extra day off on Mon 12 Oct 2026 pushes Fri 9 Oct + 1 to Tue 13 Oct."""
    cal = WorkCalendar(extra_days_off=[date(2026, 10, 12)])
    assert not cal.is_working_day(date(2026, 10, 12))
    assert cal.add_working_days(date(2026, 10, 9), 1) == date(2026, 10, 13)


def test_a_day_both_off_and_make_up_is_a_configuration_error() -> None:
    """The same date cannot be listed as a day off and as a working day."""
    with pytest.raises(ConfigurationError, match="2026-10-10"):
        WorkCalendar(extra_days_off=[date(2026, 10, 10)], makeup_working_days=[date(2026, 10, 10)])


def test_adding_crosses_into_the_next_year() -> None:
    """Thu 31 Dec 2026 + 1: Fri 1 Jan 2027 is New Year, then the weekend, so Mon 4 Jan 2027."""
    assert CAL.add_working_days(date(2026, 12, 31), 1) == date(2027, 1, 4)


def test_counting_crosses_into_the_next_year() -> None:
    """(Wed 30 Dec 2026, Tue 5 Jan 2027]: Thu 31, Mon 4, Tue 5 work; 1 Jan off, 2–3 weekend → 3."""
    assert CAL.working_days_between(date(2026, 12, 30), date(2027, 1, 5)) == 3


def test_counting_is_zero_when_end_is_not_after_start() -> None:
    """An empty or reversed interval has no working days."""
    assert CAL.working_days_between(date(2026, 10, 12), date(2026, 10, 12)) == 0
    assert CAL.working_days_between(date(2026, 10, 12), date(2026, 10, 1)) == 0


def test_a_plain_october_week_has_five_working_days() -> None:
    """(Sun 4, Sun 11 Oct 2026] holds Mon 5 – Fri 9: 5 working days."""
    assert CAL.working_days_between(date(2026, 10, 4), date(2026, 10, 11)) == 5


def test_counting_inverts_adding() -> None:
    """Counting from d to d + n working days gives back n, for every day of 2026 and n ≤ 30."""
    d = date(2026, 1, 1)
    while d.year == 2026:
        for n in (1, 7, 30):
            assert CAL.working_days_between(d, CAL.add_working_days(d, n)) == n
        d += timedelta(days=1)


def test_local_date_is_the_date_in_vietnam() -> None:
    """18:00 UTC on 9 Oct is 01:00 on 10 Oct in Hanoi (UTC+7)."""
    assert local_date(datetime(2026, 10, 9, 18, 0, tzinfo=UTC)) == date(2026, 10, 10)
    assert local_date(datetime(2026, 10, 9, 16, 59, 59, tzinfo=UTC)) == date(2026, 10, 9)


def test_local_date_refuses_a_naive_datetime() -> None:
    """A naive datetime has no instant, so its local date is undefined."""
    with pytest.raises(ValueError):
        local_date(datetime(2026, 10, 9, 12, 0))


def test_end_of_local_day_is_235959_in_vietnam() -> None:
    """23:59:59 on 10 Oct in Hanoi is 16:59:59 UTC the same day."""
    end = end_of_local_day(date(2026, 10, 10))
    assert end.tzinfo is VN_TZ
    assert end == datetime(2026, 10, 10, 16, 59, 59, tzinfo=UTC)


def test_warm_computes_the_years_holidays_ahead_of_the_first_batch() -> None:
    """``warm`` (an engine's start) leaves the years' holidays computed: the first batch's
    question about them is answered from the cache, and the answer is the same."""
    from kernel.calendar import _package_year, warm

    years = (2041, 2042)
    before = _package_year.cache_info()
    warm(years).join(10)
    after_warm = _package_year.cache_info()
    assert after_warm.misses - before.misses == 2
    assert date(2041, 1, 1) in _package_year(2041)[0]  # New Year's Day, a holiday
    assert _package_year.cache_info().hits - after_warm.hits == 1
    assert WorkCalendar().is_working_day(date(2042, 1, 1)) is False
