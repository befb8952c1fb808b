"""The schema refuses what no store can hold and no date arithmetic can take (issue 10 items 2, 5):
NUL and lone surrogates anywhere, integers past 64 bits, times outside 1900–2099, over-size
messages; each with a stable reason and the field named."""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kernel.contract import bounds
from kernel.contract.actions import (
    ACTION_MAX_BYTES,
    Action,
    InvalidActionError,
    parse_action,
    validate_action,
)
from kernel.contract.bounds import check_instant

RECEIVED: dict[str, Any] = {
    "schema": "motcua.action/1", "action_id": "a-1", "source": "daklak-igate",
    "type": "received", "occurred_at": "2026-10-05T08:14:00+07:00", "dossier_id": "D-1",
    "data": {"agency_id": "H15.15", "procedure_id": "1.001612", "channel": "online",
             "due_at": "2026-10-12T17:00:00+07:00"},
}


def with_(path: str, value: Any, base: dict[str, Any] = RECEIVED) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    *parents, last = path.split(".")
    target = obj
    for p in parents:
        target = target[p]
    target[last] = value
    return obj


def refusal(obj: Any) -> InvalidActionError:
    with pytest.raises(InvalidActionError) as e:
        validate_action(obj)
    # The message is storable itself: PostgreSQL text takes it.
    assert "\x00" not in e.value.message and "\x00" not in (e.value.field or "")
    e.value.message.encode("utf-8")
    return e.value


@pytest.mark.parametrize("path", ["action_id", "source", "dossier_id", "data.agency_id",
                                  "data.procedure_id", "data.extra", "data.nested.deep"])
def test_a_nul_character_in_any_string_is_invalid_field_naming_it(path: str) -> None:
    """A NUL in the envelope, in data, or in an unknown nested field is refused at its path."""
    obj = with_("data.nested", {"deep": "ok"})
    obj = with_(path, "H1\x005", obj)
    e = refusal(obj)
    assert (e.reason, e.field) == ("invalid_field", path)
    assert "NUL" in e.message


def test_a_nul_character_in_a_key_is_refused_at_its_object() -> None:
    """A key with a NUL is named by the object that holds it."""
    e = refusal(with_("data.scores", {"a\x00": 5}, with_("type", "rated", with_(
        "data", {"satisfied": True}))))
    assert (e.reason, e.field) == ("invalid_field", "data.scores")


def test_a_lone_surrogate_is_refused_as_not_utf8() -> None:
    """A decoded dict (the bridge's, a client's) may hold a lone surrogate: UTF-8 cannot."""
    e = refusal(with_("data.agency_id", "H\ud80015"))
    assert (e.reason, e.field) == ("invalid_field", "data.agency_id")
    assert "surrogate" in e.message


def test_nul_in_raw_bytes_from_kafka_is_refused() -> None:
    """The escaped form \\u0000 in a Kafka message is the same refusal."""
    raw = orjson.dumps(RECEIVED).replace(b'"a-1"', b'"a\\u00001"')
    with pytest.raises(InvalidActionError) as e:
        parse_action(raw)
    assert (e.value.reason, e.value.field) == ("invalid_field", "action_id")


@pytest.mark.parametrize(("value", "ok"), [(2**64 - 1, True), (2**64, False),
                                           (-(2**63), True), (-(2**63) - 1, False)])
def test_integers_past_64_bits_are_refused_anywhere(value: int, ok: bool) -> None:
    """An unknown field's integer must be one JSON encoding can carry (it names the field)."""
    obj = with_("data.extra", value)
    if ok:
        validate_action(obj)
    else:
        assert refusal(obj).field == "data.extra"


@pytest.mark.parametrize(("literal", "ok"), [
    (b"18446744073709551615", True), (b"18446744073709551616", False),
    (b"-9223372036854775808", True), (b"-9223372036854775809", False),
    (b"1180591620717411303424", False), (b'"12345678901234567890123"', True),
])
def test_json_integers_past_64_bits_are_refused_not_read_as_floats(literal: bytes,
                                                                  ok: bool) -> None:
    """orjson reads an integer literal outside its range as a float, silently (the action's
    fingerprint then covers a number nobody sent): from Kafka bytes it is refused as a
    decoded dict's is, naming the field; 19 digits or more inside a string change nothing."""
    raw = orjson.dumps(with_("data.extra", 0)).replace(b'"extra":0', b'"extra":' + literal)
    if ok:
        assert parse_action(raw).data["extra"] == orjson.loads(literal)
    else:
        with pytest.raises(InvalidActionError) as e:
            parse_action(raw)
        assert (e.value.reason, e.value.field) == ("invalid_field", "data.extra")
        assert literal.decode() in e.value.message


OK_TEXT = orjson.dumps(with_("data.extra", {"note": "a: b", "at": "09:00:00"}))


@pytest.mark.parametrize(("old", "new", "key"), [
    (b'"type":"received"', b'"type":"synced","type":"received"', "type"),
    (b'"channel":"online"', b'"channel":"postal","channel":"online"', "channel"),
    (b'"note":"a: b"', b'"note":"x:y:z","note":"a: b"', "note"),  # the dropped value's colons
    (b'"at":"09:00:00"', b'"at" : 1 ,\n  "at"\t:"09:00:00"', "at"),  # whitespace as sent
    (b'"note":"a: b"', b'"note":"a\\u003a b","note":"a: b"', "note"),  # an escaped colon
])
def test_a_key_given_twice_is_malformed_json_wherever_it_is(old: bytes, new: bytes,
                                                            key: str) -> None:
    """A JSON object that gives a key twice is decoded to one of its values, silently: refused
    as ``malformed_json`` naming the key, in the envelope, in data and deeper."""
    raw = OK_TEXT.replace(old, new)
    assert raw != OK_TEXT
    with pytest.raises(InvalidActionError) as e:
        parse_action(raw)
    assert (e.value.reason, e.value.field) == ("malformed_json", None)
    assert f"the key '{key}' twice in one object" in e.value.message


def test_keys_given_once_pass_however_the_text_is_written(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Colons in strings, escaped colons and quotes, whitespace around colons, non-ASCII as
    escapes, the same key in two objects: no repeat, nothing refused. The usual text is
    answered by the count alone, without decoding it again."""
    plain = parse_action(OK_TEXT)
    for raw in [
        OK_TEXT.replace(b'"note":"a: b"', b'"note":"a\\u003a b"'),
        OK_TEXT.replace(b'"note":"a: b"', b'"note":"say \\"a\\": b"'),
        OK_TEXT.replace(b'":', b'" : '),
        OK_TEXT.replace(b'"note":"a: b"', b'"note":"Ph\\u00f2ng: b","type":"x"'),  # 2 objects
        json.dumps(orjson.loads(OK_TEXT)).encode(),  # Python's separators, ", " and ": "
    ]:
        assert parse_action(raw).action_id == plain.action_id, raw
    monkeypatch.setattr(bounds, "json", None)  # the count must decide, not a second decode
    assert bounds.repeated_key(OK_TEXT, orjson.dumps(orjson.loads(OK_TEXT))) is None
    ascii_text = json.dumps(with_("data.extra", "Phòng Tư pháp: 09:00")).encode()
    assert b"\\u00f2" in ascii_text
    assert bounds.repeated_key(ascii_text, orjson.dumps(orjson.loads(ascii_text))) is None


# JSON text written here, pair by pair: keys from a small alphabet (so repeats happen), values
# with colons, quotes and backslashes, whitespace anywhere it may go, and colons, quotes and
# non-ASCII sometimes written as escapes: whether an object repeats a key is known from the
# pairs, independently of any decoder.
_KEYS = st.sampled_from(["a", "b", "c:", 'q"', "ồ"])
_TEXTS = st.text(alphabet=st.sampled_from(list('ab:"\\ ồ')), max_size=6)
_WS = st.sampled_from(["", " ", "\n", "\t ", "\r\n"])


def _string(draw: st.DrawFn, text: str) -> str:
    out = []
    for ch in text:
        form = draw(st.integers(0, 2))
        if ch == '"' or ch == "\\":
            out.append("\\" + ch if form else f"\\u{ord(ch):04x}")
        elif ch in ":ồ" and form == 2:
            out.append(f"\\u{ord(ch):04X}" if draw(st.booleans()) else f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@st.composite
def _json_text(draw: st.DrawFn, depth: int = 0) -> tuple[str, bool]:
    """(text of an object, whether it or an object inside it gives a key twice)."""
    keys = draw(st.lists(_KEYS, max_size=5))
    repeats = len(set(keys)) < len(keys)
    parts = []
    for k in keys:
        if depth < 2 and draw(st.booleans()):
            value, inner = draw(_json_text(depth + 1))
            repeats = repeats or inner
        else:
            value = draw(st.one_of(st.builds(lambda d: d, st.integers(-99, 99).map(str)),
                                   _TEXTS.map(lambda t: _string(draw, t))))
        parts.append(f"{draw(_WS)}{_string(draw, k)}{draw(_WS)}:{draw(_WS)}{value}{draw(_WS)}")
    return "{" + ",".join(parts) + "}", repeats


@settings(max_examples=400, deadline=None)
@given(_json_text())
def test_repeated_keys_are_found_exactly(case: tuple[str, bool]) -> None:
    """Against text whose repeats are known from how it was written: a repeat is found exactly
    when there is one, whatever the escapes and whitespace (the count's screen never passes a
    repeat, and a key it names is one the text repeats)."""
    text, repeats = case
    raw = text.encode()
    found = bounds.repeated_key(raw, orjson.dumps(orjson.loads(raw)))
    assert (found is not None) == repeats, (text, found)


def test_counts_above_2_pow_53_are_refused() -> None:
    """amount_vnd is a count of đồng: above 2^53 − 1 no JSON reader keeps it exactly."""
    paid = {**RECEIVED, "type": "paid_online",
            "data": {"gateway": "national_portal", "amount_vnd": 2**53}}
    assert refusal(paid).field == "data.amount_vnd"
    paid["data"]["amount_vnd"] = 2**53 - 1
    assert validate_action(paid).data["amount_vnd"] == 2**53 - 1


@pytest.mark.parametrize(("path", "text"), [
    ("occurred_at", "9999-12-31T23:59:59+00:00"),
    ("occurred_at", "0001-01-01T00:00:00+00:00"),
    ("occurred_at", "0001-01-01T00:00:00+14:00"),
    ("occurred_at", "1899-12-31T23:59:59Z"),
    ("occurred_at", "2100-01-01T00:00:00Z"),
    ("occurred_at", "2099-12-31T23:00:00-05:00"),  # 2100-01-01T04:00Z as an instant
    ("occurred_at", "2026-10-05T08:14:00+23:59"),
    ("data.due_at", "9999-12-31T23:59:59+07:00"),
])
def test_times_outside_1900_to_2099_are_invalid_time(path: str, text: str) -> None:
    """Times the due-date arithmetic cannot take are refused before they reach it."""
    e = refusal(with_(path, text))
    assert (e.reason, e.field) == ("invalid_time", path)
    assert "1900" in e.message


@pytest.mark.parametrize("text", ["1900-01-01T00:00:00Z", "2099-12-31T23:59:59Z",
                                  "2026-10-05T08:14:00-14:00", "2026-10-05T08:14:00z"])
def test_times_at_the_edges_of_the_range_pass(text: str) -> None:
    """The first and last instants of the range, a −14:00 offset, and RFC 3339's lower-case
    'z' after an upper-case 'T' (refused as "not a real date-time" before 2026-12-04) are
    accepted."""
    assert validate_action(with_("occurred_at", text)).occurred_at.year in (1900, 2026, 2099)


def test_new_due_at_and_decision_dates_out_of_range_are_invalid_time() -> None:
    """An apology's new due time and a catalog date are checked the same way."""
    apology = {**RECEIVED, "type": "apology_issued",
               "data": {"new_due_at": "9999-01-01T00:00:00Z", "reason": "x"}}
    assert refusal(apology).field == "data.new_due_at"
    repeal = {"schema": "motcua.action/1", "action_id": "r", "source": "s",
              "type": "procedure_repealed", "occurred_at": "2026-01-01T00:00:00Z",
              "procedure_id": "P", "data": {"decision_date": "0001-01-01"}}
    e = refusal(repeal)
    assert (e.reason, e.field) == ("invalid_time", "data.decision_date")


def test_an_action_over_64_kib_is_too_large() -> None:
    """The bytes from Kafka and a decoded dict are held to the same documented limit."""
    big = with_("data.note", "x" * ACTION_MAX_BYTES)
    e = refusal(big)
    assert e.reason == "too_large"
    with pytest.raises(InvalidActionError) as raw:
        parse_action(orjson.dumps(big))
    assert raw.value.reason == "too_large"
    # 2 MB of anything is refused without being decoded.
    with pytest.raises(InvalidActionError) as junk:
        parse_action(b"[" * 2_000_000)
    assert junk.value.reason == "too_large"


def test_deep_nesting_is_refused_without_a_recursion_error() -> None:
    """orjson takes 1024 levels; the storable walk must not overflow the Python stack on them."""
    deep: Any = "x\x00"
    for _ in range(1000):
        deep = [deep]
    assert refusal(with_("data.extra", deep)).reason == "invalid_field"


def test_check_instant_is_what_time_arguments_use() -> None:
    """check_instant refuses the same years for an argument as for an action's time."""
    from datetime import datetime

    with pytest.raises(InvalidActionError):
        check_instant(datetime.fromisoformat("0001-01-01T00:00:00+14:00"), "--now", "x")


def test_a_message_without_a_value_is_malformed_json() -> None:
    """A Kafka tombstone (value None) is refused like any other non-JSON message."""
    with pytest.raises(InvalidActionError) as e:
        parse_action(None)
    assert e.value.reason == "malformed_json"


@settings(max_examples=3000, deadline=None)
@given(year=st.sampled_from([1, 1899, 1900, 1901, 1999, 2026, 2098, 2099, 2100, 9999]),
       month=st.sampled_from([1, 2, 6, 12]), day=st.sampled_from([1, 15, 28, 30, 31]),
       hour=st.integers(0, 23), minute=st.integers(0, 59),
       sign=st.sampled_from("+-"), off_h=st.integers(0, 23), off_m=st.sampled_from([0, 30, 59]),
       zulu=st.sampled_from(["", "Z", "z"]), t_sep=st.sampled_from("Tt"))
def test_an_action_s_time_is_checked_as_check_instant_checks_it(
    year: int, month: int, day: int, hour: int, minute: int, sign: str, off_h: int, off_m: int,
    zulu: str, t_sep: str,
) -> None:
    """The parse reads the range off the text where it can (kernel.contract.actions._datetime):
    accepted or refused, with the same message, exactly as check_instant decides on the parsed
    time, for every year around the range and every offset RFC 3339 can write."""
    from datetime import datetime

    offset = zulu or f"{sign}{off_h:02d}:{off_m:02d}"
    text = f"{year:04d}-{month:02d}-{day:02d}{t_sep}{hour:02d}:{minute:02d}:00{offset}"
    try:
        expected: Any = check_instant(datetime.fromisoformat(text.upper()), "occurred_at", text)
    except InvalidActionError as e:
        expected = (e.reason, e.field, e.message)
    except ValueError:  # no such day (30 February)
        expected = None
    try:
        got: Any = validate_action(with_("occurred_at", text)).occurred_at
    except InvalidActionError as e:
        got = (e.reason, e.field, e.message)
    if expected is None:
        assert got[:2] == ("invalid_time", "occurred_at") and "a real date-time" in got[2]
        return
    assert got == expected
    if not isinstance(got, tuple):
        assert got.utcoffset() == expected.utcoffset()


def test_a_parsed_action_is_the_dataclass_its_fields_make() -> None:
    """The parse builds its Action without the dataclass's __init__ (kernel.contract.actions.
    _action): the object is the one the constructor makes from the same fields — equal, same
    hash and repr, every field, the schema at its default — and as frozen."""
    import dataclasses

    a = parse_action(orjson.dumps(RECEIVED))
    made = Action(**{f.name: getattr(a, f.name) for f in dataclasses.fields(Action)})
    assert (a == made, hash(a), repr(a)) == (True, hash(made), repr(made))
    assert a.schema == "motcua.action/1" and a.fingerprint and a.data["due_at"].hour == 17
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.source = "other"  # type: ignore[misc]
