"""The provinces' older monthly report (spec/publication.md §2), beside the 766 cohort view.

Computed from the views' per-dossier rows (every dossier's latest facts, kept by the projection
and rebuilt by a replay like every view): the dossiers received in the period, and those
received before it and not finished before its first day (carried over, found through the
rows' indexed end day). "Resolved" is the end of processing in the period and not after the
view's end E, by local date, the granularity of the facts (``END_DAY``). On time uses the
finished rule of spec §4 (the facts' judgement); overdue among the pending uses the open rule
at E (``facts.is_on_time``), a dossier finished only after E being open at E.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from fractions import Fraction
from typing import Any

from kernel.calendar import VN_TZ, local_date
from projections.facts import MULTIPLE_SUPPLEMENTS, OPEN, DossierFacts, is_on_time
from projections.periods import Period
from projections.rounding import round_half_up
from projections.store import ViewStore
from projections.views import Tree, UnknownAgencyError

Rows = list[tuple[str, list[Any]]]
FIELDS = ("carried_over", "received", "resolved", "resolved_early_or_on_time", "resolved_late",
          "pending", "pending_overdue", "on_time_rate")


def legacy_report(views: ViewStore, tree: Tree, agency_id: str, period: Period,
                  now: datetime) -> dict[str, Any]:
    """The older monthly form for an agency's subtree, period and view end E = min(now, end)."""
    if agency_id not in tree.parent:
        raise UnknownAgencyError(agency_id)
    view_end = period.view_end(now)
    e_date = local_date(view_end)
    agencies = sorted(tree.subtree(agency_id))
    received: Rows = views.subject_rows("dossiers", agencies, period.months)
    carried: Rows = views.unfinished_rows(agencies, period.months[0], period.start.toordinal())
    counts = tally([f for _, f in received], [f for _, f in carried],
                   min(period.end, e_date).toordinal(), e_date)
    return {"agency_id": agency_id, "agency_name": tree.name.get(agency_id, agency_id),
            "period": period.label,
            "view_end": view_end.astimezone(VN_TZ).isoformat(timespec="seconds"), **counts}


def tally(received: Sequence[list[Any]], carried: Sequence[list[Any]], last_day: int,
          e_date: Any) -> dict[str, Any]:
    """The report's figures from the facts of the dossiers received in the period and of those
    carried over into it; ``last_day``: the last day (ordinal) an end of processing counts."""
    resolved = on_time = overdue = 0
    for row in (*received, *carried):
        f = DossierFacts._make(row)
        if 0 <= f.end_day <= last_day:
            resolved += 1
            on_time += f.judged == 1  # finished: judged for good by spec §4's finished rule
        elif _overdue_at(f, e_date):
            overdue += 1
    total = len(received) + len(carried)
    rate = None if resolved == 0 else float(round_half_up(Fraction(on_time, resolved), 4))
    return {"carried_over": len(carried), "received": len(received), "resolved": resolved,
            "resolved_early_or_on_time": on_time, "resolved_late": resolved - on_time,
            "pending": total - resolved, "pending_overdue": overdue, "on_time_rate": rate}


def _overdue_at(f: DossierFacts, e_date: Any) -> bool:
    """A dossier pending at E, late at E by the open rule. One that finished after E was open
    at E (unless more than one supplement request made it late for good); one still unfinished
    is judged as its facts stand (waiting on the applicant: at the request time)."""
    judged = f.judged
    if f.end_day >= 0:
        judged = 0 if f.flags & MULTIPLE_SUPPLEMENTS else OPEN
    return not is_on_time(judged, f.due_day, e_date)
