"""Vietnamese working days (spec/766.md §6), the clock behind due times and on-time checks.

Working days are precomputed per year as sorted ordinals, so ``add_working_days`` and
``working_days_between`` are a bisect or two on the hot path instead of a day-by-day walk.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from kernel.errors import ConfigurationError

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")


def local_date(instant: datetime) -> date:
    """The calendar date of an aware instant in Vietnam; naive datetimes are refused."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"local_date needs a timezone-aware datetime, got {instant!r}")
    return instant.astimezone(VN_TZ).date()


def end_of_local_day(d: date) -> datetime:
    """23:59:59 of ``d`` in Vietnam, the due instant of a day-based deadline."""
    return datetime.combine(d, time(23, 59, 59), tzinfo=VN_TZ)


@lru_cache(maxsize=256)
def _package_year(year: int) -> tuple[frozenset[date], frozenset[date]]:
    """Public holidays and weekend make-up workdays the ``holidays`` package knows for a year."""
    vn = holidays.country_holidays("VN", years=year)
    off = frozenset(d for d in vn if d.year == year)
    workdays = frozenset(d for d in getattr(vn, "weekend_workdays", ()) if d.year == year)
    return off, workdays


def warm(years: Iterable[int] | None = None) -> threading.Thread:
    """The holidays of ``years`` (default: last year, this year and next) computed on a
    background thread, which this returns started. The first year asked of the ``holidays``
    package loads its Vietnam calendar (0.1 s, several times that on a busy machine): an
    engine that warms it while it waits to run (``motcua engine --child``) or for its first
    poll does not spend it on its first batch."""
    if years is None:
        this = date.today().year
        years = (this - 1, this, this + 1)
    wanted = list(years)

    def run() -> None:
        for year in wanted:
            _package_year(year)

    thread = threading.Thread(target=run, name="calendar-warm", daemon=True)
    thread.start()
    return thread


class WorkCalendar:
    """Mon–Fri minus VN holidays and extra days off, plus make-up working days."""

    def __init__(
        self,
        extra_days_off: Iterable[date] = (),
        makeup_working_days: Iterable[date] = (),
    ) -> None:
        self.extra_days_off = frozenset(extra_days_off)
        self.makeup_working_days = frozenset(makeup_working_days)
        clash = self.extra_days_off & self.makeup_working_days
        if clash:
            days = ", ".join(sorted(d.isoformat() for d in clash))
            raise ConfigurationError(f"{days} is listed both as a day off and as a working day.")
        self._years: dict[int, list[int]] = {}

    def __repr__(self) -> str:
        return (
            f"WorkCalendar(extra_days_off={len(self.extra_days_off)} days, "
            f"makeup_working_days={len(self.makeup_working_days)} days)"
        )

    def _year(self, year: int) -> list[int]:
        days = self._years.get(year)
        if days is None:
            off, package_workdays = _package_year(year)
            first, last = date(year, 1, 1).toordinal(), date(year, 12, 31).toordinal()
            days = [
                o
                for o in range(first, last + 1)
                if self._computes_working(date.fromordinal(o), off, package_workdays)
            ]
            self._years[year] = days
        return days

    def _computes_working(self, d: date, off: frozenset[date], workdays: frozenset[date]) -> bool:
        if d in self.makeup_working_days:
            return True
        if d in self.extra_days_off or d in off:
            return False
        return d.weekday() < 5 or d in workdays

    def is_working_day(self, d: date) -> bool:
        days = self._year(d.year)
        o = d.toordinal()
        i = bisect_left(days, o)
        return i < len(days) and days[i] == o

    def add_working_days(self, d: date, n: int) -> date:
        """The n-th working day after ``d`` (``d`` not counted); ``n == 0`` gives ``d``."""
        if n < 0:
            raise ValueError(f"add_working_days needs n >= 0, got {n}")
        if n == 0:
            return d
        year = d.year
        days = self._year(year)
        index = bisect_right(days, d.toordinal()) + n - 1
        while index >= len(days):
            index -= len(days)
            year += 1
            days = self._year(year)
        return date.fromordinal(days[index])

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in (start, end]; 0 when ``end <= start``."""
        if end <= start:
            return 0
        return self._rank(end) - self._rank(start) + self._year_offset(start.year, end.year)

    def _rank(self, d: date) -> int:
        """Working days of ``d``'s year that are on or before ``d``."""
        return bisect_right(self._year(d.year), d.toordinal())

    def _year_offset(self, first: int, last: int) -> int:
        return sum(len(self._year(y)) for y in range(first, last))


def add_processing_time(received_at: datetime, value: int, unit: str,
                        calendar: WorkCalendar) -> datetime:
    """The due instant of a processing time counted from a reception (spec §4): ``hours`` from
    the instant; else the end of the local day that is ``value`` working days, days or months
    (the same day of the month, or the month's last day) after the reception date."""
    if unit == "hours":
        return received_at + timedelta(hours=value)
    day = local_date(received_at)
    if unit == "working_days":
        return end_of_local_day(calendar.add_working_days(day, value))
    if unit == "days":
        return end_of_local_day(day + timedelta(days=value))
    if unit == "months":
        return end_of_local_day(_add_months(day, value))
    raise ValueError(f"unknown processing time unit {unit!r}")


def _add_months(d: date, n: int) -> date:
    month0 = d.month - 1 + n
    year, month = d.year + month0 // 12, month0 % 12 + 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")  # pragma: no cover
