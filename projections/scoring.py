"""Counts to points to scorecard (spec/766.md §2): pure, exact, and rounded once per criterion.

Arithmetic is done in ``Fraction`` so that no binary float or intermediate rounding can move a
published figure by 0.01; floats appear only in the JSON, after rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any

import orjson

from kernel.errors import UserError
from projections.rounding import round_half_up
from projections.ruleset import Criterion, Ruleset, load_ruleset

Counts = Mapping[str, tuple[int, int]]


class CountsError(UserError):
    """A ``score --counts`` document that cannot be scored."""


@lru_cache(maxsize=65536)
def criterion_points(c: Criterion, numerator: int, denominator: int) -> Decimal:
    """Points for one criterion: max × min(1, ratio / target), rounded half up to 2 decimals
    (a pure function of its arguments, memoized: many totals share most of their counts)."""
    if c.shown_only or c.max == 0:
        return Decimal("0.00")
    if denominator == 0:
        return round_half_up(Fraction(c.max)) if c.zero_denominator == "full" else Decimal("0.00")
    target = Fraction(c.target) if c.target is not None else Fraction(1)
    achieved = min(Fraction(1), Fraction(numerator, denominator) / target)
    return round_half_up(Fraction(c.max) * achieved)


def total_points(ruleset: Ruleset, counts: Counts) -> Decimal:
    """The scorecard's total: the sum over groups of the sums of rounded criterion points
    (``build_scorecard`` adds them the same way; a criterion without counts scores as 0/0)."""
    return sum((criterion_points(c, *counts.get(c.code, (0, 0)))
                for g in ruleset.groups for c in g.criteria), Decimal("0.00"))


def total_drop(ruleset: Ruleset, counts: Counts, codes: Collection[str]) -> Decimal:
    """``total_points(ruleset, counts)`` minus the same total with the numerator of each
    criterion in ``codes`` one less, from those criteria alone: the total is a sum of rounded
    criterion points, so every other criterion's points are the same in both and cancel
    exactly (an equality of Decimals, not an approximation)."""
    drop = Decimal("0.00")
    for g in ruleset.groups:
        for c in g.criteria:
            if c.code in codes:
                num, den = counts.get(c.code, (0, 0))
                drop += criterion_points(c, num, den) - criterion_points(c, num - 1, den)
    return drop


def classify(ruleset: Ruleset, total: Decimal) -> str:
    """The band label for a total: the first band whose threshold the total reaches."""
    for threshold, label in ruleset.bands:
        if total >= threshold:
            return label
    return ruleset.bands[-1][1]


def decimal_to_json(d: Decimal) -> float | int:
    """A JSON number for a Decimal: an int when whole (``20``), else the float of its 2-dp text."""
    return int(d) if d == d.to_integral_value() else float(d)


def build_scorecard(
    ruleset: Ruleset,
    counts: Counts,
    *,
    agency_id: str,
    period: str,
    view_end: str | None,
) -> dict[str, Any]:
    """The scorecard JSON of contract/interface.md; every scored criterion must have counts."""
    missing = [c.code for c in ruleset.scored_criteria() if c.code not in counts]
    if missing:
        raise CountsError(f"Counts are missing for criteria {', '.join(missing)}.")
    groups: list[dict[str, Any]] = []
    total = Decimal("0.00")
    for g in ruleset.groups:
        scored = [_criterion_row(c, *counts.get(c.code, (0, 0))) for c in g.criteria]
        rows = [row for row, _ in scored]
        score = sum((points for _, points in scored), Decimal("0.00"))
        total += score
        groups.append(
            {
                "key": g.key,
                "name_vi": g.name_vi,
                "name_en": g.name_en,
                "max": decimal_to_json(g.max),
                "score": float(score),
                "criteria": rows,
            }
        )
    return {
        "agency_id": agency_id,
        "period": period,
        "view_end": view_end,
        "ruleset": ruleset.name,
        "total": float(total),
        "classification": classify(ruleset, total),
        "groups": groups,
    }


def _criterion_row(
    c: Criterion, numerator: int, denominator: int
) -> tuple[dict[str, Any], Decimal]:
    points = criterion_points(c, numerator, denominator)
    ratio = None if denominator == 0 else round_half_up(Fraction(numerator, denominator), 4)
    row = {
        "id": c.id,
        "code": c.code,
        "name_vi": c.name_vi,
        "name_en": c.name_en,
        "numerator": numerator,
        "denominator": denominator,
        "ratio": None if ratio is None else float(ratio),
        "target": None if c.target is None else float(c.target),
        "max": decimal_to_json(c.max),
        "points": float(points),
        "points_lost": float(c.max - points),
    }
    return row, points


def parse_counts(
    doc: object,
    ruleset_loader: Callable[[str], Ruleset] = load_ruleset,
    *,
    default_ruleset: str = "portal-2026",
) -> tuple[Ruleset, dict[str, tuple[int, int]]]:
    """Read a ``score --counts`` document: ``{"ruleset": NAME, "criteria": {CODE: [num, den]}}``."""
    if not isinstance(doc, dict):
        raise CountsError('The counts file must hold a JSON object with a "criteria" object.')
    name = doc.get("ruleset", default_ruleset)
    if not isinstance(name, str):
        raise CountsError(f'The counts file\'s "ruleset" must be a name, not {_as_sent(name)}.')
    ruleset = ruleset_loader(name)
    raw = doc.get("criteria")
    if not isinstance(raw, dict):
        raise CountsError(
            'The counts file has no "criteria" object of CODE: [numerator, denominator].'
        )
    known = {c.code for c in ruleset.criteria()}
    unknown = [code for code in raw if code not in known]
    if unknown:
        raise CountsError(
            f"The counts file names criteria that ruleset {ruleset.name} does not define: "
            f"{', '.join(map(str, unknown))}."
        )
    counts = {code: _pair(code, value) for code, value in raw.items()}
    missing = [c.code for c in ruleset.scored_criteria() if c.code not in counts]
    if missing:
        raise CountsError(f"The counts file is missing criteria {', '.join(missing)}.")
    return ruleset, counts


def _as_sent(value: object, most: int = 80) -> str:
    """A value of the counts file as JSON, as its author wrote it (``[true, null]``, not
    Python's ``[True, None]``), cut short."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:  # (not from a JSON file)
        text = repr(value)
    return text if len(text) <= most else text[:most - 1] + "…"


def _pair(code: str, value: object) -> tuple[int, int]:
    """One [numerator, denominator] pair: two whole numbers, 0 ≤ numerator ≤ denominator."""
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        raise CountsError(
            f"Criterion {code} must be two whole numbers [numerator, denominator], not "
            f"{_as_sent(value)}."
        )
    numerator, denominator = value
    if numerator < 0 or denominator < 0:
        raise CountsError(f"Criterion {code} has a negative count: {_as_sent(value)}.")
    if numerator > denominator:
        raise CountsError(
            f"Criterion {code} has numerator {numerator} greater than denominator {denominator}."
        )
    return numerator, denominator
