"""Office hours on the working-day calendar (spec/accountability.md §2).

A step's budget is counted in office hours from the step's start: 08:00–12:00 and 13:00–17:00
local time (a lifecycle rules setting) on working days (spec/766.md §6). Instants are taken to
the second (fractions dropped), so every duration here is a whole number of seconds: exact, and
summed exactly before any rounding.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from kernel.calendar import VN_TZ, WorkCalendar

Intervals = tuple[tuple[int, int], ...]  # seconds after local midnight, [start, end)


def _seconds(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


class OfficeClock:
    """Office time between instants, and the instant a budget of office hours runs out."""

    def __init__(self, calendar: WorkCalendar,
                 hours: tuple[tuple[time, time], ...] = ((time(8), time(12)),
                                                         (time(13), time(17)))) -> None:
        self.calendar = calendar
        self.intervals: Intervals = tuple((_seconds(a), _seconds(b)) for a, b in hours)
        self.day = sum(b - a for a, b in self.intervals)
        if self.day <= 0:
            raise ValueError("office hours must hold some time each working day")

    def _local(self, t: datetime) -> tuple[date, int]:
        local = t.astimezone(VN_TZ)
        return local.date(), local.hour * 3600 + local.minute * 60 + local.second

    def _within(self, d: date, s: int) -> int:
        """Office seconds of day ``d`` before ``s`` seconds after its midnight."""
        if not self.calendar.is_working_day(d):
            return 0
        return sum(min(max(s, a), b) - a for a, b in self.intervals)

    def between(self, start: datetime, end: datetime) -> int:
        """Office seconds in [start, end); 0 when ``end`` is not after ``start``."""
        d0, s0 = self._local(start)
        d1, s1 = self._local(end)
        if (d1, s1) <= (d0, s0):
            return 0
        if d0 == d1:
            return self._within(d1, s1) - self._within(d0, s0)
        first = (self.day - self._within(d0, s0)) if self.calendar.is_working_day(d0) else 0
        middle = self.calendar.working_days_between(d0, d1 - timedelta(days=1)) * self.day
        return first + middle + self._within(d1, s1)

    def add(self, start: datetime, hours: float) -> datetime:
        """The first instant at which ``hours`` of office time have passed since ``start``."""
        budget = round(hours * 3600)
        d0, s0 = self._local(start)
        if budget <= 0:
            return datetime.combine(d0, time(0), tzinfo=VN_TZ) + timedelta(seconds=s0)
        done = self._within(d0, s0)
        left_today = self.day - done if self.calendar.is_working_day(d0) else 0
        if budget <= left_today:
            return self._at(d0, done + budget)
        days, rest = divmod(budget - left_today, self.day)
        if rest == 0:
            return self._at(self.calendar.add_working_days(d0, days), self.day)
        return self._at(self.calendar.add_working_days(d0, days + 1), rest)

    def _at(self, d: date, office: int) -> datetime:
        """The first instant of working day ``d`` with ``office`` seconds of it passed."""
        for a, b in self.intervals:
            if office <= b - a:
                return datetime.combine(d, time(0), tzinfo=VN_TZ) + timedelta(seconds=a + office)
            office -= b - a
        raise AssertionError("more office time than a day holds")  # pragma: no cover
