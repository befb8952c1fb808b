"""Office hours on the working-day calendar, against cases worked out by hand on a 2026 wall
calendar: 08:00–12:00 and 13:00–17:00 on working days (accountability §2, 766 §6).

2026 days off used here: Tết Mon 16 – Fri 20 Feb; Cultural Day Tue 24 Nov; make-up working
Saturday 22 Aug (for Mon 31 Aug)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest

from kernel.calendar import WorkCalendar
from kernel.officehours import OfficeClock

CLOCK = OfficeClock(WorkCalendar())


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize(("start", "hours", "due"), [
    ("2026-10-05T10:00:00+07:00", 4, "2026-10-05T15:00:00+07:00"),  # 10–12, 13–15: across lunch
    ("2026-10-05T16:00:00+07:00", 3, "2026-10-06T10:00:00+07:00"),  # 16–17, then Tue 08–10
    ("2026-10-09T15:00:00+07:00", 4, "2026-10-12T10:00:00+07:00"),  # Fri 15–17, Mon 08–10
    ("2026-02-13T16:00:00+07:00", 2, "2026-02-23T09:00:00+07:00"),  # Fri, Tết, Mon 23 Feb
    ("2026-08-21T16:00:00+07:00", 2, "2026-08-22T09:00:00+07:00"),  # make-up Saturday
    ("2026-11-23T16:00:00+07:00", 2, "2026-11-25T09:00:00+07:00"),  # Cultural Day Tue off
    ("2026-10-05T08:00:00+07:00", 4, "2026-10-05T12:00:00+07:00"),  # ends at noon, not 13:00
    ("2026-10-05T08:00:00+07:00", 8, "2026-10-05T17:00:00+07:00"),  # a full day: 17:00
    ("2026-10-05T07:00:00+07:00", 1, "2026-10-05T09:00:00+07:00"),  # starts before opening
    ("2026-10-05T12:30:00+07:00", 1, "2026-10-05T14:00:00+07:00"),  # starts at lunch
    ("2026-10-10T09:00:00+07:00", 8, "2026-10-12T17:00:00+07:00"),  # Sat start, a full Monday
    ("2026-10-05T10:00:00+07:00", 1.5, "2026-10-05T11:30:00+07:00"),  # half hours
    ("2026-10-05T18:30:00+07:00", 0, "2026-10-05T18:30:00+07:00"),  # no budget: the start
])
def test_a_budget_of_office_hours_runs_out_at_the_hand_worked_instant(
    start: str, hours: float, due: str,
) -> None:
    """``add`` gives the first instant at which the budget of office time has passed."""
    assert CLOCK.add(t(start), hours) == t(due)


@pytest.mark.parametrize(("start", "end", "seconds"), [
    ("2026-10-05T10:00:00+07:00", "2026-10-05T15:00:00+07:00", 4 * 3600),  # lunch excluded
    ("2026-10-09T15:00:00+07:00", "2026-10-12T10:00:00+07:00", 4 * 3600),  # over a weekend
    ("2026-02-13T16:00:00+07:00", "2026-02-23T09:00:00+07:00", 2 * 3600),  # over Tết
    ("2026-08-21T16:00:00+07:00", "2026-08-24T09:00:00+07:00", 10 * 3600),  # Sat 22 Aug works
    ("2026-10-05T18:00:00+07:00", "2026-10-06T07:30:00+07:00", 0),  # a night: nothing
    ("2026-10-05T10:00:30.700+07:00", "2026-10-05T10:01:00.900+07:00", 30),  # to the second
    ("2026-10-06T10:00:00+07:00", "2026-10-05T10:00:00+07:00", 0),  # backwards: nothing
    ("2026-10-05T01:00:00+00:00", "2026-10-05T10:00:00+07:00", 2 * 3600),  # 01:00Z is 08:00
])
def test_office_time_between_two_instants_is_hand_worked(start: str, end: str,
                                                         seconds: int) -> None:
    """``between`` counts only office seconds on working days, instants to the second."""
    assert CLOCK.between(t(start), t(end)) == seconds


def test_adding_and_measuring_agree_on_many_starts() -> None:
    """For any start and budget, the office time from the start to the due instant is the
    budget (a property of the two functions, checked over a spread of starts)."""
    starts = [t(f"2026-{m:02d}-{d:02d}T{h:02d}:{mi:02d}:00+07:00")
              for m in (2, 8, 11) for d in (13, 14, 20, 21, 22, 23) for h in (6, 8, 11, 12, 16, 18)
              for mi in (0, 45)]
    for start in starts:
        for hours in (0.5, 3, 8, 11, 40):
            due = CLOCK.add(start, hours)
            assert CLOCK.between(start, due) == hours * 3600, (start, hours, due)


def test_office_hours_are_a_setting() -> None:
    """A 07:30–11:30 / 13:30–16:30 day (7 h): 8 h from Mon 07:30 ends Tue 08:30."""
    clock = OfficeClock(WorkCalendar(), ((time(7, 30), time(11, 30)), (time(13, 30), time(16, 30))))
    assert clock.add(t("2026-10-05T07:30:00+07:00"), 8) == t("2026-10-06T08:30:00+07:00")


def test_adding_on_whole_seconds_gives_the_instant_that_adding_gives() -> None:
    """``add_seconds`` (the control sheet's fast path, from and to seconds since the epoch)
    is ``add`` to the second: starts every 37 min 11 s over a week with Tết, over a week with
    the zone's last offset change (1975-06-13, +08:00 to +07:00), and with fractions of a
    second and another offset."""
    starts = []
    for first in ("2026-02-12T00:00:00+00:00", "1975-06-10T00:00:00+00:00"):
        t0 = t(first)
        starts += [t0 + timedelta(seconds=i * 2231) for i in range(7 * 86400 // 2231)]
    starts += [t("2026-10-05T09:59:59.999+07:00"), t("2026-10-05T03:30:00.5+00:00")]
    for start in starts:
        for hours in (0, 0.25, 1.5, 4, 8, 11, 40):
            due = CLOCK.add(start, hours)
            assert CLOCK.add_seconds(int(start.timestamp() // 1), hours) == due.timestamp(), (
                start, hours, due)
