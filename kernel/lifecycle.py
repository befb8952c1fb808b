"""The lifecycle rules: the working-day calendar and the settings that shape recorded facts.

Kept as data (``kernel/rules/lifecycle.json``) because each is a decision the spec leaves to us
(the extra days off and make-up days the government announces, whether an apology moves the due
time, how long before the due time an apology is in time, the petition answer period, the office
hours). The engine uses the calendar for due times; the projections derive every fact with all
of them. A change here changes the facts version (``projections.facts``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from kernel.calendar import WorkCalendar
from kernel.errors import ConfigurationError

OfficeHours = tuple[tuple[time, time], ...]
DEFAULT_OFFICE_HOURS: OfficeHours = ((time(8), time(12)), (time(13), time(17)))


@dataclass(frozen=True)
class LifecycleRules:
    """The calendar and the fact-shaping settings, read once."""

    calendar: WorkCalendar = field(default_factory=WorkCalendar)
    apology_moves_due: bool = False
    apology_notice: timedelta = timedelta(days=1)
    petition_answer_working_days: int = 15
    office_hours: OfficeHours = DEFAULT_OFFICE_HOURS

    def settings(self) -> dict[str, Any]:
        """The settings as plain data (what the facts version fingerprints)."""
        return {
            "extra_days_off": sorted(d.isoformat() for d in self.calendar.extra_days_off),
            "makeup_working_days": sorted(
                d.isoformat() for d in self.calendar.makeup_working_days),
            "apology_moves_due": self.apology_moves_due,
            "apology_notice_s": self.apology_notice.total_seconds(),
            "petition_answer_working_days": self.petition_answer_working_days,
            "office_hours": [[a.isoformat(), b.isoformat()] for a, b in self.office_hours],
        }


def parse_lifecycle(doc: dict[str, Any]) -> LifecycleRules:
    """Rules from their JSON form; a malformed value is a ``ConfigurationError``."""
    try:
        hours = tuple((time.fromisoformat(a), time.fromisoformat(b))
                      for a, b in doc.get("office_hours", ()))
        for a, b in hours:
            if not a < b:
                raise ValueError(f"office hours {a}–{b} end before they start")
        if list(hours) != sorted(hours) or any(
                hours[i][1] > hours[i + 1][0] for i in range(len(hours) - 1)):
            raise ValueError("office hours must be in order and must not overlap")
        days = int(doc.get("petition_answer_working_days", 15))
        notice = int(doc.get("apology_notice_days", 1))
        if days < 0 or notice < 0:
            raise ValueError("day counts must not be negative")
        return LifecycleRules(
            calendar=WorkCalendar(
                [date.fromisoformat(d) for d in doc.get("extra_days_off", ())],
                [date.fromisoformat(d) for d in doc.get("makeup_working_days", ())]),
            apology_moves_due=bool(doc.get("apology_moves_due", False)),
            apology_notice=timedelta(days=notice),
            petition_answer_working_days=days,
            office_hours=hours or DEFAULT_OFFICE_HOURS,
        )
    except (TypeError, ValueError) as e:
        raise ConfigurationError(f"The lifecycle rules are malformed: {e}.") from None


@cache
def load_lifecycle(path: str | None = None) -> LifecycleRules:
    """The shipped rules (``kernel/rules/lifecycle.json``), or those of another file."""
    if path is None:
        text = resources.files("kernel.rules").joinpath("lifecycle.json").read_text("utf-8")
    else:
        try:
            text = Path(path).read_text("utf-8")
        except OSError as e:
            raise ConfigurationError(
                f"The lifecycle rules file {path!r} cannot be read: {e.strerror}.") from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ConfigurationError(f"The lifecycle rules file is not JSON: {e}.") from None
    return parse_lifecycle(doc)
