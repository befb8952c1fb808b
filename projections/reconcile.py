"""Reconciliation with the national portal (spec/publication.md §3).

The portal's per-unit export (tab- or comma-separated, UTF-8, a header holding at least
``unit_code, metric_code, numerator, denominator``) is read whole and checked before anything
is compared: a bad file is one sentence naming its problem (``PortalFileError``). Each row is
then compared with the same view motcua computes (the unit's subtree, the period, now), and for
dossier criteria the dossiers that may explain a difference are named: for ``DOSSIER_SYNC`` and
any denominator difference, the dossiers received here, in that criterion's denominator, and
not synced to the portal.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kernel.calendar import VN_TZ, local_date
from kernel.errors import UserError
from projections.criteria import SubjectCriterion, membership
from projections.facts import SYNCED, DossierFacts
from projections.fold import Counters
from projections.periods import Period
from projections.ruleset import Ruleset
from projections.views import Tree, counts_for

REQUIRED = ("unit_code", "metric_code", "numerator", "denominator")
# Codes of the portal's full export that are not criteria of the index: listed as skipped
# (spec §3, "e.g. OVERDUE"). Any other code that no criterion of the ruleset has is an unknown
# criterion, and the file is refused: a misspelt code must not pass as "not scored".
PORTAL_UNSCORED = frozenset({"OVERDUE"})
_WHOLE = re.compile(r"^[0-9]+$")
Rows = list[tuple[str, list[Any]]]


class PortalFileError(UserError):
    """A portal export that cannot be read: named with its problem."""


@dataclass(frozen=True)
class PortalRow:
    line: int
    unit_code: str
    metric_code: str
    numerator: int | None
    denominator: int | None


@dataclass(frozen=True)
class PortalFile:
    rows: tuple[PortalRow, ...]  # rows of criteria of the ruleset
    skipped: tuple[dict[str, Any], ...]  # rows of codes motcua does not score


def read_portal_file(data: bytes, name: str, ruleset: Ruleset) -> PortalFile:
    """The rows of a portal export, or a ``PortalFileError`` naming the first problem."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise PortalFileError(f"File {name!r} is not UTF-8 text (byte {e.start}).") from None
    lines = text.splitlines()
    first = next((i for i, x in enumerate(lines) if x.strip()), None)
    if first is None:
        raise PortalFileError(f"File {name!r} is empty: it needs a header row with "
                              f"{', '.join(REQUIRED)}.")
    delimiter = "\t" if "\t" in lines[first] else ","
    # Strict: a quoted field never closed, or closed and followed by more text, is refused
    # (read leniently, the first swallowed the rest of the file into one field, reported as a
    # short row; the second lost its quotes). A quote inside an unquoted field is text.
    reader = csv.reader(lines[first:], delimiter=delimiter, strict=True)
    records: list[list[str]] = []
    start = 1  # the line (of lines[first:]) the next record begins on
    try:
        for record in reader:
            records.append(record)
            start = reader.line_num + 1
    except csv.Error as e:  # also a field over the csv module's limit (128 KiB), a stray NUL
        raise PortalFileError(f"Line {first + start} of {name!r} cannot be read as "
                              f"{'tab' if delimiter == chr(9) else 'comma'}-separated values "
                              f"({_QUOTING.get(str(e), e)}).") from None
    header = [h.strip().lower() for h in records[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise PortalFileError(
            f"File {name!r} lacks the column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(missing)} (its header has: {_names(header)}).")
    at = {c: header.index(c) for c in REQUIRED}
    codes = {c.code for c in ruleset.criteria()}
    rows: list[PortalRow] = []
    skipped: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], int] = {}
    for offset, rec in enumerate(records[1:], 1):
        line = first + offset + 1
        if not any(field.strip() for field in rec):
            continue
        # Fewer fields than a needed column, or more filled ones than the header names:
        # a shifted row, whose counts must not be read from the wrong columns.
        if len(rec) <= max(at.values()) or any(f.strip() for f in rec[len(header):]):
            raise PortalFileError(f"Line {line} of {name!r} has {len(rec)} fields; the header "
                                  f"has {len(header)}.")
        unit, code = rec[at["unit_code"]].strip(), rec[at["metric_code"]].strip()
        for column, value in (("unit_code", unit), ("metric_code", code)):
            if not value:
                raise PortalFileError(f"Line {line} of {name!r} has no {column}.")
        if (unit, code) in seen:
            raise PortalFileError(f"Line {line} of {name!r} repeats unit {unit} and criterion "
                                  f"{code} of line {seen[(unit, code)]}.")
        seen[(unit, code)] = line
        num = _count(rec[at["numerator"]], "numerator", line, name)
        den = _count(rec[at["denominator"]], "denominator", line, name)
        if code in codes:
            rows.append(PortalRow(line, unit, code, num, den))
        elif code in PORTAL_UNSCORED:
            skipped.append({"line": line, "unit_code": unit, "metric_code": code,
                            "reason": "not scored by motcua"})
        else:
            raise PortalFileError(
                f"Line {line} of {name!r} names criterion {code!r}, which is neither a "
                f"criterion of ruleset {ruleset.name} nor a portal code motcua skips "
                f"({', '.join(sorted(PORTAL_UNSCORED))}).")
    return PortalFile(tuple(rows), tuple(skipped))


# The csv module's words for bad quoting, as a user reads them.
_QUOTING = {"unexpected end of data": "a quoted field begins there and is never closed",
            "',' expected after '\"'":
                "a quoted field is followed by more text before the comma",
            "'\t' expected after '\"'":
                "a quoted field is followed by more text before the tab"}


def _names(header: list[str], most: int = 12, width: int = 40) -> str:
    """A header's names as a user reads them in a sentence: the first ``most``, each cut to
    ``width`` characters (a file of one long line must not come back whole)."""
    names = [h if len(h) <= width else h[:width] + "…" for h in header if h][:most]
    more = len([h for h in header if h]) - len(names)
    return ", ".join(names) + (f" and {more} more" if more > 0 else "")


def _count(text: str, column: str, line: int, name: str) -> int | None:
    value = text.strip()
    if not value:
        return None  # the portal gave none: that field is skipped
    if not _WHOLE.match(value):
        raise PortalFileError(f"Line {line} of {name!r} has {column} {value!r}, which is not a "
                              "whole number.")
    return int(value)


def reconcile(portal: PortalFile, counters: Counters, ruleset: Ruleset, period: Period,
              now: datetime, dossier_rows: Callable[[list[str], Sequence[str]], Rows],
              ) -> dict[str, Any]:
    """The portal's rows against motcua's views (spec §3's JSON); ``dossier_rows(agencies,
    months)`` reads the views' per-dossier facts."""
    tree = Tree.build(counters)
    view_end = period.view_end(now)
    e_day = local_date(view_end).toordinal()
    known = [r for r in portal.rows if r.unit_code in tree.parent]
    in_file = {r.unit_code for r in portal.rows} | {s["unit_code"] for s in portal.skipped}
    cache: dict[str, dict[str, tuple[int, int]]] = {}
    differences: list[dict[str, Any]] = []
    skipped = list(portal.skipped)
    compared = 0
    for r in known:
        if r.numerator is None or r.denominator is None:
            which = " and ".join(f for f, v in (("numerator", r.numerator),
                                                ("denominator", r.denominator)) if v is None)
            skipped.append({"line": r.line, "unit_code": r.unit_code,
                            "metric_code": r.metric_code, "reason": f"no {which} given"})
            if r.numerator is None and r.denominator is None:
                continue
        if r.unit_code not in cache:
            cache[r.unit_code] = counts_for(counters, ruleset, tree, r.unit_code, period, now)[0]
        mine = cache[r.unit_code][r.metric_code]
        compared += 1
        num_differs = r.numerator is not None and r.numerator != mine[0]
        den_differs = r.denominator is not None and r.denominator != mine[1]
        if not (num_differs or den_differs):
            continue
        diff: dict[str, Any] = {"unit_code": r.unit_code, "metric_code": r.metric_code,
                                "portal": [r.numerator, r.denominator], "motcua": list(mine)}
        declared = counters.layout.registry.by_code.get(r.metric_code)
        if (isinstance(declared, SubjectCriterion) and declared.subject == "dossier"
                and (den_differs or r.metric_code == "DOSSIER_SYNC")):
            rows = dossier_rows(sorted(tree.subtree(r.unit_code)), period.months)
            diff["candidate_dossiers"] = unsynced(rows, declared, counters, ruleset, e_day)
        differences.append(diff)
    roots = {tree.root(r.unit_code) for r in known}
    scope = sorted(tree.parent) if not roots else sorted(
        a for root in roots for a in tree.subtree(root))
    return {"period": period.label,
            "view_end": view_end.astimezone(VN_TZ).isoformat(timespec="seconds"),
            "compared": compared, "differences": differences,
            "unknown_units": sorted({r.unit_code for r in portal.rows} - set(tree.parent)),
            "missing_units": [a for a in scope if a not in in_file],
            "skipped": sorted(skipped, key=lambda s: s["line"])}


def unsynced(rows: Rows, c: SubjectCriterion, counters: Counters, ruleset: Ruleset,
             e_day: int) -> list[str]:
    """The dossiers in a criterion's denominator that were not synced to the portal."""
    answer_days = ruleset.lifecycle.petition_answer_working_days
    out = []
    for sid, row in rows:
        f = DossierFacts._make(row)
        if f.flags & SYNCED:
            continue
        attrs = counters.procedures.get(f.procedure)
        if membership(c, f.flags, f.judged, f.due_day, attrs, e_day, answer_days)[1]:
            out.append(sid)
    return sorted(out)


def agree(result: dict[str, Any]) -> bool:
    """Nothing differs, and both sides know the same units."""
    return not (result["differences"] or result["unknown_units"] or result["missing_units"])
