"""``motcua delays``: who made the view's late dossiers late (spec/accountability.md §3–§4).

The dossiers late for good (finished late) are counted by the fold, per (agency, reception
month), in the rows they contribute (``Counters.delays``); the dossiers late at the view's end
but not finished (open past due, or waiting on the applicant after their due time) are judged
here, at E, from their control sheets in the view store. Both are added with the same counting
(``controlsheet.contributions``); overruns are summed in seconds and rounded half up to 2
decimals of an hour once, at the end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from kernel.calendar import VN_TZ, local_date
from projections.controlsheet import (
    Attribution,
    DelayKey,
    apology_status,
    attribute,
    contributions,
    hours,
    office_clock,
    seconds,
    unpack,
)
from projections.facts import APOLOGY_IN_TIME, APOLOGY_ISSUED, DossierFacts
from projections.fold import Counters, Delays
from projections.periods import Period
from projections.ruleset import Ruleset
from projections.views import Tree, UnknownAgencyError

By = Literal["unit", "official"]


class UnfinishedLateRows(Protocol):
    def __call__(self, agencies: Iterable[str], months: Sequence[str],
                 before_day: int) -> list[tuple[str, list[Any]]]: ...


def attribution_at(f: DossierFacts, e: int, ruleset: Ruleset) -> list[Attribution]:
    """Who made an unfinished late dossier late, at a view ending at ``e`` (seconds)."""
    assert f.sheet is not None
    return attribute(unpack(f.sheet, None), f.due_s, None, e, office_clock(ruleset.lifecycle))


def delays(counters: Counters, late_rows: UnfinishedLateRows, ruleset: Ruleset,
           agency_id: str, period: Period, now: datetime, by: By = "unit") -> dict[str, Any]:
    """The delays list of ``contract/interface.md``: one row per unit (or unit and official)."""
    tree = Tree.build(counters)
    if agency_id not in tree.parent:
        raise UnknownAgencyError(agency_id)
    view_end = period.view_end(now)
    e = seconds(view_end)
    agencies = sorted(tree.subtree(agency_id))
    key = "o" if by == "official" else "u"
    parts: dict[DelayKey, list[list[int]]] = {}
    for a in agencies:
        for m in period.months:
            cell = counters.delays.get((a, m))
            if cell:
                _collect(parts, cell, key)
    for _sid, raw in late_rows(agencies, period.months, local_date(view_end).toordinal()):
        f = DossierFacts._make(raw)
        status = apology_status(f.flags, APOLOGY_ISSUED, APOLOGY_IN_TIME)
        _collect(parts, contributions(attribution_at(f, e, ruleset), status), key)
    rows = _summed(parts)
    out = [_row(k, v, by) for k, v in rows.items() if k[0] == key]
    out.sort(key=lambda r: (-r["late_dossiers"], -r["overrun_hours"], r["unit"],
                            r["official"] or ""))
    total = rows.get(("t", "", None), [0])[0]
    return {"agency_id": agency_id, "period": period.label,
            "view_end": view_end.astimezone(VN_TZ).isoformat(timespec="seconds"),
            "by": by, "late_dossiers": total, "rows": out}


def _collect(parts: dict[DelayKey, list[list[int]]], rows: Delays, key: str) -> None:
    """Gather the rows of kind ``key`` ("u" or "o") and the total, to be summed once by
    ``_summed``. (A province-year's query gathers ≈ 18,000 rows of 1,190 (unit, month) cells:
    adding each into the sum as it comes, ``add_delays``, made a list per row and was half of
    the query; the other kind's rows are not shown, so they are not added at all.)"""
    for k, v in rows.items():
        kind = k[0]
        if kind == key or kind == "t":
            got = parts.get(k)
            if got is None:
                parts[k] = [v]
            else:
                got.append(v)


def _summed(parts: dict[DelayKey, list[list[int]]]) -> Delays:
    """Each row's vectors summed; a row that sums to nothing is no row (as ``add_delays``
    drops it)."""
    out: Delays = {}
    for k, vs in parts.items():
        v = list(vs[0]) if len(vs) == 1 else [sum(c) for c in zip(*vs, strict=True)]
        if any(v):
            out[k] = v
    return out


def _row(k: DelayKey, v: list[int], by: By) -> dict[str, Any]:
    return {"unit": k[1], "official": k[2] if by == "official" else None,
            "late_dossiers": v[0], "late_steps": v[1], "overrun_hours": hours(v[2]),
            "apology_in_time": v[3], "apology_late": v[4], "apology_missing": v[5]}
