"""The due time a dossier is given at reception (spec/766.md §4): its one home."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.domain.errors import InvalidDueTimeError, NoDueTimeError
from kernel.calendar import WorkCalendar, add_processing_time

__all__ = ["compute_due"]


def compute_due(
    received_at: datetime,
    due_at: datetime | None,
    processing_time: dict[str, Any] | None,
    calendar: WorkCalendar,
) -> datetime:
    """The due time of spec §4: ``due_at`` if given, else from the procedure's processing time."""
    if due_at is not None:
        if due_at < received_at:
            raise InvalidDueTimeError(
                f"due_at {due_at.isoformat()} is before the reception time "
                f"{received_at.isoformat()}.",
                field="data.due_at",
            )
        return due_at
    if not processing_time:
        raise NoDueTimeError(
            "The received action has no due_at and its procedure has no known processing time.",
            field="data.due_at",
        )
    return add_processing_time(received_at, int(processing_time["value"]),
                               str(processing_time["unit"]), calendar)
