"""What the stores and the date arithmetic can hold: the limits every action is checked against.

An action that passes the schema must also be something every store can keep and every
computation can take, or it would fail later, inside a transaction, where one message can stop a
whole partition. So the schema refuses, before anything is stored (docs/reasons.md):

- **text PostgreSQL cannot hold**: a NUL character (U+0000) or a lone surrogate (U+D800–U+DFFF,
  not UTF-8) in any string of the action, keys included, at any depth → ``invalid_field``;
- **numbers JSON cannot carry**: in a decoded dict, an integer outside the 64-bit range or a
  float that is not finite → ``invalid_field``;
- **times the date arithmetic cannot take**: a date-time before ``TIME_MIN`` or from
  ``TIME_MAX`` on (as an instant), a date outside ``DATE_MIN``–``DATE_MAX``, an offset beyond
  ±14:00 → ``invalid_time``;
- **a message over ``ACTION_MAX_BYTES``** → ``too_large``.

And what JSON text says that its decoders would change silently: an integer literal outside
the 64-bit range (read as a float; ``exact_numbers``) → ``invalid_field``; a key given twice in
one object (one value kept; ``repeated_key``) → ``malformed_json``.

``check_instant`` is also what command-line and HTTP time arguments go through (``--now``).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from kernel.contract.errors import InvalidActionError, show

# One action's encoded JSON (the Kafka message value, or a dict's compact encoding). An action is
# a few hundred bytes; 64 KiB leaves room for unknown fields and stays far below Kafka's 1 MB
# default message limit, so a dead letter carrying the bytes can always be published.
ACTION_MAX_BYTES: Final = 64 * 1024

# Business times: a dossier of 1900 or 2100 is a data error, and a due time up to ten years on
# (the longest processing time) must still be a date. The working-day calendar knows VN's lunar
# holidays for these years.
TIME_MIN: Final = datetime(1900, 1, 1, tzinfo=UTC)
TIME_MAX: Final = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive
DATE_MIN: Final = date(1900, 1, 1)
DATE_MAX: Final = date(2099, 12, 31)
# The widest offset in use anywhere (Kiribati, +14:00); RFC 3339 syntax allows up to 23:59.
OFFSET_MAX: Final = timedelta(hours=14)
TIME_RANGE: Final = "between 1900-01-01T00:00:00Z and 2099-12-31T23:59:59Z with an offset " \
    "of at most ±14:00"
DATE_RANGE: Final = "between 1900-01-01 and 2099-12-31"

# What a JSON integer may be here: what orjson encodes (signed or unsigned 64-bit); a larger
# one from a decoded dict would fail the encoding without saying where.
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**64 - 1


def out_of_range(path: str, expected: str, value: object) -> InvalidActionError:
    return InvalidActionError(f"{path} must be {expected}, got {show(value)}.",
                              reason="invalid_time", field=path)


def check_instant(t: datetime, path: str, text: object) -> datetime:
    """``t`` if it is an instant the engine can compute with, else ``invalid_time``."""
    offset = t.utcoffset()
    if offset is None or not -OFFSET_MAX <= offset <= OFFSET_MAX or not 1900 <= t.year <= 2099:
        raise out_of_range(path, "a time " + TIME_RANGE, text)
    # Only the first and last local years can cross the range as instants.
    if t.year in (1900, 2099) and not TIME_MIN <= t < TIME_MAX:
        raise out_of_range(path, "a time " + TIME_RANGE, text)
    return t


def check_date(d: date, path: str, text: object) -> date:
    """``d`` if it is within ``DATE_MIN``–``DATE_MAX``, else ``invalid_time``."""
    if not DATE_MIN <= d <= DATE_MAX:
        raise out_of_range(path, "a date " + DATE_RANGE, text)
    return d


def check_size(size: int) -> None:
    """Refuse an action whose encoding is over ``ACTION_MAX_BYTES`` (``too_large``)."""
    if size > ACTION_MAX_BYTES:
        raise InvalidActionError(
            f"The action is {size:,} bytes, over the limit of {ACTION_MAX_BYTES:,} bytes.",
            reason="too_large")


def _bad_text(text: str) -> str | None:
    """What in ``text`` no store can hold, or ``None``."""
    if "\x00" in text:
        return "a NUL character (U+0000)"
    if text.isascii():
        return None
    for ch in text:
        if "\ud800" <= ch <= "\udfff":
            return "a lone surrogate (not UTF-8)"
    return None


# A run of 19 digits: the shortest integer literal outside INT_MIN..INT_MAX has 19 (below
# -2**63) or 20 (above 2**64 - 1); orjson reads those as floats, silently. Looked for as 19
# zeros in the text with every digit made a zero and everything else an 'x': 0.3 µs an
# action, where a regular expression's search took 1.7.
_DIGITS_AS_ZEROS: Final = bytes(48 if 48 <= b <= 57 else 120 for b in range(256))
_LONG_DIGITS: Final = b"0" * 19


def exact_numbers(raw: bytes | bytearray | memoryview) -> Any:
    """``raw`` decoded with its integers exact, when it may hold one orjson would have read as
    a float (a run of 19 digits somewhere, most often inside a string); None otherwise. What
    is then validated (``check_storable``'s walk sees the integer as sent and refuses it)."""
    if isinstance(raw, memoryview):
        raw = raw.tobytes()
    if _LONG_DIGITS not in raw.translate(_DIGITS_AS_ZEROS):
        return None
    return _decode_exactly(raw)


def _decode_exactly(text: bytes | bytearray, pairs: Any = None) -> Any:
    """``text`` decoded by the standard library (integers exact; ``pairs`` its
    ``object_pairs_hook``); None for what it cannot read though orjson did (nesting past
    Python's recursion limit)."""
    try:
        return json.loads(text, object_pairs_hook=pairs)
    except (ValueError, RecursionError):
        return None


def repeated_key(text: bytes | bytearray | memoryview, encoded: bytes) -> str | None:
    """A key that JSON ``text`` gives twice in one object, or None; ``encoded``: what the text
    decoded to, encoded again by orjson. Every decoder here keeps the last value of a repeated
    key, silently (docs/reasons.md, ``malformed_json``).

    Screened by counting colons (0.2 µs an action): outside strings a colon ends a key, inside
    them it is text, so the text has as many as its encoding unless a key was given twice (its
    dropped pair took its colons with it) or a colon was written as an escape (``\\u003a``).
    Only then is the text decoded again with every pair kept, to name the key."""
    if isinstance(text, memoryview):
        text = text.tobytes()
    if text.count(b":") == encoded.count(b":") and not (
            b"\\" in text and (b"\\u003a" in text or b"\\u003A" in text)):
        return None
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) < len(items) and not repeated:
            seen: set[str] = set()
            for k, _ in items:
                if k in seen:
                    repeated.append(k)
                    break
                seen.add(k)
        return out

    _decode_exactly(text, pairs)
    return repeated[0] if repeated else None


def check_keys_once(text: bytes | bytearray | memoryview, encoded: bytes, what: str) -> None:
    """Refuse JSON ``text`` (``what``, as a sentence names it) that gives a key twice in one
    object: ``malformed_json``, naming the key (``repeated_key``)."""
    if (key := repeated_key(text, encoded)) is not None:
        raise InvalidActionError(
            f"{what} gives the key {show(key)} twice in one object; a decoder keeps only one "
            "of the two values, so send each key once.", reason="malformed_json")


def check_storable_json(encoded: bytes, obj: dict[str, Any]) -> None:
    """``check_storable(obj)``, skipped when its JSON encoding has no escaped NUL: the exact
    walk costs more than the rest of the validation of a typical action. (What else it refuses
    cannot be in valid JSON text: raw NUL bytes, lone surrogates, integers orjson cannot
    encode.)"""
    if b"\\u0000" in encoded:
        check_storable(obj)


def check_storable(obj: dict[str, Any]) -> None:
    """Refuse (``invalid_field``, naming the path) the first string, key or number anywhere in
    ``obj`` that a store cannot hold as it is. Iterative: a JSON document may nest 1024 deep."""
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            items = []
            for k, v in value.items():
                where = f"{path}.{k}" if path else str(k)
                if isinstance(k, str) and (bad := _bad_text(k)) is not None:
                    raise InvalidActionError(
                        f"{path or 'the action'} has a key with {bad}: {show(k)}.",
                        reason="invalid_field", field=path or None)
                items.append((where, v))
            stack.extend(reversed(items))  # report the first problem in document order
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path}[{i}]", v) for i, v in enumerate(value)]))
        elif isinstance(value, str):
            if (bad := _bad_text(value)) is not None:
                raise InvalidActionError(f"{path} must not contain {bad}, got {show(value)}.",
                                         reason="invalid_field", field=path)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not INT_MIN <= value <= INT_MAX:
                raise InvalidActionError(
                    f"{path} must be a whole number within the 64-bit range, got "
                    f"{show(value)}.", reason="invalid_field", field=path)
        elif isinstance(value, float) and not math.isfinite(value):
            raise InvalidActionError(f"{path} must be a finite number, got {show(value)}.",
                                     reason="invalid_field", field=path)


def storable(text: str) -> str:
    """``text`` with what no store can hold written as escapes (for messages that quote input)."""
    if _bad_text(text) is None:
        return text
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
