"""Fuzzing helpers: streams of valid actions, the mutations the fuzz suite applies to them, and
how many examples to run.

A stream is built from drawn parameters (how many dossiers, which of their follow-ups, with or
without a due time, feedback) under a prefix of its own, so that many examples share one store
without touching each other's subjects. Each mutation returns the message bytes and, where the
contract fixes it (docs/reasons.md), the reason the engine must give it.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from hypothesis import strategies as st

# Short form (the test command) by default; scripts/fuzz runs the long form.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
LONG = "FUZZ_EXAMPLES" in os.environ

# scripts/fuzz sets FUZZ_STATS to a file: each example appends a JSON line of what it sent and
# what became of it, for the figures in docs/reliability.md.
STATS = os.environ.get("FUZZ_STATS")


def record_stats(test: str, counts: dict[str, int]) -> None:
    """Append one example's counts to ``FUZZ_STATS`` (if set)."""
    if STATS:
        with open(STATS, "ab") as f:
            f.write(orjson.dumps({"test": test, **counts}) + b"\n")


T0 = datetime.fromisoformat("2026-10-05T08:00:00+07:00")
FOLLOW_UPS = ("digitized", "paid_online", "supplement_requested", "supplement_completed",
              "late", "apology_issued", "resolved", "result_returned", "e_result_issued",
              "synced", "rated", "withdrawn")
FOLLOW_UP_DATA: dict[str, dict[str, Any]] = {
    "digitized": {"components": 2},
    "paid_online": {"gateway": "national_portal", "amount_vnd": 50_000},
    "supplement_requested": {"reason": "thiếu giấy tờ"},
    "supplement_completed": {},
    "late": {"reason": "quá tải"},
    "apology_issued": {"new_due_at": "2026-10-20T17:00:00+07:00", "reason": "xin lỗi"},
    "resolved": {"outcome": "approved"},
    "result_returned": {},
    "e_result_issued": {"result_ref": "KQ-1", "pushed_to_repository": True},
    "synced": {},
    "rated": {"satisfied": True, "scores": {"staff": 5}},
    "withdrawn": {},
}
# Characters a store, a terminal or a JSON reader may trip on, all of which are valid text.
ODD_TEXT = ("🙂", "\u202e", "\u200b", "\ufeff", "\uffff", "e\u0301", "ℌ", "\u2028", "𝔸",
            "'; DROP TABLE motcua_intake; --", "\\", '"', "\t", "\x7f", "\U0010fffd")
OUT_OF_RANGE_TIMES = ("0001-01-01T00:00:00+14:00", "1899-12-31T23:59:59Z",
                      "2100-01-01T00:00:00Z", "9999-12-31T23:59:59-07:00",
                      "2026-10-05T08:00:00+23:59")


@dataclass
class Sent:
    """One message of a fuzzed stream and what the contract says must become of it."""

    raw: bytes | None
    # The reason it must be rejected with, or None when any outcome is right.
    must_reject: str | None = None
    what: str = "valid"


def _at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def _action(prefix: str, n: int, type_: str, subject_field: str, subject: str, at: str,
            data: dict[str, Any] | None) -> dict[str, Any]:
    obj: dict[str, Any] = {"schema": "motcua.action/1", "action_id": f"{prefix}-{n}",
                           "source": f"fuzz-{prefix}", "type": type_, "occurred_at": at,
                           subject_field: subject}
    if data is not None:
        obj["data"] = data
    return obj


@st.composite
def valid_stream(draw: Any, prefix: str) -> list[dict[str, Any]]:
    """A catalog entry and a few dossiers (and feedback) with follow-ups, in time order."""
    out: list[dict[str, Any]] = []
    agency, proc = f"{prefix}-H15", f"{prefix}-P1"

    def add(type_: str, field: str, subject: str, minutes: int,
            data: dict[str, Any] | None) -> None:
        out.append(_action(prefix, len(out), type_, field, subject, _at(minutes), data))

    add("agency_registered", "agency_id", agency, 0, {"name": "Sở Tư pháp", "level": "province"})
    add("procedure_published", "procedure_id", proc, 1, {
        "authority_id": agency, "authority_level": "province", "decision_date": "2026-01-10",
        "legal_basis_effective_date": "2026-01-01", "implementing_agency_ids": [agency],
        "processing_time": {"value": draw(st.integers(1, 30)),
                            "unit": draw(st.sampled_from(("working_days", "days", "hours",
                                                          "months")))}})
    for d in range(draw(st.integers(1, 4))):
        dossier = f"{prefix}-D{d}"
        data: dict[str, Any] = {"agency_id": agency, "procedure_id": proc,
                                "channel": draw(st.sampled_from(("direct", "online", "postal")))}
        if draw(st.booleans()):
            data["due_at"] = _at(60 * 24 * 7)
        add("received", "dossier_id", dossier, 10 + d, data)
        steps = draw(st.lists(st.sampled_from(FOLLOW_UPS), max_size=5, unique=True))
        for i, step in enumerate(s for s in FOLLOW_UPS if s in steps):
            add(step, "dossier_id", dossier, 100 + 10 * d + i, copy.deepcopy(FOLLOW_UP_DATA[step]))
        if draw(st.booleans()):
            fb = f"{prefix}-F{d}"
            add("feedback_received", "feedback_id", fb, 200 + d, {
                "agency_id": agency, "classification": "procedure", "dossier_id": dossier})
            add("feedback_answered", "feedback_id", fb, 300 + d, None)
    return out


def _strings(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every string value in a JSON object."""
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _strings(v, (*path, k))]
    if isinstance(obj, list):
        return [p for i, v in enumerate(obj) for p in _strings(v, (*path, i))]
    return [path] if isinstance(obj, str) else []


def _set(obj: Any, path: tuple[Any, ...], value: Any) -> None:
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def _get(obj: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        obj = obj[p]
    return obj


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False,
                                                                           allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8)


@st.composite
def mutated(draw: Any, action: dict[str, Any], earlier: list[Sent]) -> Sent:
    """One mutation of ``action`` (or a repeat of an earlier message)."""
    kind = draw(st.sampled_from(("valid", "valid", "nul", "odd_text", "bad_type", "huge_text",
                                 "huge_number", "deep", "time", "duplicate", "changed_repeat",
                                 "not_json", "drop_field", "v2")))
    obj = copy.deepcopy(action)
    if kind == "nul":
        path = draw(st.sampled_from(_strings(obj)))
        text = _get(obj, path)
        i = draw(st.integers(0, len(text)))
        _set(obj, path, text[:i] + "\x00" + text[i:])
        # The schema is checked first; then, before any field rule, what no store can hold.
        reason = "unsupported_schema" if path == ("schema",) else "invalid_field"
        return Sent(orjson.dumps(obj), reason, kind)
    if kind == "odd_text":
        path = draw(st.sampled_from(_strings(obj)))
        _set(obj, path, _get(obj, path) + draw(st.sampled_from(ODD_TEXT)))
        return Sent(orjson.dumps(obj), None, kind)
    if kind == "bad_type":
        key = draw(st.sampled_from(sorted(obj)))
        obj[key] = draw(JSON_VALUES)
        return Sent(orjson.dumps(obj), None, kind)
    if kind == "huge_text":
        obj.setdefault("data", {})
        obj["data"]["note"] = "x" * draw(st.integers(70_000, 300_000))
        return Sent(orjson.dumps(obj), "too_large", kind)
    if kind == "huge_number":
        obj.setdefault("data", {})
        raw = orjson.dumps(obj).replace(b'"data":{', b'"data":{"n":' +
                                        str(draw(st.integers(2**63, 2**200))).encode() + b",", 1)
        return Sent(raw, None, kind)
    if kind == "deep":
        depth = draw(st.integers(500, 3000))
        obj.setdefault("data", {})
        raw = orjson.dumps(obj).replace(b'"data":{', b'"data":{"deep":' + b"[" * depth
                                        + b"]" * depth + b",", 1)
        # orjson refuses JSON nested deeper than 1024 levels (the action adds two).
        return Sent(raw, "malformed_json" if depth > 1100 else None, kind)
    if kind == "time":
        obj["occurred_at"] = draw(st.sampled_from(OUT_OF_RANGE_TIMES))
        return Sent(orjson.dumps(obj), "invalid_time", kind)
    if kind == "duplicate" and earlier:
        return Sent(draw(st.sampled_from(earlier)).raw, None, kind)
    if kind == "changed_repeat":
        obj.setdefault("data", {})
        obj["data"]["note"] = "changed"
        return Sent(orjson.dumps(obj), None, kind)
    if kind == "not_json":
        return Sent(draw(st.binary(max_size=40) | st.none()), None, kind)  # None: a tombstone
    if kind == "drop_field":
        del obj[draw(st.sampled_from(sorted(obj)))]
        return Sent(orjson.dumps(obj), None, kind)
    if kind == "v2":
        sf = next(k for k in ("dossier_id", "feedback_id", "procedure_id", "agency_id")
                  if k in obj)
        kinds = {"dossier_id": "dossier", "feedback_id": "feedback",
                 "procedure_id": "procedure", "agency_id": "agency"}
        obj["subject"] = {"kind": kinds[sf], "id": obj.pop(sf)}
        obj["schema"] = "motcua.action/2"
        return Sent(orjson.dumps(obj), None, kind)
    return Sent(orjson.dumps(obj), None, "valid")


@st.composite
def fuzzed_stream(draw: Any, prefix: str) -> list[Sent]:
    """A valid stream, reordered, each action possibly mutated or followed by a repeat."""
    actions = draw(valid_stream(prefix))
    if draw(st.booleans()):
        actions = draw(st.permutations(actions))
    out: list[Sent] = []
    for a in actions:
        sent = draw(mutated(a, out))
        out.append(sent)
        if sent.what != "valid" and draw(st.booleans()):
            out.append(Sent(orjson.dumps(a)))  # and the action as it should have been
    return out
