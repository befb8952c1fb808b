"""Periods of the index (spec §5): month, quarter, half-year and year in Asia/Ho_Chi_Minh."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from kernel.calendar import VN_TZ, end_of_local_day
from kernel.contract.bounds import DATE_MAX, DATE_MIN, TIME_RANGE, check_instant
from kernel.contract.errors import InvalidActionError
from kernel.errors import UserError

# ASCII digits only: ``\d`` would take '２０２６' too, as a period of its own.
_PATTERN = re.compile(r"^([0-9]{4})(?:-(?:(0[1-9]|1[0-2])|Q([1-4])|H([12])))?$")


class PeriodError(UserError):
    """A period that is not YYYY, YYYY-Hn, YYYY-Qn or YYYY-MM."""


class TimeArgumentError(UserError):
    """A time argument that is not RFC 3339 with an offset."""


@dataclass(frozen=True)
class Period:
    """A reporting period: its label, first and last local day, and its months."""

    label: str
    start: date
    end: date
    months: tuple[str, ...]

    def view_end(self, now: datetime) -> datetime:
        """E = min(now, end of the period) (spec §4)."""
        return min(now, end_of_local_day(self.end))


def parse_period(text: str) -> Period:
    """``2026``, ``2026-H2``, ``2026-Q4`` or ``2026-10``; anything else is a ``PeriodError``."""
    m = _PATTERN.match(text.strip())
    if not m:
        raise PeriodError(
            f"Period {text!r} is not one of YYYY, YYYY-H1/H2, YYYY-Q1..Q4 or YYYY-MM "
            "(e.g. 2026, 2026-H2, 2026-Q4, 2026-10)."
        )
    year = int(m.group(1))
    # The years actions may fall in (kernel/contract/bounds.py), and the local year of their
    # last instants (2100-01-01 in Vietnam is still 2099 in UTC).
    if not DATE_MIN.year <= year <= DATE_MAX.year + 1:
        raise PeriodError(f"Period {text!r} is outside the years {DATE_MIN.year}-"
                          f"{DATE_MAX.year + 1} that motcua records.")
    if m.group(2):
        first = last = int(m.group(2))
    elif m.group(3):
        q = int(m.group(3))
        first, last = 3 * q - 2, 3 * q
    elif m.group(4):
        h = int(m.group(4))
        first, last = 6 * h - 5, 6 * h
    else:
        first, last = 1, 12
    start = date(year, first, 1)
    end = (date(year + 1, 1, 1) if last == 12 else date(year, last + 1, 1)) - timedelta(days=1)
    months = tuple(f"{year:04d}-{mo:02d}" for mo in range(first, last + 1))
    return Period(text.strip(), start, end, months)


def current_year(now: datetime) -> Period:
    return parse_period(str(now.astimezone(VN_TZ).year))


def parse_instant(text: str, what: str = "--now") -> datetime:
    """An RFC 3339 instant with an offset, for ``--now`` and ``--as-recorded``."""
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        t = None
    if t is None or t.tzinfo is None:
        raise TimeArgumentError(
            f"{what} {text!r} is not an RFC 3339 time with an offset "
            "(e.g. 2026-10-10T23:59:59+07:00)."
        )
    try:  # the range actions are held to: a view's now outside it overflows date arithmetic
        return check_instant(t, what, text)
    except InvalidActionError:
        raise TimeArgumentError(f"{what} {text!r} is not a time {TIME_RANGE}.") from None


def parse_recorded_by(text: str, what: str, now: datetime) -> datetime:
    """An instant that names what had been recorded by then (``scores --as-recorded``,
    ``replay --until``, ``publish --at``): RFC 3339 with an offset, and not after ``now``.
    Nothing is recorded after now: an answer "as recorded at" a later time would be today's
    facts under a date that has not come, which an auditor could not tell from a real one."""
    t = parse_instant(text, what)
    if t > now:
        raise TimeArgumentError(
            f"{what} {text.strip()} is in the future: nothing has been recorded after now "
            f"({now.astimezone(VN_TZ).isoformat(timespec='seconds')}).")
    return t
