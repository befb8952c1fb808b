"""Simulated time: integer "local seconds", their RFC 3339 text, office hours and working days.

A time is ``date.toordinal() * DAY + seconds of the day``, Vietnam time (+07:00 all year),
because a million dossiers make datetime arithmetic the bottleneck.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from kernel.calendar import WorkCalendar
from kernel.lifecycle import DEFAULT_OFFICE_HOURS

TZ = timezone(timedelta(hours=7))  # Asia/Ho_Chi_Minh has had no offset change since 1975
DAY = 86_400
HOUR = 3_600
MINUTE = 60
NEVER = 1 << 62
OFFICE_OPENS = 7 * HOUR + 30 * MINUTE
OFFICE_CLOSES = 17 * HOUR + 30 * MINUTE
DUE_TIME_OF_DAY = 17 * HOUR  # senders write due dates as the end of the office day
# Actions stamped outside office hours move into the afternoon, spread over these two hours.
_MOVED_FROM = 15 * HOUR
_MOVED_SPREAD = 2 * HOUR

_day_text: dict[int, str] = {}
_time_text: list[str] = []


def format_time(t: int) -> str:
    """RFC 3339 text of a local-seconds time; days and times of day are cached as text."""
    if not _time_text:
        _time_text.extend(
            f"T{s // HOUR:02d}:{s // MINUTE % 60:02d}:{s % MINUTE:02d}+07:00" for s in range(DAY)
        )
    day, s = divmod(t, DAY)
    text = _day_text.get(day)
    if text is None:
        text = _day_text[day] = date.fromordinal(day).isoformat()
    return text + _time_text[s]


def to_datetime(t: int) -> datetime:
    """The aware datetime of a local-seconds time."""
    day, s = divmod(t, DAY)
    return datetime.combine(date.fromordinal(day), datetime.min.time(), TZ) + timedelta(seconds=s)


def from_datetime(dt: datetime) -> int:
    """The local-seconds time of an aware datetime."""
    local = dt.astimezone(TZ)
    return local.toordinal() * DAY + local.hour * HOUR + local.minute * MINUTE + local.second


def in_office_hours(t: int, lo: int, hi: int) -> int:
    """Move ``t`` into office hours (earlier, same or previous day) if it stays in (lo, hi]."""
    s = t % DAY
    if OFFICE_OPENS <= s <= OFFICE_CLOSES:
        return t
    back = DAY if s < OFFICE_OPENS else 0
    moved = t - s - back + _MOVED_FROM + t % _MOVED_SPREAD
    return moved if lo < moved <= hi else t


class WorkingDays:
    """Working-day arithmetic on day ordinals, cached: the same few sums recur per dossier."""

    def __init__(self, calendar: WorkCalendar) -> None:
        self.calendar = calendar
        self._sums: dict[tuple[int, int], int] = {}

    def add(self, day: int, n: int) -> int:
        """The n-th working day after ordinal ``day``, as an ordinal."""
        key = (day, n)
        out = self._sums.get(key)
        if out is None:
            out = self._sums[key] = self.calendar.add_working_days(
                date.fromordinal(day), n
            ).toordinal()
        return out

    def is_working(self, day: int) -> bool:
        """Whether ordinal ``day`` is a working day."""
        return self.add(day - 1, 1) == day


class OfficeTime:
    """Office time on local-seconds times: the sessions of ``kernel.lifecycle`` (08–12, 13–17)
    on working days. Here to draw believable control sheets fast; the engine's own arithmetic
    is ``kernel.officehours``."""

    def __init__(self, working: WorkingDays) -> None:
        self.working = working
        self.sessions = tuple((a.hour * HOUR + a.minute * MINUTE, b.hour * HOUR + b.minute * MINUTE)
                              for a, b in DEFAULT_OFFICE_HOURS)
        self.per_day = sum(b - a for a, b in self.sessions)
        self._ranks: list[int] = []  # working days in (origin, origin + i]
        self._origin = 0

    def _before(self, s: int) -> int:
        """Office seconds of a working day before ``s`` seconds after its midnight."""
        done = 0
        for a, b in self.sessions:
            if s <= a:
                break
            if s < b:
                return done + s - a
            done += b - a
        return done

    def _working_days(self, first: int, last: int) -> int:
        """Working days among the ordinals ``first`` … ``last``, from cumulative counts."""
        ranks = self._ranks
        if not ranks:
            self._origin = first - 1
            ranks.append(0)
        if first <= self._origin:
            return sum(self.working.is_working(d) for d in range(first, last + 1))
        while self._origin + len(ranks) <= last:
            ranks.append(ranks[-1] + self.working.is_working(self._origin + len(ranks)))
        return ranks[last - self._origin] - ranks[first - 1 - self._origin]

    def between(self, a: int, b: int) -> int:
        """Office seconds in [a, b); 0 when ``b`` is not after ``a``."""
        if b <= a:
            return 0
        da, sa = divmod(a, DAY)
        db, sb = divmod(b, DAY)
        working = self.working.is_working
        if da == db:
            return self._before(sb) - self._before(sa) if working(da) else 0
        first = self.per_day - self._before(sa) if working(da) else 0
        last = self._before(sb) if working(db) else 0
        middle = 0
        if db - da > 1:
            middle = self._working_days(da + 1, db - 1) * self.per_day
        return first + middle + last

    def add(self, t: int, seconds: int) -> int:
        """The first time at which ``seconds`` of office time have passed since ``t``."""
        if seconds <= 0:
            return t
        day, s = divmod(t, DAY)
        done = self._before(s) if self.working.is_working(day) else self.per_day
        if done + seconds <= self.per_day:
            return day * DAY + self._at(done + seconds)
        days, rest = divmod(done + seconds - self.per_day, self.per_day)
        if rest == 0:
            return self.working.add(day, days) * DAY + self._at(self.per_day)
        return self.working.add(day, days + 1) * DAY + self._at(rest)

    def _at(self, office: int) -> int:
        """Seconds after midnight at which ``office`` seconds of a working day have passed."""
        for a, b in self.sessions:
            if office <= b - a:
                return a + office
            office -= b - a
        raise AssertionError("more office time than a day holds")  # pragma: no cover
