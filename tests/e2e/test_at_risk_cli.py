"""``motcua at-risk`` as a user runs it: a real process over a store holding the hand-worked
case of tests/unit/test_at_risk.py (numbers worked out there)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from atrisk_case import province
from test_cli import motcua, one_line_error

from engine.app import Message
from engine.relay import event_message
from motcua.pipeline import engine_at
from projections.fold import Counters
from projections.store import ViewStore, views_url

NOW = "2026-08-28T10:00:00+07:00"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A MOTCUA_HOME whose SQLite store holds the case's events and views."""
    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    engine = engine_at(url)
    try:
        engine.process("e2e-log", [Message("motcua.actions", 0, i, orjson.dumps(a))
                                    for i, a in enumerate(province())])
        counters, pos = Counters(), 0
        for row in engine.store.read_facts(1, 10**9):
            counters.fold(event_message(row)[1])
            pos = row[0]
        views = ViewStore(views_url(url))
        views.flush(counters, {"pos|0": pos})
        views.close()
    finally:
        engine.close()
    return tmp_path


def test_at_risk_json_lists_due_soon_and_past_due_with_exact_stakes(home: Path) -> None:
    """``at-risk H15 --within 2 --now …`` crosses the weekend and National Day to Fri 4 Sep."""
    done = motcua(home, "at-risk", "H15", "--within", "2", "--now", NOW, "--json")
    assert done.returncode == 0, done.stderr
    out = orjson.loads(done.stdout)
    assert set(out) == {"agency_id", "now", "within", "due_soon", "overdue_open"}
    assert [(r["dossier_id"], r["stake_unit"], r["stake"]) for r in out["due_soon"]] == [
        ("I", 3.33, 2.97), ("H", 26.0, 2.97), ("B", 3.33, 2.97), ("C", 2.5, 2.22)]
    assert [(r["dossier_id"], r["stake"]) for r in out["overdue_open"]] == [("E", 0.0),
                                                                          ("F", 2.97)]
    b = out["due_soon"][2]
    assert set(b) == {"dossier_id", "agency_id", "procedure_id", "due_at", "holder",
                      "apology_issued", "stake_unit", "stake"}
    assert b["holder"] == {"unit": "H15.3/kt", "official": "o1", "step": "process"}


def test_at_risk_text_names_each_dossier(home: Path) -> None:
    """The text form lists the same dossiers with their stakes for people."""
    done = motcua(home, "at-risk", "H15.3", "--within", "1", "--now", NOW)
    assert done.returncode == 0, done.stderr
    assert "Due soon: 2" in done.stdout and "Open past due: 2" in done.stdout
    assert "H15.3/kt / o1" in done.stdout and "3.33" in done.stdout


@pytest.mark.parametrize(("args", "names"), [
    (["H15", "--within", "-1"], "-1"),
    (["H15", "--now", "yesterday"], "yesterday"),
    (["H99", "--now", NOW], "H99"),
])
def test_at_risk_with_bad_input_names_it_in_one_line(home: Path, args: list[str],
                                                     names: str) -> None:
    """A bad --within, --now or agency: exit 2, one line naming it."""
    one_line_error(motcua(home, "at-risk", *args), names)
