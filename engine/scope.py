"""The engine's side of the scope rule: which agencies an existing subject belongs to.

The rule itself (which agencies an action refers to, and which a grant covers) has its one home
in :mod:`kernel.grants`; it needs, for a follow-up action, the agencies of the subject the action
changes. This module reads them off an aggregate, for the intake's check when an action is
applied (:class:`ScopeGate`) and for the HTTP bridge (``Engine.subject_agencies``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from types import MethodType
from uuid import UUID

from engine.domain.base import Subject
from engine.domain.catalog import Agency, Procedure
from engine.domain.dossier import Dossier
from engine.domain.feedback import Feedback
from kernel.contract.actions import Action
from kernel.grants import Reference, Scopes, out_of_scope


def agencies_of(agg: Subject | None) -> list[tuple[str, str]] | None:
    """(attribute, agency id) of every agency a subject belongs to now, None when absent:
    a dossier's or feedback's ``agency_id``; a procedure's ``authority_id`` and implementing
    agencies; an agency's ``parent_id`` (the agency itself is the action's own ``agency_id``)."""
    if agg is None:
        return None
    if isinstance(agg, Dossier | Feedback):
        return [("agency_id", agg.agency_id)]
    if isinstance(agg, Procedure):
        return [("authority_id", str(agg.entry["authority_id"]))] + [
            ("implementing agency", str(a)) for a in agg.entry["implementing_agency_ids"]]
    if isinstance(agg, Agency):
        parent = agg.entry.get("parent_id")
        return [] if parent is None else [("parent_id", str(parent))]
    return []


class ScopeGate:
    """One batch's scope check: the grants as read when the batch began, and the batch's view
    of the subjects (what it changed so far included)."""

    def __init__(self, scopes: Scopes, subject: Callable[[UUID], Subject | None],
                 uuid: Callable[[str, str], UUID]) -> None:
        self.scopes = scopes
        # The batch keeps this gate and the gate would keep the batch's bound method: a cycle,
        # which left every batch's rows to the cyclic garbage collector. A weak reference to
        # the method lets a finished batch be freed at once.
        self._subject: Callable[[], Callable[[UUID], Subject | None] | None] = (
            weakref.WeakMethod(subject) if isinstance(subject, MethodType) else lambda: subject)
        self.uuid = uuid

    def existing(self, kind: str, subject_id: str) -> list[tuple[str, str]] | None:
        subject = self._subject()
        if subject is None:
            raise RuntimeError("a scope check ran after its batch was gone")
        return agencies_of(subject(self.uuid(kind, subject_id)))

    def __call__(self, a: Action, agg: Subject | None) -> None:
        """Refuse ``a`` (``agency_out_of_scope``, ``source_not_registered``) before it is
        applied to ``agg`` (None: it opens its subject)."""
        if not self.scopes.by_source and not self.scopes.require:
            return  # no grant at all: nothing is scoped (the embedded default)
        self.scopes.check(a, self.existing)

    def link(self, source: str | None, dossier: Dossier) -> None:
        """Refuse a feedback's held link to a dossier that arrived since, when the dossier's
        agency is outside the feedback source's scope."""
        grant = self.scopes.of(source) if source is not None else None
        if grant is not None and not grant.may_write(dossier.agency_id):
            raise out_of_scope(grant, Reference("data.dossier_id", dossier.agency_id,
                                                "agency_id", dossier.sid))
