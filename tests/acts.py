"""Hand-written actions for the hand-worked cases: one builder per case file."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

Act = Callable[..., dict[str, Any]]


def builder(prefix: str, dates: str = "2026-") -> Act:
    """``act(type_, at, subject, **data)``: an action of source ``t`` with the next id
    ``{prefix}{n}``, at ``{dates}{at}:00+07:00`` (``at`` the rest of a local date-time)."""
    numbers = itertools.count(1)

    def act(type_: str, at: str, subject: dict[str, str], **data: Any) -> dict[str, Any]:
        return {"schema": "motcua.action/1", "source": "t", "action_id": f"{prefix}{next(numbers)}",
                "type": type_, "occurred_at": f"{dates}{at}:00+07:00", **subject, "data": data}

    return act
