"""What is at risk (spec/accountability.md §5), on a case worked out by hand.

Now is Fri 28 Aug 2026 10:00 (+07). The following days are not working days: Sat 29, Sun 30,
Mon 31 Aug (the day off for the worked Sat 22 Aug), Tue 1 and Wed 2 Sep (National Day). So
``add_working_days(28 Aug, 1)`` is Thu 3 Sep and ``add_working_days(28 Aug, 2)`` is Fri 4 Sep.

Tree: H15 (province) → H15.3, H15.5. Every dossier is received in Aug 2026 (cohort 2026):

    H15.3  A  received 3 Aug, due 10 Aug 17:00, resolved 7 Aug          on time for good
           B  due Thu 3 Sep 17:00, handed to H15.3/kt (o1) for "process", apology 27 Aug
           C  due Fri 4 Sep 17:00, rated not satisfied (already lost in 5.4)
           D  due Mon 7 Sep 17:00                                        beyond 2 working days
           E  due Thu 27 Aug 17:00                                       open past due
           F  due Fri 28 Aug 09:00: past due at 10:00, still on time by its date for 2.1
           G  due Thu 3 Sep 17:00, waiting on the applicant since 25 Aug (not listed)
           I  due Wed 26 Aug 17:00, waited on 20 Aug 10:00 → 27 Aug 10:00 (7 days): due
              Wed 2 Sep 17:00
    H15.5  H  due Thu 3 Sep 12:00

Counts judged at now (year 2026, E = now, local date 28 Aug):

- H15.3: 8 dossiers. 2.1: 7 on time (all but E) → 20 × 7/8 = 17.50; one more late, 6/8 →
  15.00: 2.50. 5.4 (target 90%): 6 (not E, not C) → 6 × (6/8)/0.9 = 5.00; 5/8 → 4.1667 →
  4.17: 0.83. A dossier counted in both loses 3.33; C only 2.50; E nothing.
- H15: 9 dossiers. 2.1: 8/9 → 17.7778 → 17.78; 7/9 → 15.5556 → 15.56: 2.22. 5.4: 7/9 → 6 ×
  0.8642 = 5.1852 → 5.19; 6/9 → 4.4444 → 4.44: 0.75. In both: 2.97 (unrounded points would
  say 2.2222 + 0.7407 = 2.96: the two rounded totals differ by 2.97). C: 2.22.
- H15.5: 1 dossier. 2.1: 1/1 → 20, 0/1 → 0; 5.4: min(1, 1/0.9) → 6, 0 → 0: 26.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from atrisk_case import NOW, act, province
from pipeline import Pipeline


@pytest.fixture
def p(tmp_path: Path) -> Any:
    with Pipeline(tmp_path / "m.db") as pipe:
        pipe.send(province())
        assert pipe.rejected() == []
        yield pipe


def rows(out: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["dossier_id"], r["due_at"][:16], r["stake_unit"], r["stake"]) for r in out]


def test_due_soon_crosses_the_weekend_and_national_day_and_stakes_are_exact(p: Any) -> None:
    """Within 2 working days of Fri 28 Aug is up to Fri 4 Sep: I (its due moved by the wait),
    H, B, C by due time; E and F are open past due; D is later; G waits on the applicant."""
    out = p.at_risk("H15", NOW, 2)
    assert (out["agency_id"], out["now"], out["within"]) == ("H15", "2026-08-28T10:00:00+07:00",
                                                              2)
    assert rows(out["due_soon"]) == [
        ("I", "2026-09-02T17:00", 3.33, 2.97),
        ("H", "2026-09-03T12:00", 26.0, 2.97),
        ("B", "2026-09-03T17:00", 3.33, 2.97),
        ("C", "2026-09-04T17:00", 2.5, 2.22)]
    assert rows(out["overdue_open"]) == [
        ("E", "2026-08-27T17:00", 0.0, 0.0),
        ("F", "2026-08-28T09:00", 3.33, 2.97)]


def test_within_one_working_day_stops_at_thursday(p: Any) -> None:
    """Within 1 working day of Fri 28 Aug is up to Thu 3 Sep: C (Fri 4 Sep) drops out."""
    out = p.at_risk("H15.3", NOW, 1)
    assert [r["dossier_id"] for r in out["due_soon"]] == ["I", "B"]
    assert [r["stake"] for r in out["due_soon"]] == [3.33, 3.33]


def test_a_row_names_the_current_holder_and_the_apology(p: Any) -> None:
    """B is held by H15.3/kt (o1) for "process" and has an apology; I is still at reception."""
    out = p.at_risk("H15.3", NOW, 2)
    by_id = {r["dossier_id"]: r for r in out["due_soon"]}
    assert by_id["B"]["holder"] == {"unit": "H15.3/kt", "official": "o1", "step": "process"}
    assert by_id["B"]["apology_issued"] is True
    assert by_id["I"]["holder"] == {"unit": "H15.3", "official": "o-rec", "step": "receive"}
    assert by_id["I"]["apology_issued"] is False
    assert (by_id["I"]["agency_id"], by_id["I"]["procedure_id"]) == ("H15.3", "P1")


def test_the_stake_is_the_difference_of_the_two_scorecard_totals(p: Any) -> None:
    """B's stake for H15 equals the scorecard total now minus the total once B has gone late
    (resolved on Fri 4 Sep, after its due time; a finished dossier is judged for good, so the
    view at the same now sees only B change): 2.97."""
    from projections.periods import parse_period

    before = p.scorecard("H15", parse_period("2026"), NOW)["total"]
    p.send([act("resolved", "09-04T09:00", {"dossier_id": "B"}, outcome="approved")])
    after = p.scorecard("H15", parse_period("2026"), NOW)["total"]
    assert round(before - after, 2) == 2.97


def test_an_event_folded_after_a_query_changes_the_next_answer(p: Any) -> None:
    """The agency tree and counts a query keeps with the counters are not reused once they
    change: a dossier J received at H15.3 on 28 Aug 08:00, due Mon 7 Sep (not listed), makes
    H15.3 9 dossiers and H15 10. B (in 2.1 and 5.4) then loses for H15.3: 2.1 8/9 → 17.78,
    7/9 → 15.56: 2.22; 5.4 7/9 → 5.19, 6/9 → 4.44: 0.75; 2.97. For H15: 2.1 9/10 → 18.00,
    8/10 → 16.00: 2.00; 5.4 8/10 → 5.33, 7/10 → 4.67: 0.66; 2.66."""
    from atrisk_case import dossier

    before = {r["dossier_id"]: r for r in p.at_risk("H15", NOW, 2)["due_soon"]}
    assert (before["B"]["stake_unit"], before["B"]["stake"]) == (3.33, 2.97)
    p.send(dossier("J", "09-07T17:00", received="08-28T08:00"))
    assert p.rejected() == []
    after = p.at_risk("H15", NOW, 2)
    by_id = {r["dossier_id"]: r for r in after["due_soon"]}
    assert (by_id["B"]["stake_unit"], by_id["B"]["stake"]) == (2.97, 2.66)
    assert (by_id["H"]["stake_unit"], by_id["H"]["stake"]) == (26.0, 2.66)
    assert "J" not in by_id


def test_an_unknown_agency_is_refused(p: Any) -> None:
    """An agency the views never saw is an error naming it, not an empty list."""
    from projections.views import UnknownAgencyError

    with pytest.raises(UnknownAgencyError):
        p.at_risk("H99", NOW)


def test_http_serves_the_list_and_refuses_bad_input_in_one_sentence(p: Any,
                                                                   tmp_path: Path) -> None:
    """``GET …/at-risk?within=1&now=…`` is the same list from the view store; a negative
    ``within`` is 400 and an unknown agency 404, each with one sentence."""
    from fastapi.testclient import TestClient

    from projections.api import create_app
    from projections.source import StoreSource
    from projections.store import ViewStore

    views = ViewStore(f"sqlite:///{tmp_path / 'views.db'}")
    views.flush(p.counters, {"pos|0": 1})
    app = create_app(StoreSource(views), p.ruleset, clock=lambda: NOW)
    with TestClient(app) as client:
        ok = client.get("/api/v1/agencies/H15.3/at-risk?within=1")
        at = client.get("/api/v1/agencies/H15/at-risk?now=2026-08-28T10:00:00%2B07:00")
        bad = client.get("/api/v1/agencies/H15.3/at-risk?within=-1")
        unknown = client.get("/api/v1/agencies/H99/at-risk")
    views.close()
    assert ok.status_code == 200
    assert [r["dossier_id"] for r in ok.json()["due_soon"]] == ["I", "B"]
    assert [r["dossier_id"] for r in ok.json()["overdue_open"]] == ["E", "F"]
    assert rows(at.json()["due_soon"]) == rows(p.at_risk("H15", NOW, 2)["due_soon"])
    assert bad.status_code == 400 and "within" in bad.json()["error"]
    assert unknown.status_code == 404 and "H99" in unknown.json()["error"]
