"""Simulated time: integer "local seconds", their RFC 3339 text, office hours and working days.

A time is ``date.toordinal() * DAY + seconds of the day``, Vietnam time (+07:00 all year),
because a million dossiers make datetime arithmetic the bottleneck.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from kernel.calendar import WorkCalendar

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
