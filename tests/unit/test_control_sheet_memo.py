"""The control sheet kept on a dossier between events (``controlsheet.steps_of`` keeps the steps
that cannot have changed) is the sheet a derivation from scratch gives, after every event, and
in the cases where a kept step would be wrong: a wait that falls in an earlier step, a step
added while a wait is pending or after one, an end of processing moved earlier.

Mon 5 Oct 2026 is a working day: office hours 08–12 and 13–17 (+07:00).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import uuid4

from engine.domain.dossier import Dossier
from kernel.lifecycle import LifecycleRules
from projections import controlsheet as CS
from projections import facts as F

RULES = LifecycleRules()
MEMOS = ("_sheet", "_facts_memo")


def t(hhmm: str, day: int = 5) -> datetime:
    return datetime.fromisoformat(f"2026-10-{day:02d}T{hhmm}:00+07:00")


def s(hhmm: str, day: int = 5) -> int:
    return int(t(hhmm, day).timestamp())


def received(budget: float | None = 8) -> Dossier:
    data = {"agency_id": "H15.15", "procedure_id": "1.001612", "channel": "direct"}
    return Dossier.receive(id=uuid4(), dossier_id="D1", data=data, at=t("08:00"),
                           due_at=t("17:00", 12), cause=None, receive_budget=budget)


def fresh(d: Dossier) -> Dossier:
    """A copy of the dossier's state with nothing kept from earlier derivations (and no list
    or line shared with it)."""
    c = object.__new__(Dossier)
    c.__dict__.update(copy.deepcopy({k: v for k, v in d.__dict__.items()
                                     if k not in MEMOS and k != "_pending_events"}))
    return c


def assert_as_from_scratch(d: Dossier) -> list[CS.Step]:
    """The kept sheet, its packed form and the facts equal a derivation from scratch."""
    steps = CS.steps_of(d, RULES)
    scratch = fresh(d)
    assert steps == CS.steps_of(scratch, RULES)
    assert F.derive(d, RULES) == F.derive(scratch, RULES)
    if d.end_at is None:
        assert CS.packed_of(d, RULES) == [st.pack() for st in CS.steps_of(scratch, RULES)]
    return steps


def replay(d: Dossier, commands: list[Callable[[Dossier], Any]]) -> list[CS.Step]:
    """Run the commands, checking the kept sheet against one from scratch after each, and
    that the facts derived before an event are left as they were (the fold reads them)."""
    steps = assert_as_from_scratch(d)
    for command in commands:
        before = F.derive(d, RULES)
        kept = copy.deepcopy(before)
        command(d)
        steps = assert_as_from_scratch(d)
        assert before == kept
    return steps


def over(unit: str, at: datetime, budget: float | None = 4) -> Callable[[Dossier], Any]:
    return lambda d: d.hand_over(unit, None, f"step-{unit}", None, budget, at, None)


def test_a_wait_in_an_earlier_step_moves_that_steps_due_time_in_the_kept_sheet() -> None:
    """Receive 08:00 (8 h: due 17:00), handed over at 10:00 (4 h: due 15:00); a supplement
    asked at 09:00, in the first step, and given at 11:00 moves the first step's due time by
    its hour inside it (18:00) and the second's by its hour inside that one (16:00)."""
    d = received()
    steps = replay(d, [over("U2", t("10:00")),
                       lambda d: d.request_supplement(None, t("09:00"), None),
                       lambda d: d.complete_supplement(t("11:00"), None)])
    assert [(st.start, st.end, st.due, st.pending) for st in steps] == [
        (s("08:00"), s("10:00"), s("18:00"), None),
        (s("10:00"), None, s("16:00"), None),
    ]


def test_a_wait_pending_when_a_step_is_added_counts_in_the_closed_and_the_open_step() -> None:
    """Asked at 11:00 while U2 holds it (due 15:00), still pending at the handover at 14:00:
    U2's step closes with the 3 h of the wait inside it (due 18:00); U3's step (from 14:00, 4 h:
    due Tue 09:00) counts the pending wait from its own start at the view."""
    d = received()
    steps = replay(d, [over("U2", t("10:00")),
                       lambda d: d.request_supplement(None, t("11:00"), None),
                       over("U3", t("14:00"))])
    assert [(st.end, st.due, st.pending) for st in steps] == [
        (s("10:00"), s("17:00"), None),
        (s("14:00"), s("18:00"), None),
        (None, s("09:00", 6), s("14:00")),
    ]


def test_steps_added_after_a_completed_wait_keep_the_sheet_exact() -> None:
    """A wait from 09:00 to 13:30 spanning two steps, then two more handovers, a resolution
    and the end of processing moved earlier by the return of the result (the last step's end
    changes twice): the kept sheet equals the one from scratch after every event."""
    d = received()
    steps = replay(d, [over("U2", t("10:00")),
                       lambda d: d.request_supplement(None, t("09:00"), None),
                       over("U3", t("11:00"), None),
                       lambda d: d.complete_supplement(t("13:30"), None),
                       over("U4", t("15:00")),
                       over("U5", t("09:00", 6), 2),
                       lambda d: d.resolve("approved", t("16:00", 6), None),
                       lambda d: d.return_result(t("11:00", 6), None)])
    assert [st.end for st in steps][-2:] == [s("09:00", 6), s("11:00", 6)]


def test_a_sheet_derived_under_other_rules_is_derived_again() -> None:
    """The kept sheet belongs to the rules it was derived under: other office hours give
    another due time (a 7-hour day from 07:30: 8 h from Mon 08:00 end Tue 09:00)."""
    from datetime import time
    d = received()
    assert CS.steps_of(d, RULES)[0].due == s("17:00")
    other = LifecycleRules(office_hours=((time(7, 30), time(11, 30)), (time(13, 30), time(16, 30))))
    assert CS.steps_of(d, other)[0].due == s("09:00", 6)
