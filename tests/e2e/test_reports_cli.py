"""``publish``, ``publish --verify``, ``report legacy`` and ``reconcile`` as a user runs them:
real processes on a home where ``ingest --wait`` recorded a small province (October and
November 2026). Bad input is one line on stderr, exit 2, and leaves nothing written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import sqlite3
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from openpyxl import load_workbook
from pypdf import PdfReader
from test_cli import motcua, one_line_error

from producers.simulator import SimConfig, generate

LEGACY_KEYS = {"agency_id", "agency_name", "period", "view_end", "carried_over", "received",
               "resolved", "resolved_early_or_on_time", "resolved_late", "pending",
               "pending_overdue", "on_time_rate"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home with a small province recorded and scored."""
    base = tmp_path_factory.mktemp("reports")
    actions = base / "actions.ndjson"
    actions.write_bytes(b"\n".join(orjson.dumps(a) for a in generate(SimConfig(
        agencies=3, dossiers=150, seed=3, start=date(2026, 10, 1), days=45))) + b"\n")
    home = base / "home"
    home.mkdir()
    done = motcua(home, "ingest", str(actions), "--wait", "--json", MOTCUA_HOLD_SECONDS="2")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["rejected"] == {}
    yield home


def _json(done: Any) -> Any:
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


def _versions(home: Path) -> list[str]:
    folder = home / "publications" / "2026-10"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_publish_writes_a_version_with_its_files_and_verify_says_identical(home: Path) -> None:
    """``publish --json`` prints the contract's fields and writes the CSV, XLSX and PDF (the
    files stored with the version); ``publish --verify`` recomputes it from the event store
    and says it is identical."""
    out = _json(motcua(home, "publish", "--period", "2026-10", "--json"))
    assert set(out) == {"period", "version", "recorded_at", "sha256", "files"}
    assert (out["period"], out["version"]) == ("2026-10", 1)
    assert set(out["files"]) == {"csv", "xlsx", "pdf"}
    pdf = Path(out["files"]["pdf"]).read_bytes()
    assert "Tháng 10/2026" in PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    assert out["sha256"] in PdfReader(io.BytesIO(pdf)).pages[0].extract_text()
    wb = load_workbook(out["files"]["xlsx"], read_only=True)
    assert wb.sheetnames[:4] == ["Xếp hạng", "Tiêu chí", "Hồ sơ trễ hạn", "Chậm trễ"]
    rows = list(csv.DictReader(io.StringIO(Path(out["files"]["csv"]).read_text("utf-8"))))
    assert {r["agency_id"] for r in rows} >= {"H15", "H15.1"}
    conn = sqlite3.connect(home / "motcua-views.db")  # the copies are the stored files
    try:
        stored = dict(conn.execute("SELECT kind, sha256 FROM publication_files WHERE period = "
                                   "'2026-10' AND version = 1").fetchall())
    finally:
        conn.close()
    assert {k: hashlib.sha256(Path(p).read_bytes()).hexdigest()
            for k, p in out["files"].items()} == stored

    verified = motcua(home, "publish", "--verify", "2026-10")
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("identical: 2026-10 version 1")
    again = _json(motcua(home, "publish", "--verify", "2026-10", "--version", "1", "--json"))
    assert (again["identical"], again["differences"], again["sha256"]) == (True, [],
                                                                          out["sha256"])


@pytest.mark.parametrize("args, names", [
    (("publish", "--period", "2026-13"), "'2026-13'"),
    (("publish", "--period", "2099-01"), "Period 2099-01 begins on 2099-01-01"),
    (("publish", "--period", "2026-10", "--at", "2099-01-01T00:00:00+07:00"), "in the future"),
    (("publish", "--period", "2026-10", "--at", "yesterday"), "'yesterday'"),
    (("publish", "--verify", "2026-09"), "no publication of period 2026-09"),
    (("publish", "--verify", "2026-10", "--version", "9"), "version 9 of period 2026-10"),
    (("publish", "--verify", "2026-10", "--version", str(10**23)), f"version {10**23} of"),
    (("publish", "--verify", "2026-10", "--version", "-1"), "'-1' is not a whole number"),
    (("publish", "--verify", "2026-10", "--version", "abc"), "'abc' is not a whole number"),
    (("report", "legacy", "H99", "--period", "2026-10"), "'H99'"),
    (("reconcile", "no-such-file.tsv"), "'no-such-file.tsv' does not exist"),
])
def test_a_user_mistake_is_one_line_exit_2_and_writes_nothing(home: Path, args: tuple[str, ...],
                                                             names: str) -> None:
    """A bad period, time, version, agency or file: one sentence naming it, exit 2, and no
    publication written."""
    before = _versions(home)
    done = motcua(home, *args)
    one_line_error(done, names)
    assert done.returncode == 2
    assert _versions(home) == before


def test_verify_names_a_publication_edited_in_the_database(home: Path) -> None:
    """An edited stored content (its triggers dropped first) makes ``--verify`` exit 1 and
    name what changed."""
    out = _json(motcua(home, "publish", "--period", "2026-10", "--json"))
    version = out["version"]
    db = home / "motcua-views.db"
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER publications_no_update")
        (content,) = conn.execute("SELECT content FROM publications WHERE version = ?",
                                  (version,)).fetchone()
        doc = orjson.loads(content)
        doc["scorecards"][0]["total"] = 99.99
        conn.execute("UPDATE publications SET content = ? WHERE version = ?",
                     (orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), version))
    finally:
        conn.close()
    done = motcua(home, "publish", "--verify", "2026-10")
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith(f"different: 2026-10 version {version}")
    assert "the content was changed after publication" in done.stdout
    agency = doc["scorecards"][0]["agency_id"]
    assert f"content.scorecards[{agency}].total: published 99.99, recomputed" in done.stdout


def test_report_legacy_prints_the_older_form_whose_figures_add_up(home: Path) -> None:
    """The JSON has the spec's fields, and resolved = on time + late, pending = carried over +
    received − resolved, the rate = on time ÷ resolved to 4 decimals."""
    r = _json(motcua(home, "report", "legacy", "H15", "--period", "2026-11", "--json"))
    assert set(r) == LEGACY_KEYS
    assert r["received"] > 0 and r["carried_over"] > 0 and r["resolved"] > 0
    assert r["resolved"] == r["resolved_early_or_on_time"] + r["resolved_late"]
    assert r["pending"] == r["carried_over"] + r["received"] - r["resolved"]
    assert r["on_time_rate"] == round(r["resolved_early_or_on_time"] / r["resolved"], 4)
    text = motcua(home, "report", "legacy", "H15", "--period", "2026-11")
    assert text.returncode == 0 and "Tồn kỳ trước (carried over)" in text.stdout


def _portal_file(rows: list[dict[str, str]], path: Path, plant: bool = False) -> None:
    """The portal's export with motcua's own October figures (from a publication's CSV: every
    agency, every criterion), the H15 synced count one higher when ``plant``."""
    lines = ["unit_code\tmetric_code\tnumerator\tdenominator"]
    for r in rows:
        n = int(r["numerator"]) + (1 if plant and r["criterion_code"] == "DOSSIER_SYNC"
                                   and r["agency_id"] == "H15" else 0)
        lines.append(f"{r['agency_id']}\t{r['criterion_code']}\t{n}\t{r['denominator']}")
    path.write_text("\n".join(lines) + "\n", "utf-8")


def test_reconcile_exits_0_when_the_portal_agrees_1_when_it_differs_2_for_a_bad_file(
    home: Path, tmp_path: Path,
) -> None:
    """Same figures: exit 0; one synced count off by one: exit 1 and that row named with the
    unsynced dossiers; a row with a count that is not a whole number: exit 2, one line."""
    published = _json(motcua(home, "publish", "--period", "2026-10", "--json"))
    rows = list(csv.DictReader(io.StringIO(Path(published["files"]["csv"]).read_text("utf-8"))))
    same = tmp_path / "same.tsv"
    _portal_file(rows, same)
    done = motcua(home, "reconcile", str(same), "--period", "2026-10", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert orjson.loads(done.stdout)["differences"] == []

    off = tmp_path / "off.tsv"
    _portal_file(rows, off, plant=True)
    done = motcua(home, "reconcile", str(off), "--period", "2026-10", "--json")
    assert done.returncode == 1, done.stderr
    diffs = orjson.loads(done.stdout)["differences"]
    assert [(d["unit_code"], d["metric_code"]) for d in diffs] == [("H15", "DOSSIER_SYNC")]
    assert diffs[0]["portal"][0] == diffs[0]["motcua"][0] + 1
    assert len(diffs[0]["candidate_dossiers"]) == diffs[0]["motcua"][1] - diffs[0]["motcua"][0]
    text = motcua(home, "reconcile", str(off), "--period", "2026-10")
    assert text.returncode == 1 and "H15" in text.stdout and "DOSSIER_SYNC" in text.stdout

    bad = tmp_path / "bad.tsv"
    bad.write_text("unit_code\tmetric_code\tnumerator\tdenominator\nH15\tON_TIME\tmany\t2\n")
    done = motcua(home, "reconcile", str(bad), "--period", "2026-10")
    one_line_error(done, "numerator 'many'")
    assert done.returncode == 2 and done.stdout == ""


def test_verify_without_the_ruleset_it_was_published_under_says_so_and_exits_1(
        home: Path, tmp_path: Path) -> None:
    """November published under a province's own ruleset (``MOTCUA_RULESET_DIR``, in force from
    1 Nov 2026, so in force at the view's end): the publication keeps its name, and a verify
    where that ruleset is gone cannot recompute it: exit 1, naming it."""
    rules = tmp_path / "rules"
    rules.mkdir()
    doc = orjson.loads((Path(__file__).resolve().parents[2] / "projections" / "rulesets"
                        / "portal-2026.json").read_bytes())
    doc.update(name="daklak-2026", effective_from="2026-11-01")
    (rules / "daklak-2026.json").write_bytes(orjson.dumps(doc))
    _json(motcua(home, "publish", "--period", "2026-11", "--json",
                 MOTCUA_RULESET_DIR=str(rules)))
    done = motcua(home, "publish", "--verify", "2026-11")
    assert done.returncode == 1, done
    assert "'daklak-2026'" in done.stdout and "does not have" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr
