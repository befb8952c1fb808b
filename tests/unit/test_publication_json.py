"""What a publication's hash is taken of, and how a recomputation's differences are named."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import cast

import pytest

from kernel.calendar import VN_TZ
from projections.periods import TimeArgumentError, parse_period, parse_recorded_by
from projections.publication import (
    Frozen,
    PublicationError,
    canonical,
    check_period,
    differences,
    per_root,
)


def test_canonical_json_sorts_keys_has_no_whitespace_and_writes_utf8_and_numbers_as_given(
) -> None:
    """Keys sorted at every level, no spaces, Vietnamese as UTF-8 (not escaped), 20 stays an
    integer, 17.72 and 20.0 stay floats written in their shortest form."""
    doc = {"z": [{"b": 20, "a": 17.72}], "name": "Tỉnh Đắk Lắk", "score": 20.0, "none": None}
    text = '{"name":"Tỉnh Đắk Lắk","none":null,"score":20.0,"z":[{"a":17.72,"b":20}]}'
    assert canonical(doc) == text.encode("utf-8")
    assert canonical({"b": 1, "a": 2}) == canonical({"a": 2, "b": 1})
    assert hashlib.sha256(canonical(doc)).hexdigest() == hashlib.sha256(
        text.encode("utf-8")).hexdigest()


def test_differences_name_each_changed_value_by_the_ids_of_its_items() -> None:
    """A changed number is named by the path of keys and item ids down to it; items only one
    side has are named too; identical documents have no differences."""
    published = {"scorecards": [
        {"agency_id": "H15", "groups": [{"key": "progress", "criteria": [
            {"code": "ON_TIME", "numerator": 120, "denominator": 140}]}]},
        {"agency_id": "H15.1", "total": 70.5}],
        "late_dossiers": [{"agency_id": "H15", "dossiers": [{"dossier_id": "D1"}]}]}
    recomputed = {"scorecards": [
        {"agency_id": "H15", "groups": [{"key": "progress", "criteria": [
            {"code": "ON_TIME", "numerator": 121, "denominator": 140}]}]},
        {"agency_id": "H15.1", "total": 70.5}],
        "late_dossiers": [{"agency_id": "H15", "dossiers": [{"dossier_id": "D2"}]}]}
    assert differences(published, published) == []
    assert differences(published, recomputed) == [
        "content.late_dossiers[H15].dossiers[D1]: published, not in the recomputation",
        "content.late_dossiers[H15].dossiers[D2]: not published, in the recomputation",
        "content.scorecards[H15].groups[progress].criteria[ON_TIME].numerator: "
        "published 120, recomputed 121",
    ]


def test_differences_tell_an_integer_from_a_float_and_a_missing_key() -> None:
    """20 and 20.0 hash differently, so they differ; a key only one side has is named."""
    assert differences({"max": 20}, {"max": 20.0}) == [
        "content.max: published 20, recomputed 20.0"]
    assert differences({"a": 1}, {"a": 1, "b": 2}) == [
        "content.b: not published, recomputed 2"]


def test_per_root_concatenates_one_list_per_publishing_authority() -> None:
    """A section built per root lists each root's documents in root order."""
    class F:
        roots = ["P01", "P02"]

    section = per_root(lambda f, root: [{"agency_id": root, "by": "unit"},
                                        {"agency_id": root, "by": "official"}])
    # F stands in for the frozen views: per_root reads nothing of them but their roots.
    assert [(d["agency_id"], d["by"]) for d in section(cast(Frozen, F()))] == [
        ("P01", "unit"), ("P01", "official"), ("P02", "unit"), ("P02", "official")]


def test_a_period_not_begun_by_t_is_refused() -> None:
    """Nothing is published of a period that had not begun at T."""
    with pytest.raises(PublicationError, match="begins on 2026-12-01"):
        check_period(parse_period("2026-12"), datetime.fromisoformat("2026-11-30T23:59:59+07:00"))
    check_period(parse_period("2026-11"), datetime.fromisoformat("2026-11-01T00:00:00+07:00"))


@pytest.mark.parametrize("what", ["--at", "--as-recorded", "--until"])
def test_a_time_in_the_future_names_nothing_recorded(what: str) -> None:
    """What was recorded by T exists only for a T that has come: a later one is refused,
    naming the argument and the time as given; now itself and any earlier time are taken."""
    now = datetime(2026, 12, 3, 9, 0, tzinfo=VN_TZ)
    later = "2026-12-03T02:00:00.000001Z"  # a microsecond after now
    with pytest.raises(TimeArgumentError,
                       match=f"^{what} {re.escape(later)} is in the future: nothing has been "
                             r"recorded after now \(2026-12-03T09:00:00\+07:00\)\.$"):
        parse_recorded_by(later, what, now)
    assert parse_recorded_by("2026-12-03T02:00:00Z", what, now) == now
    assert parse_recorded_by(" 2026-01-01T00:00:00+07:00 ", what, now) < now
