"""The simulator's control sheets: 2–4 handovers along the procedure's internal process (a few
trips back to processing), never out of order, slow officials overrunning more often, and late
dossiers late mostly because a step overran (judged by the naive oracle, tests/oracle_delays.py).
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from oracle_delays import DelaysOracle
from pipeline import Pipeline

from kernel.calendar import VN_TZ, WorkCalendar
from kernel.lifecycle import load_lifecycle
from kernel.officehours import OfficeClock
from producers.simulator import SimConfig, generate
from producers.simulator.clock import DAY, OfficeTime, WorkingDays, from_datetime, to_datetime
from producers.simulator.staff import Staff

CFG = SimConfig(agencies=12, dossiers=4000, seed=31)
SETTINGS = load_lifecycle().settings()
_FINISHING = ("resolved", "result_returned", "withdrawn")


@pytest.fixture(scope="module")
def actions() -> list[dict[str, Any]]:
    return list(generate(CFG))


def histories(actions: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for a in actions:
        if "dossier_id" in a:
            out.setdefault(a["dossier_id"], []).append(a)
    return out


def steps_of(history: list[dict[str, Any]]) -> list[str]:
    return [a["data"]["step"] for a in history if a["type"] == "handed_over"]


def test_resolved_dossiers_are_handed_over_two_to_four_times_or_back_and_forth(
    actions: list[dict[str, Any]],
) -> None:
    """A dossier resolved in the window went receive → process → (review →) (approve →) return
    as its procedure's internal process says: 2, 3 or 4 handovers, or, for a few, two more for a
    trip from the step after processing back to processing."""
    routes = {a["procedure_id"]: [s["step"] for s in a["data"]["internal_process"]]
              for a in actions if a["type"] == "procedure_published"
              and "internal_process" in a["data"]}
    counts: Counter[int] = Counter()
    trips = resolved = 0
    for history in histories(actions).values():
        kinds = {a["type"] for a in history}
        if "resolved" not in kinds or "withdrawn" in kinds:
            continue
        resolved += 1
        steps = steps_of(history)
        if steps.count("process") == 2:  # process → X → process → X
            i = steps.index("process")
            assert steps[i:i + 4] == ["process", steps[i + 1]] * 2, steps
            del steps[i + 2:i + 4]
            trips += 1
        counts[len(steps)] += 1
        assert steps[0] == "process" and steps[-1] == "return", steps
        assert steps in (["process", "return"], ["process", "approve", "return"],
                         ["process", "review", "approve", "return"]), steps
        route = routes.get(history[0]["data"]["procedure_id"])
        assert route is None or route == ["receive", *steps], (route, steps)
    assert set(counts) == {2, 3, 4} and min(counts.values()) > resolved // 10
    assert trips / resolved == pytest.approx(CFG.back_and_forth_rate, abs=0.015)


def test_handovers_respect_the_lifecycle(actions: list[dict[str, Any]]) -> None:
    """Each handover comes after the current step began and no later than the end of
    processing; a withdrawn dossier gets none after its withdrawal; each names a unit of the
    dossier's agency (or the agency), and the official of a unit is one of a small pool."""
    pools: dict[str, set[str]] = {}
    handed = 0
    for history in histories(actions).values():
        agency, start, end = history[0]["data"]["agency_id"], history[0]["occurred_at"], None
        for a in history[1:]:
            if a["type"] in _FINISHING and end is None:
                end = a["occurred_at"]
            if a["type"] == "handed_over":
                handed += 1
                assert a["occurred_at"] > start and end is None, (a, start, end)
                start = a["occurred_at"]
                unit = a["data"]["to_unit"]
                assert unit == agency or unit.startswith(agency + "/"), a
                if "to_official" in a["data"]:
                    pools.setdefault(unit, set()).add(a["data"]["to_official"])
    assert handed > 2 * CFG.dossiers
    assert max(len(p) for p in pools.values()) <= 4 and len(pools) > 3 * CFG.agencies


def test_a_simulated_province_is_accepted_without_refusals(tmp_path: Path) -> None:
    """A province with many trips back, sender-given step due times and waits on the applicant,
    run through the engine, leaves no dead letter: no handover out of order."""
    cfg = SimConfig(agencies=6, dossiers=800, seed=5, days=120, back_and_forth_rate=0.5,
                    step_due_at_rate=0.5, supplement_rate=0.3, withdrawal_rate=0.1)
    stream = list(generate(cfg))
    with Pipeline(tmp_path / "m.db", clock=datetime(2026, 6, 1, tzinfo=VN_TZ)) as p:
        p.send(stream, batch=2000)
        assert p.rejected() == []
        assert sum(1 for a in stream if a["type"] == "handed_over") > 3 * cfg.dossiers


def test_receptions_name_their_official(actions: list[dict[str, Any]]) -> None:
    """Most receptions and handovers name the official, as often as configured."""
    received = [a for a in actions if a["type"] == "received"]
    handed = [a for a in actions if a["type"] == "handed_over"]
    named = sum("official_id" in a["data"] for a in received) / len(received)
    assert named == pytest.approx(CFG.official_named_rate, abs=0.01)
    named = sum("to_official" in a["data"] for a in handed) / len(handed)
    assert named == pytest.approx(CFG.official_named_rate, abs=0.01)
    given = sum("step_due_at" in a["data"] for a in handed) / len(handed)
    assert given == pytest.approx(CFG.step_due_at_rate, abs=0.01)


def test_internal_processes_budget_a_share_of_the_processing_time(
    actions: list[dict[str, Any]],
) -> None:
    """Most procedures publish an internal process; for those counted in working days the
    steps' budgets add up to the configured share of 8 office hours a day (half-hour steps)."""
    published = [a["data"] for a in actions if a["type"] == "procedure_published"]
    with_process = [d for d in published if "internal_process" in d]
    assert 0.6 < len(with_process) / len(published) < 0.95
    for d in with_process:
        hours = [s["working_hours"] for s in d["internal_process"]]
        assert all(h > 0 and float(2 * h).is_integer() for h in hours), hours
        if d["processing_time"]["unit"] == "working_days":
            target = CFG.internal_budget_share * 8 * d["processing_time"]["value"]
            assert abs(sum(hours) - target) <= 0.25 * len(hours) + 0.5, (hours, target)


def judged(actions: list[dict[str, Any]]) -> tuple[DelaysOracle, int]:
    """The oracle over the province, and the view's end (the window's last instant)."""
    oracle = DelaysOracle(actions, SETTINGS)
    assert oracle.refused == []
    end = datetime.combine(CFG.start + timedelta(days=CFG.days - 1), datetime.max.time(), VN_TZ)
    return oracle, int(end.timestamp())


def test_slow_officials_overrun_their_steps_more_often(actions: list[dict[str, Any]]) -> None:
    """Of the finished steps with a due time, those held by the officials the roster made slow
    are late far more often than those of the others."""
    levels = {a["agency_id"]: a["data"]["level"] for a in actions
              if a["type"] == "agency_registered"}
    staff = Staff(CFG)
    slow = {h.official for agency, level in levels.items() if level != "province"
            for h in staff.roster(agency, level == "commune").officials() if h.slow}
    oracle, e = judged(actions)
    late: Counter[bool] = Counter()
    total: Counter[bool] = Counter()
    for d in oracle.dossiers.values():
        for step, end, due in oracle.sheet(d, e)[1:]:  # the receive step names its official
            if end is not None and due is not None and step.official is not None:
                total[step.official in slow] += 1
                late[step.official in slow] += end > due
    assert slow and min(total.values()) > 300
    assert late[True] / total[True] > 3 * late[False] / total[False]


def test_late_dossiers_are_late_mostly_because_a_step_overran(
    actions: list[dict[str, Any]],
) -> None:
    """Of the dossiers finished late, most have a late step (the rest go to the holder at the
    due time); and the delays list spreads over many units."""
    oracle, e = judged(actions)
    finished_late = [d for d in oracle.late_dossiers(CFG.province_id, CFG.start, date.max, e)
                     if d.end is not None and len(d.requests) < 2]
    with_late_step = [d for d in finished_late
                      if any(end is not None and due is not None and end > due
                             for _, end, due in oracle.sheet(d, e))]
    assert len(finished_late) > 300
    assert len(with_late_step) / len(finished_late) > 0.75
    units = {a.unit for d in finished_late for a in oracle.attribute(d, e)}
    assert len(units) > 2 * CFG.agencies


def test_without_handovers_each_dossier_stays_with_its_receiver() -> None:
    """``handovers=False`` gives the same kind of province with no handover at all."""
    stream = list(generate(SimConfig(agencies=4, dossiers=300, seed=2, handovers=False)))
    kinds = Counter(a["type"] for a in stream)
    assert kinds["handed_over"] == 0 and kinds["received"] == 300 and kinds["resolved"] > 250


def test_the_simulators_office_time_is_the_engines() -> None:
    """The simulator's fast office-time arithmetic gives what ``kernel.officehours`` gives,
    around Tết, weekends, the make-up Saturday of 22 Aug 2026 and the 2 September holidays."""
    calendar = WorkCalendar()
    fast, clock = OfficeTime(WorkingDays(calendar)), OfficeClock(calendar)
    rnd = random.Random(4)
    for _ in range(2000):
        day = date(2026, rnd.choice([2, 8, 9, 12]), rnd.randint(1, 28)).toordinal()
        a = day * DAY + rnd.randrange(DAY)
        b = a + rnd.randrange(20 * DAY)
        seconds = rnd.choice([0, 1, 1800, 4 * 3600, 8 * 3600, rnd.randrange(200 * 3600)])
        assert fast.between(a, b) == clock.between(to_datetime(a), to_datetime(b)), (a, b)
        assert fast.add(a, seconds) == from_datetime(clock.add(to_datetime(a), seconds / 3600))
