"""The projection agrees with the naive oracle (tests/oracle.py) on every criterion.

Random valid action streams (catalog first, then dossier lifecycles and feedback) go through the
real engine and fold; the oracle replays the accepted actions and counts by brute force, on its
own working-day calendar, and scores by its own points step (both from the spec). The same stream
delivered twice over and shuffled must give the same counts, and so must simulated provinces (one
around the holidays of 2026), for the province and every unit. The oracle's calendar and points
are themselves checked against dates read off the 2026 calendar and the spec's worked example.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import SPEC_GROUPS, Days, Oracle, local_date, score
from oracle import VN as VN_TZ
from pipeline import Pipeline, points

from producers.simulator import SimConfig, generate
from projections.periods import Period, parse_period
from projections.ruleset import load_ruleset

RULESET = load_ruleset("portal-2026")
CODES = [c.code for c in RULESET.criteria()]
SOURCE = "prop"
# A deeper search than the default (e.g. MOTCUA_ORACLE_EXAMPLES=1000) multiplies both property runs.
DEPTH = int(os.environ.get("MOTCUA_ORACLE_EXAMPLES", "200")) / 200

# (agency, parent, level): a province with a district level, a ministry, and "X", which only
# ever appears on dossiers (never registered).
TREE = [
    ("P", None, "province"), ("P.1", "P", "department"), ("P.2", "P", "department"),
    ("P.D", "P", "district"), ("P.D.1", "P.D", "commune"), ("P.D.2", "P.D", "commune"),
    ("M", None, "ministry"), ("M.1", "M", "department"),
]
UNITS = ["P.1", "P.2", "P.D", "P.D.1", "P.D.2", "M.1", "X"]
UNKNOWN_PROCEDURE = "9.999999"
UNITS_OF = {"P": UNITS[:5], "M": ["M.1"]}
# Spec 5.4 counts feedback linked to a withdrawn dossier, whatever the arrival order.
LINK_WITHDRAWN = True

# ----- building actions -----------------------------------------------------------------------


class Stream:
    """Actions with increasing ids, and the times they happen at."""

    def __init__(self, base: datetime) -> None:
        self.base = base
        self.n = 0
        self.actions: list[dict[str, Any]] = []
        self.subjects: dict[str, list[dict[str, Any]]] = {}

    def at(self, minutes: int, utc: bool = False) -> str:
        t = self.base + timedelta(minutes=minutes)
        if utc:
            return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return t.isoformat()

    def add(self, type_: str, subject: tuple[str, str], when: str,
            data: dict[str, Any] | None = None) -> dict[str, Any]:
        self.n += 1
        a = {"schema": "motcua.action/1", "action_id": f"a{self.n}", "source": SOURCE,
             "type": type_, "occurred_at": when, subject[0]: subject[1], "data": data or {}}
        self.actions.append(a)
        self.subjects.setdefault(f"{subject[0]}:{subject[1]}", []).append(a)
        return a


# ----- strategies -----------------------------------------------------------------------------

DAY = 1440
flags = st.booleans()


@st.composite
def procedures(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(1, 6))):
        authority = draw(st.sampled_from(["P", "P", "M"]))
        decisions = [(draw(st.integers(-60, 30)), draw(st.integers(-2, 40)))]
        if draw(st.integers(0, 3)) == 0:  # an amending decision later on
            decisions.append((decisions[0][0] + draw(st.integers(1, 30)),
                              draw(st.integers(-2, 40))))
        out.append({
            "id": f"1.{i:06d}",
            "authority": authority,
            "decisions": decisions,
            "agencies": draw(st.lists(st.sampled_from(UNITS_OF[authority] + ["X"]), min_size=1,
                                      max_size=3, unique=True)),
            "processing_time": draw(st.sampled_from([
                {"value": 3, "unit": "working_days"}, {"value": 10, "unit": "working_days"},
                {"value": 8, "unit": "hours"}, {"value": 7, "unit": "days"},
                {"value": 1, "unit": "months"}])),
            "flags": {k: draw(flags) for k in (
                "full_online_eligible", "fee_bearing", "paper_result_required",
                "individual_applicants", "certified_copy", "parts_complete")},
            "publicized": draw(st.lists(st.integers(-3, 25), max_size=2)),
            "repealed": draw(st.integers(0, 4)) == 0,
        })
    return out


gap = st.integers(1, 6 * DAY)


@st.composite
def dossier(draw: st.DrawFn, n_procedures: int) -> dict[str, Any]:
    """A valid lifecycle: optional early facts, supplements, an end, and what may follow it."""
    proc = draw(st.integers(-1, n_procedures - 1))
    fee = draw(flags)
    steps: list[tuple[int, str, dict[str, Any]]] = []
    for kind in draw(st.lists(st.sampled_from(
            ["synced", "digitized", "paid_online", "apology_issued", "late", "rated"]),
            max_size=4)):
        if kind == "paid_online" and not fee:
            continue
        data: dict[str, Any] = {}
        if kind == "paid_online":
            data = {"gateway": "national_portal", "amount_vnd": 20000}
        elif kind == "digitized":
            data = {"components": 2}
        elif kind == "apology_issued":
            data = {"new_due_at": "2027-01-15T17:00:00+07:00", "reason": "xác minh"}
        elif kind == "rated":
            data = {"satisfied": draw(flags)}
        steps.append((draw(gap), kind, data))
    requests = draw(st.sampled_from([0, 0, 1, 1, 2]))
    pending = requests > 0 and draw(st.integers(0, 3)) == 0
    for i in range(requests):
        steps.append((draw(gap), "supplement_requested", {"reason": "thiếu giấy tờ"}))
        if not (pending and i == requests - 1):
            steps.append((draw(gap), "supplement_completed", {}))
    end = draw(st.sampled_from(["open", "resolved", "resolved", "resolved", "withdrawn"]))
    if end == "withdrawn":
        steps.append((draw(gap), "withdrawn", {}))
    elif end == "resolved":
        steps.append((draw(gap), "resolved",
                      {"outcome": draw(st.sampled_from(["approved", "rejected", "stopped"]))}))
        after = []
        if draw(flags):
            after.append(("e_result_issued", {"result_ref": "KQ", "pushed_to_repository":
                                              draw(flags)}))
        if draw(flags):
            after.append(("result_returned", {}))
        after += [("rated", {"satisfied": draw(flags)}) for _ in range(draw(st.integers(0, 2)))]
        if draw(flags):
            after.append(("synced", {}))
        steps += [(draw(gap), k, d) for k, d in draw(st.permutations(after))]
    return {
        "agency": draw(st.sampled_from(UNITS)),
        "procedure": proc,
        "start": draw(st.integers(0, 45 * DAY)),
        "utc": draw(flags),
        "channel": draw(st.sampled_from(["direct", "online", "postal"])),
        "due_hours": draw(st.one_of(st.none(), st.integers(1, 40 * 24))) if proc >= 0
        else draw(st.integers(1, 40 * 24)),
        "data": {"full_online": draw(flags), "fee_required": fee,
                 "reused_digitized_data": draw(flags), "from_personal_repository": draw(flags),
                 "population_data_used": draw(flags)},
        "steps": steps,
    }


@st.composite
def feedback(draw: st.DrawFn, n_dossiers: int) -> dict[str, Any]:
    return {
        "agency": draw(st.sampled_from(UNITS)),
        "classification": draw(st.sampled_from(["procedure", "staff_conduct", "other"])),
        "link": draw(st.one_of(st.none(), st.integers(-1, n_dossiers - 1))),
        # Feedback about a dossier comes near it (before its reception, or after its end, too).
        "start": draw(st.integers(0, 50 * DAY)),
        "near": draw(st.integers(-DAY, 20 * DAY)),
        "utc": draw(flags),
        "answered": draw(st.one_of(st.none(), st.integers(0, 30 * DAY))),
        "rated": draw(st.one_of(st.none(), flags)),
        "recomplained": draw(flags),
    }


@st.composite
def worlds(draw: st.DrawFn) -> dict[str, Any]:
    base = datetime.combine(date(2026, 1, 1) + timedelta(days=draw(st.integers(0, 300))),
                            datetime.min.time(), VN_TZ) + timedelta(hours=7)
    procs = draw(procedures())
    dossiers = draw(st.lists(dossier(len(procs)), min_size=1, max_size=14))
    fbs = draw(st.lists(feedback(len(dossiers)), max_size=5))
    now_after = draw(st.one_of(st.integers(0, DAY), st.integers(0, 40 * DAY)))
    return {"base": base, "procedures": procs, "dossiers": dossiers, "feedback": fbs,
            "now_after": now_after, "period": draw(st.integers(0, 99))}


def build(world: dict[str, Any]) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]],
                                          datetime, Period]:
    """(catalog actions, per-subject action lists in time order, now, period) of a world."""
    s = Stream(world["base"])
    for aid, parent, level in TREE:
        s.add("agency_registered", ("agency_id", aid), s.at(-200 * DAY),
              {"name": aid, "parent_id": parent, "level": level})
    base_day = local_date(world["base"])
    for p in world["procedures"]:
        level = "province" if p["authority"] == "P" else "ministry"
        for k, (dd, effective) in enumerate(p["decisions"]):
            decided = base_day + timedelta(days=dd)
            s.add("procedure_published", ("procedure_id", p["id"]), s.at(dd * DAY + 60), {
                "authority_id": p["authority"], "authority_level": level,
                "decision_date": decided.isoformat(),
                "legal_basis_effective_date": (decided + timedelta(days=effective)).isoformat(),
                "implementing_agency_ids": p["agencies"],
                "processing_time": p["processing_time"] if k == 0 else
                {"value": 5, "unit": "working_days"},
                **p["flags"]})
        first = p["decisions"][0][0]
        for j in p["publicized"]:
            s.add("procedure_publicized", ("procedure_id", p["id"]), s.at((first + j) * DAY + 600))
        if p["repealed"]:
            s.add("procedure_repealed", ("procedure_id", p["id"]), s.at(46 * DAY),
                  {"decision_date": (base_day + timedelta(days=46)).isoformat()})
    catalog = list(s.actions)
    s.actions.clear()
    timed: list[tuple[int, dict[str, Any]]] = []
    last = 0
    for i, d in enumerate(world["dossiers"]):
        pid = world["procedures"][d["procedure"]]["id"] if d["procedure"] >= 0 \
            else UNKNOWN_PROCEDURE
        data = {"agency_id": d["agency"], "procedure_id": pid, "channel": d["channel"],
                **d["data"]}
        t = d["start"]
        if d["due_hours"] is not None:
            data["due_at"] = s.at(t + d["due_hours"] * 60)
        timed.append((t, s.add("received", ("dossier_id", f"D{i}"), s.at(t, d["utc"]), data)))
        for g, kind, sd in d["steps"]:
            t += g
            timed.append((t, s.add(kind, ("dossier_id", f"D{i}"), s.at(t, d["utc"]), sd)))
        last = max(last, t)
    for i, f in enumerate(world["feedback"]):
        data = {"agency_id": f["agency"], "classification": f["classification"]}
        linked = world["dossiers"][f["link"]] if f["link"] is not None and f["link"] >= 0 else None
        if linked and not LINK_WITHDRAWN and any(k == "withdrawn" for _, k, _ in linked["steps"]):
            f = {**f, "link": None}
        if f["link"] is not None:
            data["dossier_id"] = f"D{f['link']}" if f["link"] >= 0 else "D-never"
        t = f["start"]
        if f["link"] is not None and f["link"] >= 0:
            t = max(0, world["dossiers"][f["link"]]["start"] + f["near"])
        timed.append((t, s.add("feedback_received", ("feedback_id", f"F{i}"), s.at(t), data)))
        if f["answered"] is not None:
            t += f["answered"]
            timed.append((t, s.add("feedback_answered", ("feedback_id", f"F{i}"), s.at(t))))
        if f["rated"] is not None:
            t += 60
            timed.append((t, s.add("feedback_rated", ("feedback_id", f"F{i}"), s.at(t),
                                   {"satisfied": f["rated"]})))
        if f["recomplained"]:
            t += 60
            timed.append((t, s.add("feedback_recomplained", ("feedback_id", f"F{i}"), s.at(t))))
        last = max(last, t)
    last = max(last, 46 * DAY + 1)
    now = world["base"] + timedelta(minutes=last + world["now_after"])
    timed.sort(key=lambda x: x[0])
    subjects = [v for k, v in s.subjects.items() if not k.startswith(("agency", "procedure"))]
    return catalog + [a for _, a in timed], subjects, now, pick_period(world, now)


def pick_period(world: dict[str, Any], now: datetime) -> Period:
    """A month, quarter, half or year around the world's window (or the one holding now)."""
    k = world["period"]
    day = local_date(now) if k % 2 else local_date(world["base"]) + timedelta(days=k % 50)
    label = [f"{day:%Y-%m}", f"{day.year}-Q{(day.month - 1) // 3 + 1}",
             f"{day.year}-H{(day.month - 1) // 6 + 1}", f"{day.year}"][k % 4]
    return parse_period(label)


def shuffled(catalog: list[dict[str, Any]], subjects: list[list[dict[str, Any]]],
             rnd: random.Random) -> Iterator[dict[str, Any]]:
    """Every action twice, subjects interleaved at random, a prefix of a subject before its
    ``received`` (the engine holds those), each subject's own order otherwise kept."""
    queues = []
    for seq in subjects:
        j = rnd.randint(0, len(seq) - 1)
        queues.append(seq[1:j + 1] + [seq[0]] + seq[j + 1:])
    order: list[dict[str, Any]] = list(catalog)
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


def disagreements(p: Pipeline, oracle: Oracle, agencies: list[str], periods: list[Period],
                  now: datetime) -> list[str]:
    bad = []
    for period in periods:
        for a in agencies:
            got = p.counts(a, period, now)
            want = oracle.counts(a, period.start, period.end, now)
            bad += [f"{period.label} {a} {code}: projection {got.get(code)} oracle {want[code]}"
                    for code in CODES if got.get(code) != want[code]]
    return bad


def all_agencies(oracle: Oracle) -> list[str]:
    return sorted(oracle.agencies())


@settings(max_examples=int(200 * DEPTH), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_projection_counts_equal_the_oracle_on_every_criterion(world: dict[str, Any]) -> None:
    """For a random valid stream, `now` and period, every criterion's counts match the oracle's."""
    actions, _, now, period = build(world)
    with tempfile.TemporaryDirectory() as tmp, Pipeline(Path(tmp) / "m.db", clock=now) as p:
        p.send(actions, batch=37)
        p.record_overdue(now)  # the engine's own "late" facts must not move any count
        assert p.rejected() == []
        oracle = Oracle(p.accepted(), RULESET)
        assert len(p.accepted()) == len(actions)
        year = parse_period(str(period.start.year))
        bad = disagreements(p, oracle, all_agencies(oracle), [period, year], now)
        assert bad == []
        card, want = p.scorecard("P", period, now), oracle.scorecard("P", period.start,
                                                                      period.end, now)
        assert {c: Fraction(str(v)) for c, v in points(card).items()} == want["points"]
        assert card["total"] == want["total"]


@settings(max_examples=int(100 * DEPTH), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.randoms(use_true_random=False), st.integers(1, 40))
def test_duplicated_and_shuffled_delivery_gives_the_same_counts(
    world: dict[str, Any], rnd: random.Random, batch: int,
) -> None:
    """Every action twice, subjects interleaved, some before their ``received``: same counts."""
    actions, subjects, now, period = build(world)
    with tempfile.TemporaryDirectory() as tmp, Pipeline(Path(tmp) / "m.db", clock=now) as p:
        p.send(list(shuffled(actions[:len(actions) - sum(map(len, subjects))], subjects, rnd)),
               batch=batch)
        assert p.rejected() == []
        assert p.outcomes.get("duplicate") == len(actions)
        oracle = Oracle(actions, RULESET)  # the stream in its own order
        assert disagreements(p, oracle, all_agencies(oracle), [period], now) == []


def test_a_simulated_province_agrees_for_the_province_and_each_unit(tmp_path: Path) -> None:
    """20 agencies, 5000 dossiers, cut at a live `now`: every criterion, every agency, 5 periods."""
    now = datetime(2026, 9, 15, 12, 0, tzinfo=VN_TZ)
    actions = [a for a in generate(SimConfig(agencies=20, dossiers=5000, seed=766))
               if datetime.fromisoformat(a["occurred_at"]) <= now]
    with Pipeline(tmp_path / "m.db", clock=now) as p:
        p.send(actions, batch=5000)
        assert p.rejected() == []
        oracle = Oracle(p.accepted(), RULESET)
        agencies = all_agencies(oracle)
        assert len(agencies) == 21
        periods = [parse_period(x) for x in ("2026", "2026-09", "2026-08", "2026-Q1", "2026-H1")]
        assert disagreements(p, oracle, agencies, periods, now) == []
        # Not vacuous: the live view has open dossiers, and some lateness.
        on_time, n = p.counts("H15", periods[0], now)["ON_TIME"]
        assert 0 < on_time < n


@pytest.mark.parametrize("start", [date(2026, 2, 2), date(2026, 11, 2)],
                         ids=["lunar-new-year", "vietnam-cultural-day"])
def test_a_province_around_the_holidays_agrees_with_the_oracle(tmp_path: Path,
                                                                start: date) -> None:
    """Dossiers received around Tet (16-20 Feb 2026) or Vietnam Cultural Day (Tue 24 Nov 2026),
    due and finished in working days across them: every criterion and total as the oracle says,
    on its own calendar."""
    actions = list(generate(SimConfig(agencies=6, dossiers=1200, seed=24, start=start, days=40,
                                      due_at_rate=0.2, feedback_per_dossier=0.1)))
    now = datetime.combine(start + timedelta(days=45), datetime.min.time(), VN_TZ)
    with Pipeline(tmp_path / "m.db", clock=now) as p:
        p.send(actions, batch=5000)
        assert p.rejected() == []
        oracle = Oracle(p.accepted(), RULESET)
        month = parse_period(f"{start:%Y-%m}")
        periods = [month, parse_period(str(start.year))]
        assert disagreements(p, oracle, all_agencies(oracle), periods, now) == []
        card = p.scorecard("H15", month, now)
        want = oracle.scorecard("H15", month.start, month.end, now)
        assert {c: Fraction(str(v)) for c, v in points(card).items()} == want["points"]
        assert card["total"] == want["total"]
        # Not vacuous: the holiday falls inside what was counted in working days.
        avg, finished = p.counts("H15", month, now)["AVG_PROCESSING_TIME"]
        assert finished > 0 and avg > 0


def test_the_oracle_calendar_is_the_2026_wall_calendar() -> None:
    """The oracle's working days, read off a 2026 calendar: Tue 24 Nov (Vietnam Cultural Day)
    and Mon 16 - Fri 20 Feb (Tet) are days off, Sat 22 Aug is worked for Mon 31 Aug."""
    days = Days({"extra_days_off": [], "makeup_working_days": []})
    assert not days.is_working(date(2026, 11, 24))
    assert days.add(date(2026, 11, 23), 1) == date(2026, 11, 25)
    assert [d for d in range(16, 21) if days.is_working(date(2026, 2, d))] == []
    assert days.add(date(2026, 2, 13), 1) == date(2026, 2, 23)
    assert days.is_working(date(2026, 8, 22)) and not days.is_working(date(2026, 8, 31))
    assert days.between(date(2026, 11, 20), date(2026, 11, 27)) == 4  # Mon, Wed, Thu, Fri
    extra = Days({"extra_days_off": ["2026-11-23"], "makeup_working_days": ["2026-11-28"]})
    assert not extra.is_working(date(2026, 11, 23)) and extra.is_working(date(2026, 11, 28))


def test_the_oracle_points_reproduce_the_portal_s_published_figures() -> None:
    """Spec §2's worked example (Đắk Lắk, year to date on 10 Oct 2026): 2.1 393,087 / 443,565
    gives 17.72; payment 5.26 + 1.06 + 0.37 = 6.69; 5.4 at a 90 % target 5.90; 4.6 at 0/0, 2."""
    counts = {code: (0, 0) for crits in SPEC_GROUPS.values() for code, _, _ in crits}
    counts.update({"ON_TIME": (393_087, 443_565), "PAYMENT_DOSSIER_ONLINE": (179_460, 204_757),
                   "PAYMENT_FORMALITY_FEE_DOSSIER": (160, 376),
                   "PAYMENT_FORMALITY_TRANSACTION": (56, 376),
                   "DOSSIER_RECEIVING_SATISFACTION": (392_869, 443_565)})
    got = score(counts)
    assert got["points"]["ON_TIME"] == Fraction("17.72")
    assert [got["points"][c] for c in ("PAYMENT_DOSSIER_ONLINE", "PAYMENT_FORMALITY_FEE_DOSSIER",
                                       "PAYMENT_FORMALITY_TRANSACTION")] == [
        Fraction("5.26"), Fraction("1.06"), Fraction("0.37")]
    assert got["groups"]["payment"] == Fraction("6.69")
    assert got["points"]["DOSSIER_RECEIVING_SATISFACTION"] == Fraction("5.90")
    assert got["points"]["ELECTRONIC_CERTIFIED_COPY"] == 2
    assert got["points"]["DOSSIER_SYNC"] == 0  # a dossier criterion with nothing to count

