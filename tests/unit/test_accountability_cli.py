"""``motcua delays`` and ``motcua history``'s control sheet through the command line, on the
hand-worked dossier of ``test_delays``: P1's steps receive (H15.3 / o-rec, due Mon 5 Oct 12:00),
process (H15.3/kt / o1, due Wed 7 Oct 14:00) and approve (H15.3/ld / o2, due Fri 9 Oct 10:00),
resolved Tue 13 Oct 10:00 after its due time Mon 12 Oct 17:00: late 1 h, 5 h and 16 h.

The store is a real SQLite event store and view store in ``MOTCUA_HOME``, written by the
in-process pipeline; the commands run through ``motcua.cli.main`` as a user types them.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from pipeline import Pipeline
from test_delays import P1_STEPS, catalog, dossier

from motcua.cli import main
from projections.store import ViewStore, views_url

NOW = "2026-10-31T23:00:00+07:00"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home whose store holds the late dossier D1, recorded and folded into the views."""
    monkeypatch.setenv("MOTCUA_HOME", str(tmp_path))
    monkeypatch.delenv("MOTCUA_DATABASE_URL", raising=False)
    db = tmp_path / "motcua.db"
    with Pipeline(db) as p:
        p.send(catalog() + dossier("D1", "P1", "12T17:00", *P1_STEPS, end="13T10:00"))
        views = ViewStore(views_url(f"sqlite:///{db}"))
        try:
            views.flush(p.counters, {"pos|0": 1})
        finally:
            views.close()
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_delays_prints_each_unit_or_official_that_made_the_dossier_late(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``delays H15 --period 2026-10`` pools the subtree: one row per unit, sorted by overrun,
    each with 1 late dossier, 1 late step and no apology; ``--by official`` names o2, o1 and
    o-rec (the command line shows official rows to whoever can read the store)."""
    code, out, err = run(capsys, "delays", "H15", "--period", "2026-10", "--now", NOW, "--json")
    assert (code, err) == (0, "")
    doc = orjson.loads(out)
    assert doc["late_dossiers"] == 1
    assert [(r["unit"], r["official"], r["late_dossiers"], r["late_steps"], r["overrun_hours"],
             r["apology_missing"]) for r in doc["rows"]] == [
        ("H15.3/ld", None, 1, 1, 16.0, 1), ("H15.3/kt", None, 1, 1, 5.0, 1),
        ("H15.3", None, 1, 1, 1.0, 1)]
    code, out, err = run(capsys, "delays", "H15.3", "--period", "2026-10", "--now", NOW,
                         "--by", "official")
    assert (code, err) == (0, "")
    rows = [line.split() for line in out.splitlines()[3:]]
    assert [r[:3] for r in rows] == [["H15.3/ld", "o2", "1"], ["H15.3/kt", "o1", "1"],
                                     ["H15.3", "o-rec", "1"]]
    assert [r[4] for r in rows] == ["16.00", "5.00", "1.00"]


def test_delays_of_an_unknown_agency_is_one_sentence_and_exit_2(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A user mistake: the agency named in one line on stderr, exit 2, no traceback."""
    code, out, err = run(capsys, "delays", "H99", "--period", "2026-10", "--now", NOW)
    assert (code, out) == (2, "")
    assert "H99" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_history_prints_the_control_sheet_with_each_steps_result(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``history D1``: the events, then one control-sheet line per step with its holder, start,
    end, due time and result (late by 1, 5 and 16 office hours);
    ``--json`` gives the same steps."""
    code, out, err = run(capsys, "history", "D1", "--now", NOW)
    assert (code, err) == (0, "")
    sheet = out.split("control sheet (phiếu kiểm soát)")[1].strip().splitlines()
    assert [line.split()[:4] for line in sheet] == [["receive", "H15.3", "/", "o-rec"],
                                                   ["process", "H15.3/kt", "/", "o1"],
                                                   ["approve", "H15.3/ld", "/", "o2"]]
    assert [line.split("due")[1].split()[-3:] for line in sheet] == [
        ["late", "+1.00", "h"], ["late", "+5.00", "h"], ["late", "+16.00", "h"]]
    assert "2026-10-07T14:00" in sheet[1] and "2026-10-09T10:00" in sheet[2]
    code, out, err = run(capsys, "history", "D1", "--now", NOW, "--json")
    assert (code, err) == (0, "")
    steps = orjson.loads(out)["control_sheet"]
    assert [(s["step"], s["unit"], s["official"], s["result"], s["overrun_hours"])
            for s in steps] == [("receive", "H15.3", "o-rec", "late", 1.0),
                                ("process", "H15.3/kt", "o1", "late", 5.0),
                                ("approve", "H15.3/ld", "o2", "late", 16.0)]
