"""The action schema motcua.action/1: parsing, validation, normalization and fingerprints."""

from __future__ import annotations

import copy
from datetime import date, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from kernel.contract.actions import (
    CATALOG_TYPES,
    DOSSIER_TYPES,
    FEEDBACK_TYPES,
    REASON_CODES,
    SUBJECT_FIELD,
    Action,
    InvalidActionError,
    parse_action,
    validate_action,
)
from kernel.errors import RefusedActionError

ICT = timezone(timedelta(hours=7))

# The example from /work/shared/contract/actions.md, byte for byte apart from line breaks.
CONTRACT_EXAMPLE = (
    b'{"schema":"motcua.action/1","action_id":"igate-88231","source":"daklak-igate",'
    b'"type":"received","occurred_at":"2026-10-05T08:14:00+07:00",'
    b'"dossier_id":"H15.15-261005-0042","data":{"agency_id":"H15.15","procedure_id":"1.001612",'
    b'"channel":"online","due_at":"2026-10-12T17:00:00+07:00","full_online":true,'
    b'"fee_required":true}}'
)

# Minimal valid data per type with data, keyed by type.
MINIMAL_DATA: dict[str, dict[str, Any]] = {
    "received": {"agency_id": "H15.15", "procedure_id": "1.001612", "channel": "direct"},
    "digitized": {"components": 1},
    "paid_online": {"gateway": "national_portal", "amount_vnd": 0},
    "supplement_requested": {},
    "resolved": {"outcome": "approved"},
    "e_result_issued": {"result_ref": "KQ-1"},
    "late": {},
    "apology_issued": {"new_due_at": "2026-10-20T17:00:00+07:00", "reason": "thiếu hồ sơ"},
    "rated": {"satisfied": True},
    "handed_over": {"to_unit": "H15.15/phong-tu-phap", "step": "process"},
    "feedback_received": {"agency_id": "H15.15", "classification": "procedure"},
    "feedback_rated": {"satisfied": False},
    "agency_registered": {"name": "Sở Tư pháp", "level": "department"},
    "procedure_published": {
        "authority_id": "H15",
        "authority_level": "province",
        "decision_date": "2026-01-15",
        "legal_basis_effective_date": "2026-02-01",
        "implementing_agency_ids": ["H15.15"],
        "processing_time": {"value": 5, "unit": "working_days"},
    },
    "procedure_repealed": {"decision_date": "2026-06-30"},
}
NO_DATA_TYPES = sorted(set(SUBJECT_FIELD) - set(MINIMAL_DATA))
OPTIONAL_DATA_TYPES = ["late", "supplement_requested"]


def action(type_: str = "received", **data: Any) -> dict[str, Any]:
    """A valid action of ``type_`` whose data is the minimal data updated with ``data``."""
    obj: dict[str, Any] = {
        "schema": "motcua.action/1",
        "action_id": "a-1",
        "source": "daklak-igate",
        "type": type_,
        "occurred_at": "2026-10-05T08:14:00+07:00",
        SUBJECT_FIELD[type_]: "S-1",
    }
    if type_ in MINIMAL_DATA:
        obj["data"] = {**copy.deepcopy(MINIMAL_DATA[type_]), **data}
    return obj


def refused(obj: object) -> InvalidActionError:
    """The error ``validate_action`` raises for ``obj``."""
    with pytest.raises(InvalidActionError) as info:
        validate_action(obj)
    return info.value


# --- the contract example and the shape of the API --------------------------------------------


def test_contract_example_parses_into_an_action() -> None:
    """The example action in actions.md parses with its envelope, offset and data intact."""
    a = parse_action(CONTRACT_EXAMPLE)
    assert isinstance(a, Action)
    assert a.schema == "motcua.action/1"
    assert a.key == ("daklak-igate", "igate-88231")
    assert a.type == "received"
    assert a.subject_field == "dossier_id"
    assert a.subject_id == "H15.15-261005-0042"
    assert a.occurred_at == datetime(2026, 10, 5, 8, 14, tzinfo=ICT)
    assert a.occurred_at.utcoffset() == timedelta(hours=7)
    assert a.data["due_at"] == datetime(2026, 10, 12, 17, 0, tzinfo=ICT)
    assert a.data["channel"] == "online"
    assert a.data["full_online"] is True
    assert a.data["fee_required"] is True
    assert len(a.fingerprint) == 64


def test_parse_and_validate_agree_on_the_same_content() -> None:
    """Bytes from Kafka and the decoded dict give equal actions with the same fingerprint."""
    assert parse_action(CONTRACT_EXAMPLE) == validate_action(orjson.loads(CONTRACT_EXAMPLE))


@pytest.mark.parametrize("type_", sorted(SUBJECT_FIELD))
def test_every_type_accepts_its_minimal_action(type_: str) -> None:
    """Each action type validates with its required fields only."""
    a = validate_action(action(type_))
    assert a.type == type_
    assert a.subject_id == "S-1"


def test_type_sets_partition_the_subject_table() -> None:
    """Dossier, feedback and catalog types are disjoint and cover every type with its subject."""
    assert set(SUBJECT_FIELD) == DOSSIER_TYPES | FEEDBACK_TYPES | CATALOG_TYPES
    assert not DOSSIER_TYPES & FEEDBACK_TYPES and not FEEDBACK_TYPES & CATALOG_TYPES
    assert {SUBJECT_FIELD[t] for t in DOSSIER_TYPES} == {"dossier_id"}
    assert {SUBJECT_FIELD[t] for t in FEEDBACK_TYPES} == {"feedback_id"}
    assert {SUBJECT_FIELD[t] for t in CATALOG_TYPES} == {"agency_id", "procedure_id"}


def test_invalid_action_error_is_a_refused_action_with_a_known_reason() -> None:
    """The schema error sits under RefusedActionError and its reason is a listed code."""
    err = refused({"schema": "motcua.action/1"})
    assert isinstance(err, RefusedActionError)
    assert err.reason in REASON_CODES
    assert err.message == str(err)


# --- fingerprint ------------------------------------------------------------------------------


def test_key_order_does_not_change_the_fingerprint() -> None:
    """The same content with keys in another order, at every level, has the same fingerprint."""
    obj = orjson.loads(CONTRACT_EXAMPLE)
    reordered = {k: obj[k] for k in reversed(obj)}
    reordered["data"] = {k: obj["data"][k] for k in reversed(obj["data"])}
    spaced = orjson.dumps(reordered, option=orjson.OPT_INDENT_2)
    assert parse_action(spaced).fingerprint == parse_action(CONTRACT_EXAMPLE).fingerprint


def test_different_data_changes_the_fingerprint() -> None:
    """A change in data alone gives another fingerprint and an unequal action."""
    a = validate_action(action(channel="online"))
    b = validate_action(action(channel="postal"))
    assert a.key == b.key
    assert a.fingerprint != b.fingerprint
    assert a != b


def test_fingerprint_covers_the_content_as_received_not_the_defaults() -> None:
    """An explicit false and an omitted boolean normalize alike but are different content."""
    a = validate_action(action(full_online=False))
    b = validate_action(action())
    assert a.data == b.data
    assert a.fingerprint != b.fingerprint


# --- malformed_json and not_an_object ---------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b'{"a":1}x', b'"\xff"', b"NaN"])
def test_bytes_that_are_not_utf8_json_are_malformed_json(raw: bytes) -> None:
    """Bytes that do not decode as UTF-8 JSON are refused as malformed_json."""
    with pytest.raises(InvalidActionError) as info:
        parse_action(raw)
    assert info.value.reason == "malformed_json"
    assert info.value.field is None


def test_a_dict_that_cannot_be_encoded_as_json_is_malformed_json() -> None:
    """A Python dict with a value JSON cannot hold (from the bridge or client) is refused."""
    obj = action(extra={1, 2})
    assert refused(obj).reason == "malformed_json"


@pytest.mark.parametrize("raw", [b"[]", b"1", b'"received"', b"null", b"true"])
def test_json_that_is_not_an_object_is_refused(raw: bytes) -> None:
    """A JSON array, number, string, null or boolean is refused as not_an_object."""
    with pytest.raises(InvalidActionError) as info:
        parse_action(raw)
    assert info.value.reason == "not_an_object"


# --- envelope ---------------------------------------------------------------------------------


def test_missing_schema_is_unsupported_schema() -> None:
    """An action without schema is refused as unsupported_schema naming the field."""
    obj = action()
    del obj["schema"]
    err = refused(obj)
    assert (err.reason, err.field) == ("unsupported_schema", "schema")
    assert "schema" in err.message


def test_another_schema_version_is_unsupported_and_named() -> None:
    """An action of an unknown schema version is refused and the message names it."""
    err = refused({**action(), "schema": "motcua.action/3"})
    assert (err.reason, err.field) == ("unsupported_schema", "schema")
    assert "motcua.action/3" in err.message


def test_unknown_type_is_refused() -> None:
    """A type outside the contract is refused as unknown_type naming the value."""
    err = refused({**action(), "type": "teleported"})
    assert (err.reason, err.field) == ("unknown_type", "type")
    assert "teleported" in err.message


def test_non_string_type_is_unknown_type() -> None:
    """A type that is not a string is refused as unknown_type."""
    assert refused({**action(), "type": ["received"]}).reason == "unknown_type"


@pytest.mark.parametrize("key", ["action_id", "source", "type", "occurred_at", "dossier_id"])
def test_missing_envelope_field_is_missing_field(key: str) -> None:
    """Each required envelope field, when absent, is refused as missing_field naming it."""
    obj = action()
    del obj[key]
    err = refused(obj)
    assert (err.reason, err.field) == ("missing_field", key)
    assert key in err.message


def test_subject_id_must_match_the_type() -> None:
    """A received action carrying feedback_id instead of dossier_id misses dossier_id."""
    obj = action()
    obj["feedback_id"] = obj.pop("dossier_id")
    err = refused(obj)
    assert (err.reason, err.field) == ("missing_field", "dossier_id")


@pytest.mark.parametrize(("key", "limit"), [("action_id", 128), ("source", 64), ("dossier_id", 64)])
def test_envelope_strings_accept_up_to_their_limit(key: str, limit: int) -> None:
    """action_id, source and the subject id accept exactly their contract maximum length."""
    assert validate_action({**action(), key: "x" * limit})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("action_id", ""),
        ("action_id", "x" * 129),
        ("source", ""),
        ("source", "s" * 65),
        ("dossier_id", ""),
        ("dossier_id", "d" * 65),
        ("action_id", 88231),
        ("source", None),
    ],
)
def test_envelope_strings_out_of_bounds_are_invalid(key: str, value: object) -> None:
    """Empty, too long or non-string envelope strings are refused as invalid_field."""
    err = refused({**action(), key: value})
    assert (err.reason, err.field) == ("invalid_field", key)


def test_long_bad_values_are_truncated_in_the_message() -> None:
    """A long bad value is shortened so the message stays one readable sentence."""
    err = refused({**action(), "source": "s" * 5000})
    assert len(err.message) < 200
    assert err.message.endswith(".")


def test_unknown_envelope_fields_are_allowed_and_fingerprinted() -> None:
    """A compatible new top-level field is accepted and is part of the content."""
    plain = validate_action(action())
    extended = validate_action({**action(), "trace_id": "t-9"})
    assert extended.fingerprint != plain.fingerprint


# --- invalid_time -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2026-10-05T08:14:00Z",
        "2026-10-05T08:14:00.123456+07:00",
        "2026-10-05T08:14:00.5-03:30",
        "2026-10-05t08:14:00z",
    ],
)
def test_rfc3339_timestamps_with_an_offset_are_accepted(value: str) -> None:
    """RFC 3339 date-times with Z, a numeric offset, fractions or lower-case t/z parse."""
    a = validate_action({**action(), "occurred_at": value})
    assert a.occurred_at.tzinfo is not None


def test_occurred_at_keeps_its_offset() -> None:
    """occurred_at keeps the offset it was given rather than being converted to UTC."""
    a = validate_action({**action(), "occurred_at": "2026-10-05T08:14:00-05:00"})
    assert a.occurred_at.utcoffset() == timedelta(hours=-5)


@pytest.mark.parametrize(
    "value",
    [
        "2026-10-05T08:14:00",  # no offset
        "2026-10-05",  # date only
        "2026-10-05 08:14:00+07:00",  # space instead of T
        "2026-10-05T08:14+07:00",  # no seconds
        "20261005T081400+0700",  # ISO basic format
        "2026-02-30T08:00:00+07:00",  # impossible day
        "2026-10-05T25:00:00+07:00",  # impossible hour
        "2026-10-05T08:14:00+24:00",  # impossible offset
        "yesterday",
        "",
    ],
)
def test_occurred_at_that_is_not_rfc3339_with_offset_is_invalid_time(value: str) -> None:
    """A naive, partial, non-RFC-3339 or impossible occurred_at is refused as invalid_time."""
    err = refused({**action(), "occurred_at": value})
    assert (err.reason, err.field) == ("invalid_time", "occurred_at")


def test_occurred_at_that_is_not_a_string_is_invalid_field() -> None:
    """A numeric occurred_at (epoch seconds) is the wrong type and refused as invalid_field."""
    err = refused({**action(), "occurred_at": 1791170040})
    assert (err.reason, err.field) == ("invalid_field", "occurred_at")


def test_due_at_without_offset_is_invalid_time() -> None:
    """A received due_at with no offset is refused as invalid_time on data.due_at."""
    err = refused(action(due_at="2026-10-12T17:00:00"))
    assert (err.reason, err.field) == ("invalid_time", "data.due_at")


def test_due_at_is_optional_and_may_be_null() -> None:
    """A received action without due_at, or with due_at null, is valid."""
    assert "due_at" not in validate_action(action()).data
    assert validate_action(action(due_at=None)).data["due_at"] is None


def test_new_due_at_is_required_and_parsed() -> None:
    """apology_issued parses new_due_at to an aware datetime and requires it."""
    a = validate_action(action("apology_issued"))
    assert a.data["new_due_at"] == datetime(2026, 10, 20, 17, tzinfo=ICT)
    obj = action("apology_issued")
    del obj["data"]["new_due_at"]
    assert (refused(obj).reason, refused(obj).field) == ("missing_field", "data.new_due_at")


def test_impossible_new_due_at_is_invalid_time() -> None:
    """apology_issued with a 30 February new_due_at is refused as invalid_time."""
    err = refused(action("apology_issued", new_due_at="2026-02-30T17:00:00+07:00"))
    assert (err.reason, err.field) == ("invalid_time", "data.new_due_at")


def test_dates_parse_to_date_objects() -> None:
    """decision_date and legal_basis_effective_date become datetime.date values."""
    a = validate_action(action("procedure_published"))
    assert a.data["decision_date"] == date(2026, 1, 15)
    assert a.data["legal_basis_effective_date"] == date(2026, 2, 1)


@pytest.mark.parametrize(
    "value",
    ["2026-02-30", "2026-13-01", "20260115", "2026-W03-4", "2026-01-15T00:00:00Z", "15/01/2026"],
)
def test_dates_that_are_not_real_yyyy_mm_dd_are_invalid_time(value: str) -> None:
    """A decision_date that is not a real YYYY-MM-DD date is refused as invalid_time."""
    err = refused(action("procedure_repealed", decision_date=value))
    assert (err.reason, err.field) == ("invalid_time", "data.decision_date")


# --- data presence ----------------------------------------------------------------------------


def test_missing_data_on_a_type_with_data_is_missing_field() -> None:
    """A received action without a data object is refused as missing_field on data."""
    obj = action()
    del obj["data"]
    err = refused(obj)
    assert (err.reason, err.field) == ("missing_field", "data")


def test_data_that_is_not_an_object_is_invalid_field() -> None:
    """A data value that is a list, or null where data is required, is refused as invalid_field."""
    err = refused({**action(), "data": ["H15.15"]})
    assert (err.reason, err.field) == ("invalid_field", "data")
    err = refused({**action(), "data": None})
    assert (err.reason, err.field) == ("invalid_field", "data")
    assert refused({**action("synced"), "data": "x"}).field == "data"


@pytest.mark.parametrize("type_", OPTIONAL_DATA_TYPES)
def test_types_whose_data_is_all_optional_accept_missing_data(type_: str) -> None:
    """A type whose data fields are all optional (late, supplement_requested) may omit data."""
    obj = action(type_)
    del obj["data"]
    assert validate_action(obj).data == {}
    assert validate_action({**obj, "data": None}).data == {}


@pytest.mark.parametrize("type_", NO_DATA_TYPES)
def test_types_without_data_accept_missing_or_empty_data(type_: str) -> None:
    """A type with no data in the contract accepts data absent, empty, null or with extras."""
    base = action(type_)
    assert validate_action(base).data == {}
    assert validate_action({**base, "data": {}}).data == {}
    assert validate_action({**base, "data": None}).data == {}
    assert validate_action({**base, "data": {"note": "x"}}).data == {"note": "x"}


def test_unknown_data_fields_are_kept() -> None:
    """Data fields the contract does not name are kept as given alongside the checked ones."""
    a = validate_action(action(counter_no=7, note={"x": [1, 2]}))
    assert a.data["counter_no"] == 7
    assert a.data["note"] == {"x": [1, 2]}


def test_validation_does_not_mutate_the_input() -> None:
    """Normalization builds new data and leaves the caller's dict untouched."""
    obj = action()
    before = copy.deepcopy(obj)
    validate_action(obj)
    assert obj == before


# --- received ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["agency_id", "procedure_id", "channel"])
def test_received_requires_agency_procedure_and_channel(key: str) -> None:
    """received without agency_id, procedure_id or channel is refused as missing_field."""
    obj = action()
    del obj["data"][key]
    err = refused(obj)
    assert (err.reason, err.field) == ("missing_field", f"data.{key}")


def test_received_ids_must_be_strings_of_1_to_64() -> None:
    """received with an empty or numeric agency_id is refused as invalid_field."""
    assert refused(action(agency_id="")).field == "data.agency_id"
    err = refused(action(procedure_id=1001612))
    assert (err.reason, err.field) == ("invalid_field", "data.procedure_id")


def test_received_channel_must_be_a_contract_value() -> None:
    """received with channel 'fax' is refused as invalid_field naming the value."""
    err = refused(action(channel="fax"))
    assert (err.reason, err.field) == ("invalid_field", "data.channel")
    assert "'fax'" in err.message and "data.channel" in err.message


RECEIVED_FLAGS = [
    "full_online",
    "fee_required",
    "reused_digitized_data",
    "from_personal_repository",
    "population_data_used",
]


def test_received_booleans_default_to_false() -> None:
    """received booleans that are omitted are normalized to False."""
    data = validate_action(action()).data
    assert all(data[flag] is False for flag in RECEIVED_FLAGS)


@pytest.mark.parametrize("flag", RECEIVED_FLAGS)
@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_received_booleans_must_be_true_or_false(flag: str, value: object) -> None:
    """received booleans given as 0/1, a string or null are refused as invalid_field."""
    err = refused(action("received", **{flag: value}))
    assert (err.reason, err.field) == ("invalid_field", f"data.{flag}")


# --- other dossier types ----------------------------------------------------------------------


def test_digitized_components_must_be_at_least_one() -> None:
    """digitized with zero components is refused as invalid_field."""
    err = refused(action("digitized", components=0))
    assert (err.reason, err.field) == ("invalid_field", "data.components")


def test_a_bool_is_not_accepted_as_an_int() -> None:
    """digitized with components true is refused although Python's True equals 1."""
    err = refused(action("digitized", components=True))
    assert (err.reason, err.field) == ("invalid_field", "data.components")


def test_a_float_is_not_accepted_as_an_int() -> None:
    """digitized with components 2.0 is refused as invalid_field."""
    assert refused(action("digitized", components=2.0)).reason == "invalid_field"


def test_paid_online_gateway_must_be_a_contract_value() -> None:
    """paid_online with an unknown gateway is refused as invalid_field."""
    err = refused(action("paid_online", gateway="momo"))
    assert (err.reason, err.field) == ("invalid_field", "data.gateway")


def test_paid_online_amount_must_be_a_non_negative_int() -> None:
    """paid_online with a negative or boolean amount is refused as invalid_field."""
    assert refused(action("paid_online", amount_vnd=-1)).field == "data.amount_vnd"
    assert refused(action("paid_online", amount_vnd=False)).field == "data.amount_vnd"
    assert validate_action(action("paid_online", amount_vnd=150000)).data["amount_vnd"] == 150000


def test_supplement_reason_is_optional_but_must_be_a_string() -> None:
    """supplement_requested accepts no reason or a text reason and refuses a number."""
    assert validate_action(action("supplement_requested", reason="thiếu CCCD")).data["reason"]
    err = refused(action("supplement_requested", reason=5))
    assert (err.reason, err.field) == ("invalid_field", "data.reason")


def test_late_reason_is_optional() -> None:
    """late is valid without a reason and refuses a non-string reason."""
    assert validate_action(action("late")).data == {}
    assert refused(action("late", reason=["x"])).field == "data.reason"


def test_resolved_outcome_must_be_a_contract_value() -> None:
    """resolved with outcome 'done' is refused and without outcome misses it."""
    assert refused(action("resolved", outcome="done")).field == "data.outcome"
    obj = action("resolved")
    del obj["data"]["outcome"]
    assert refused(obj).reason == "missing_field"


def test_e_result_requires_a_result_ref_and_defaults_pushed_to_false() -> None:
    """e_result_issued requires result_ref and normalizes pushed_to_repository to False."""
    assert validate_action(action("e_result_issued")).data["pushed_to_repository"] is False
    assert refused(action("e_result_issued", pushed_to_repository=1)).reason == "invalid_field"
    obj = action("e_result_issued")
    del obj["data"]["result_ref"]
    assert refused(obj).field == "data.result_ref"


def test_apology_requires_a_reason() -> None:
    """apology_issued without a reason is refused as missing_field on data.reason."""
    obj = action("apology_issued")
    del obj["data"]["reason"]
    err = refused(obj)
    assert (err.reason, err.field) == ("missing_field", "data.reason")


def test_rated_satisfied_must_be_a_bool() -> None:
    """rated with satisfied 1 is refused and without satisfied misses it."""
    assert refused(action("rated", satisfied=1)).field == "data.satisfied"
    obj = action("rated")
    del obj["data"]["satisfied"]
    assert refused(obj).reason == "missing_field"


def test_rated_scores_are_criteria_to_1_through_5() -> None:
    """rated scores accept integers 1..5 per criterion and name the bad criterion otherwise."""
    a = validate_action(action("rated", scores={"speed": 5, "attitude": 1}))
    assert a.data["scores"] == {"speed": 5, "attitude": 1}
    for bad in (0, 6, 4.5, True, "5"):
        err = refused(action("rated", scores={"speed": 3, "attitude": bad}))
        assert (err.reason, err.field) == ("invalid_field", "data.scores.attitude")
    assert refused(action("rated", scores=[5])).field == "data.scores"


# --- feedback ---------------------------------------------------------------------------------


def test_feedback_received_classification_must_be_a_contract_value() -> None:
    """feedback_received with classification 'spam' is refused as invalid_field."""
    err = refused(action("feedback_received", classification="spam"))
    assert (err.reason, err.field) == ("invalid_field", "data.classification")


def test_feedback_received_dossier_id_is_optional_but_checked() -> None:
    """feedback_received accepts a dossier_id and refuses an empty one."""
    a = validate_action(action("feedback_received", dossier_id="H15.15-261005-0042"))
    assert a.data["dossier_id"] == "H15.15-261005-0042"
    assert refused(action("feedback_received", dossier_id="")).field == "data.dossier_id"


def test_feedback_rated_satisfied_must_be_a_bool() -> None:
    """feedback_rated with satisfied 'yes' is refused as invalid_field."""
    assert refused(action("feedback_rated", satisfied="yes")).field == "data.satisfied"


# --- catalog ----------------------------------------------------------------------------------


def test_agency_level_must_be_a_contract_value() -> None:
    """agency_registered with level 'ward' is refused as invalid_field."""
    err = refused(action("agency_registered", level="ward"))
    assert (err.reason, err.field) == ("invalid_field", "data.level")


def test_agency_parent_may_be_absent_null_or_an_id() -> None:
    """agency_registered accepts parent_id absent, null or an id, and refuses a number."""
    assert "parent_id" not in validate_action(action("agency_registered")).data
    assert validate_action(action("agency_registered", parent_id=None)).data["parent_id"] is None
    assert validate_action(action("agency_registered", parent_id="H15")).data["parent_id"] == "H15"
    assert refused(action("agency_registered", parent_id=15)).field == "data.parent_id"


def test_agency_name_is_required() -> None:
    """agency_registered without a name is refused as missing_field on data.name."""
    obj = action("agency_registered")
    del obj["data"]["name"]
    assert (refused(obj).reason, refused(obj).field) == ("missing_field", "data.name")


PROCEDURE_FLAGS = [
    "full_online_eligible",
    "fee_bearing",
    "paper_result_required",
    "individual_applicants",
    "certified_copy",
    "parts_complete",
]


def test_procedure_booleans_default_to_false() -> None:
    """procedure_published booleans that are omitted are normalized to False."""
    data = validate_action(action("procedure_published")).data
    assert all(data[flag] is False for flag in PROCEDURE_FLAGS)


@pytest.mark.parametrize("flag", PROCEDURE_FLAGS)
def test_procedure_booleans_must_be_true_or_false(flag: str) -> None:
    """procedure_published booleans given as 1 are refused as invalid_field."""
    assert refused(action("procedure_published", **{flag: 1})).field == f"data.{flag}"


def test_procedure_authority_level_must_be_province_or_ministry() -> None:
    """procedure_published with authority_level 'commune' is refused as invalid_field."""
    err = refused(action("procedure_published", authority_level="commune"))
    assert (err.reason, err.field) == ("invalid_field", "data.authority_level")


def test_implementing_agencies_must_be_a_non_empty_list_of_ids() -> None:
    """implementing_agency_ids refuses an empty list, a string, and names a bad item."""
    assert refused(action("procedure_published", implementing_agency_ids=[])).field == (
        "data.implementing_agency_ids"
    )
    assert refused(action("procedure_published", implementing_agency_ids="H15.15")).reason == (
        "invalid_field"
    )
    err = refused(action("procedure_published", implementing_agency_ids=["H15.15", 7]))
    assert err.field == "data.implementing_agency_ids[1]"
    a = validate_action(action("procedure_published", implementing_agency_ids=["A", "B"]))
    assert a.data["implementing_agency_ids"] == ("A", "B")


def test_processing_time_unit_must_be_a_contract_value() -> None:
    """processing_time with unit 'weeks' is refused on data.processing_time.unit."""
    err = refused(action("procedure_published", processing_time={"value": 2, "unit": "weeks"}))
    assert (err.reason, err.field) == ("invalid_field", "data.processing_time.unit")


def test_processing_time_value_must_be_a_non_negative_int() -> None:
    """processing_time with value -1 or true is refused, and a missing value is named."""
    for bad in (-1, True, 1.5):
        pt = {"value": bad, "unit": "days"}
        assert refused(action("procedure_published", processing_time=pt)).field == (
            "data.processing_time.value"
        )
    err = refused(action("procedure_published", processing_time={"unit": "days"}))
    assert (err.reason, err.field) == ("missing_field", "data.processing_time.value")
    assert refused(action("procedure_published", processing_time=5)).field == (
        "data.processing_time"
    )


def test_procedure_requires_its_dates() -> None:
    """procedure_published without legal_basis_effective_date misses it."""
    obj = action("procedure_published")
    del obj["data"]["legal_basis_effective_date"]
    err = refused(obj)
    assert (err.reason, err.field) == ("missing_field", "data.legal_basis_effective_date")


def test_procedure_repealed_requires_a_decision_date() -> None:
    """procedure_repealed without decision_date is refused as missing_field."""
    obj = action("procedure_repealed")
    del obj["data"]["decision_date"]
    assert refused(obj).field == "data.decision_date"


def test_the_catalog_subject_follows_the_type() -> None:
    """agency_registered is keyed by agency_id and procedure actions by procedure_id."""
    assert validate_action(action("agency_registered")).subject_field == "agency_id"
    assert validate_action(action("procedure_publicized")).subject_field == "procedure_id"


# --- reason codes -----------------------------------------------------------------------------


def test_reason_codes_are_the_stable_list() -> None:
    """REASON_CODES lists exactly the schema codes, each with a one-line meaning."""
    assert set(REASON_CODES) == {
        "malformed_json",
        "not_an_object",
        "unsupported_schema",
        "unknown_type",
        "missing_field",
        "invalid_field",
        "invalid_time",
        "too_large",
    }
    assert all(meaning and "\n" not in meaning for meaning in REASON_CODES.values())
