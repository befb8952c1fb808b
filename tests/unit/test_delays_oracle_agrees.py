"""The delays list agrees with the naive oracle of who made it late (tests/oracle_delays.py).

Random streams with handovers (some out of order), waits on the applicant inside and across
steps, apologies and every kind of end go through the real engine and fold; the oracle replays
the same stream and recomputes, from the spec, which handovers are refused and the delays list of
several agencies, periods and ``now``s, by unit and by official. Delivered twice over and
shuffled, the stream must give the same lists; so must a simulated province.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle_delays import DelaysOracle
from pipeline import Pipeline

from kernel.calendar import VN_TZ
from producers.simulator import SimConfig, generate
from projections.periods import Period, parse_period

DEPTH = int(os.environ.get("MOTCUA_ORACLE_EXAMPLES", "200")) / 200
SOURCE = "prop"
TREE = [("P", None, "province"), ("P.1", "P", "department"), ("P.2", "P", "department"),
        ("P.D", "P", "district"), ("P.D.1", "P.D", "commune"), ("M", None, "ministry"),
        ("M.1", "M", "department")]
AGENCIES = ["P.1", "P.2", "P.D", "P.D.1", "M.1", "X"]  # X is never registered
VIEWS = ["P", "P.1", "P.D", "M", "X"]
STEPS = ["receive", "process", "review", "approve", "return"]
HOUR, DAY = 3600, 86_400

# ----- strategies -----------------------------------------------------------------------------

gaps = st.one_of(st.just(0), st.integers(1, 59), st.integers(60, 3 * HOUR),
                 st.integers(3 * HOUR, 6 * DAY))


@st.composite
def procedures(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(1, 4))):
        process = None
        if draw(st.integers(0, 4)):
            names = draw(st.lists(st.sampled_from(STEPS), min_size=1, max_size=5, unique=True))
            # Quarter hours: budgets in whole seconds, as the contract's numbers allow exactly.
            process = [{"step": n, "working_hours": draw(st.integers(0, 160)) / 4}
                       for n in names]
        out.append({"id": f"1.{i:06d}", "process": process,
                    "processing_time": draw(st.sampled_from([
                        {"value": 3, "unit": "working_days"}, {"value": 8, "unit": "hours"},
                        {"value": 7, "unit": "days"}, {"value": 1, "unit": "months"}]))})
    return out


@st.composite
def dossiers(draw: st.DrawFn, n_procedures: int) -> dict[str, Any]:
    """Tokens in a random order: handovers (H), waits on the applicant (S: requested, then
    completed, the last maybe never), apologies (A), handovers dated before the current step
    (B); then an end, and maybe a handover after it."""
    waits = draw(st.sampled_from([0, 0, 1, 1, 2]))
    pending = waits > 0 and draw(st.integers(0, 3)) == 0
    tokens = (["H"] * draw(st.integers(0, 5)) + ["S"] * (2 * waits - pending)
              + ["A"] * draw(st.sampled_from([0, 0, 1, 2])) + ["B"] * draw(st.integers(0, 1)))
    procedure = draw(st.integers(-1, n_procedures - 1))
    return {
        "agency": draw(st.sampled_from(AGENCIES)),
        "procedure": procedure,
        "start": draw(st.integers(0, 40 * DAY)),
        "due": draw(st.one_of(st.none(), st.integers(HOUR, 30 * DAY))) if procedure >= 0
        else draw(st.integers(HOUR, 30 * DAY)),
        "official": draw(st.sampled_from([None, "r1", "r2"])),
        "tokens": [(t, draw(gaps), draw(holders()) if t in "HB" else None)
                   for t in draw(st.permutations(tokens))],
        "end": draw(st.sampled_from(["open", "resolved", "resolved", "returned", "withdrawn"])),
        "end_gap": draw(gaps),
        "after": draw(st.one_of(st.none(), st.integers(1, 3 * DAY))),
        "after_holder": draw(holders()),
        "utc": draw(st.booleans()),
    }


@st.composite
def holders(draw: st.DrawFn) -> dict[str, Any]:
    return {"unit": draw(st.sampled_from(["AG", "AG/phong-a", "U1", "U2"])),
            "official": draw(st.sampled_from([None, "o1", "o2", "o3"])),
            "step": draw(st.sampled_from([*STEPS[1:], "other"])),
            "due": draw(st.one_of(st.none(), st.none(), st.integers(-DAY, 5 * DAY))),
            "back": draw(st.floats(0, 1))}


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    base = datetime.combine(date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 330))),
                            datetime.min.time(), VN_TZ) + timedelta(hours=7)
    procs = draw(procedures())
    return {"base": base, "procedures": procs,
            "dossiers": draw(st.lists(dossiers(len(procs)), min_size=1, max_size=10)),
            "now_after": draw(st.integers(0, 30 * DAY)),
            "periods": draw(st.lists(st.integers(0, 99), min_size=1, max_size=3))}


# ----- building the stream --------------------------------------------------------------------


class Stream:
    def __init__(self, base: datetime) -> None:
        self.base = base
        self.n = 0
        self.subjects: dict[str, list[dict[str, Any]]] = {}

    def at(self, seconds: int, utc: bool = False) -> datetime:
        t = self.base + timedelta(seconds=seconds)
        return t.astimezone(UTC) if utc else t

    def add(self, type_: str, subject: tuple[str, str], t: datetime,
            data: dict[str, Any] | None = None) -> None:
        self.n += 1
        text = t.strftime("%Y-%m-%dT%H:%M:%SZ") if t.tzinfo is UTC else t.isoformat()
        self.subjects.setdefault(f"{subject[0]}:{subject[1]}", []).append(
            {"schema": "motcua.action/1", "action_id": f"a{self.n}", "source": SOURCE,
             "type": type_, "occurred_at": text, subject[0]: subject[1], "data": data or {}})


def build(world: dict[str, Any], ties: bool = True) -> tuple[
        list[dict[str, Any]], list[list[dict[str, Any]]], int]:
    """(catalog, each dossier's actions in its own order, seconds of the last action); without
    ``ties``, no two of a dossier's actions in order share an instant."""
    s = Stream(world["base"])
    for aid, parent, level in TREE:
        s.add("agency_registered", ("agency_id", aid), s.at(-400 * DAY),
              {"name": aid, "level": level, **({"parent_id": parent} if parent else {})})
    for p in world["procedures"]:
        s.add("procedure_published", ("procedure_id", p["id"]), s.at(-300 * DAY), {
            "authority_id": "P", "authority_level": "province", "decision_date": "2025-01-06",
            "legal_basis_effective_date": "2025-02-01", "implementing_agency_ids": ["P.1"],
            "processing_time": p["processing_time"],
            **({"internal_process": p["process"]} if p["process"] is not None else {})})
    catalog = [a for k, v in s.subjects.items() for a in v]
    last = 0
    for i, d in enumerate(world["dossiers"]):
        last = max(last, _dossier(s, world, i, d, 0 if ties else 1))
    dossier_lists = [v for k, v in s.subjects.items() if k.startswith("dossier_id")]
    return catalog, dossier_lists, last


def _dossier(s: Stream, world: dict[str, Any], i: int, d: dict[str, Any], least: int) -> int:
    """Add one dossier's actions, at least ``least`` seconds apart; the time of its last."""
    sid, utc = ("dossier_id", f"D{i}"), d["utc"]
    t: int = d["start"]
    pid = world["procedures"][d["procedure"]]["id"] if d["procedure"] >= 0 else "9.999999"
    data: dict[str, Any] = {"agency_id": d["agency"], "procedure_id": pid, "channel": "direct"}
    if d["due"] is not None:
        data["due_at"] = s.at(t + d["due"]).isoformat()
    if d["official"]:
        data["official_id"] = d["official"]
    s.add("received", sid, s.at(t, utc), data)
    step_start, waiting, latest = t, False, t
    for token, gap, holder in d["tokens"]:
        if token == "B":  # dated before the current step began: refused
            if step_start > d["start"]:
                back = d["start"] + int((step_start - d["start"] - 1) * holder["back"])
                s.add("handed_over", sid, s.at(back, utc), _handover(s, d, holder, back))
            continue
        t += max(gap, least)
        if token == "H":
            s.add("handed_over", sid, s.at(t, utc), _handover(s, d, holder, t))
            step_start = t
        elif token == "S":
            s.add("supplement_completed" if waiting else "supplement_requested", sid,
                  s.at(t, utc))
            waiting = not waiting
        else:
            s.add("apology_issued", sid, s.at(t, utc),
                  {"new_due_at": s.at(t + 5 * DAY).isoformat(), "reason": "xác minh"})
    latest = t
    if d["end"] != "open":
        t += max(d["end_gap"], least)
        s.add("withdrawn" if d["end"] == "withdrawn" else "resolved", sid, s.at(t, utc),
              {} if d["end"] == "withdrawn" else {"outcome": "approved"})
        latest = t
        if d["end"] == "returned":
            latest = t + 60
            s.add("result_returned", sid, s.at(latest, utc))
        if d["after"] is not None and d["end"] != "withdrawn":  # after the end: refused
            latest = t + d["after"]
            s.add("handed_over", sid, s.at(latest, utc),
                  _handover(s, d, d["after_holder"], latest))
    return latest


def _handover(s: Stream, d: dict[str, Any], h: dict[str, Any], t: int) -> dict[str, Any]:
    data: dict[str, Any] = {"to_unit": h["unit"].replace("AG", d["agency"]), "step": h["step"]}
    if h["official"]:
        data["to_official"] = h["official"]
    if h["due"] is not None:
        data["step_due_at"] = s.at(t + h["due"]).isoformat()
    return data


def periods_of(world: dict[str, Any], now: datetime) -> list[Period]:
    """Months, quarters, halves and years around the stream (or holding now)."""
    out = []
    for k in world["periods"]:
        day = now.date() if k % 2 else world["base"].date() + timedelta(days=k % 50)
        out.append(parse_period([f"{day:%Y-%m}", f"{day.year}-Q{(day.month - 1) // 3 + 1}",
                                 f"{day.year}-H{(day.month - 1) // 6 + 1}",
                                 f"{day.year}"][k % 4]))
    return out


def shuffled(catalog: list[dict[str, Any]], subjects: list[list[dict[str, Any]]],
             rnd: random.Random) -> Iterator[dict[str, Any]]:
    """Every action twice; subjects interleaved at random, a prefix of a dossier before its
    ``received`` (the engine holds those), each dossier's own order otherwise kept."""
    queues = []
    for seq in subjects:
        j = rnd.randint(0, len(seq) - 1)
        queues.append(seq[1:j + 1] + [seq[0]] + seq[j + 1:])
    order = list(catalog)
    while queues:
        q = rnd.choice(queues)
        order.append(q.pop(0))
        if not q:
            queues.remove(q)
    keyed = [((float(i), 0), a) for i, a in enumerate(order)]
    keyed += [((rnd.uniform(i, len(order)), 1), a) for i, a in enumerate(order)]
    keyed.sort(key=lambda x: x[0])
    return (a for _, a in keyed)


# ----- checks ---------------------------------------------------------------------------------


def disagreements(p: Pipeline, oracle: DelaysOracle, periods: list[Period],
                  nows: list[datetime], views: list[str]) -> list[str]:
    bad = []
    views = [v for v in views if v in oracle.agencies()]
    for now in nows:
        for period in periods:
            for agency in views:
                for by in ("unit", "official"):
                    want = oracle.delays(agency, period.label, period.start, period.end, now, by)
                    got = p.delays(agency, period, now, by)
                    if got != want:
                        bad.append(f"{now} {period.label} {agency} by {by}:\n"
                                   f"  projection {got}\n  oracle     {want}")
    return bad


def out_of_order(p: Pipeline) -> tuple[list[str], list[str]]:
    """The ids of the actions the engine refused as out of order, and of those it refused
    for another reason."""
    ids: dict[bool, set[str]] = {True: set(), False: set()}
    for r in p.rejected():
        ids[r["reason"] == "out_of_order"].add(orjson.loads(r["raw"])["action_id"])
    return sorted(ids[True]), sorted(ids[False])


def nows_of(world: dict[str, Any], last: int) -> list[datetime]:
    end = world["base"] + timedelta(seconds=last)
    return [end, end + timedelta(seconds=world["now_after"])]


@settings(max_examples=int(40 * DEPTH), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(worlds())
def test_the_delays_list_equals_the_oracles(world: dict[str, Any]) -> None:
    """For a random stream with handovers, every view's delays list (by unit and by official)
    and the handovers refused as out of order are the oracle's."""
    catalog, subjects, last = build(world)
    actions = catalog + [a for seq in subjects for a in seq]
    nows = nows_of(world, last)
    with tempfile.TemporaryDirectory() as tmp, Pipeline(Path(tmp) / "m.db", clock=nows[-1]) as p:
        p.send(actions, batch=29)
        p.expire_holds()  # dossiers of a procedure never published wait out the hold
        oracle = DelaysOracle(actions, p.ruleset.lifecycle.settings())
        assert out_of_order(p) == (sorted(oracle.refused), [])
        assert disagreements(p, oracle, periods_of(world, nows[-1]), nows, VIEWS) == []


@settings(max_examples=int(20 * DEPTH), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(worlds(), st.randoms(use_true_random=False), st.integers(1, 40))
def test_duplicated_and_shuffled_delivery_gives_the_oracles_delays(
    world: dict[str, Any], rnd: random.Random, batch: int,
) -> None:
    """Every action twice, dossiers interleaved, some before their ``received``: the delays
    lists are the oracle's over what the engine applied, in its order (the engine applies held
    actions oldest first, so which late handover is out of order depends on the delivery), and
    no handover the engine applied is out of order. (A refused action's repeat is judged again,
    and may meet a withdrawal by then. No ties here: held actions of one instant are applied in
    delivery order, which a duplicate can change.)"""
    catalog, subjects, last = build(world, ties=False)
    nows = nows_of(world, last)
    with tempfile.TemporaryDirectory() as tmp, Pipeline(Path(tmp) / "m.db", clock=nows[-1]) as p:
        p.send(list(shuffled(catalog, subjects, rnd)), batch=batch)
        p.expire_holds()
        assert p.outcomes.get("duplicate", 0) >= len(p.accepted())
        oracle = DelaysOracle(p.accepted(), p.ruleset.lifecycle.settings())
        refused, otherwise = out_of_order(p)
        assert oracle.refused == [] and set(otherwise) <= set(refused)
        assert disagreements(p, oracle, periods_of(world, nows[-1]), nows[-1:], VIEWS) == []


def test_a_simulated_province_agrees_for_the_province_and_its_units(tmp_path: Path) -> None:
    """A simulated province cut at a live ``now``: its delays lists, by unit and by official,
    for the province and three of its agencies over four periods, are the oracle's; and they
    are not empty (most late dossiers have a late step)."""
    now = datetime(2026, 9, 15, 12, 0, tzinfo=VN_TZ)
    actions = [a for a in generate(SimConfig(agencies=12, dossiers=1200, seed=766))
               if datetime.fromisoformat(a["occurred_at"]) <= now]
    with Pipeline(tmp_path / "m.db", clock=now) as p:
        p.send(actions, batch=5000)
        assert p.rejected() == []
        oracle = DelaysOracle(p.accepted(), p.ruleset.lifecycle.settings())
        periods = [parse_period(x) for x in ("2026", "2026-09", "2026-08", "2026-Q1")]
        assert disagreements(p, oracle, periods, [now], ["H15", "H15.1", "H15.4", "H15.9"]) == []
        year = p.delays("H15", periods[0], now, "official")
        assert year["late_dossiers"] > 50 and len(year["rows"]) > 20


def test_one_apology_in_time_is_enough(tmp_path: Path) -> None:
    """Hand-worked (accountability §3, "an apology_issued at least one calendar day before"):
    due Mon 12 Oct 2026 17:00, resolved Tue 13 Oct 09:00 (1 office hour late, held by X since
    Mon 5 Oct); apologised Sun 11 Oct 10:00 (31 h ahead: in time) and again Tue 13 Oct 08:30
    (after the due time). The dossier counts as apologised in time, for the projection as for
    the oracle."""
    def act(n: int, type_: str, at: str, data: dict[str, Any]) -> dict[str, Any]:
        return {"schema": "motcua.action/1", "action_id": f"h{n}", "source": SOURCE,
                "type": type_, "occurred_at": f"2026-10-{at}:00+07:00", "dossier_id": "D1",
                "data": data}

    actions = [
        {"schema": "motcua.action/1", "action_id": "h0", "source": SOURCE,
         "type": "agency_registered", "occurred_at": "2026-01-01T08:00:00+07:00",
         "agency_id": "H15", "data": {"name": "Tỉnh", "level": "province"}},
        act(1, "received", "05T08:00", {"agency_id": "H15", "procedure_id": "P0",
                                        "channel": "direct",
                                        "due_at": "2026-10-12T17:00:00+07:00"}),
        act(2, "handed_over", "05T09:00", {"to_unit": "X", "step": "process"}),
        act(3, "apology_issued", "11T10:00", {"new_due_at": "2026-10-16T17:00:00+07:00",
                                              "reason": "quá tải"}),
        act(4, "apology_issued", "13T08:30", {"new_due_at": "2026-10-19T17:00:00+07:00",
                                              "reason": "quá tải"}),
        act(5, "resolved", "13T09:00", {"outcome": "approved"}),
    ]
    end = datetime(2026, 10, 31, 23, 0, tzinfo=VN_TZ)
    october = parse_period("2026-10")
    want = [{"unit": "X", "official": None, "late_dossiers": 1, "late_steps": 1,
             "overrun_hours": 1.0, "apology_in_time": 1, "apology_late": 0,
             "apology_missing": 0}]
    with Pipeline(tmp_path / "m.db", clock=end) as p:
        p.send(actions)
        oracle = DelaysOracle(actions, p.ruleset.lifecycle.settings())
        assert p.delays("H15", october, end)["rows"] == want
        assert oracle.delays("H15", "2026-10", october.start, october.end, end)["rows"] == want


def test_a_catalog_delivered_after_the_dossier_gives_the_same_delays(tmp_path: Path) -> None:
    """Hand-worked: P1's internal process gives `process` 8 office hours. Received Mon 5 Oct
    2026 08:00 (due Tue 6 Oct 17:00), handed to X for `process` at 09:00 (due Tue 6 09:00),
    resolved Wed 7 Oct 10:00: X's step is 9 office hours late (Tue 7, Wed 2), whether the
    procedure (published in January) reaches the engine before the dossier or after it."""
    def act(n: int, type_: str, at: str, subject: tuple[str, str],
            data: dict[str, Any]) -> dict[str, Any]:
        return {"schema": "motcua.action/1", "action_id": f"c{n}", "source": SOURCE,
                "type": type_, "occurred_at": f"2026-{at}:00+07:00", subject[0]: subject[1],
                "data": data}

    catalog = [
        act(0, "agency_registered", "01-02T08:00", ("agency_id", "H15"),
            {"name": "Tỉnh", "level": "province"}),
        act(1, "procedure_published", "01-05T08:00", ("procedure_id", "P1"), {
            "authority_id": "H15", "authority_level": "province", "decision_date": "2026-01-05",
            "legal_basis_effective_date": "2026-02-01", "implementing_agency_ids": ["H15"],
            "processing_time": {"value": 1, "unit": "working_days"},
            "internal_process": [{"step": "process", "working_hours": 8}]}),
    ]
    d = ("dossier_id", "D1")
    dossier = [
        act(2, "received", "10-05T08:00", d, {"agency_id": "H15", "procedure_id": "P1",
                                              "channel": "direct",
                                              "due_at": "2026-10-06T17:00:00+07:00"}),
        act(3, "handed_over", "10-05T09:00", d, {"to_unit": "X", "step": "process"}),
        act(4, "resolved", "10-07T10:00", d, {"outcome": "approved"}),
    ]
    end = datetime(2026, 10, 31, 23, 0, tzinfo=VN_TZ)
    october = parse_period("2026-10")
    want = [{"unit": "X", "official": None, "late_dossiers": 1, "late_steps": 1,
             "overrun_hours": 9.0, "apology_in_time": 0, "apology_late": 0,
             "apology_missing": 1}]
    for name, stream in (("first", catalog + dossier), ("after", dossier + catalog)):
        with Pipeline(tmp_path / f"{name}.db", clock=end, record_uncatalogued=False) as p:
            p.send(stream)
            assert p.delays("H15", october, end)["rows"] == want, name
