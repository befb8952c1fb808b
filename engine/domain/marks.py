"""What has happened to a dossier or a feedback, kept as bits of one integer (``marks``).

These are lifecycle facts the domain records and checks (was it resolved, withdrawn, paid
online…), not index rules: what a mark is worth to a score is decided by the projections
(``projections.facts``, ``projections.criteria``). One bit per mark keeps the aggregate small and
lets a reader compare two states with one integer operation.
"""

from __future__ import annotations

from typing import Final

# Dossier marks. The first five (and ONLINE_CHANNEL) come from the ``received`` action's data.
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
# 1 << 16 is left free: "apology in time" is judged by the projections, not recorded.
SENDER_MARKED_LATE: Final = 1 << 17
OVERDUE_RECORDED: Final = 1 << 18
ONLINE_CHANNEL: Final = 1 << 19
RESOLVED: Final = 1 << 20
MULTIPLE_SUPPLEMENTS: Final = 1 << 21

# The ``received`` data booleans and the mark each one sets.
RECEIVED_MARKS: Final = {
    "full_online": FULL_ONLINE,
    "fee_required": FEE_REQUIRED,
    "reused_digitized_data": REUSED_DIGITIZED_DATA,
    "from_personal_repository": FROM_PERSONAL_REPOSITORY,
    "population_data_used": POPULATION_DATA_USED,
}

# Feedback marks.
FB_ANSWERED: Final = 1 << 0
FB_RATED_UNSATISFIED: Final = 1 << 1
FB_RECOMPLAINED: Final = 1 << 2
FB_LINKED_TO_DOSSIER: Final = 1 << 3

FEEDBACK_CLASSES: Final = ("procedure", "staff_conduct", "other")
