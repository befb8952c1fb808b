"""The facts the index needs about one dossier or feedback, in a compact shared form.

Every Dossier and Feedback event carries its subject's facts before and after the event, so a
projection moves a subject's contribution from old facts to new facts without reading anything
(DESIGN, "hot scoring path"). This module is the one home of that layout; the domain fills it,
the projections read it.

Dossier facts: ``[agency_id, month, procedure_id, flags, judged, due_day, processing_days,
end_day]``

- ``month``: reception month ``YYYY-MM`` in Asia/Ho_Chi_Minh (the cohort, spec §3).
- ``judged``: ``1`` on time, ``0`` late (both fixed for good), ``-1`` open: on time at a view's
  end E exactly when ``local_date(E) <= due_day`` (spec §4).
- ``due_day``: proleptic ordinal of the local date of the effective due time.
- ``processing_days``: working days from reception to end of processing, ``-1`` if unfinished.
- ``end_day``: ordinal of the local date of the end of processing, ``-1`` if unfinished.

Feedback facts: ``[agency_id, month, classification, flags, judged, due_day]`` with the same
meaning of ``judged`` and ``due_day`` for the 15-working-day answer rule (spec §3, 5.2).
"""

from __future__ import annotations

from datetime import date
from typing import Final

# Dossier flags.
FULL_ONLINE: Final = 1 << 0
FEE_REQUIRED: Final = 1 << 1
PAID_ONLINE: Final = 1 << 2
DIGITIZED: Final = 1 << 3
E_RESULT: Final = 1 << 4
PUSHED_TO_REPOSITORY: Final = 1 << 5
FROM_PERSONAL_REPOSITORY: Final = 1 << 6
REUSED_DIGITIZED_DATA: Final = 1 << 7
POPULATION_DATA_USED: Final = 1 << 8
SYNCED: Final = 1 << 9
RATED_UNSATISFIED: Final = 1 << 10
FEEDBACK_LINKED: Final = 1 << 11
FINISHED: Final = 1 << 12
WAITING_ON_APPLICANT: Final = 1 << 13
WITHDRAWN: Final = 1 << 14
APOLOGY_ISSUED: Final = 1 << 15
APOLOGY_IN_TIME: Final = 1 << 16
SENDER_MARKED_LATE: Final = 1 << 17
OVERDUE_RECORDED: Final = 1 << 18
ONLINE_CHANNEL: Final = 1 << 19
RESOLVED: Final = 1 << 20
MULTIPLE_SUPPLEMENTS: Final = 1 << 21

# Feedback flags.
FB_ANSWERED: Final = 1 << 0
FB_RATED_UNSATISFIED: Final = 1 << 1
FB_RECOMPLAINED: Final = 1 << 2
FB_LINKED_TO_DOSSIER: Final = 1 << 3

FEEDBACK_CLASSES: Final = ("procedure", "staff_conduct", "other")

# Indexes into a facts list.
AGENCY: Final = 0
MONTH: Final = 1
PROCEDURE: Final = 2
CLASSIFICATION: Final = 2
FLAGS: Final = 3
JUDGED: Final = 4
DUE_DAY: Final = 5
PROCESSING_DAYS: Final = 6
END_DAY: Final = 7

OPEN: Final = -1

FLAG_NAMES: Final = {
    name.lower(): value
    for name, value in list(globals().items())
    if name.isupper() and isinstance(value, int) and not name.startswith("FB_")
    and name not in {"AGENCY", "MONTH", "PROCEDURE", "CLASSIFICATION", "FLAGS", "JUDGED",
                     "DUE_DAY", "PROCESSING_DAYS", "END_DAY", "OPEN"}
}


def on_time_at(judged: int, due_day: int, view_end_day: date) -> bool:
    """The on-time rule of spec §4 for one subject, judged at a view whose end falls on a day."""
    if judged != OPEN:
        return judged == 1
    return view_end_day.toordinal() <= due_day


def flag_names(flags: int) -> list[str]:
    """The names of the dossier flags set in ``flags`` (for history and explain output)."""
    return [name for name, bit in FLAG_NAMES.items() if flags & bit]
