"""Reconciliation with the national portal's export (publication spec §3).

The export is generated from a known stream by the naive oracle (``tests/oracle.py``, which
shares nothing with the views), so it agrees with motcua; then differences are planted, and
reconcile must find each of them, name the unsynced dossiers that may explain the dossier ones
(worked out from the oracle's records), and find nothing else. A bad file is refused with one
sentence naming its problem.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from oracle import Oracle
from pipeline import Pipeline

from kernel.calendar import local_date
from producers.simulator import SimConfig, generate
from projections.periods import parse_instant, parse_period
from projections.reconcile import PortalFileError, agree, read_portal_file, reconcile
from projections.replay import Replayer
from projections.ruleset import load_ruleset
from projections.store import ViewStore, views_url

RULESET = load_ruleset("portal-2026")
PERIOD = parse_period("2026-Q2")
NOW = parse_instant("2026-12-31T12:00:00+07:00")
HEADER = ["unit_code", "unit_level", "group", "metric_code", "metric_name", "numerator",
          "denominator", "ratio", "score", "max_score"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A simulated province recorded by the engine, replayed into a view store, and the
    oracle's view of the same accepted actions."""
    db = tmp_path_factory.mktemp("reconcile") / "m.db"
    actions = list(generate(SimConfig(agencies=4, dossiers=400, seed=11,
                                      start=date(2026, 3, 1), days=150)))
    with Pipeline(db) as p:
        p.send(actions)
        assert p.rejected() == []
        oracle = Oracle(p.accepted(), RULESET)
        store, counters, _ = Replayer(p.engine.store, ViewStore(views_url(f"sqlite:///{db}"))
                                      ).rebuild("proj", resume=False)
        yield {"oracle": oracle, "store": store, "counters": counters}
        store.close()


def export(oracle: Oracle) -> dict[tuple[str, str], list[Any]]:
    """The portal's full export as the oracle counts it: every unit, every criterion of the
    ruleset, plus an OVERDUE row per unit (a portal figure the index does not score)."""
    rows: dict[tuple[str, str], list[Any]] = {}
    for unit in sorted(oracle.agencies()):
        counts = oracle.counts(unit, PERIOD.start, PERIOD.end, NOW)
        for c in RULESET.criteria():
            n, d = counts[c.code]
            rows[(unit, c.code)] = [unit, "x", c.group, c.code, c.name_vi, n, d, "0.5", "1", "2"]
        rows[(unit, "OVERDUE")] = [unit, "x", "", "OVERDUE", "Quá hạn", 7, "", "", "", ""]
    return rows


def tsv(rows: dict[tuple[str, str], list[Any]], sep: str = "\t") -> bytes:
    out = io.StringIO()
    w = csv.writer(out, delimiter=sep, lineterminator="\n")
    w.writerow(HEADER)
    w.writerows(rows.values())
    return out.getvalue().encode("utf-8")


def run(world: dict[str, Any], data: bytes) -> dict[str, Any]:
    store = world["store"]
    portal = read_portal_file(data, "portal.tsv", RULESET)
    return reconcile(portal, world["counters"], RULESET, PERIOD, NOW,
                     lambda agencies, months: store.subject_rows("dossiers", agencies, months))


def unsynced(oracle: Oracle, unit: str, fee_only: bool = False) -> list[str]:
    """The oracle's dossiers of a unit's subtree received in the period and not synced."""
    return sorted(d.id for d in oracle.dossiers.values()
                  if oracle.in_subtree(d.agency, unit) and not d.synced
                  and PERIOD.start <= local_date(d.received_at) <= PERIOD.end
                  and (not fee_only or d.data.get("fee_required")))


def test_an_export_that_agrees_is_compared_in_full_and_differs_nowhere(
        world: dict[str, Any]) -> None:
    """The oracle's export, tab- or comma-separated: every (unit, criterion) compared, no
    difference, no unit either side lacks; the OVERDUE rows are listed as skipped."""
    rows = export(world["oracle"])
    units = sorted(world["oracle"].agencies())
    for sep in ("\t", ","):
        result = run(world, tsv(rows, sep))
        assert agree(result), result["differences"][:3]
        assert result["compared"] == len(units) * len(RULESET.criteria())
        assert [s["metric_code"] for s in result["skipped"]] == ["OVERDUE"] * len(units)
        assert (result["period"], result["view_end"]) == ("2026-Q2", "2026-06-30T23:59:59+07:00")


def test_reconcile_finds_every_planted_difference_and_nothing_else(
        world: dict[str, Any]) -> None:
    """Planted: a numerator (ON_TIME of H15.1), a sync denominator (H15.2), a fee-dossier
    denominator (H15), a procedure count (3.5 of H15), a unit left out (H15.3), a unit the
    portal has and motcua does not (H99), and an empty numerator (skipped, not a difference).
    The dossier differences name the unsynced dossiers of their denominators."""
    oracle = world["oracle"]
    rows = export(oracle)
    units = sorted(oracle.agencies())
    assert {"H15", "H15.1", "H15.2", "H15.3"} <= set(units)
    truth = {k: (r[5], r[6]) for k, r in rows.items() if k[1] != "OVERDUE"}
    rows[("H15.1", "ON_TIME")][5] += 3
    rows[("H15.2", "DOSSIER_SYNC")][6] -= 2
    rows[("H15", "PAYMENT_DOSSIER_ONLINE")][6] += 1
    rows[("H15", "PAYMENT_FORMALITY_FEE_DOSSIER")][6] += 1
    rows[("H15", "ON_TIME")][5] = ""
    for key in [k for k in rows if k[0] == "H15.3"]:
        del rows[key]
    rows[("H99", "ON_TIME")] = ["H99", "x", "progress", "ON_TIME", "", 1, 2, "", "", ""]
    result = run(world, tsv(rows))

    def diff(unit: str, code: str, **more: Any) -> dict[str, Any]:
        r = rows[(unit, code)]
        return {"unit_code": unit, "metric_code": code, "portal": [r[5], r[6]],
                "motcua": list(truth[(unit, code)]), **more}

    assert unsynced(oracle, "H15.2"), "the stream must have unsynced dossiers to name"
    assert sorted(result["differences"], key=lambda d: (d["unit_code"], d["metric_code"])) == [
        diff("H15", "PAYMENT_DOSSIER_ONLINE",
             candidate_dossiers=unsynced(oracle, "H15", fee_only=True)),
        diff("H15", "PAYMENT_FORMALITY_FEE_DOSSIER"),
        diff("H15.1", "ON_TIME"),
        diff("H15.2", "DOSSIER_SYNC", candidate_dossiers=unsynced(oracle, "H15.2")),
    ]
    assert result["unknown_units"] == ["H99"]
    assert result["missing_units"] == ["H15.3"]
    assert [(s["unit_code"], s["metric_code"], s["reason"]) for s in result["skipped"]
            if s["metric_code"] != "OVERDUE"] == [("H15", "ON_TIME", "no numerator given")]
    assert result["compared"] == (len(units) - 1) * len(RULESET.criteria())
    assert not agree(result)


GOOD_HEADER = "unit_code\tmetric_code\tnumerator\tdenominator\n"


@pytest.mark.parametrize("data, says", [
    (b"", "is empty"),
    (b"unit_code\tmetric_code\tnumerator\nH15\tON_TIME\t1\n", "lacks the column denominator"),
    (b"unit,metric,num,den\nH15,ON_TIME,1,2\n",
     "lacks the columns unit_code, metric_code, numerator, denominator"),
    ((GOOD_HEADER + "H15\tON_TIME\t12.5\t20\n").encode(),
     "Line 2 of 'portal.tsv' has numerator '12.5', which is not a whole number"),
    ((GOOD_HEADER + "H15\tON_TIME\t1\t-3\n").encode(), "has denominator '-3'"),
    ((GOOD_HEADER + "H15\tON_TIME\t1\t2\nH15\tON_TME\t1\t2\n").encode(),
     "Line 3 of 'portal.tsv' names criterion 'ON_TME'"),
    ((GOOD_HEADER + "H15\tON_TIME\t1\t2\nH15\tON_TIME\t1\t3\n").encode(),
     "Line 3 of 'portal.tsv' repeats unit H15 and criterion ON_TIME of line 2"),
    ((GOOD_HEADER + "\tON_TIME\t1\t2\n").encode(), "Line 2 of 'portal.tsv' has no unit_code"),
    ((GOOD_HEADER + "H15\tON_TIME\n").encode(), "Line 2 of 'portal.tsv' has 2 fields"),
    (GOOD_HEADER.encode() + b"H15\tON_TIME\t1\t2\xff\n", "is not UTF-8 text"),
    ((GOOD_HEADER + "H15\tON_TIME\t262\t300\t9\n").encode(),
     "Line 2 of 'portal.tsv' has 5 fields; the header has 4"),
    ((GOOD_HEADER + "H15\tON_TIME\t1\t" + "9" * 200_000 + "\n").encode(),
     "Line 2 of 'portal.tsv' cannot be read as tab-separated values (field larger than"),
    (("x" * 100_000 + "\n").encode(), "lacks the columns unit_code"),
    # Bad quoting: a quote never closed (it would take the rest of the file as one field),
    # named at the line it opens on; a closed quote with more text after it.
    ((b"unit_code,metric_code,numerator,denominator\nH15,ON_TIME,1,2\n"
      b'H15.1,"ON_TIME,1,2\nH15.2,ON_TIME,3,4\n'),
     "Line 3 of 'portal.tsv' cannot be read as comma-separated values (a quoted field begins "
     "there and is never closed)"),
    ((GOOD_HEADER + 'H15\t"ON_TIME"x\t1\t2\n').encode(),
     "Line 2 of 'portal.tsv' cannot be read as tab-separated values (a quoted field is "
     "followed by more text before the tab)"),
    ((",".join(f"c{i}" for i in range(50_000)) + "\n").encode(), "and 49988 more"),
])
def test_a_bad_portal_file_is_refused_with_one_sentence_naming_its_problem(
        data: bytes, says: str) -> None:
    """A missing column, a count that is not a whole number, an unknown criterion, a repeated
    row, an empty field that must be there, a short row, a row with more filled fields than
    the header (shifted), a field past the csv reader's limit, bytes that are not UTF-8; a
    header of one huge name is not echoed whole."""
    with pytest.raises(PortalFileError) as e:
        read_portal_file(data, "portal.tsv", RULESET)
    message = str(e.value)
    assert says in message
    assert "\n" not in message and message.endswith(".") and len(message) < 1_000


def test_quotes_inside_a_name_and_quoted_fields_are_read_as_written() -> None:
    """A quote inside an unquoted field is text, a quoted field may hold the delimiter and
    doubled quotes: strict reading refuses only quoting that is broken."""
    data = ('unit_code,name,metric_code,numerator,denominator\n'
            'H15,UBND xã "Ea Drăng",ON_TIME,1,2\n'
            'H15.1,"Sở ""Tư pháp"", Đắk Lắk",ON_TIME,3,4\n').encode()
    portal = read_portal_file(data, "portal.csv", RULESET)
    assert [(r.line, r.unit_code, r.numerator) for r in portal.rows] == [(2, "H15", 1),
                                                                          (3, "H15.1", 3)]


def test_a_bom_and_blank_lines_and_extra_columns_are_accepted() -> None:
    """Excel's UTF-8 byte-order mark, blank lines and columns beyond the four are fine."""
    data = ("\ufeffunit_code,extra,metric_code,numerator,denominator\n\nH15,a,ON_TIME,1,2\n"
            "\nH15,b,OVERDUE,3,\n").encode()
    portal = read_portal_file(data, "portal.csv", RULESET)
    assert [(r.line, r.unit_code, r.metric_code, r.numerator, r.denominator)
            for r in portal.rows] == [(3, "H15", "ON_TIME", 1, 2)]
    assert portal.skipped == ({"line": 5, "unit_code": "H15", "metric_code": "OVERDUE",
                               "reason": "not scored by motcua"},)
