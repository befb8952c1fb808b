"""The portal-2026 ruleset must match the table of spec/766.md §1 and the rules of §2."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal

import pytest

from kernel.errors import UserError
from projections.ruleset import (
    UnknownCriterionError,
    UnknownRulesetError,
    available_rulesets,
    load_ruleset,
)

RULES = load_ruleset("portal-2026")

# spec §1, row by row: (group, id, code, max, target)
SPEC_TABLE = [
    ("transparency", "1.1", "PUBLISH_ON_TIME", "6", "1"),
    ("transparency", "1.2", "PUBLIC_UPDATE_ON_TIME", "4", "1"),
    ("transparency", "1.3", "PUBLIC_CONTENT_FULL", "2", "1"),
    ("transparency", "1.4", "DOSSIER_SYNC", "6", "1"),
    ("progress", "2.1", "ON_TIME", "20", "1"),
    ("progress", "2.2", "AVG_PROCESSING_TIME", "0", None),
    ("online_service", "3.1", "ONLINE_FULL_PROCESS", "12", "1"),
    ("payment", "3.6", "PAYMENT_DOSSIER_ONLINE", "6", "1"),
    ("payment", "3.5", "PAYMENT_FORMALITY_FEE_DOSSIER", "2", "0.8"),
    ("payment", "3.5b", "PAYMENT_FORMALITY_TRANSACTION", "2", "0.8"),
    ("digitization", "4.1", "ORIGINAL_RESULT_AVAILABLE", "6", "1"),
    ("digitization", "4.2", "DOSSIER_DIGITIZED", "4", "1"),
    ("digitization", "4.3", "REUSED_DIGITIZED_DATA", "2", "0.8"),
    ("digitization", "4.4", "SYNCED_WITH_DVCQG_PERSONAL_STORAGE", "4", "1"),
    ("digitization", "4.5a", "CITIZEN_DATA_CONNECTED_FORMALITY", "2", "1"),
    ("digitization", "4.5b", "CITIZEN_DATA_CONNECTED_DOSSIER", "2", "1"),
    ("digitization", "4.6", "ELECTRONIC_CERTIFIED_COPY", "2", "1"),
    ("satisfaction", "5.1a", "PETITION_CLASSIFICATION_TTHC", "0", None),
    ("satisfaction", "5.1b", "PETITION_CLASSIFICATION_STAFF", "0", None),
    ("satisfaction", "5.2", "PETITION_PROCESSING_ON_TIME", "6", "1"),
    ("satisfaction", "5.3", "PETITION_HANDLING_SATISFACTION", "6", "1"),
    ("satisfaction", "5.4", "DOSSIER_RECEIVING_SATISFACTION", "6", "0.9"),
]


def test_criteria_match_the_spec_table_in_order() -> None:
    """Every criterion of §1, in order, with its group, id, code, maximum and target."""
    got = [
        (
            c.group,
            c.id,
            c.code,
            c.max,
            c.target,
        )
        for c in RULES.criteria()
    ]
    want = [
        (g, i, code, Decimal(m), None if t is None else Decimal(t))
        for g, i, code, m, t in SPEC_TABLE
    ]
    assert got == want


def test_groups_have_the_portal_maxima_adding_to_100() -> None:
    """18 + 20 + 12 + 10 + 22 + 18 = 100, in the portal's order."""
    assert [(g.key, g.max) for g in RULES.groups] == [
        ("transparency", Decimal(18)),
        ("progress", Decimal(20)),
        ("online_service", Decimal(12)),
        ("payment", Decimal(10)),
        ("digitization", Decimal(22)),
        ("satisfaction", Decimal(18)),
    ]
    assert sum(g.max for g in RULES.groups) == 100


def test_every_name_is_present_in_both_languages() -> None:
    """Scorecards show Vietnamese and English names, so none may be empty."""
    names = [(g.name_vi, g.name_en) for g in RULES.groups]
    names += [(c.name_vi, c.name_en) for c in RULES.criteria()]
    for name_vi, name_en in names:
        assert name_vi.strip() and name_en.strip()


def test_zero_denominator_rules_follow_section_2() -> None:
    """Dossier criteria score 0 on nothing to count; feedback, 4.6 and catalog ones score full."""
    zero = {"1.4", "2.1", "3.1", "3.6", "4.1", "4.2", "4.3", "4.4", "4.5b", "5.4"}
    full = {"5.2", "5.3", "4.6", "1.1", "1.2", "1.3", "3.5", "3.5b", "4.5a"}
    for c in RULES.scored_criteria():
        assert c.zero_denominator == ("zero" if c.id in zero else "full"), c.id
    assert {c.id for c in RULES.scored_criteria()} == zero | full


def test_shown_only_criteria_are_2_2_and_5_1() -> None:
    """2.2 and the two halves of 5.1 carry no points and are left out of scored_criteria."""
    assert [c.id for c in RULES.criteria() if c.shown_only] == ["2.2", "5.1a", "5.1b"]
    assert len(RULES.scored_criteria()) == 22 - 3


def test_ruleset_settings_hold_the_decisions() -> None:
    """Due-time, deadline and band settings are data (of the ruleset, or of the lifecycle
    rules the facts are derived with), as §2–§4 require."""
    assert RULES.lifecycle.apology_moves_due is False
    assert dict(RULES.publish_on_time_working_days) == {"province": 5, "ministry": 20}
    assert dict(RULES.public_update_working_days) == {"province": 5, "ministry": 10}
    assert RULES.lifecycle.petition_answer_working_days == 15
    assert RULES.bands == (
        (Decimal(90), "Xuất sắc"),
        (Decimal(80), "Tốt"),
        (Decimal(70), "Khá"),
        (Decimal(50), "Trung bình"),
        (Decimal(0), "Yếu"),
    )
    assert not RULES.calendar.extra_days_off and not RULES.calendar.makeup_working_days


def test_ruleset_calendar_is_a_vietnamese_work_calendar() -> None:
    """The ruleset's calendar knows 2 Sep 2026 (National Day) is off."""
    assert not RULES.calendar.is_working_day(date(2026, 9, 2))


def test_criterion_lookup_by_code() -> None:
    """criterion(code) finds the row; ON_TIME is 2.1 worth 20."""
    c = RULES.criterion("ON_TIME")
    assert (c.id, c.max) == ("2.1", Decimal(20))


def test_unknown_criterion_names_the_code_and_the_valid_ones() -> None:
    """A typo is a user error whose message names it and lists the real codes."""
    with pytest.raises(UnknownCriterionError) as info:
        RULES.criterion("ONTIME")
    assert isinstance(info.value, UserError)
    assert "'ONTIME'" in str(info.value) and "ON_TIME" in str(info.value)


def test_unknown_ruleset_lists_known_names() -> None:
    """A wrong ruleset name is a user error that lists the rulesets that exist."""
    with pytest.raises(UnknownRulesetError, match="portal-2026") as info:
        load_ruleset("portal-2099")
    assert isinstance(info.value, UserError)
    assert "portal-2099" in str(info.value)


def test_path_like_ruleset_names_are_unknown() -> None:
    """Only shipped ruleset names load; a path cannot reach another file."""
    with pytest.raises(UnknownRulesetError):
        load_ruleset("../rulesets/portal-2026")


def test_rulesets_are_listed_and_loaded_once() -> None:
    """portal-2026 is available and loading it twice gives the same object."""
    assert "portal-2026" in available_rulesets()
    assert load_ruleset("portal-2026") is load_ruleset("portal-2026")


def test_ruleset_is_immutable() -> None:
    """A shared cached ruleset must not be changed by one caller."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        RULES.name = "other"  # type: ignore[misc]
