"""The simulator: same bytes per seed, valid actions and lifecycles, rates near targets."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.domain.due import compute_due
from kernel.calendar import WorkCalendar
from kernel.contract.actions import parse_action
from producers.simulator import SimConfig, generate, simulate_live, write_ndjson

LARGE = SimConfig(dossiers=20_000, seed=7)


@pytest.fixture(scope="module")
def large() -> list[dict[str, Any]]:
    return list(generate(LARGE))


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _measure(actions: list[dict[str, Any]], cfg: SimConfig) -> dict[str, float]:
    """The spec's cohort ratios over every dossier, counted the plain way from the actions."""
    calendar = WorkCalendar()
    view_end = _time(f"{cfg.start + timedelta(days=cfg.days - 1)}T23:59:59+07:00")
    processing: dict[str, dict[str, Any]] = {}
    received: dict[str, dict[str, Any]] = {}
    seen: dict[str, Counter[str]] = {}
    ends: dict[str, datetime] = {}
    waiting: dict[str, datetime | None] = {}
    shift: dict[str, timedelta] = {}
    for a in actions:
        kind, data = a["type"], a["data"]
        if kind == "procedure_published":
            processing[a["procedure_id"]] = data["processing_time"]
        if "dossier_id" not in a:
            continue
        dossier_id, at = a["dossier_id"], _time(a["occurred_at"])
        seen.setdefault(dossier_id, Counter())[kind] += 1
        if kind == "received":
            due_at = _time(data["due_at"]) if "due_at" in data else None
            due = compute_due(at, due_at, processing[data["procedure_id"]], calendar)
            received[dossier_id] = {**data, "due": due}
            shift[dossier_id] = timedelta(0)
            waiting[dossier_id] = None
        elif kind == "supplement_requested":
            waiting[dossier_id] = at
        elif kind == "supplement_completed":
            requested = waiting[dossier_id]
            assert requested is not None
            shift[dossier_id] += at - requested
            waiting[dossier_id] = None
        elif kind in ("resolved", "result_returned", "withdrawn") and dossier_id not in ends:
            ends[dossier_id] = at
    on_time = 0
    for dossier_id, r in received.items():
        due = r["due"] + shift[dossier_id]
        requested = waiting[dossier_id]
        if seen[dossier_id]["supplement_requested"] > 1:
            continue
        if requested is not None:
            on_time += requested <= due
        elif dossier_id in ends:
            on_time += ends[dossier_id] <= due
        else:
            on_time += view_end.date() <= due.date()
    fee = [d for d, r in received.items() if r["fee_required"]]
    n = len(received)
    return {
        "dossiers": n,
        "on_time": on_time / n,
        "e_result": sum(1 for d in received if seen[d]["e_result_issued"]) / n,
        "digitized": sum(1 for d in received if seen[d]["digitized"]) / n,
        "online_payment": sum(1 for d in fee if seen[d]["paid_online"]) / len(fee),
        "online": sum(1 for r in received.values() if r["channel"] == "online") / n,
        "supplement": sum(1 for d in received if seen[d]["supplement_requested"]) / n,
        "withdrawn": sum(1 for d in received if seen[d]["withdrawn"]) / n,
        "synced": sum(1 for d in received if seen[d]["synced"]) / n,
    }


def test_same_seed_writes_identical_bytes(tmp_path: Path) -> None:
    """Two runs with one seed write byte-identical files."""
    cfg = SimConfig(dossiers=2_000, seed=3)
    first, second = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    count = write_ndjson(cfg, first)
    assert write_ndjson(cfg, second) == count
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes().count(b"\n") == count


def test_different_seeds_write_different_files(tmp_path: Path) -> None:
    """Another seed gives another province."""
    write_ndjson(SimConfig(dossiers=500, seed=1), tmp_path / "a.ndjson")
    write_ndjson(SimConfig(dossiers=500, seed=2), tmp_path / "b.ndjson")
    assert (tmp_path / "a.ndjson").read_bytes() != (tmp_path / "b.ndjson").read_bytes()


def test_every_line_is_a_valid_action(tmp_path: Path) -> None:
    """Each written line passes the engine's own schema check."""
    path = tmp_path / "sim.ndjson"
    write_ndjson(SimConfig(dossiers=3_000, seed=5), path)
    for line in path.read_bytes().splitlines():
        parse_action(line)


def test_action_ids_are_unique_and_the_envelope_is_fixed(large: list[dict[str, Any]]) -> None:
    """Action ids never repeat, and every action carries the schema, source and +07:00 time."""
    ids = [a["action_id"] for a in large]
    assert len(set(ids)) == len(ids)
    assert {a["schema"] for a in large} == {"motcua.action/1"}
    assert {a["source"] for a in large} == {LARGE.source}
    assert all(a["occurred_at"].endswith("+07:00") for a in large)


def test_actions_come_in_global_time_order(large: list[dict[str, Any]]) -> None:
    """No action is older than the one before it."""
    times = [a["occurred_at"] for a in large]  # one fixed offset, so text order is time order
    assert times == sorted(times)


def test_catalog_precedes_what_refers_to_it(large: list[dict[str, Any]]) -> None:
    """Agencies and procedures are announced before any dossier or feedback names them."""
    agencies: dict[str, str] = {}
    procedures: set[str] = set()
    repealed: set[str] = set()
    for a in large:
        data = a["data"]
        if a["type"] == "agency_registered":
            agencies[a["agency_id"]] = data["level"]
            assert data.get("parent_id", LARGE.province_id) in agencies
        elif a["type"] == "procedure_published":
            assert set(data["implementing_agency_ids"]) <= set(agencies)
            procedures.add(a["procedure_id"])
        elif a["type"] == "procedure_repealed":
            repealed.add(a["procedure_id"])
        elif a["type"] == "received":
            assert data["procedure_id"] in procedures - repealed
            assert data["agency_id"] in agencies
        elif a["type"] == "feedback_received":
            assert data["agency_id"] in agencies
    levels = Counter(agencies.values())
    assert levels["province"] == 1 and levels["department"] + levels["commune"] == LARGE.agencies
    assert 40 <= len(procedures) <= 120 and repealed


_FINISHING = {"resolved", "result_returned", "withdrawn"}


def _check_dossier(history: list[dict[str, Any]], processing: dict[str, Any]) -> Counter[str]:
    """Check one dossier's order; the counts of its actions by kind (and apologies in time)."""
    first = history[0]
    assert first["type"] == "received", first
    due_at = first["data"].get("due_at")
    due = compute_due(
        _time(first["occurred_at"]),
        _time(due_at) if due_at else None,
        processing[first["data"]["procedure_id"]],
        WorkCalendar(),
    )
    state: Counter[str] = Counter()
    pending = finished = False
    previous = ""
    for a in history:
        kind, at = a["type"], a["occurred_at"]
        assert at > previous, a
        previous = at
        assert not state["withdrawn"], a
        if kind == "received":
            assert not state[kind], a
        elif kind == "supplement_requested":
            assert not pending and not finished, a
            pending = True
        elif kind == "supplement_completed":
            assert pending and not finished, a
            pending = False
        elif kind in ("resolved", "e_result_issued", "result_returned"):
            assert not state[kind] and (kind == "resolved" or state["resolved"]), a
        elif kind == "withdrawn":
            assert not finished, a
        elif kind == "paid_online":
            assert first["data"]["fee_required"], a
        elif kind == "apology_issued":
            assert not finished, a
            state["apology_in_time"] += _time(at) <= due - timedelta(days=1)
        elif kind == "handed_over":
            assert not finished, a
        elif kind == "rated":
            assert state["resolved"], a
        finished = finished or kind in _FINISHING
        state[kind] += 1
    return state


def test_every_dossier_lifecycle_is_in_a_valid_order(large: list[dict[str, Any]]) -> None:
    """Each dossier opens with one reception and follows the lifecycle rules after it (no
    handover after the end of processing); apologies come in time as often as configured."""
    histories: dict[str, list[dict[str, Any]]] = {}
    processing: dict[str, Any] = {}
    for a in large:
        if "dossier_id" in a:
            histories.setdefault(a["dossier_id"], []).append(a)
        elif a["type"] == "procedure_published":
            processing[a["procedure_id"]] = a["data"]["processing_time"]
    assert len(histories) == LARGE.dossiers
    apologies: Counter[str] = Counter()
    for history in histories.values():
        apologies += _check_dossier(history, processing)
    late = 1 - apologies["apology_in_time"] / apologies["apology_issued"]
    assert late == pytest.approx(LARGE.late_apology_rate, abs=0.05)


def test_feedback_links_only_to_received_dossiers_that_were_not_withdrawn(
    large: list[dict[str, Any]],
) -> None:
    """A feedback names a dossier only after it was received, and never a withdrawn one."""
    received: set[str] = set()
    withdrawn = {a["dossier_id"] for a in large if a["type"] == "withdrawn"}
    opened: set[str] = set()
    linked = 0
    for a in large:
        if a["type"] == "received":
            received.add(a["dossier_id"])
        elif a["type"] == "feedback_received":
            assert a["feedback_id"] not in opened
            opened.add(a["feedback_id"])
            if "dossier_id" in a["data"]:
                linked += 1
                assert a["data"]["dossier_id"] in received - withdrawn
        elif a["type"].startswith("feedback_"):
            assert a["feedback_id"] in opened
    assert 0 < linked < len(opened)


def test_measured_rates_land_near_the_configured_targets(large: list[dict[str, Any]]) -> None:
    """Counting the generated actions the spec's way gives the rates the config asked for."""
    rates = _measure(large, LARGE)
    assert rates["dossiers"] == LARGE.dossiers
    assert rates["on_time"] == pytest.approx(LARGE.on_time_rate, abs=0.015)
    assert rates["e_result"] == pytest.approx(LARGE.e_result_rate, abs=0.03)
    assert rates["digitized"] == pytest.approx(LARGE.digitized_rate, abs=0.015)
    assert rates["online_payment"] == pytest.approx(LARGE.online_payment_rate, abs=0.015)
    assert rates["online"] == pytest.approx(LARGE.online_rate, abs=0.02)
    assert rates["supplement"] == pytest.approx(LARGE.supplement_rate, abs=0.015)
    assert rates["withdrawn"] == pytest.approx(LARGE.withdrawal_rate, abs=0.01)
    assert rates["synced"] == pytest.approx(LARGE.synced_rate, abs=0.015)


def test_other_targets_move_the_measured_rates() -> None:
    """A province configured worse on time and e-results measures worse."""
    cfg = SimConfig(dossiers=5_000, seed=11, on_time_rate=0.6, e_result_rate=0.3)
    rates = _measure(list(generate(cfg)), cfg)
    assert rates["on_time"] == pytest.approx(0.6, abs=0.03)
    assert rates["e_result"] == pytest.approx(0.3, abs=0.03)


def test_dossiers_received_near_the_window_end_stay_open(large: list[dict[str, Any]]) -> None:
    """Some dossiers received in the last days have no end of processing yet."""
    last_day = (LARGE.start + timedelta(days=LARGE.days - 1)).isoformat()
    late_ones = {
        a["dossier_id"]
        for a in large
        if a["type"] == "received" and a["occurred_at"][:10] == last_day
    }
    ended = {a["dossier_id"] for a in large if a["type"] in _FINISHING}
    assert late_ones and late_ones - ended


def test_live_mode_places_the_window_around_now() -> None:
    """Live actions come with aware times, in order, the last day ending after ``now``."""
    now = datetime.fromisoformat("2026-10-10T12:00:00+07:00")
    cfg = SimConfig(dossiers=300, days=30)
    timed = list(simulate_live(cfg, now))
    times = [t for t, _ in timed]
    assert times == sorted(times)
    assert all(t.utcoffset() == timedelta(hours=7) for t in times)
    assert times[-1] > now and times[-1].date() <= date(2026, 10, 10)
    assert all(_time(a["occurred_at"]) == t for t, a in timed)


def test_bad_config_is_refused() -> None:
    """A rate outside [0, 1] or no agencies is refused when the config is made."""
    with pytest.raises(ValueError, match="on_time_rate"):
        SimConfig(on_time_rate=1.5)
    with pytest.raises(ValueError, match="agencies"):
        SimConfig(agencies=0)


def test_json_lines_decode_to_the_generated_dicts(tmp_path: Path) -> None:
    """The file holds exactly what ``generate`` yields, one object a line."""
    cfg = SimConfig(dossiers=200, seed=9)
    write_ndjson(cfg, tmp_path / "sim.ndjson")
    lines = (tmp_path / "sim.ndjson").read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == list(generate(cfg))
