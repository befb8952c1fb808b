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
        # Per day: whether it is a working day; its local midnight in seconds since the epoch.
        self._days: dict[date, bool] = {}
        self._midnights: dict[date, int | None] = {}

    def _local(self, t: datetime) -> tuple[date, int]:
        local = t.astimezone(VN_TZ)
        return local.date(), local.hour * 3600 + local.minute * 60 + local.second

    def _working(self, d: date) -> bool:
        """The calendar's ``is_working_day``, kept per day (the hot path asks often)."""
        w = self._days.get(d)
        if w is None:
            w = self._days[d] = self.calendar.is_working_day(d)
        return w

    def _before(self, s: int) -> int:
        """Office seconds of a working day before ``s`` seconds after its midnight."""
        done = 0
        for a, b in self.intervals:
            if s > a:
                done += (s if s < b else b) - a
        return done

    def _within(self, d: date, s: int) -> int:
        """Office seconds of day ``d`` before ``s`` seconds after its midnight."""
        return self._before(s) if self._working(d) else 0

    def between(self, start: datetime, end: datetime) -> int:
        """Office seconds in [start, end); 0 when ``end`` is not after ``start``."""
        d0, s0 = self._local(start)
        d1, s1 = self._local(end)
        if (d1, s1) <= (d0, s0):
            return 0
        if d0 == d1:
            return self._within(d1, s1) - self._within(d0, s0)
        first = (self.day - self._within(d0, s0)) if self._working(d0) else 0
        middle = self.calendar.working_days_between(d0, d1 - timedelta(days=1)) * self.day
        return first + middle + self._within(d1, s1)

    def add(self, start: datetime, hours: float) -> datetime:
        """The first instant at which ``hours`` of office time have passed since ``start``."""
        d, s = self._add(start, hours)
        return datetime.combine(d, time(0), tzinfo=VN_TZ) + timedelta(seconds=s)

    def add_seconds(self, start: datetime, hours: float) -> int:
        """``add`` as whole seconds since the epoch (``add(...).timestamp()`` floored), without
        building the instant: what the control sheet keeps of each step's due time."""
        d, s = self._add(start, hours)
        if d in self._midnights:
            midnight = self._midnights[d]
        else:
            midnight = self._midnights[d] = _steady_midnight(d)
        if midnight is None:  # the zone's offset changes that day: wall-clock arithmetic
            return int((datetime.combine(d, time(0), tzinfo=VN_TZ)
                        + timedelta(seconds=s)).timestamp() // 1)
        return midnight + s

    def _add(self, start: datetime, hours: float) -> tuple[date, int]:
        """``add`` as a local day and seconds after its midnight."""
        budget = round(hours * 3600)
        d0, s0 = self._local(start)
        if budget <= 0:
            return d0, s0
        working = self._working(d0)
        done = self._before(s0) if working else 0
        left_today = self.day - done if working else 0
        if budget <= left_today:
            return d0, self._at(done + budget)
        days, rest = divmod(budget - left_today, self.day)
        if rest == 0:
            return self.calendar.add_working_days(d0, days), self._at(self.day)
        return self.calendar.add_working_days(d0, days + 1), self._at(rest)

    def _at(self, office: int) -> int:
        """The first second of a working day with ``office`` seconds of it passed."""
        for a, b in self.intervals:
            if office <= b - a:
                return a + office
            office -= b - a
        raise AssertionError("more office time than a day holds")  # pragma: no cover


def _steady_midnight(d: date) -> int | None:
    """Local midnight of ``d`` in seconds since the epoch, or ``None`` when the zone's offset is
    not the same all that day (so that ``midnight + s`` would not be ``s`` seconds of wall clock
    after it)."""
    start = datetime.combine(d, time(0), tzinfo=VN_TZ)
    last = datetime.combine(d, time(23, 59, 59), tzinfo=VN_TZ)
    if start.utcoffset() != last.utcoffset():
        return None
    return int(start.timestamp())
