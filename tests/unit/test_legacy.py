"""The provinces' older monthly report (publication spec §2) on a hand-worked stream, from the
real views: the engine records the actions, a replay builds the per-dossier rows, and the
report reads them.

The stream (all due times 17:00, all receptions 09:00, local time):

    dossier  agency  received     due          end of processing
    A        H15.1   2026-12-20   2027-01-05   resolved 2027-01-04 (on time)
    B        H15.1   2026-12-28   2027-01-08   open
    C        H15.1   2026-11-10   2026-11-20   resolved 2026-12-15 (late)
    D        H15.1   2027-01-10   2027-01-20   resolved 2027-02-03 (late, after January)
    E        H15.1   2027-01-12   2027-01-15   resolved 2027-01-20 (late)
    F        H15.1   2027-01-14   2027-02-10   open
    G        H15.1   2027-02-02   2027-02-12   open
    W        H15.2   2027-01-05   2027-01-07   withdrawn 2027-01-06 (on time)
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pipeline import Pipeline
from test_criteria import COMMUNE, DEPT, PROVINCE, Feed

from kernel.calendar import VN_TZ
from projections.legacy import legacy_report
from projections.periods import parse_period
from projections.replay import Replayer
from projections.store import ViewStore, views_url
from projections.views import Tree

LATER = datetime(2027, 3, 1, 12, 0, tzinfo=VN_TZ)


def _stream() -> Feed:
    f = Feed().tree().procedure("1.000001")

    def dossier(did: str, received: str, due: str, agency: str = DEPT) -> None:
        f.received(did, f"{received}T09:00:00+07:00", f"{due}T17:00:00+07:00", agency=agency)

    dossier("A", "2026-12-20", "2027-01-05")
    f.resolved("A", "2027-01-04T10:00:00+07:00")
    dossier("B", "2026-12-28", "2027-01-08")
    dossier("C", "2026-11-10", "2026-11-20")
    f.resolved("C", "2026-12-15T10:00:00+07:00")
    dossier("D", "2027-01-10", "2027-01-20")
    f.resolved("D", "2027-02-03T10:00:00+07:00")
    dossier("E", "2027-01-12", "2027-01-15")
    f.resolved("E", "2027-01-20T10:00:00+07:00")
    dossier("F", "2027-01-14", "2027-02-10")
    dossier("G", "2027-02-02", "2027-02-12")
    dossier("W", "2027-01-05", "2027-01-07", agency=COMMUNE)
    f("withdrawn", "W", "2027-01-06T10:00:00+07:00")
    return f


@pytest.fixture(scope="module")
def views(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ViewStore, Tree]]:
    """The stream recorded by the engine and replayed into a view store."""
    db = tmp_path_factory.mktemp("legacy") / "m.db"
    with Pipeline(db, clock=LATER) as p:
        p.send(_stream().actions)
        assert p.rejected() == []
        store, counters, _ = Replayer(p.engine.store, ViewStore(views_url(f"sqlite:///{db}"))
                                      ).rebuild("proj", resume=False)
        yield store, Tree.build(counters)
        store.close()


def report(views: tuple[ViewStore, Tree], agency: str, period: str,
           now: datetime = LATER) -> dict[str, Any]:
    store, tree = views
    doc = legacy_report(store, tree, agency, parse_period(period), now)
    return {k: v for k, v in doc.items() if k not in ("agency_id", "agency_name", "period",
                                                       "view_end")}


def test_january_carries_over_decembers_open_dossiers_across_the_year_boundary(
        views: tuple[ViewStore, Tree]) -> None:
    """January 2027 for the department: A and B were received in December 2026 and not
    finished before 1 January (carried over; C finished in December is not); D, E, F are
    January's receptions (G is February's). Resolved in January: A (on time) and E (late); D
    was resolved in February, after E, so it is pending. Pending overdue at 31 January: B (due
    8 Jan) and D (due 20 Jan), not F (due 10 Feb)."""
    assert report(views, DEPT, "2027-01") == {
        "carried_over": 2, "received": 3, "resolved": 2, "resolved_early_or_on_time": 1,
        "resolved_late": 1, "pending": 3, "pending_overdue": 2, "on_time_rate": 0.5}


def test_the_province_pools_its_subtree_and_a_withdrawal_ends_processing(
        views: tuple[ViewStore, Tree]) -> None:
    """The province adds the commune's W, withdrawn on time: 3 resolved, 2 on time, 2/3."""
    assert report(views, PROVINCE, "2027-01") == {
        "carried_over": 2, "received": 4, "resolved": 3, "resolved_early_or_on_time": 2,
        "resolved_late": 1, "pending": 3, "pending_overdue": 2, "on_time_rate": 0.6667}


def test_a_dossier_resolved_after_the_view_end_is_not_counted_as_resolved(
        views: tuple[ViewStore, Tree]) -> None:
    """Seen at noon on 19 January: E (resolved on 20 January) is still pending, and overdue at
    E's date since it was due on the 15th; D (due the 20th) is pending and not yet overdue; B
    is overdue; only A is resolved."""
    mid = datetime(2027, 1, 19, 12, 0, tzinfo=VN_TZ)
    assert report(views, DEPT, "2027-01", mid) == {
        "carried_over": 2, "received": 3, "resolved": 1, "resolved_early_or_on_time": 1,
        "resolved_late": 0, "pending": 4, "pending_overdue": 2, "on_time_rate": 1.0}


def test_a_year_counts_its_own_receptions_and_nothing_resolved_counts_as_null_rate(
        views: tuple[ViewStore, Tree]) -> None:
    """2026: A, B, C received; only C resolved in 2026 (late); A and B pending at 31 December,
    neither overdue yet (due in January). A month with no resolution has no rate."""
    assert report(views, DEPT, "2026") == {
        "carried_over": 0, "received": 3, "resolved": 1, "resolved_early_or_on_time": 0,
        "resolved_late": 1, "pending": 2, "pending_overdue": 0, "on_time_rate": 0.0}
    assert report(views, DEPT, "2026-10")["on_time_rate"] is None


def test_views_written_before_the_end_day_column_get_it_filled_from_the_facts(
        tmp_path: Path, views: tuple[ViewStore, Tree]) -> None:
    """An older view store (no ``end_day`` column) is upgraded when opened: the column is
    added and filled from each dossier's facts, so carried-over dossiers are found."""
    store, tree = views
    old = tmp_path / "old-views.db"
    conn = sqlite3.connect(old)
    conn.execute("CREATE TABLE proj_dossiers (id TEXT PRIMARY KEY, agency TEXT NOT NULL, "
                 "month TEXT NOT NULL, judged INTEGER NOT NULL, due_day INTEGER NOT NULL, "
                 "facts BLOB NOT NULL)")
    conn.execute("CREATE TABLE proj_feedback (id TEXT PRIMARY KEY, agency TEXT NOT NULL, "
                 "month TEXT NOT NULL, judged INTEGER NOT NULL, due_day INTEGER NOT NULL, "
                 "facts BLOB NOT NULL)")
    with store.tx() as c:
        c.execute("SELECT id, agency, month, judged, due_day, facts FROM proj_dossiers")
        rows = c.fetchall()
    conn.executemany("INSERT INTO proj_dossiers VALUES (?,?,?,?,?,?)", rows)
    conn.commit()
    conn.close()
    upgraded = ViewStore(f"sqlite:///{old}")
    try:
        doc = legacy_report(upgraded, tree, DEPT, parse_period("2027-01"), LATER)
    finally:
        upgraded.close()
    assert (doc["carried_over"], doc["resolved"], doc["pending_overdue"]) == (2, 2, 2)
