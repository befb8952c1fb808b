"""The choices docs/decisions.md makes where spec/accountability.md leaves them open ("Who made
a dossier late"), each on a case worked out by hand with the calendar of ``test_delays``
(Mon 5 – Fri 16 Oct 2026, office hours 08–12 and 13–17; P1: receive 4 h, process 16 h,
approve 8 h; every dossier received at H15.3 on Mon 5 Oct 08:00 by "o-rec"); and the read-only
grant of docs/producers.md §3."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline import Pipeline
from scoped import NOW, P16, agency, procedure, received
from test_delays import END, OCT, P1_STEPS, act, catalog, dossier, hand

from producers.tokens import TokenStore
from projections.source import dossier_history


def sheet(p: Pipeline, dossier_id: str) -> list[tuple[Any, ...]]:
    doc = dossier_history(p.engine, dossier_id, END)
    assert doc is not None
    return [(s["step"], s["unit"], s["start"][:16], (s["end"] or "")[:16], (s["due"] or "")[:16])
            for s in doc["control_sheet"]]


def test_a_handover_at_exactly_the_current_steps_start_is_a_zero_length_step(
        tmp_path: Path) -> None:
    """Handed over at 08:00, the instant of reception: accepted (only "before the current
    step's start" is refused), the receive step lasts no time and the process step starts."""
    d = dossier("D1", "P0", "12T17:00", ("handed_over", "05T08:00", hand("X", "ox", "process")))
    with Pipeline(tmp_path / "m.db") as p:
        p.send(catalog() + d)
        assert p.rejected() == []
        assert sheet(p, "D1") == [("receive", "H15.3", "2026-10-05T08:00", "2026-10-05T08:00", ""),
                                  ("process", "X", "2026-10-05T08:00", "", "")]


def test_a_handover_dated_before_a_withdrawal_but_arriving_after_it_is_dossier_withdrawn(
        tmp_path: Path) -> None:
    """Withdrawn Wed 7 Oct 09:00; a handover dated Tue 6 Oct arrives afterwards: refused as
    dossier_withdrawn (nothing after a withdrawal), not inserted into the control sheet."""
    d = dossier("D1", "P0", "12T17:00", ("withdrawn", "07T09:00", {}),
                ("handed_over", "06T09:00", hand("X", "ox", "process")))
    with Pipeline(tmp_path / "m.db") as p:
        p.send(catalog() + d)
        assert [r["reason"] for r in p.rejected()] == ["dossier_withdrawn"]
        assert [s[0] for s in sheet(p, "D1")] == ["receive"]


def test_a_steps_budget_is_the_catalogs_when_the_step_starts(tmp_path: Path) -> None:
    """P1's process budget becomes 4 h by a decision of Tue 6 Oct 12:00, after D1's process step
    began (Mon 14:00, 16 h: due Wed 7 Oct 14:00, unchanged) and before D2's began (Tue 6 Oct
    13:00, 4 h: due Tue 17:00): the internal process in force when each step starts."""
    amended = act("procedure_published", "06T12:00", {"procedure_id": "P1"},
                  authority_id="H15", authority_level="province", decision_date="2026-10-06",
                  legal_basis_effective_date="2026-10-06", implementing_agency_ids=["H15.3"],
                  processing_time={"value": 5, "unit": "working_days"},
                  internal_process=[{"step": "receive", "working_hours": 4},
                                    {"step": "process", "working_hours": 4},
                                    {"step": "approve", "working_hours": 8}])
    d1 = dossier("D1", "P1", "12T17:00", P1_STEPS[0])
    d2 = dossier("D2", "P1", "12T17:00", ("handed_over", "06T13:00", hand("Y", None, "process")))
    with Pipeline(tmp_path / "m.db") as p:
        p.send(catalog() + d1)
        p.send([amended])
        p.send(d2)
        assert p.rejected() == []
        assert sheet(p, "D1")[1][4] == "2026-10-07T14:00"
        assert sheet(p, "D2")[1][4] == "2026-10-06T17:00"


def test_rows_without_an_official_come_before_the_same_units_rows_with_one(
        tmp_path: Path) -> None:
    """Two dossiers due Mon 12 Oct 17:00, held by X (one without an official, one by "ox"),
    resolved Tue 13 Oct 09:00: 1 h late each, so the rows tie on every figure and the one
    without an official comes first."""
    def late(d: str, official: str | None) -> list[dict[str, Any]]:
        actions: list[dict[str, Any]] = dossier(
            d, "P0", "12T17:00", ("handed_over", "05T09:00", hand("X", official, "process")),
            end="13T09:00")
        return actions

    with Pipeline(tmp_path / "m.db") as p:
        p.send(catalog() + late("D2", "ox") + late("D1", None))
        out = p.delays("H15.3", OCT, END, by="official")
    assert [(r["unit"], r["official"], r["overrun_hours"]) for r in out["rows"]] == [
        ("X", None, 1.0), ("X", "ox", 1.0)]


def test_a_source_whose_only_grant_is_a_read_grant_writes_for_no_agency(tmp_path: Path) -> None:
    """``h16-reader`` holds a read grant for H16: its reception of an H16.1 dossier is a dead
    letter ``agency_out_of_scope`` (one token per name, of one kind), while an ungranted
    source's is applied (sources without a grant are not scope-checked by default)."""
    db = tmp_path / "m.db"
    store = TokenStore(f"sqlite:///{db}")
    try:
        store.add("h16-reader", "H16", read=True)
    finally:
        store.close()
    with Pipeline(db, clock=NOW) as p:
        p.send([agency("catalog", "H16", None, "province"),
                agency("catalog", "H16.1", "H16", "department"),
                procedure("catalog", P16, "H16", ["H16.1"])])
        assert p.send([received("h16-reader", "H16.1-0001", "H16.1", P16),
                       received("catalog", "H16.1-0002", "H16.1", P16)]) == {
            "accepted": 1, "rejected": 1, "rejected:agency_out_of_scope": 1}
        assert [(r["reason"], r["field"]) for r in p.rejected()] == [
            ("agency_out_of_scope", "data.agency_id")]
