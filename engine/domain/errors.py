"""Lifecycle rule breaks: each is a named error with a stable machine-readable reason.

The table of rules lives in docs/lifecycle.md; each row names one of these reasons.
"""

from __future__ import annotations

from kernel.errors import RefusedActionError


class LifecycleError(RefusedActionError):
    """An action that the subject's lifecycle does not allow now."""

    reason = "lifecycle_violation"


class AlreadyReceivedError(LifecycleError):
    reason = "already_received"


class DossierWithdrawnError(LifecycleError):
    reason = "dossier_withdrawn"


class DossierFinishedError(LifecycleError):
    reason = "dossier_finished"


class SupplementPendingError(LifecycleError):
    reason = "supplement_pending"


class NoSupplementRequestError(LifecycleError):
    reason = "no_supplement_request"


class AlreadyResolvedError(LifecycleError):
    reason = "already_resolved"


class NotResolvedError(LifecycleError):
    reason = "not_resolved"


class AlreadyReturnedError(LifecycleError):
    reason = "already_returned"


class EResultAlreadyIssuedError(LifecycleError):
    reason = "e_result_already_issued"


class NoFeeObligationError(LifecycleError):
    reason = "no_fee_obligation"


class FeedbackAlreadyAnsweredError(LifecycleError):
    reason = "feedback_already_answered"


class NoDueTimeError(RefusedActionError):
    """A ``received`` without ``due_at`` whose procedure has no known processing time."""

    reason = "no_due_time"


class InvalidDueTimeError(RefusedActionError):
    """A ``received`` whose ``due_at`` lies before its own reception time."""

    reason = "invalid_time"


class TimeBeforeReceptionError(LifecycleError):
    """An action whose business time lies before the subject's reception."""

    reason = "before_reception"


class OutOfOrderError(LifecycleError):
    """A handover dated before the current step's start or after the end of processing."""

    reason = "out_of_order"


class UnknownSubjectError(RefusedActionError):
    """A subject action whose subject never arrived within the hold."""

    reason = "unknown_dossier"


class ProcedureRepealedError(LifecycleError):
    reason = "procedure_repealed"


class AgencyCycleError(LifecycleError):
    """A registration that would put an agency under itself: directly, or under one of its own
    subunits (every rollup pools an agency's subtree, which a cycle makes the whole loop)."""

    reason = "agency_cycle"
