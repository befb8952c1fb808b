"""Scope entries of tokens and alert subscriptions: agency ids, named when refused."""

from __future__ import annotations

import pytest

from kernel.errors import UserError
from kernel.grants import scope_entry_problem
from producers.errors import InvalidGrantError
from producers.tokens import parse_agencies
from projections.alerts.store import check_subscription


@pytest.mark.parametrize("entry, problem", [
    ("H15.*", "no '*': H15 already covers its units"),
    ("*", "no '*': an agency already covers its units"),
    ("H15\x01", "no space or control character"),
    ("H 15", "no space or control character"),
    ("", "1 to 64 characters"),
    ("H" * 65, "1 to 64 characters"),
])
def test_what_is_no_agency_id_is_refused_for_tokens_and_subscriptions(entry: str,
                                                                     problem: str) -> None:
    """A wildcard a user may take from "H15 also covers H15.*", a control character, a space,
    an empty or too long id: the token and the subscription both refuse it, naming it."""
    assert scope_entry_problem(entry) == problem
    with pytest.raises(InvalidGrantError) as t:
        parse_agencies(f"H16,{entry}" if entry else f"H16,{entry},")
    with pytest.raises(UserError) as s:
        check_subscription(["H16", entry], "webhook", "https://hooks.example.vn/a",
                           ["overdue"], 3)
    for e in (t.value, s.value):
        assert repr(entry) in str(e) and problem in str(e) and "\n" not in str(e)


def test_agency_ids_and_sources_are_taken_as_they_are() -> None:
    assert scope_entry_problem("H15.3") is None
    assert parse_agencies(" H15 , H15.3,H15") == ("H15", "H15.3")
