"""The at-risk list read from the view store's narrow columns (issue 12), on SQLite and on
PostgreSQL: the store's candidates carry the holder, due instant, flags and procedure as
columns (``facts.RISK_COLUMNS``) instead of decoded facts; the list from them equals the one
from the projection's own facts (the hand-worked case of tests/unit/test_at_risk.py), on views
rebuilt and swapped by a replay (twice) and on views written before those columns existed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from atrisk_case import NOW, province
from pipeline import Pipeline

from projections.atrisk import at_risk
from projections.facts import RISK_COLUMNS
from projections.replay import Replayer
from projections.store import ViewStore


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[Pipeline]:
    """The hand-worked province recorded by the real engine (and folded by the real fold)."""
    with Pipeline(tmp_path / "m.db", clock=NOW) as p:
        p.send(province())
        assert p.rejected() == []
        yield p


def _list_from(views: ViewStore, recorded: Pipeline, agency: str) -> dict[str, Any]:
    return at_risk(views.load(), views.open_rows, lambda _p: recorded.ruleset, agency, NOW, 2)


def _columns(url: str, table: str) -> set[str]:
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        finally:
            conn.close()
    with psycopg.connect(url) as pg:
        return {r[0] for r in pg.execute("SELECT column_name FROM information_schema.columns "
                                         "WHERE table_name = %s", (table,))}


def _rebuild(recorded: Pipeline, live: ViewStore, times: int) -> None:
    replayer = Replayer(recorded.engine.store, live)
    for _ in range(times):
        shadow, counters, done = replayer.rebuild(resume=False)
        replayer.swap(shadow, counters, done)
        shadow.close()


def test_replayed_views_answer_the_at_risk_list_from_their_columns(
    recorded: Pipeline, views_at: str,
) -> None:
    """After each of two rebuild-and-swaps (a replay's shadow tables are made with the new
    columns too) the list of H15 and of H15.3 from the store equals the projection's own:
    I, H, B, C due soon and E, F past due, each with its holder, apology and two stakes."""
    live = ViewStore(views_at)
    try:
        _rebuild(recorded, live, 2)
        assert set(RISK_COLUMNS) <= _columns(views_at, "proj_dossiers")
        for agency in ("H15", "H15.3"):
            assert _list_from(live, recorded, agency) == recorded.at_risk(agency, NOW, 2)
        out = _list_from(live, recorded, "H15")
        assert [r["dossier_id"] for r in out["due_soon"]] == ["I", "H", "B", "C"]
        assert [r["dossier_id"] for r in out["overdue_open"]] == ["E", "F"]
        b = out["due_soon"][2]
        assert b["holder"] == {"unit": "H15.3/kt", "official": "o1", "step": "process"}
        assert (b["apology_issued"], b["stake_unit"], b["stake"]) == (True, 3.33, 2.97)
    finally:
        live.close()


# The dossiers table as the first views wrote it: no end_day, no RISK_COLUMNS.
OLD_DOSSIERS = ("CREATE TABLE proj_dossiers (id TEXT PRIMARY KEY, agency TEXT NOT NULL, month "
                "TEXT NOT NULL, judged INTEGER NOT NULL, due_day INTEGER NOT NULL, facts {blob} "
                "NOT NULL)")


def _make_old(url: str) -> None:
    """Turn the live dossiers table back into the first views' shape, rows kept."""
    old = "id, agency, month, judged, due_day, facts"
    statements = ["ALTER TABLE proj_dossiers RENAME TO proj_dossiers_new", "",
                  f"INSERT INTO proj_dossiers ({old}) SELECT {old} FROM proj_dossiers_new",
                  "DROP TABLE proj_dossiers_new"]
    if url.startswith("sqlite:///"):
        statements[1] = OLD_DOSSIERS.format(blob="BLOB")
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        with conn:
            for sql in statements:
                conn.execute(sql)
        conn.close()
        return
    statements[1] = OLD_DOSSIERS.format(blob="BYTEA")
    with psycopg.connect(url) as pg:
        for sql in statements:
            pg.execute(sql)


def test_views_written_before_the_columns_answer_the_same_list_once_opened(
    recorded: Pipeline, views_at: str,
) -> None:
    """A dossiers table without end_day and the at-risk columns (rows kept) gets them when a
    view store opens it, filled from each dossier's facts: the same list as the projection's."""
    first = ViewStore(views_at)
    _rebuild(recorded, first, 1)
    first.close()
    _make_old(views_at)
    assert not set(RISK_COLUMNS) & _columns(views_at, "proj_dossiers")
    reopened = ViewStore(views_at)
    try:
        assert {"end_day", *RISK_COLUMNS} <= _columns(views_at, "proj_dossiers")
        for agency in ("H15", "H15.3", "H15.5"):
            assert _list_from(reopened, recorded, agency) == recorded.at_risk(agency, NOW, 2)
        assert len(_list_from(reopened, recorded, "H15")["due_soon"]) == 4
    finally:
        reopened.close()
