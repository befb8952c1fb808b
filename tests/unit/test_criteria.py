"""Every criterion of spec/766.md §3, on tiny hand-worked streams, through the real pipeline.

Each test feeds actions to the engine, folds the recorded events, and checks the projection's
numerator/denominator (and points, where they teach something) against numbers worked by hand in
the comments. The naive oracle (tests/oracle.py) must agree with the same hand numbers.

Calendar used below (2026): Thu 1 Oct, Mon 5 Oct, Fri 9 Oct, Tue 10 Nov, Mon 23 Nov; Tue 24 Nov is a
public holiday (Vietnam Cultural Day, in the ``holidays`` package).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from oracle import Oracle
from pipeline import Pipeline, points

from kernel.calendar import VN_TZ
from projections.periods import parse_period

PROVINCE, DEPT, COMMUNE = "H15", "H15.1", "H15.2"
OCT = parse_period("2026-10")
NOV = parse_period("2026-11")
YEAR = parse_period("2026")
LATER = datetime(2026, 12, 10, 12, 0, tzinfo=VN_TZ)  # "now" after everything below happened

_FIELD = {"agency_registered": "agency_id", "procedure_published": "procedure_id",
          "procedure_publicized": "procedure_id", "procedure_repealed": "procedure_id"}


class Feed:
    """Actions for one test, with ids handed out in order."""

    def __init__(self) -> None:
        self.actions: list[dict[str, Any]] = []

    def __call__(self, type_: str, subject: str, at: str,
                 data: dict[str, Any] | None = None) -> Feed:
        field = _FIELD.get(type_) or ("feedback_id" if type_.startswith("feedback_")
                                      else "dossier_id")
        self.actions.append({"schema": "motcua.action/1", "action_id": f"t{len(self.actions)}",
                             "source": "hand", "type": type_, "occurred_at": at, field: subject,
                             "data": data or {}})
        return self

    def tree(self) -> Feed:
        self("agency_registered", PROVINCE, "2025-01-01T08:00:00+07:00",
             {"name": "Tỉnh", "level": "province"})
        self("agency_registered", DEPT, "2025-01-01T08:00:00+07:00",
             {"name": "Sở", "parent_id": PROVINCE, "level": "department"})
        return self("agency_registered", COMMUNE, "2025-01-01T08:00:00+07:00",
                    {"name": "Xã", "parent_id": PROVINCE, "level": "commune"})

    def procedure(self, pid: str, decision: str = "2025-06-02", effective: str = "2025-07-01",
                  *, authority: str = PROVINCE, level: str = "province",
                  agencies: tuple[str, ...] = (DEPT,),
                  processing_time: tuple[int, str] = (5, "working_days"),
                  **flags: bool) -> Feed:
        return self("procedure_published", pid, f"{decision}T09:00:00+07:00", {
            "authority_id": authority, "authority_level": level, "decision_date": decision,
            "legal_basis_effective_date": effective, "implementing_agency_ids": list(agencies),
            "processing_time": {"value": processing_time[0], "unit": processing_time[1]},
            **flags})

    def received(self, did: str, at: str, due_at: str | None = "2026-10-09T17:00:00+07:00",
                 *, agency: str = DEPT, procedure: str = "1.000001", channel: str = "direct",
                 **flags: bool) -> Feed:
        data: dict[str, Any] = {"agency_id": agency, "procedure_id": procedure,
                                "channel": channel, **flags}
        if due_at is not None:
            data["due_at"] = due_at
        return self("received", did, at, data)

    def resolved(self, did: str, at: str, outcome: str = "approved") -> Feed:
        return self("resolved", did, at, {"outcome": outcome})

    def feedback(self, fid: str, at: str, dossier_id: str | None = None,
                 classification: str = "procedure", agency: str = DEPT) -> Feed:
        data: dict[str, Any] = {"agency_id": agency, "classification": classification}
        if dossier_id:
            data["dossier_id"] = dossier_id
        return self("feedback_received", fid, at, data)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Any]:
    """``run(feed) -> Pipeline``: the feed processed and folded (no rejection allowed)."""
    opened: list[Pipeline] = []

    def go(feed: Feed) -> Pipeline:
        p = Pipeline(tmp_path / f"m{len(opened)}.db", clock=LATER)
        opened.append(p)
        p.send(feed.actions)
        assert p.rejected() == []
        return p

    yield go
    for p in opened:
        p.close()


def counts(p: Pipeline, agency: str = DEPT, period: Any = OCT,
           now: datetime = LATER) -> dict[str, tuple[int, int]]:
    """The projection's counts, after checking that the oracle finds exactly the same."""
    got: dict[str, tuple[int, int]] = p.counts(agency, period, now)
    want = Oracle(p.accepted(), p.ruleset).counts(agency, period.start, period.end, now)
    assert {k: got[k] for k in want} == want
    return got


def pts(p: Pipeline, agency: str = DEPT, period: Any = OCT,
        now: datetime = LATER) -> dict[str, float]:
    got: dict[str, float] = points(p.scorecard(agency, period, now))
    return got


def base(*procs: tuple[str, dict[str, Any]]) -> Feed:
    """The agency tree and procedure 1.000001 (plain), plus ``procs``: (id, procedure kwargs)."""
    f = Feed().tree().procedure("1.000001")
    for pid, kw in procs:
        f.procedure(pid, **kw)
    return f


# ===== 1. transparency =========================================================================


def test_1_1_counts_a_procedure_once_and_one_late_decision_makes_it_late(run: Any) -> None:
    """1.1: on time when decision + 5 working days ≤ the legal basis's effective date."""
    # Decision Thu 1 Oct + 5 working days = Thu 8 Oct (2, 5, 6, 7, 8 Oct).
    f = Feed().tree()
    f.procedure("A", "2026-10-01", "2026-10-08")  # 8 Oct ≤ 8 Oct: on time
    f.procedure("B", "2026-10-01", "2026-10-07")  # 8 Oct > 7 Oct: late
    f.procedure("C", "2026-09-01", "2026-09-01")  # decided in September: not in October's count
    f.procedure("D", "2026-10-01", "2026-12-01")  # on time ...
    f.procedure("D", "2026-10-20", "2026-10-21")  # ... but amended late in October: late, once
    f("procedure_repealed", "C", "2026-10-15T09:00:00+07:00", {"decision_date": "2026-10-15"})
    p = run(f)
    # A on time; B, D late; C's repeal is not a publication decision: 1 / 3 → 6 × 1/3 = 2.00.
    assert counts(p, PROVINCE)["PUBLISH_ON_TIME"] == (1, 3)
    assert pts(p, PROVINCE)["PUBLISH_ON_TIME"] == 2.0
    # Every agency below the authority shows the authority's value.
    assert counts(p, COMMUNE)["PUBLISH_ON_TIME"] == (1, 3)


def test_1_1_a_ministry_has_20_working_days(run: Any) -> None:
    """1.1 for authority_level ministry: decision + 20 working days ≤ effective date."""
    # Thu 1 Oct + 20 working days: 2 (1), 5–9 (6), 12–16 (11), 19–23 (16), 26–29 Oct (20).
    f = Feed()("agency_registered", "BTP", "2025-01-01T08:00:00+07:00",
               {"name": "Bộ Tư pháp", "level": "ministry"})
    ministry: dict[str, Any] = {"authority": "BTP", "level": "ministry", "agencies": ("BTP",)}
    f.procedure("M1", "2026-10-01", "2026-10-29", **ministry)  # 29 Oct ≤ 29 Oct: on time
    f.procedure("M2", "2026-10-01", "2026-10-28", **ministry)  # late (a province would be on time)
    p = run(f)
    assert counts(p, "BTP")["PUBLISH_ON_TIME"] == (1, 2)


def test_1_2_public_update_is_judged_by_the_local_date(run: Any) -> None:
    """1.2: publicized by decision + 5 working days (local date), ÷ the 1.1 procedures."""
    # Decision Thu 1 Oct + 5 working days = Thu 8 Oct.
    f = Feed().tree()
    for pid in "ABCD":
        f.procedure(pid, "2026-10-01", "2026-11-30")
    f("procedure_publicized", "A", "2026-10-08T16:00:00+07:00")  # 8 Oct: on time
    f("procedure_publicized", "B", "2026-10-09T08:00:00+07:00")  # 9 Oct: late
    f("procedure_publicized", "C", "2026-10-08T20:00:00Z")  # 9 Oct 03:00 in Vietnam: late
    # D never publicized: late.  1 / 4 → 4 × 1/4 = 1.00.
    p = run(f)
    assert counts(p, PROVINCE)["PUBLIC_UPDATE_ON_TIME"] == (1, 4)
    assert pts(p, PROVINCE)["PUBLIC_UPDATE_ON_TIME"] == 1.0


def test_1_3_counts_current_public_procedures_whatever_the_period(run: Any) -> None:
    """1.3: complete ÷ publicized and not repealed, as of now; not period-based."""
    f = Feed().tree()
    f.procedure("A", parts_complete=True)("procedure_publicized", "A", "2025-06-03T09:00:00+07:00")
    f.procedure("B", parts_complete=False)("procedure_publicized", "B", "2025-06-03T09:00:00+07:00")
    f.procedure("C", parts_complete=True)  # never made public: not counted
    f.procedure("D", parts_complete=True)("procedure_publicized", "D", "2025-06-03T09:00:00+07:00")
    f("procedure_repealed", "D", "2026-03-02T09:00:00+07:00", {"decision_date": "2026-03-02"})
    p = run(f)
    # A complete, B not; C not public, D repealed: 1 / 2 → 2 × 1/2 = 1.00, in any period.
    assert counts(p, PROVINCE)["PUBLIC_CONTENT_FULL"] == (1, 2)
    assert counts(p, DEPT, parse_period("2026-12"))["PUBLIC_CONTENT_FULL"] == (1, 2)
    assert pts(p, PROVINCE)["PUBLIC_CONTENT_FULL"] == 1.0


def test_1_4_counts_the_reception_cohort_whenever_the_sync_comes(run: Any) -> None:
    """1.4: synced ÷ received in the period; a sync in November still counts for October."""
    f = base()
    f.received("D1", "2026-10-05T08:00:00+07:00")("synced", "D1", "2026-10-05T09:00:00+07:00")
    f.received("D2", "2026-10-30T08:00:00+07:00", None)("synced", "D2", "2026-11-02T09:00:00+07:00")
    f.received("D3", "2026-10-06T08:00:00+07:00")
    f.received("D4", "2026-11-02T08:00:00+07:00", None)("synced", "D4", "2026-11-02T09:00:00+07:00")
    # The cohort is received in local October: 31 Oct 20:00 UTC is 1 Nov in Vietnam.
    f.received("D5", "2026-10-31T20:00:00Z", None)("synced", "D5", "2026-11-01T09:00:00+07:00")
    p = run(f)
    # October: D1, D2 synced, D3 not: 2 / 3 → 6 × 2/3 = 4.00. November: D4, D5: 2 / 2.
    assert counts(p)["DOSSIER_SYNC"] == (2, 3)
    assert pts(p)["DOSSIER_SYNC"] == 4.0
    assert counts(p, period=NOV)["DOSSIER_SYNC"] == (2, 2)


# ===== 2. progress =============================================================================


def test_2_1_finished_dossiers_compare_instants(run: Any) -> None:
    """2.1: finished on time ⇔ end of processing ≤ due time, as instants."""
    f = base()
    due = "2026-10-09T17:00:00+07:00"
    f.received("D1", "2026-10-05T08:00:00+07:00", due).resolved("D1", "2026-10-09T17:00:00+07:00")
    f.received("D2", "2026-10-05T08:00:00+07:00", due).resolved("D2", "2026-10-09T18:00:00+07:00")
    # End of processing is the earliest end: a withdrawal before the due time is on time.
    f.received("D3", "2026-10-05T08:00:00+07:00", due)("withdrawn", "D3",
                                                        "2026-10-06T08:00:00+07:00")
    # Resolved late in December, received in October: lowers October's score.
    f.received("D4", "2026-10-05T08:00:00+07:00", due).resolved("D4", "2026-12-01T08:00:00+07:00")
    p = run(f)
    # D1 (exactly at the due instant), D3 on time; D2 (an hour late), D4 late: 2 / 4 → 10.00.
    assert counts(p)["ON_TIME"] == (2, 4)
    assert pts(p)["ON_TIME"] == 10.0


def test_2_1_open_dossiers_compare_local_dates_at_the_view_end(run: Any) -> None:
    """2.1: an open dossier is on time while local date of E ≤ the local date of its due time."""
    f = base().received("D1", "2026-10-05T08:00:00+07:00", "2026-10-09T17:00:00+07:00")
    p = run(f)
    # now = Fri 9 Oct 23:00, after the due instant but on its day: still on time (1 / 1).
    assert counts(p, now=datetime(2026, 10, 9, 23, 0, tzinfo=VN_TZ))["ON_TIME"] == (1, 1)
    # now = Sat 10 Oct 00:30: the next day, overdue (0 / 1).
    assert counts(p, now=datetime(2026, 10, 10, 0, 30, tzinfo=VN_TZ))["ON_TIME"] == (0, 1)


def test_2_1_supplement_wait_is_added_to_the_due_time(run: Any) -> None:
    """2.1: the time between request and completion belongs to the applicant."""
    # Due Fri 9 Oct 17:00; a wait Tue 6 Oct 09:00 → Thu 8 Oct 09:00 (48 h): due Sun 11 Oct 17:00.
    f = base().received("D1", "2026-10-05T08:00:00+07:00")
    f("supplement_requested", "D1", "2026-10-06T09:00:00+07:00")
    f("supplement_completed", "D1", "2026-10-08T09:00:00+07:00")
    f.resolved("D1", "2026-10-10T10:00:00+07:00")  # after the original due time, before the new
    assert counts(run(f))["ON_TIME"] == (1, 1)


def test_2_1_two_supplement_requests_are_late(run: Any) -> None:
    """2.1: a dossier with more than one supplement request is overdue, even if resolved early."""
    f = base().received("D1", "2026-10-05T08:00:00+07:00")
    for ask, done in (("06", "06"), ("07", "07")):
        f("supplement_requested", "D1", f"2026-10-{ask}T09:00:00+07:00")
        f("supplement_completed", "D1", f"2026-10-{done}T10:00:00+07:00")
    f.resolved("D1", "2026-10-07T11:00:00+07:00")
    assert counts(run(f))["ON_TIME"] == (0, 1)


def test_2_1_a_dossier_waiting_on_the_applicant_is_judged_at_the_request(run: Any) -> None:
    """2.1: still waiting → on time ⇔ the request came by the due time, however late now is."""
    f = base()
    f.received("D1", "2026-10-05T08:00:00+07:00")("supplement_requested", "D1",
                                                   "2026-10-08T09:00:00+07:00")
    f.received("D2", "2026-10-05T08:00:00+07:00")("supplement_requested", "D2",
                                                   "2026-10-12T09:00:00+07:00")
    # D1 asked before its due time (9 Oct 17:00): on time; D2 asked after: late. 1 / 2.
    assert counts(run(f))["ON_TIME"] == (1, 2)


def test_2_1_open_dossier_is_on_time_in_its_month_and_overdue_in_the_year(run: Any) -> None:
    """2.1: E = min(now, period end) differs per view, so an open dossier is judged per view."""
    f = base().received("D1", "2026-10-26T08:00:00+07:00", "2026-11-03T17:00:00+07:00")
    p = run(f)
    # October: E = 31 Oct 23:59:59 ≤ 3 Nov: on time (1 / 1) → 20 points.
    assert counts(p, period=OCT)["ON_TIME"] == (1, 1)
    assert pts(p, period=OCT)["ON_TIME"] == 20.0
    # Year (and Q4): E = now, 10 Dec > 3 Nov: overdue (0 / 1).
    assert counts(p, period=YEAR)["ON_TIME"] == (0, 1)
    assert counts(p, period=parse_period("2026-Q4"))["ON_TIME"] == (0, 1)
    # The late list says the same per view.
    assert p.overdue(DEPT, OCT, LATER)["count"] == 0
    assert [r["dossier_id"] for r in p.overdue(DEPT, YEAR, LATER)["dossiers"]] == ["D1"]


def test_2_1_an_apology_does_not_move_the_due_time(run: Any) -> None:
    """2.1: apology_moves_due = false: the date an apology promises does not save the dossier."""
    f = base().received("D1", "2026-10-05T08:00:00+07:00")  # due Fri 9 Oct 17:00
    f("apology_issued", "D1", "2026-10-07T09:00:00+07:00",
      {"new_due_at": "2026-10-20T17:00:00+07:00", "reason": "chờ xác minh"})
    f.resolved("D1", "2026-10-15T10:00:00+07:00")  # before the new date, after the due time
    p = run(f)
    assert counts(p)["ON_TIME"] == (0, 1)
    row = p.overdue(DEPT, OCT, LATER)["dossiers"][0]
    assert (row["apology_issued"], row["apology_in_time"]) == (True, True)


def test_2_1_working_days_skip_24_november(run: Any) -> None:
    """2.1 and 2.2 across Tue 24 Nov 2026 (a VN holiday), due time from the processing time."""
    # Mon 23 Nov + 2 working days: 24 Nov is off, so Wed 25 (1), Thu 26 (2) → due 26 Nov 23:59:59.
    f = base(("2D", {"processing_time": (2, "working_days")}))
    f.received("D1", "2026-11-23T10:00:00+07:00", None, procedure="2D")
    f.resolved("D1", "2026-11-26T20:00:00+07:00")  # on time (it would be late if 24 Nov counted)
    f.received("D2", "2026-11-23T10:00:00+07:00", None, procedure="2D")
    f.resolved("D2", "2026-11-27T08:00:00+07:00")  # late
    p = run(f)
    assert counts(p, period=NOV)["ON_TIME"] == (1, 2)
    # 2.2: working days in (23 Nov, end]: D1 25, 26 → 2; D2 25, 26, 27 → 3. Sum 5 over 2 finished.
    assert counts(p, period=NOV)["AVG_PROCESSING_TIME"] == (5, 2)
    assert pts(p, period=NOV)["AVG_PROCESSING_TIME"] == 0.0  # shown only


# ===== 3. online service and payment ==========================================================


def test_3_1_counts_only_dossiers_of_eligible_procedures(run: Any) -> None:
    """3.1: full_online ÷ dossiers whose procedure is eligible (unknown procedures are not)."""
    f = base(("E", {"full_online_eligible": True}), ("N", {"full_online_eligible": False}))
    at = "2026-10-05T08:00:00+07:00"
    f.received("D1", at, procedure="E", channel="online", full_online=True)
    f.received("D2", at, procedure="E")
    f.received("D3", at, procedure="N", channel="online", full_online=True)  # not eligible
    f.received("D4", at, procedure="9.999999", channel="online", full_online=True)  # unknown
    p = run(f)
    # D1 / {D1, D2}: 1 / 2 → 12 × 1/2 = 6.00.
    assert counts(p)["ONLINE_FULL_PROCESS"] == (1, 2)
    assert pts(p)["ONLINE_FULL_PROCESS"] == 6.0


def test_3_6_follows_the_dossier_s_own_fee_obligation(run: Any) -> None:
    """3.6: paid online ÷ dossiers with fee_required, whatever the procedure says."""
    f = base(("FEE", {"fee_bearing": True}))
    at, paid = "2026-10-05T08:00:00+07:00", {"gateway": "national_portal", "amount_vnd": 20000}
    f.received("D1", at, procedure="FEE", fee_required=True)("paid_online", "D1", at, paid)
    f.received("D2", at, procedure="FEE", fee_required=True)
    f.received("D3", at, fee_required=True)("paid_online", "D3", at, paid)  # plain procedure
    f.received("D4", at, procedure="FEE", fee_required=False)  # exempted: not counted
    p = run(f)
    # {D1, D3} paid of {D1, D2, D3}: 2 / 3 → 6 × 2/3 = 4.00.
    assert counts(p)["PAYMENT_DOSSIER_ONLINE"] == (2, 3)
    assert pts(p)["PAYMENT_DOSSIER_ONLINE"] == 4.0


def test_3_5_and_3_5b_count_current_fee_bearing_procedures_of_the_subtree(run: Any) -> None:
    """3.5/3.5b: fee-bearing procedures with a fee dossier / an online payment in the period."""
    f = base(("A", {"fee_bearing": True}), ("B", {"fee_bearing": True}),
             ("C", {"fee_bearing": True}), ("E", {"fee_bearing": True, "agencies": (COMMUNE,)}),
             ("N", {"fee_bearing": False}))
    f("procedure_repealed", "C", "2026-11-02T09:00:00+07:00", {"decision_date": "2026-11-02"})
    at, paid = "2026-10-05T08:00:00+07:00", {"gateway": "local_gateway", "amount_vnd": 2000}
    f.received("D1", at, procedure="A", fee_required=True)("paid_online", "D1", at, paid)
    f.received("D2", at, procedure="B", fee_required=True)
    f.received("D3", at, procedure="C", fee_required=True)("paid_online", "D3", at, paid)
    p = run(f)
    # The department's procedures: A, B (C was repealed since, N bears no fee, E is the commune's).
    # 3.5: A, B have fee dossiers: 2 / 2 → 2.00. 3.5b: A paid: 1 / 2 → 2 × (0.5 / 0.8) = 1.25.
    assert counts(p)["PAYMENT_FORMALITY_FEE_DOSSIER"] == (2, 2)
    assert counts(p)["PAYMENT_FORMALITY_TRANSACTION"] == (1, 2)
    assert (pts(p)["PAYMENT_FORMALITY_FEE_DOSSIER"], pts(p)["PAYMENT_FORMALITY_TRANSACTION"]) == (
        2.0, 1.25)
    # The province: the union A, B, E: 2 / 3 → 2 × (2/3 / 0.8) = 1.67; 1 / 3 → 0.83.
    assert counts(p, PROVINCE)["PAYMENT_FORMALITY_FEE_DOSSIER"] == (2, 3)
    assert pts(p, PROVINCE)["PAYMENT_FORMALITY_FEE_DOSSIER"] == 1.67
    assert pts(p, PROVINCE)["PAYMENT_FORMALITY_TRANSACTION"] == 0.83


# ===== 4. digitization =========================================================================


def _e_result(f: Feed, did: str, pushed: bool = False) -> Feed:
    f.resolved(did, "2026-10-06T08:00:00+07:00")
    return f("e_result_issued", did, "2026-10-06T09:00:00+07:00",
             {"result_ref": f"KQ-{did}", "pushed_to_repository": pushed})


def test_4_1_counts_dossiers_with_an_electronic_result(run: Any) -> None:
    """4.1: e-result issued ÷ dossiers received."""
    f = base()
    _e_result(f.received("D1", "2026-10-05T08:00:00+07:00"), "D1")
    f.received("D2", "2026-10-05T08:00:00+07:00").resolved("D2", "2026-10-06T08:00:00+07:00")
    p = run(f)
    assert counts(p)["ORIGINAL_RESULT_AVAILABLE"] == (1, 2)  # → 6 × 1/2 = 3.00
    assert pts(p)["ORIGINAL_RESULT_AVAILABLE"] == 3.0


def test_4_2_requires_an_e_result_where_the_procedure_requires_a_paper_result(run: Any) -> None:
    """4.2: digitized, and with an e-result if the procedure has paper_result_required."""
    f = base(("PAPER", {"paper_result_required": True}))
    at, scan = "2026-10-05T08:00:00+07:00", {"components": 3}
    f.received("D1", at, procedure="PAPER")("digitized", "D1", at, scan)  # no e-result: no
    _e_result(f.received("D2", at, procedure="PAPER")("digitized", "D2", at, scan), "D2")  # yes
    f.received("D3", at)("digitized", "D3", at, scan)  # no paper result needed: yes
    f.received("D4", at)  # not digitized: no
    p = run(f)
    assert counts(p)["DOSSIER_DIGITIZED"] == (2, 4)  # → 4 × 1/2 = 2.00
    assert pts(p)["DOSSIER_DIGITIZED"] == 2.0


def test_4_3_reused_data_has_an_80_percent_target(run: Any) -> None:
    """4.3: reused digitized data ÷ dossiers; target 80%."""
    f = base()
    f.received("D1", "2026-10-05T08:00:00+07:00", reused_digitized_data=True)
    f.received("D2", "2026-10-05T08:00:00+07:00")
    p = run(f)
    assert counts(p)["REUSED_DIGITIZED_DATA"] == (1, 2)  # 2 × (0.5 / 0.8) = 1.25
    assert pts(p)["REUSED_DIGITIZED_DATA"] == 1.25


def test_4_4_counts_repository_in_or_out(run: Any) -> None:
    """4.4: a component from the citizen's repository, or the e-result pushed to it."""
    f = base()
    at = "2026-10-05T08:00:00+07:00"
    f.received("D1", at, channel="online", from_personal_repository=True)
    _e_result(f.received("D2", at), "D2", pushed=True)
    _e_result(f.received("D3", at), "D3", pushed=False)
    p = run(f)
    assert counts(p)["SYNCED_WITH_DVCQG_PERSONAL_STORAGE"] == (2, 3)  # 4 × 2/3 = 2.67
    assert pts(p)["SYNCED_WITH_DVCQG_PERSONAL_STORAGE"] == 2.67


def test_4_5a_and_4_5b_population_data(run: Any) -> None:
    """4.5a: individual procedures with a population-data dossier; 4.5b: such dossiers."""
    f = base(("I1", {"individual_applicants": True}), ("I2", {"individual_applicants": True}),
             ("I3", {"individual_applicants": True}), ("ORG", {"individual_applicants": False}))
    f("procedure_repealed", "I3", "2026-10-20T09:00:00+07:00", {"decision_date": "2026-10-20"})
    at = "2026-10-05T08:00:00+07:00"
    f.received("D1", at, procedure="I1", population_data_used=True)
    f.received("D2", at, procedure="I2")
    f.received("D3", at, procedure="ORG", population_data_used=True)
    p = run(f)
    # 4.5a: I1 of {I1, I2} (I3 repealed, ORG not for individuals): 1 / 2 → 2 × 1/2 = 1.00.
    assert counts(p)["CITIZEN_DATA_CONNECTED_FORMALITY"] == (1, 2)
    # 4.5b: D1, D3 of 3 dossiers: 2 × 2/3 = 1.33.
    assert counts(p)["CITIZEN_DATA_CONNECTED_DOSSIER"] == (2, 3)
    assert (pts(p)["CITIZEN_DATA_CONNECTED_FORMALITY"],
            pts(p)["CITIZEN_DATA_CONNECTED_DOSSIER"]) == (1.0, 1.33)


def test_4_6_certified_copies(run: Any) -> None:
    """4.6: certified-copy dossiers with an e-result ÷ certified-copy dossiers."""
    f = base(("CC", {"certified_copy": True}))
    at = "2026-10-05T08:00:00+07:00"
    _e_result(f.received("D1", at, procedure="CC"), "D1")
    f.received("D2", at, procedure="CC")
    _e_result(f.received("D3", at), "D3")  # not a certified-copy procedure
    p = run(f)
    assert counts(p)["ELECTRONIC_CERTIFIED_COPY"] == (1, 2)  # 2 × 1/2 = 1.00
    assert pts(p)["ELECTRONIC_CERTIFIED_COPY"] == 1.0


# ===== 5. satisfaction =========================================================================


def test_5_1_classifies_feedback(run: Any) -> None:
    """5.1: feedback about procedures, and about staff, ÷ all feedback; shown only."""
    f = base()
    at = "2026-10-05T08:00:00+07:00"
    for fid, cls in (("F1", "procedure"), ("F2", "staff_conduct"), ("F3", "other")):
        f.feedback(fid, at, classification=cls)
    p = run(f)
    c = counts(p)
    assert (c["PETITION_CLASSIFICATION_TTHC"], c["PETITION_CLASSIFICATION_STAFF"]) == (
        (1, 3), (1, 3))
    assert pts(p)["PETITION_CLASSIFICATION_TTHC"] == 0.0


def test_5_2_the_15th_working_day_is_on_time_and_the_16th_late(run: Any) -> None:
    """5.2: answered by reception date + 15 working days, across 24 Nov."""
    # Tue 10 Nov + 15 working days: 11–13 (3), 16–20 (8), 23 (9), [24 off], 25–27 (12), 30 (13),
    # 1 Dec (14), Wed 2 Dec (15). The 16th is Thu 3 Dec.
    f = base()
    for fid in ("F1", "F2", "F3"):
        f.feedback(fid, "2026-11-10T09:00:00+07:00")
    f("feedback_answered", "F1", "2026-12-02T17:00:00+07:00")  # 15th working day: on time
    f("feedback_answered", "F2", "2026-12-03T08:00:00+07:00")  # 16th: late
    p = run(f)  # F3 never answered
    # November, now 10 Dec: E = 30 Nov 23:59:59 ≤ 2 Dec, so F3 is on time: 2 / 3 → 4.00.
    assert counts(p, period=NOV)["PETITION_PROCESSING_ON_TIME"] == (2, 3)
    assert pts(p, period=NOV)["PETITION_PROCESSING_ON_TIME"] == 4.0
    # The year: E = 10 Dec > 2 Dec: F3 is late: 1 / 3.
    assert counts(p, period=YEAR)["PETITION_PROCESSING_ON_TIME"] == (1, 3)


def test_5_3_subtracts_each_feedback_at_most_once(run: Any) -> None:
    """5.3: feedback − (rated not satisfied, or recomplained, or late by 5.2), each once."""
    f = base()
    for fid in ("F1", "F2", "F3", "F4", "F5"):
        f.feedback(fid, "2026-10-05T09:00:00+07:00")  # due Mon 26 Oct
    for fid in ("F1", "F3", "F4", "F5"):
        f("feedback_answered", fid, "2026-10-12T09:00:00+07:00")
    f("feedback_answered", "F2", "2026-11-02T09:00:00+07:00")  # late ...
    f("feedback_recomplained", "F2", "2026-11-03T09:00:00+07:00")  # ... and complained again
    f("feedback_rated", "F1", "2026-10-13T09:00:00+07:00", {"satisfied": False})
    f("feedback_rated", "F4", "2026-10-13T09:00:00+07:00", {"satisfied": True})
    f("feedback_recomplained", "F5", "2026-10-14T09:00:00+07:00")
    p = run(f)
    # 5 − {F1, F2 (once), F5} = 2 (F3, F4): 2 / 5 → 6 × 0.4 = 2.40.
    assert counts(p)["PETITION_HANDLING_SATISFACTION"] == (2, 5)
    assert pts(p)["PETITION_HANDLING_SATISFACTION"] == 2.4


def test_5_4_subtracts_each_dossier_at_most_once(run: Any) -> None:
    """5.4: dossiers − (rated not satisfied, or with linked feedback, or overdue), each once."""
    f = base()
    at, ok = "2026-10-05T08:00:00+07:00", "2026-10-06T08:00:00+07:00"
    f.received("D1", at).resolved("D1", ok)  # clean
    f.received("D2", at).resolved("D2", ok)("rated", "D2", ok, {"satisfied": False})
    f.received("D3", at).resolved("D3", "2026-10-20T08:00:00+07:00")  # late ...
    f("rated", "D3", "2026-10-21T08:00:00+07:00", {"satisfied": False})  # ... unsatisfied ...
    f.feedback("F3", "2026-10-22T08:00:00+07:00", "D3")  # ... and complained about: once
    f.received("D4", at).resolved("D4", ok)
    f.feedback("F4", "2026-11-05T08:00:00+07:00", "D4", agency=COMMUNE)  # any feedback about it
    f.received("D5", at)  # open, past due at E: overdue
    f.received("D6", at).resolved("D6", ok)("rated", "D6", ok, {"satisfied": False})
    f("rated", "D6", "2026-10-07T08:00:00+07:00", {"satisfied": True})  # the latest rating counts
    p = run(f)
    # 6 − {D2, D3, D4, D5} = 2: 2 / 6 → 6 × ((1/3) / 0.9) = 2.22.
    assert counts(p)["DOSSIER_RECEIVING_SATISFACTION"] == (2, 6)
    assert pts(p)["DOSSIER_RECEIVING_SATISFACTION"] == 2.22


def test_5_4_feedback_about_a_withdrawn_dossier_still_counts(run: Any) -> None:
    """5.4: a feedback linked to a dossier counts even when it comes after the withdrawal."""
    f = base().received("D1", "2026-10-05T08:00:00+07:00")
    f("withdrawn", "D1", "2026-10-06T08:00:00+07:00")
    f.feedback("F1", "2026-10-07T08:00:00+07:00", "D1")
    assert run(f).counts(DEPT, OCT, LATER)["DOSSIER_RECEIVING_SATISFACTION"] == (0, 1)


# ===== zero denominators and roll-up ===========================================================


def test_zero_denominators_score_zero_or_full_per_criterion(run: Any) -> None:
    """An agency with nothing to count: 0 for dossier criteria, full for the others (spec §2)."""
    p = run(Feed().tree())
    got = pts(p, COMMUNE)
    full = {"PUBLISH_ON_TIME": 6, "PUBLIC_UPDATE_ON_TIME": 4, "PUBLIC_CONTENT_FULL": 2,
            "PAYMENT_FORMALITY_FEE_DOSSIER": 2, "PAYMENT_FORMALITY_TRANSACTION": 2,
            "CITIZEN_DATA_CONNECTED_FORMALITY": 2, "ELECTRONIC_CERTIFIED_COPY": 2,
            "PETITION_PROCESSING_ON_TIME": 6, "PETITION_HANDLING_SATISFACTION": 6}
    assert {k: v for k, v in got.items() if v} == full
    assert all(n == (0, 0) for n in counts(p, COMMUNE).values())
    assert p.scorecard(COMMUNE, OCT, LATER)["total"] == 32.0  # the sum of the "full" maxima


def test_a_province_pools_its_units_it_does_not_average_them(run: Any) -> None:
    """Roll-up: the province's 2.1 is pooled over its units' dossiers, not their mean."""
    f = base(("C1", {"agencies": (COMMUNE,)}))
    at, ok, late = ("2026-10-05T08:00:00+07:00", "2026-10-06T08:00:00+07:00",
                    "2026-10-20T08:00:00+07:00")
    f.received("A1", at).resolved("A1", ok)  # the department: 1 / 1
    for i in range(9):  # the commune: 3 / 9
        f.received(f"B{i}", at, agency=COMMUNE, procedure="C1")
        f.resolved(f"B{i}", ok if i < 3 else late)
    p = run(f)
    assert counts(p, DEPT)["ON_TIME"] == (1, 1)
    assert counts(p, COMMUNE)["ON_TIME"] == (3, 9)
    # Pooled: 4 / 10 → 20 × 0.4 = 8.00. Averaging would give (20 + 6.67) / 2 = 13.33.
    assert counts(p, PROVINCE)["ON_TIME"] == (4, 10)
    assert pts(p, PROVINCE)["ON_TIME"] == 8.0
