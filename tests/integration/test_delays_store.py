"""The delays query's read of the view store (issue 11), on SQLite and on PostgreSQL: the
unfinished late dossiers it attributes at E, through the index that lets it read only those,
on views rebuilt and swapped by a replay (twice: index names travel with their tables) and on
views written before the index existed.

Five dossiers received at H15.3 on Mon 5 Oct 2026 08:00 (procedure P0, no internal process),
seen at Wed 14 Oct 12:00 (E; before_day is 14 Oct):

    LATE_OPEN   due Mon 12 Oct 17:00, open                       -> late at E (open past due)
    NOT_YET     due Fri 16 Oct 17:00, open                       -> not late at E
    WAIT_LATE   due Mon 12 Oct 17:00, supplement asked Tue 13    -> late for good (asked after due)
    WAIT_OK     due Mon 12 Oct 17:00, supplement asked Thu 8     -> on time for good (asked before)
    DONE_LATE   due Mon 12 Oct 17:00, resolved Tue 13 Oct 10:00  -> finished: the fold counts it

So the query returns LATE_OPEN and WAIT_LATE, and the delays list counts 3 late dossiers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from acts import builder
from pipeline import Pipeline

from kernel.calendar import VN_TZ, local_date
from projections.delays import delays
from projections.periods import parse_period
from projections.replay import Replayer
from projections.store import ViewStore

OCT = parse_period("2026-10")
E = datetime(2026, 10, 14, 12, 0, tzinfo=VN_TZ)
BEFORE_DAY = local_date(E).toordinal()
LATE_COLUMNS = ("agency", "end_day", "judged", "due_day", "month")
act = builder("s", "2026-10-")


def _catalog() -> list[dict[str, Any]]:
    return [
        act("agency_registered", "01T08:00", {"agency_id": "H15"}, name="Tỉnh", level="province"),
        act("agency_registered", "01T08:00", {"agency_id": "H15.3"}, name="Sở", level="department",
            parent_id="H15"),
        act("procedure_published", "01T08:00", {"procedure_id": "P0"}, authority_id="H15",
            authority_level="province", decision_date="2026-01-05",
            legal_basis_effective_date="2026-02-01", implementing_agency_ids=["H15.3"],
            processing_time={"value": 5, "unit": "working_days"}),
    ]


def _dossier(d: str, due: str, *more: tuple[str, str, dict[str, Any]]) -> list[dict[str, Any]]:
    s = {"dossier_id": d}
    return [act("received", "05T08:00", s, agency_id="H15.3", procedure_id="P0",
                channel="direct", due_at=f"2026-10-{due}:00+07:00", official_id="o-rec"),
            *(act(t, at, s, **data) for t, at, data in more)]


STREAM = [*_catalog(),
          *_dossier("LATE_OPEN", "12T17:00"),
          *_dossier("NOT_YET", "16T17:00"),
          *_dossier("WAIT_LATE", "12T17:00", ("supplement_requested", "13T09:00", {})),
          *_dossier("WAIT_OK", "12T17:00", ("supplement_requested", "08T09:00", {})),
          *_dossier("DONE_LATE", "12T17:00", ("resolved", "13T10:00", {"outcome": "approved"}))]


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[Pipeline]:
    """The stream recorded by the real engine (and folded by the real projection)."""
    with Pipeline(tmp_path / "m.db", clock=E) as p:
        p.send(STREAM)
        assert p.rejected() == []
        yield p


def _late_indexes(url: str, table: str, columns: tuple[str, ...] = LATE_COLUMNS) -> list[str]:
    """The indexes of ``table`` on exactly these columns (the delays query's by default), read
    from the catalog."""
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            names = [r[1] for r in conn.execute(f"PRAGMA index_list({table})")]
            return [n for n in names if tuple(
                r[2] for r in sorted(conn.execute(f"PRAGMA index_info({n})"))) == columns]
        finally:
            conn.close()
    with psycopg.connect(url) as pg:
        rows = pg.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
                          (table,)).fetchall()
    return [n for n, d in rows if d.endswith(f"({', '.join(columns)})")]


# What the queries read by, written out: (agency, month) of both subject tables, the dossiers
# carried over (agency, end_day), the at-risk list (end_day, due_day), the delays query.
EVERY_INDEX = (("proj_dossiers", ("agency", "month")), ("proj_feedback", ("agency", "month")),
               ("proj_dossiers", ("agency", "end_day")), ("proj_dossiers", ("end_day", "due_day")),
               ("proj_dossiers", LATE_COLUMNS))


def _late_ids(views: ViewStore) -> list[str]:
    return sorted(sid for sid, _ in views.unfinished_late_rows(["H15", "H15.3"], OCT.months,
                                                               BEFORE_DAY))


def test_replayed_views_keep_the_late_index_and_return_only_the_late_unfinished(
    recorded: Pipeline, views_at: str,
) -> None:
    """After each of two rebuild-and-swaps the live tables have every index; the query
    returns LATE_OPEN and WAIT_LATE; the delays list from the store equals the one from the
    projection's own facts, with 3 late dossiers."""
    live = ViewStore(views_at)
    try:
        replayer = Replayer(recorded.engine.store, live)
        for _ in range(2):
            shadow, counters, done = replayer.rebuild(resume=False)
            replayer.swap(shadow, counters, done)
            shadow.close()
            assert len(_late_indexes(views_at, "proj_dossiers")) >= 1
            # The others too: the shadow's index names were taken by the live set's after the
            # first swap (names travel with renamed tables), which once left them unmade.
            for table, columns in EVERY_INDEX:
                assert _late_indexes(views_at, table, columns), (table, columns)
        assert _late_ids(live) == ["LATE_OPEN", "WAIT_LATE"]
        for by in ("unit", "official"):
            mine = delays(live.load(), live.unfinished_late_rows, recorded.ruleset, "H15", OCT,
                          E, by)
            assert mine == recorded.delays("H15", OCT, E, by)
            assert mine["late_dossiers"] == 3
    finally:
        live.close()


def test_views_written_before_the_late_index_get_it_when_opened(recorded: Pipeline,
                                                                views_at: str) -> None:
    """Views whose dossiers table lacks the index (older views) get it on the next open, and
    the query's answer is the same before and after."""
    first = ViewStore(views_at)
    first.flush(recorded.counters, {})
    with first.tx() as c:
        for name in _late_indexes(views_at, "proj_dossiers"):
            c.execute(f"DROP INDEX {name}")
    assert _late_indexes(views_at, "proj_dossiers") == []
    assert _late_ids(first) == ["LATE_OPEN", "WAIT_LATE"]
    first.close()
    again = ViewStore(views_at)
    try:
        assert len(_late_indexes(views_at, "proj_dossiers")) == 1
        assert _late_ids(again) == ["LATE_OPEN", "WAIT_LATE"]
    finally:
        again.close()
