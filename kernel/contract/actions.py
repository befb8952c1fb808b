"""The action schema ``motcua.action/1``: its one home.

The engine validates bytes from Kafka with :func:`parse_action`; the producer client and the HTTP
bridge validate already-decoded dicts with :func:`validate_action`. Both return the same
:class:`Action` or raise :class:`InvalidActionError` with a stable ``reason`` from
:data:`REASON_CODES`. The rules are hand-written tables, one per type, because this runs once per
action on the ingest hot path.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, Final

import orjson

from kernel.contract.bounds import (
    ACTION_MAX_BYTES,
    check_date,
    check_instant,
    check_keys_once,
    check_size,
    check_storable_json,
    exact_numbers,
)
from kernel.contract.bounds import check_storable as _check_storable
from kernel.contract.errors import REASON_CODES, InvalidActionError
from kernel.contract.errors import bad_time as _bad_time
from kernel.contract.errors import invalid as _invalid
from kernel.contract.errors import missing as _missing
from kernel.contract.errors import show as _show
from kernel.contract.types import (
    AGENCY_LEVELS,
    CATALOG_TYPES,
    DOSSIER_TYPES,
    FEEDBACK_TYPES,
    SCHEMA,
    SCHEMA_V2,
    SUBJECT_FIELD,
)
from kernel.contract.upcasting import upcast_action_v2

_ID_MAX = 64
_ACTION_ID_MAX = 128
_SOURCE_MAX = 64


@dataclass(frozen=True, slots=True)
class Action:
    """One validated action. Equality is by content: ``fingerprint`` covers ``data``."""

    action_id: str
    source: str
    type: str
    occurred_at: datetime
    subject_field: str
    subject_id: str
    data: Mapping[str, Any] = field(compare=False)
    fingerprint: str
    schema: str = SCHEMA

    @property
    def key(self) -> tuple[str, str]:
        """The idempotency key (``source``, ``action_id``)."""
        return (self.source, self.action_id)



# The frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, by keyword:
# 1.2 µs an action, a sixth of a parse. ``_action`` makes the same object (fields in declaration
# order, ``schema`` at its default) through the slots' own descriptors in 0.5 µs.
_FIELDS: Final = ("action_id", "source", "type", "occurred_at", "subject_field", "subject_id",
                  "data", "fingerprint", "schema")
if tuple(f.name for f in fields(Action)) != _FIELDS:  # pragma: no cover - a field was changed
    raise AssertionError("Action's fields changed: change _action with them")
(_set_action_id, _set_source, _set_type, _set_occurred_at, _set_subject_field, _set_subject_id,
 _set_data, _set_fingerprint, _set_schema) = (getattr(Action, f).__set__ for f in _FIELDS)
_new = object.__new__


def _action(action_id: str, source: str, type_: str, occurred_at: datetime,
            subject_field: str, subject_id: str, data: dict[str, Any],
            fingerprint: str) -> Action:
    """``Action(action_id=…, …, fingerprint=…)``, the same object, faster."""
    a: Action = _new(Action)
    _set_action_id(a, action_id)
    _set_source(a, source)
    _set_type(a, type_)
    _set_occurred_at(a, occurred_at)
    _set_subject_field(a, subject_field)
    _set_subject_id(a, subject_id)
    _set_data(a, data)
    _set_fingerprint(a, fingerprint)
    _set_schema(a, SCHEMA)
    return a


# --- field checks: each takes (value, dotted path) and returns the normalized value ------------

_Check = Callable[[Any, str], Any]

# RFC 3339 date-time: full date, 'T', full time with seconds, offset required. fromisoformat then
# rejects impossible values (2026-02-30, 25:00); it alone would also accept ISO forms RFC 3339
# forbids (no offset, no seconds, basic format, week dates), hence the shape check first.
_DATETIME_RE: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_DATE_RE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME_EXPECTED: Final = "an RFC 3339 date-time with an offset, e.g. '2026-10-05T08:14:00+07:00'"
_DATE_EXPECTED: Final = "a real date as YYYY-MM-DD"


def _datetime(value: Any, path: str) -> datetime:
    if not isinstance(value, str):
        raise _invalid(path, "a string (" + _DATETIME_EXPECTED + ")", value)
    if _DATETIME_RE.fullmatch(value) is None:
        raise _bad_time(path, _DATETIME_EXPECTED, value)
    try:
        # RFC 3339 allows lower-case 't' and 'z'; fromisoformat does not.
        t = datetime.fromisoformat(value if value[10] == "T" and value[-1] != "z"
                                   else value.upper())
    except ValueError as e:
        raise _bad_time(path, "a real date-time", value) from e
    # What check_instant would find, read off the text the pattern above has shaped, where the
    # text settles it (most times; a third of this function's cost otherwise): a year from 1901
    # to 2098 cannot cross the range as an instant, and an offset of 'Z' or under 14 hours is
    # in range. The rest (the edge years, offsets of 14:00 and more) goes through check_instant.
    if "1900" < value[:4] < "2099" and (value[-1] in "Zz" or value[-5:-3] < "14"):
        return t
    return check_instant(t, path, value)


def _date(value: Any, path: str) -> date:
    if not isinstance(value, str):
        raise _invalid(path, "a string (" + _DATE_EXPECTED + ")", value)
    if _DATE_RE.fullmatch(value) is None:
        raise _bad_time(path, _DATE_EXPECTED, value)
    try:
        d = date.fromisoformat(value)
    except ValueError as e:
        raise _bad_time(path, "a real date", value) from e
    return check_date(d, path, value)


def _bool(value: Any, path: str) -> bool:
    if value is True or value is False:
        return value
    raise _invalid(path, "true or false", value)


def _id(value: Any, path: str) -> str:
    if isinstance(value, str) and 1 <= len(value) <= _ID_MAX:
        return value
    raise _invalid(path, f"a string of 1 to {_ID_MAX} characters", value)


def _text(value: Any, path: str) -> str:
    if isinstance(value, str) and value:
        return value
    raise _invalid(path, "a non-empty string", value)


# The largest integer every JSON reader keeps exactly (2^53 - 1): counts and amounts above it
# are data errors, and would not survive a trip through a JavaScript dashboard.
_INT_MAX: Final = 2**53 - 1


def _int_at_least(minimum: int) -> _Check:
    def check(value: Any, path: str) -> int:
        # bool is a subclass of int in Python; true is not a count.
        if (isinstance(value, int) and not isinstance(value, bool)
                and minimum <= value <= _INT_MAX):
            return value
        raise _invalid(path, f"an integer from {minimum} to {_INT_MAX}", value)

    return check


def _enum(*allowed: str) -> _Check:
    members = frozenset(allowed)
    expected = "one of " + ", ".join(repr(a) for a in allowed)

    def check(value: Any, path: str) -> str:
        if isinstance(value, str) and value in members:
            return value
        raise _invalid(path, expected, value)

    return check


def _id_list(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise _invalid(path, "a non-empty list of ids", value)
    return tuple(_id(item, f"{path}[{i}]") for i, item in enumerate(value))


def _bounded_id(maximum: int) -> _Check:
    def check(value: Any, path: str) -> str:
        if isinstance(value, str) and 1 <= len(value) <= maximum:
            return value
        raise _invalid(path, f"a string of 1 to {maximum} characters", value)

    return check


# A step's budget is at most a year of office hours: longer is a data error.
_MAX_STEP_HOURS: Final = 2_000


def _internal_process(value: Any, path: str) -> list[dict[str, Any]]:
    """``[{"step": NAME, "working_hours": H}, …]``: each step named once, H ≥ 0."""
    if not isinstance(value, list):
        raise _invalid(path, 'a list of {"step": …, "working_hours": …}', value)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(item, dict):
            raise _invalid(where, 'an object {"step": …, "working_hours": …}', item)
        for key in ("step", "working_hours"):
            if key not in item:
                raise _missing(f"{where}.{key}")
        step = _STEP(item["step"], f"{where}.step")
        hours = item["working_hours"]
        if (not isinstance(hours, int | float) or isinstance(hours, bool) or hours != hours
                or not 0 <= hours <= _MAX_STEP_HOURS):
            raise _invalid(f"{where}.working_hours", f"a number of hours from 0 to "
                           f"{_MAX_STEP_HOURS}", hours)
        if step in seen:
            raise _invalid(f"{where}.step", "a step named once in the process", step)
        seen.add(step)
        out.append({"step": step, "working_hours": hours})
    return out


def _scores(value: Any, path: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _invalid(path, "an object of criterion to score", value)
    out: dict[str, int] = {}
    for criterion, score in value.items():
        if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
            raise _invalid(f"{path}.{criterion}", "an integer from 1 to 5", score)
        out[criterion] = score
    return out


_PROCESSING_UNIT = _enum("hours", "days", "working_days", "months")
_STEP = _bounded_id(32)
_NON_NEGATIVE = _int_at_least(0)


def _processing_time(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(path, "an object with 'value' and 'unit'", value)
    out = dict(value)
    for key, check in (("value", _NON_NEGATIVE), ("unit", _PROCESSING_UNIT)):
        sub = f"{path}.{key}"
        if key not in value:
            raise _missing(sub)
        out[key] = check(value[key], sub)
    limit = _PROCESSING_LIMITS[out["unit"]]
    if out["value"] > limit:
        raise _invalid(f"{path}.value", f"at most {limit} {out['unit']} (ten years)",
                       out["value"])
    return out


# Ten years in each unit: longer is a data error, and would overflow date arithmetic.
_PROCESSING_LIMITS: Final = {"hours": 87_600, "days": 3_650, "working_days": 2_500,
                             "months": 120}


# --- per-type tables --------------------------------------------------------------------------

_REQUIRED: Final = 0
_OPTIONAL: Final = 1  # may be absent or null; kept as given
_FALSE: Final = 2  # a boolean that defaults to false

# (key in data, dotted path, check, presence)
_Rule = tuple[str, str, _Check, int]


def _rules(*specs: tuple[str, _Check, int]) -> tuple[_Rule, ...]:
    return tuple((key, "data." + key, check, presence) for key, check, presence in specs)


def _flags(*keys: str) -> tuple[tuple[str, _Check, int], ...]:
    return tuple((key, _bool, _FALSE) for key in keys)


# An empty table: the type carries no data, so `data` may be absent, null or any object.
_DATA_RULES: Final[Mapping[str, tuple[_Rule, ...]]] = MappingProxyType(
    {
        # dossier actions
        "received": _rules(
            ("agency_id", _id, _REQUIRED),
            ("procedure_id", _id, _REQUIRED),
            ("channel", _enum("direct", "online", "postal"), _REQUIRED),
            ("due_at", _datetime, _OPTIONAL),
            ("official_id", _id, _OPTIONAL),
            *_flags(
                "full_online",
                "fee_required",
                "reused_digitized_data",
                "from_personal_repository",
                "population_data_used",
            ),
        ),
        "digitized": _rules(("components", _int_at_least(1), _REQUIRED)),
        "paid_online": _rules(
            ("gateway", _enum("national_portal", "local_gateway"), _REQUIRED),
            ("amount_vnd", _NON_NEGATIVE, _REQUIRED),
        ),
        "supplement_requested": _rules(("reason", _text, _OPTIONAL)),
        "supplement_completed": (),
        "resolved": _rules(("outcome", _enum("approved", "rejected", "stopped"), _REQUIRED)),
        "result_returned": (),
        "e_result_issued": _rules(
            ("result_ref", _text, _REQUIRED), *_flags("pushed_to_repository")
        ),
        "withdrawn": (),
        "late": _rules(("reason", _text, _OPTIONAL)),
        "apology_issued": _rules(
            ("new_due_at", _datetime, _REQUIRED), ("reason", _text, _REQUIRED)
        ),
        "synced": (),
        "rated": _rules(("satisfied", _bool, _REQUIRED), ("scores", _scores, _OPTIONAL)),
        "handed_over": _rules(
            ("to_unit", _id, _REQUIRED),
            ("to_official", _id, _OPTIONAL),
            ("step", _STEP, _REQUIRED),
            ("step_due_at", _datetime, _OPTIONAL),
        ),
        # feedback actions
        "feedback_received": _rules(
            ("agency_id", _id, _REQUIRED),
            ("classification", _enum("procedure", "staff_conduct", "other"), _REQUIRED),
            ("dossier_id", _id, _OPTIONAL),
        ),
        "feedback_answered": (),
        "feedback_rated": _rules(("satisfied", _bool, _REQUIRED)),
        "feedback_recomplained": (),
        # catalog actions
        "agency_registered": _rules(
            ("name", _text, _REQUIRED),
            ("level", _enum(*AGENCY_LEVELS), _REQUIRED),
            ("parent_id", _id, _OPTIONAL),
        ),
        "procedure_published": _rules(
            ("authority_id", _id, _REQUIRED),
            ("authority_level", _enum("province", "ministry"), _REQUIRED),
            ("decision_date", _date, _REQUIRED),
            ("legal_basis_effective_date", _date, _REQUIRED),
            ("implementing_agency_ids", _id_list, _REQUIRED),
            ("internal_process", _internal_process, _OPTIONAL),
            ("processing_time", _processing_time, _REQUIRED),
            *_flags(
                "full_online_eligible",
                "fee_bearing",
                "paper_result_required",
                "individual_applicants",
                "certified_copy",
                "parts_complete",
            ),
        ),
        "procedure_publicized": (),
        "procedure_repealed": _rules(("decision_date", _date, _REQUIRED)),
    }
)

# Types whose data has a required field: for these, `data` itself is required.
_DATA_REQUIRED: Final = frozenset(
    t for t, rules in _DATA_RULES.items() if any(r[3] == _REQUIRED for r in rules)
)


_TYPES_EXPECTED: Final = "one of the motcua.action/1 types, e.g. 'received'"


# --- entry points -----------------------------------------------------------------------------


def parse_action(raw: bytes | None) -> Action:
    """Decode one Kafka message value (UTF-8 JSON) and validate it as ``motcua.action/1``;
    a value over ``ACTION_MAX_BYTES`` is ``too_large`` without being decoded."""
    if not isinstance(raw, bytes | bytearray | memoryview):  # a Kafka tombstone has no value
        raise InvalidActionError("The message has no value (a Kafka tombstone?), not an action.",
                                 reason="malformed_json")
    check_size(len(raw))
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise InvalidActionError(
            f"The message is not valid UTF-8 JSON: {e}.", reason="malformed_json"
        ) from e
    # A 19-digit run may be an integer orjson read as a float: then the text decoded with its
    # integers exact is what is validated, by the exact walk (``encoded`` None).
    exact = exact_numbers(raw)
    return _validate(obj, raw, raw) if exact is None else _validate(exact, None, raw)


def validate_action(obj: object) -> Action:
    """Validate an already-decoded JSON object as ``motcua.action/1`` (or ``/2``, upcast to
    ``/1`` first) and normalize its data."""
    encoded = None
    if isinstance(obj, dict):
        try:
            encoded = orjson.dumps(obj)
        except orjson.JSONEncodeError:
            encoded = None  # the exact walk names the field, else the encoding step fails
    return _validate(obj, encoded)


def _validate(obj: object, encoded: bytes | None,
              text: bytes | bytearray | memoryview | None = None) -> Action:
    """The rules; ``encoded`` is the object's JSON if known (to skip the storable walk),
    ``text`` the JSON it was decoded from, if it was (a key given twice is looked for there,
    last: against the encoding the fingerprint needs anyway)."""
    if not isinstance(obj, dict):
        raise InvalidActionError(
            f"The action must be a JSON object, got {type(obj).__name__} {_show(obj)}.",
            reason="not_an_object",
        )
    sent = obj
    obj = _canonical_schema(obj, encoded)
    action_id = _envelope_string(obj, "action_id", _ACTION_ID_MAX)
    source = _envelope_string(obj, "source", _SOURCE_MAX)

    if "type" not in obj:
        raise _missing("type")
    type_ = obj["type"]
    subject_field = SUBJECT_FIELD.get(type_) if isinstance(type_, str) else None
    if subject_field is None:
        raise InvalidActionError(
            f"type must be {_TYPES_EXPECTED}, got {_show(type_)}.",
            reason="unknown_type",
            field="type",
        )

    if "occurred_at" not in obj:
        raise _missing("occurred_at")
    occurred_at = _datetime(obj["occurred_at"], "occurred_at")
    subject_id = _envelope_string(obj, subject_field, _ID_MAX)
    data = _validate_data(type_, obj)

    try:
        canonical = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as e:  # only reachable from a dict built in Python
        raise InvalidActionError(
            f"The action cannot be encoded as JSON: {e}.", reason="malformed_json"
        ) from e
    check_size(len(canonical))
    if text is not None:
        check_keys_once(text, canonical if obj is sent else orjson.dumps(sent), "The action's JSON")

    return _action(action_id, source, type_, occurred_at, subject_field, subject_id, data,
                   hashlib.sha256(canonical).hexdigest())


def _canonical_schema(obj: dict[str, Any], encoded: bytes | None) -> dict[str, Any]:
    """Check the schema and what no store can hold; the object in ``motcua.action/1``."""
    schema = obj.get("schema")
    if schema not in (SCHEMA, SCHEMA_V2):
        if schema is None and "schema" not in obj:
            message = f"schema is required and must be {SCHEMA!r} or {SCHEMA_V2!r}."
        else:
            message = f"schema must be {SCHEMA!r} or {SCHEMA_V2!r}, got {_show(schema)}."
        raise InvalidActionError(message, reason="unsupported_schema", field="schema")
    # Before any field rule, on the fields as sent: what no store can hold, wherever it is
    # (kernel/contract/bounds.py).
    if encoded is None:
        _check_storable(obj)
    else:
        check_storable_json(encoded, obj)
    return upcast_action_v2(obj) if schema == SCHEMA_V2 else obj


def _envelope_string(obj: dict[str, Any], key: str, maximum: int) -> str:
    if key not in obj:
        raise _missing(key)
    value = obj[key]
    if isinstance(value, str) and 1 <= len(value) <= maximum:
        return value
    raise _invalid(key, f"a string of 1 to {maximum} characters", value)


def _validate_data(type_: str, obj: dict[str, Any]) -> dict[str, Any]:
    value = obj.get("data")
    if value is None:
        if type_ in _DATA_REQUIRED:
            if "data" not in obj:
                raise _missing("data")
            raise _invalid("data", "an object", value)
        # Nothing in this type's data is required, so data may be absent or null.
        value = {}
    elif not isinstance(value, dict):
        raise _invalid("data", "an object", value)
    out = dict(value)  # unknown fields are kept
    for key, path, check, presence in _DATA_RULES[type_]:
        if key in value:
            item = value[key]
            if item is None and presence == _OPTIONAL:
                continue
            out[key] = check(item, path)
        elif presence == _REQUIRED:
            raise _missing(path)
        elif presence == _FALSE:
            out[key] = False
    return out


__all__ = [
    "ACTION_MAX_BYTES", "CATALOG_TYPES", "DOSSIER_TYPES", "FEEDBACK_TYPES", "REASON_CODES",
    "SCHEMA", "SCHEMA_V2", "SUBJECT_FIELD", "Action", "InvalidActionError", "parse_action",
    "validate_action",
]
