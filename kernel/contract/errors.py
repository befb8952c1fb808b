"""Refusals of the action contract: stable reason codes and one-sentence messages."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

import orjson

from kernel.contract.types import SCHEMA, SCHEMA_V2
from kernel.errors import RefusedActionError

REASON_CODES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "malformed_json": "the message is not UTF-8 JSON (or the dict cannot be encoded as JSON)",
        "not_an_object": "the JSON value is not an object",
        "unsupported_schema": f"`schema` is missing or is not {SCHEMA!r} or {SCHEMA_V2!r}",
        "unknown_type": "`type` is missing or is not one of the action types",
        "missing_field": "a required field (or `data` itself) is absent",
        "invalid_field": "a field has the wrong type, an out-of-range value, a bad enum value "
        "or a bad length; or a string anywhere holds what no store can (NUL, a lone surrogate), "
        "or a number is outside the 64-bit range or not finite",
        "invalid_time": "a timestamp is not RFC 3339 with an offset, or a date is not a real "
        "YYYY-MM-DD date, or either is outside the years 1900-2099 (kernel/contract/bounds.py)",
        "too_large": "the action's encoded JSON is over 64 KiB (ACTION_MAX_BYTES)",
    }
)

_SHOW_MAX = 40


class InvalidActionError(RefusedActionError):
    """An action that fails the schema; ``field`` is the dotted path of the offending field."""

    reason = "invalid_field"

    def __init__(self, message: str, *, reason: str, field: str | None = None):
        super().__init__(message, reason=reason, field=field)


def show(value: object) -> str:
    """A short, safe rendering of a bad value for a one-sentence message."""
    if value is None or value is True or value is False:
        return orjson.dumps(value).decode()  # as the sender wrote it: null, true, false
    text = repr(value)
    if len(text) > _SHOW_MAX:
        size = f" ({len(value)} characters)" if isinstance(value, str) else ""
        text = text[: _SHOW_MAX - 1] + "…" + size
    return text


def missing(path: str) -> InvalidActionError:
    return InvalidActionError(
        f"{path} is required but missing.", reason="missing_field", field=path
    )


def invalid(path: str, expected: str, value: object) -> InvalidActionError:
    return InvalidActionError(
        f"{path} must be {expected}, got {show(value)}.", reason="invalid_field", field=path
    )


def bad_time(path: str, expected: str, value: object) -> InvalidActionError:
    return InvalidActionError(
        f"{path} must be {expected}, got {show(value)}.", reason="invalid_time", field=path
    )

