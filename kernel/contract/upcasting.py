"""Upcasters: older or newer shapes of what the engine reads, turned into the one canonical form.

``motcua.action/2`` differs from ``motcua.action/1`` in one breaking rename (docs/schema-
evolution.md): the subject is ``"subject": {"kind": "dossier", "id": "…"}`` instead of the
per-type top-level ``dossier_id`` / ``feedback_id`` / ``procedure_id`` / ``agency_id``. The
canonical form is ``motcua.action/1``: :func:`upcast_action_v2` returns the v1 object the sender
would have written, so the v1 rules validate it and the idempotency fingerprint (computed on the
canonical form) is the same whichever schema carried the action.

Problems only a v2 action can have (its ``subject``) are reported here, with their v2 paths;
everything else keeps its path, which is the same in both schemas.

Domain event upcasters live on the event classes (eventsourcing finds ``upcast_vN_vN+1`` there).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from kernel.contract.errors import InvalidActionError
from kernel.contract.errors import invalid as _invalid
from kernel.contract.errors import missing as _missing
from kernel.contract.errors import show as _show
from kernel.contract.types import SCHEMA, SCHEMA_V2, SUBJECT_FIELD

# The subject kinds of motcua.action/2 and the v1 field each one renames.
SUBJECT_KINDS: Final[Mapping[str, str]] = {
    "dossier": "dossier_id",
    "feedback": "feedback_id",
    "procedure": "procedure_id",
    "agency": "agency_id",
}
_FIELD_KIND: Final = {f: k for k, f in SUBJECT_KINDS.items()}
_ID_MAX: Final = 64


def kind_of_type(type_: str) -> str | None:
    """The subject kind of an action type (``received`` → ``dossier``), or ``None``."""
    field = SUBJECT_FIELD.get(type_)
    return _FIELD_KIND[field] if field else None


def upcast_action_v2(obj: dict[str, Any]) -> dict[str, Any]:
    """A ``motcua.action/2`` object as the ``motcua.action/1`` object with the same meaning.

    Raises :class:`InvalidActionError` naming the v2 field (``subject``, ``subject.kind``,
    ``subject.id``, or a v1 subject field sent at the top level). An unknown or missing
    ``type`` is left for the v1 rules to report, since the subject's kind follows from it.
    """
    for v1_field in SUBJECT_KINDS.values():
        if v1_field in obj:
            raise InvalidActionError(
                f"{v1_field} is not a {SCHEMA_V2} field: the subject goes in "
                "subject.kind and subject.id.", reason="invalid_field", field=v1_field)
    out = {k: v for k, v in obj.items() if k != "subject"}
    out["schema"] = SCHEMA
    type_ = obj.get("type")
    kind = kind_of_type(type_) if isinstance(type_, str) else None
    if kind is None:
        return out  # the v1 rules refuse the type (or its absence) with the same path
    if "subject" not in obj:
        raise _missing("subject")
    subject = obj["subject"]
    if not isinstance(subject, dict):
        raise _invalid("subject", 'an object {"kind": …, "id": …}', subject)
    if "kind" not in subject:
        raise _missing("subject.kind")
    if subject["kind"] != kind:
        if isinstance(subject["kind"], str) and subject["kind"] in SUBJECT_KINDS:
            raise InvalidActionError(
                f"subject.kind must be {kind!r} for type {type_!r}, got "
                f"{_show(subject['kind'])}.", reason="invalid_field", field="subject.kind")
        raise _invalid("subject.kind", "one of " + ", ".join(map(repr, SUBJECT_KINDS)),
                       subject["kind"])
    if "id" not in subject:
        raise _missing("subject.id")
    sid = subject["id"]
    if not (isinstance(sid, str) and 1 <= len(sid) <= _ID_MAX):
        raise _invalid("subject.id", f"a string of 1 to {_ID_MAX} characters", sid)
    out[SUBJECT_KINDS[kind]] = sid
    return out


def subject_of(obj: Mapping[str, Any]) -> str | None:
    """The subject id of an action object of either schema, without validating it (the Kafka
    key a producer should use), or ``None`` if it has none."""
    if obj.get("schema") == SCHEMA_V2:
        subject = obj.get("subject")
        value = subject.get("id") if isinstance(subject, dict) else None
    else:
        type_ = obj.get("type")
        field = SUBJECT_FIELD.get(type_) if isinstance(type_, str) else None
        value = obj.get(field) if field else None
    return value if isinstance(value, str) else None
