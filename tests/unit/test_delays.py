"""Who made a dossier late (spec/accountability.md §1–§4), on cases worked out by hand.

Calendar: Mon 5 Oct 2026 … Fri 16 Oct 2026, no holidays; office hours 08–12 and 13–17.
Procedure P1's internal process: receive 4 h, process 16 h, approve 8 h; P0 has none.
Every dossier is received at H15.3 on Mon 5 Oct 08:00 by official "o-rec"."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from acts import builder
from pipeline import Pipeline

from kernel.calendar import VN_TZ
from projections.periods import parse_period

OCT = parse_period("2026-10")
END = datetime(2026, 10, 31, 23, 0, tzinfo=VN_TZ)
act = builder("a", "2026-10-")


def catalog() -> list[dict[str, Any]]:
    proc = {"authority_id": "H15", "authority_level": "province", "decision_date": "2026-01-05",
            "legal_basis_effective_date": "2026-02-01", "implementing_agency_ids": ["H15.3"],
            "processing_time": {"value": 5, "unit": "working_days"}}
    process = [{"step": "receive", "working_hours": 4}, {"step": "process", "working_hours": 16},
               {"step": "approve", "working_hours": 8}]
    return [
        act("agency_registered", "01T08:00", {"agency_id": "H15"}, name="Tỉnh", level="province"),
        act("agency_registered", "01T08:00", {"agency_id": "H15.3"}, name="Sở", level="department",
            parent_id="H15"),
        act("procedure_published", "01T08:00", {"procedure_id": "P1"}, **proc,
            internal_process=process),
        act("procedure_published", "01T08:00", {"procedure_id": "P0"}, **proc),
    ]


def dossier(d: str, procedure: str, due: str, *steps: tuple[str, str, dict[str, Any]],
            end: str | None = None) -> list[dict[str, Any]]:
    """Received, then (type, at, data) actions in order, then resolved at ``end``."""
    s = {"dossier_id": d}
    out = [act("received", "05T08:00", s, agency_id="H15.3", procedure_id=procedure,
               channel="direct", due_at=f"2026-10-{due}:00+07:00", official_id="o-rec")]
    out += [act(type_, at, s, **data) for type_, at, data in steps]
    if end is not None:
        out.append(act("resolved", end, s, outcome="approved"))
    return out


def hand(unit: str, official: str | None, step: str, **more: Any) -> dict[str, Any]:
    return {"to_unit": unit, "step": step, **({"to_official": official} if official else {}),
            **more}


# Steps of P1 with their budgets: receive due Mon 12:00; process from Mon 14:00 (16 h: Mon 3,
# Tue 8, Wed 8–12 and 13–14) due Wed 7 Oct 14:00; approve from Thu 10:00 (8 h: Thu 10–12 and
# 13–17, Fri 8–10) due Fri 9 Oct 10:00.
P1_STEPS = (("handed_over", "05T14:00", hand("H15.3/kt", "o1", "process")),
            ("handed_over", "08T10:00", hand("H15.3/ld", "o2", "approve")))


@pytest.fixture
def run(tmp_path: Path) -> Any:
    def go(*dossiers: list[dict[str, Any]]) -> Pipeline:
        p = Pipeline(tmp_path / "m.db")
        p.send(catalog() + [a for d in dossiers for a in d])
        return p
    return go


def rows(result: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(r["unit"], r["official"], r["late_dossiers"], r["late_steps"], r["overrun_hours"],
             r["apology_in_time"], r["apology_late"], r["apology_missing"])
            for r in result["rows"]]


def test_late_steps_of_a_dossier_on_time_are_not_attributed(run: Any) -> None:
    """Receive (1 h), process (5 h) and approve (1 h) are late, but the dossier is resolved
    Fri 9 Oct, before its due time Mon 12 Oct 17:00: nobody made it late."""
    with run(dossier("D1", "P1", "12T17:00", *P1_STEPS, end="09T09:00")) as p:
        out = p.delays("H15.3", OCT, END)
    assert (out["late_dossiers"], out["rows"]) == (0, [])


def test_a_late_dossier_is_attributed_to_each_late_step(run: Any) -> None:
    """Resolved Tue 13 Oct 10:00, after 12 Oct 17:00: receive late 1 h (Mon 12:00 → 14:00,
    lunch excluded), process 5 h (Wed 14:00 → Thu 10:00), approve 16 h (Fri 10:00 → Tue 13
    10:00: Fri 6, Mon 8, Tue 2); sorted by overrun; no apology."""
    with run(dossier("D1", "P1", "12T17:00", *P1_STEPS, end="13T10:00")) as p:
        by_unit = p.delays("H15.3", OCT, END)
        by_official = p.delays("H15.3", OCT, END, by="official")
    assert by_unit["late_dossiers"] == 1
    assert rows(by_unit) == [("H15.3/ld", None, 1, 1, 16.0, 0, 0, 1),
                             ("H15.3/kt", None, 1, 1, 5.0, 0, 0, 1),
                             ("H15.3", None, 1, 1, 1.0, 0, 0, 1)]
    assert rows(by_official) == [("H15.3/ld", "o2", 1, 1, 16.0, 0, 0, 1),
                                 ("H15.3/kt", "o1", 1, 1, 5.0, 0, 0, 1),
                                 ("H15.3", "o-rec", 1, 1, 1.0, 0, 0, 1)]


def test_with_no_step_late_the_holder_at_the_due_time_is_attributed(run: Any) -> None:
    """P0 has no budgets and no step a due time: the dossier, due Mon 12 Oct 17:00 and resolved
    Wed 14 Oct 10:00, goes to X (holding it since Wed 7 Oct) for Tue 8 h + Wed 2 h = 10 h."""
    d = dossier("D1", "P0", "12T17:00",
                ("handed_over", "07T09:00", hand("X", "ox", "process")),
                ("handed_over", "13T09:00", hand("Y", "oy", "approve")), end="14T10:00")
    with run(d) as p:
        out = p.delays("H15.3", OCT, END, by="official")
    assert rows(out) == [("X", "ox", 1, 1, 10.0, 0, 0, 1)]


def test_a_wait_inside_a_step_moves_its_due_time(run: Any) -> None:
    """Process is due Wed 7 Oct 17:00; the applicant is waited for Tue 6 10:00 → Thu 8 10:00
    (48 h), so it is due Fri 9 Oct 17:00 and handing over Fri 16:00 is on time. The dossier's
    due moves to Wed 14 Oct 17:00; resolved Thu 15 Oct 10:00 it is late, and Y held it then:
    Wed 17:00 → Thu 10:00 is 2 office hours."""
    d = dossier("D1", "P0", "12T17:00",
                ("handed_over", "05T10:00", hand("X", None, "process",
                                                 step_due_at="2026-10-07T17:00:00+07:00")),
                ("supplement_requested", "06T10:00", {}),
                ("supplement_completed", "08T10:00", {}),
                ("handed_over", "09T16:00", hand("Y", None, "approve")), end="15T10:00")
    with run(d) as p:
        out = p.delays("H15.3", OCT, END)
    assert rows(out) == [("Y", None, 1, 1, 2.0, 0, 0, 1)]


def test_an_open_step_is_judged_at_the_views_end(run: Any) -> None:
    """Due Fri 9 Oct 17:00, process due Thu 8 17:00 and still open: at Mon 12 Oct 10:00 it is
    10 h late (Fri 8, Mon 2); at Fri 9 Oct 12:00 the dossier is not late yet, so nobody is
    listed, though its step is."""
    d = dossier("D1", "P0", "09T17:00",
                ("handed_over", "05T09:00", hand("X", "ox", "process",
                                                 step_due_at="2026-10-08T17:00:00+07:00")))
    with run(d) as p:
        later = p.delays("H15.3", OCT, datetime(2026, 10, 12, 10, 0, tzinfo=VN_TZ))
        sooner = p.delays("H15.3", OCT, datetime(2026, 10, 9, 12, 0, tzinfo=VN_TZ))
    assert rows(later) == [("X", None, 1, 1, 10.0, 0, 0, 1)]
    assert (sooner["late_dossiers"], sooner["rows"]) == (0, [])


def test_apologies_in_time_late_and_missing_are_counted_per_row(run: Any) -> None:
    """Three dossiers due Mon 12 Oct 17:00, held by X, resolved Tue 13 Oct 09:00 (1 h late
    each): one apology on Sun 11 Oct 17:00 (a day before: in time), one on Mon 12 Oct 08:00
    (late), one none."""
    def late(d: str, apology_at: str | None) -> list[dict[str, Any]]:
        steps: list[tuple[str, str, dict[str, Any]]] = [
            ("handed_over", "05T09:00", hand("X", "ox", "process"))]
        if apology_at:
            steps.append(("apology_issued", apology_at,
                          {"new_due_at": "2026-10-16T17:00:00+07:00", "reason": "quá tải"}))
        return dossier(d, "P0", "12T17:00", *steps, end="13T09:00")

    with run(late("D1", "11T17:00"), late("D2", "12T08:00"), late("D3", None)) as p:
        out = p.delays("H15.3", OCT, END)
    assert rows(out) == [("X", None, 3, 3, 3.0, 1, 1, 1)]
    assert out["late_dossiers"] == 3


def test_a_handover_out_of_order_is_refused_and_changes_nobody(run: Any) -> None:
    """A handover dated before the current step began, or after the end of processing, is
    refused as out_of_order; the holder stays."""
    d = dossier("D1", "P0", "12T17:00",
                ("handed_over", "07T09:00", hand("X", "ox", "process")),
                ("handed_over", "06T09:00", hand("Y", "oy", "approve")), end="08T10:00")
    d.append(act("handed_over", "09T09:00", {"dossier_id": "D1"}, **hand("Z", None, "return")))
    with run(d) as p:
        reasons = [r["reason"] for r in p.rejected()]
        holder = p.dossier_facts["D1"][9]
    assert reasons == ["out_of_order", "out_of_order"]
    assert holder == ["X", "ox", "process"]


def test_the_control_sheet_shows_every_step_with_its_result(run: Any) -> None:
    """``history``'s control sheet of the late dossier above: receive late 1 h, process late
    5 h, approve late 16 h, each with its holder, start, end and due time."""
    from projections.source import dossier_history

    with run(dossier("D1", "P1", "12T17:00", *P1_STEPS, end="13T10:00")) as p:
        doc = dossier_history(p.engine, "D1", END)
    assert doc is not None
    assert [(s["step"], s["unit"], s["official"], s["start"][:16], s["end"][:16],
             s["due"][:16], s["result"], s["overrun_hours"]) for s in doc["control_sheet"]] == [
        ("receive", "H15.3", "o-rec", "2026-10-05T08:00", "2026-10-05T14:00",
         "2026-10-05T12:00", "late", 1.0),
        ("process", "H15.3/kt", "o1", "2026-10-05T14:00", "2026-10-08T10:00",
         "2026-10-07T14:00", "late", 5.0),
        ("approve", "H15.3/ld", "o2", "2026-10-08T10:00", "2026-10-13T10:00",
         "2026-10-09T10:00", "late", 16.0)]
    assert [e["type"] for e in doc["events"]][:2] == ["Received", "HandedOver"]


def test_an_open_steps_result_depends_on_now_and_a_step_without_due_has_none(run: Any) -> None:
    """The open process step (due Thu 8 Oct 17:00) is ``open`` on Thu 12:00 and ``late`` by
    2 h on Fri 10:00; the receive step of P0 has no due time."""
    from projections.source import dossier_history

    d = dossier("D1", "P0", "09T17:00",
                ("handed_over", "05T09:00", hand("X", "ox", "process",
                                                 step_due_at="2026-10-08T17:00:00+07:00")))
    with run(d) as p:
        before = dossier_history(p.engine, "D1", datetime(2026, 10, 8, 12, 0, tzinfo=VN_TZ))
        after = dossier_history(p.engine, "D1", datetime(2026, 10, 9, 10, 0, tzinfo=VN_TZ))
    assert before is not None and after is not None
    assert [(s["result"], s["overrun_hours"]) for s in before["control_sheet"]] == [
        ("no_due", None), ("open", 0.0)]
    assert [(s["result"], s["overrun_hours"]) for s in after["control_sheet"]] == [
        ("no_due", None), ("late", 2.0)]


def test_explain_on_time_says_which_step_and_holder_lost_it(run: Any, tmp_path: Path) -> None:
    """``explain --criterion ON_TIME`` lists the late dossier with the steps that lost it."""
    from projections.explain import explain
    from projections.store import ViewStore

    with run(dossier("D1", "P1", "12T17:00", *P1_STEPS, end="13T10:00")) as p:
        views = ViewStore(f"sqlite:///{tmp_path / 'views.db'}")
        views.flush(p.counters, {})
        out = explain(views, p.counters, p.ruleset, "H15.3", OCT, END, "ON_TIME")
        views.close()
    (item,) = out["not_counted"]
    assert [(w["step"], w["unit"], w["official"], w["overrun_hours"])
            for w in item["lost_by"]] == [("receive", "H15.3", "o-rec", 1.0),
                                          ("process", "H15.3/kt", "o1", 5.0),
                                          ("approve", "H15.3/ld", "o2", 16.0)]


def test_http_gives_unit_rows_to_anyone_and_official_rows_only_with_a_read_token(
    run: Any, tmp_path: Path,
) -> None:
    """``GET …/delays`` is public by unit; ``by=official`` without a read token is 401."""
    from fastapi.testclient import TestClient

    from projections.api import create_app
    from projections.source import StoreSource
    from projections.store import ViewStore

    with run(dossier("D1", "P1", "12T17:00", *P1_STEPS, end="13T10:00")) as p:
        views = ViewStore(f"sqlite:///{tmp_path / 'views.db'}")
        views.flush(p.counters, {"pos|0": 1})
        app = create_app(StoreSource(views), p.ruleset, clock=lambda: END)
        with TestClient(app) as client:
            units = client.get("/api/v1/agencies/H15.3/delays?period=2026-10")
            officials = client.get("/api/v1/agencies/H15.3/delays?period=2026-10&by=official")
            bad = client.get("/api/v1/agencies/H15.3/delays?by=everyone")
        views.close()
    assert units.status_code == 200
    assert [(r["unit"], r["overrun_hours"]) for r in units.json()["rows"]] == [
        ("H15.3/ld", 16.0), ("H15.3/kt", 5.0), ("H15.3", 1.0)]
    assert officials.status_code == 401 and "read token" in officials.json()["error"]
    assert bad.status_code == 400


def test_overrun_hours_round_half_up_at_the_hundredth() -> None:
    """A hundredth of an hour is 36 s: 18 s is the half (up, away from zero), 17 s rounds down;
    worked by hand (accountability §2), against the integer rounding the delays list uses."""
    from projections.controlsheet import hours
    from projections.rounding import ratio_half_up

    assert [hours(s) for s in (0, 17, 18, 35, 36, 53, 54, 3617, 3618, 5400)] == [
        0.0, 0.0, 0.01, 0.01, 0.01, 0.01, 0.02, 1.0, 1.01, 1.5]
    assert [hours(s) for s in (-17, -18, -3618)] == [0.0, -0.01, -1.01]
    assert ratio_half_up(1, 8, 2) == 0.13 and ratio_half_up(1, 8, 1) == 0.1  # 0.125, 0.125
    assert ratio_half_up(-1, 8, 2) == -0.13 and ratio_half_up(2, 3, 0) == 1.0
