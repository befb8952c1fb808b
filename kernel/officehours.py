"""Office hours on the working-day calendar (spec/accountability.md §2).

A step's budget is counted in office hours from the step's start: 08:00–12:00 and 13:00–17:00
local time (a lifecycle rules setting) on working days (spec/766.md §6). Instants are taken to
the second (fractions dropped), so every duration here is a whole number of seconds: exact, and
summed exactly before any rounding.

Inside, a local time is a day's ordinal and the seconds after its midnight; the facts derive a
due time for every step of every dossier, so the day-level answers (working or not, the n-th
working day after, local midnight, the zone's offset) are kept per day once asked.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from kernel.calendar import VN_TZ, WorkCalendar

Intervals = tuple[tuple[int, int], ...]  # seconds after local midnight, [start, end)
DAY = 86400
EPOCH_DAY = date(1970, 1, 1).toordinal()


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
        self._working: dict[int, bool] = {}  # ordinal: a working day?
        self._later: dict[tuple[int, int], int] = {}  # (ordinal, n): n-th working day after
        self._midnights: dict[int, int | None] = {}  # ordinal: ``_steady_midnight``
        self._offsets: dict[int, int | None] = {}  # UTC day: ``_steady_offset``

    def _local(self, t: datetime) -> tuple[int, int]:
        local = t.astimezone(VN_TZ)
        return local.toordinal(), local.hour * 3600 + local.minute * 60 + local.second

    def _is_working(self, o: int) -> bool:
        w = self._working.get(o)
        if w is None:
            w = self._working[o] = self.calendar.is_working_day(date.fromordinal(o))
        return w

    def _add_working_days(self, o: int, n: int) -> int:
        later = self._later.get((o, n))
        if later is None:
            later = self._later[o, n] = self.calendar.add_working_days(
                date.fromordinal(o), n).toordinal()
        return later

    def _before(self, s: int) -> int:
        """Office seconds of a working day before ``s`` seconds after its midnight."""
        done = 0
        for a, b in self.intervals:
            if s > a:
                done += (s if s < b else b) - a
        return done

    def _within(self, o: int, s: int) -> int:
        """Office seconds of day ``o`` before ``s`` seconds after its midnight."""
        return self._before(s) if self._is_working(o) else 0

    def between(self, start: datetime, end: datetime) -> int:
        """Office seconds in [start, end); 0 when ``end`` is not after ``start``."""
        d0, s0 = self._local(start)
        d1, s1 = self._local(end)
        if (d1, s1) <= (d0, s0):
            return 0
        if d0 == d1:
            return self._within(d1, s1) - self._within(d0, s0)
        first = (self.day - self._within(d0, s0)) if self._is_working(d0) else 0
        middle = self.calendar.working_days_between(date.fromordinal(d0),
                                                    date.fromordinal(d1 - 1)) * self.day
        return first + middle + self._within(d1, s1)

    def add(self, start: datetime, hours: float) -> datetime:
        """The first instant at which ``hours`` of office time have passed since ``start``."""
        o, s = self._add(*self._local(start), hours)
        return datetime.combine(date.fromordinal(o), time(0), tzinfo=VN_TZ) + timedelta(seconds=s)

    def add_seconds(self, start: int, hours: float) -> int:
        """``add`` on whole seconds since the epoch: from ``start`` (an instant to the second)
        to the due instant's seconds, ``add(...).timestamp()``, without building instants."""
        utc_day = start // DAY
        if utc_day in self._offsets:
            offset = self._offsets[utc_day]
        else:
            offset = self._offsets[utc_day] = _steady_offset(utc_day)
        if offset is None:  # the zone's offset changes that day: by the instants
            return int(self.add(datetime.fromtimestamp(start, VN_TZ), hours).timestamp())
        o, s = divmod(start + offset, DAY)
        o, s = self._add(o + EPOCH_DAY, s, hours)
        if o in self._midnights:
            midnight = self._midnights[o]
        else:
            midnight = self._midnights[o] = _steady_midnight(date.fromordinal(o))
        if midnight is None:
            return int(self.add(datetime.fromtimestamp(start, VN_TZ), hours).timestamp())
        return midnight + s

    def _add(self, o: int, s: int, hours: float) -> tuple[int, int]:
        """``add`` on a local day's ordinal and the seconds after its midnight."""
        budget = round(hours * 3600)
        if budget <= 0:
            return o, s
        working = self._is_working(o)
        done = self._before(s) if working else 0
        left_today = self.day - done if working else 0
        if budget <= left_today:
            return o, self._at(done + budget)
        days, rest = divmod(budget - left_today, self.day)
        if rest == 0:
            return self._add_working_days(o, days), self._at(self.day)
        return self._add_working_days(o, days + 1), self._at(rest)

    def _at(self, office: int) -> int:
        """The first second of a working day with ``office`` seconds of it passed."""
        for a, b in self.intervals:
            if office <= b - a:
                return a + office
            office -= b - a
        raise AssertionError("more office time than a day holds")  # pragma: no cover


def _steady_offset(utc_day: int) -> int | None:
    """The zone's offset in seconds all through a UTC day (days since the epoch), or ``None``
    when it is not the same at the day's first and last second."""
    first = datetime.fromtimestamp(utc_day * DAY, VN_TZ).utcoffset()
    last = datetime.fromtimestamp(utc_day * DAY + DAY - 1, VN_TZ).utcoffset()
    if first is None or first != last:
        return None
    return int(first.total_seconds())


def _steady_midnight(d: date) -> int | None:
    """Local midnight of ``d`` in seconds since the epoch, or ``None`` when the zone's offset is
    not the same all that day (so that ``midnight + s`` would not be ``s`` seconds of wall clock
    after it)."""
    start = datetime.combine(d, time(0), tzinfo=VN_TZ)
    last = datetime.combine(d, time(23, 59, 59), tzinfo=VN_TZ)
    if start.utcoffset() != last.utcoffset():
        return None
    return int(start.timestamp())
