"""Counts to points to scorecard (spec/766.md §2); every expected figure is worked by hand below."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from kernel.errors import UserError
from projections.ruleset import Ruleset, UnknownRulesetError, load_ruleset
from projections.scoring import (
    CountsError,
    build_scorecard,
    classify,
    criterion_points,
    parse_counts,
)

RULES = load_ruleset("portal-2026")


def points(code: str, numerator: int, denominator: int) -> Decimal:
    return criterion_points(RULES.criterion(code), numerator, denominator)


def empty_counts() -> dict[str, tuple[int, int]]:
    return {c.code: (0, 0) for c in RULES.scored_criteria()}


def dak_lak_counts() -> dict[str, tuple[int, int]]:
    counts = empty_counts()
    counts.update(
        ON_TIME=(393087, 443565),
        PAYMENT_DOSSIER_ONLINE=(179460, 204757),
        PAYMENT_FORMALITY_FEE_DOSSIER=(160, 376),
        PAYMENT_FORMALITY_TRANSACTION=(56, 376),
        DOSSIER_RECEIVING_SATISFACTION=(392869, 443565),
    )
    return counts


def test_dak_lak_on_time_is_17_72() -> None:
    """2.1 = 393087/443565 of 20 points gives the portal's 17.72."""
    # 20 × 393087 = 7,861,740 over 443,565.
    # 443,565 × 17.715 = 7,857,753.975 and 443,565 × 17.725 = 7,862,189.625, so 17.72.
    assert points("ON_TIME", 393087, 443565) == Decimal("17.72")


def test_dak_lak_payment_criteria_match_the_portal() -> None:
    """Payment: 179460/204757 → 5.26, 160/376 → 1.06 and 56/376 → 0.37 (target 80%)."""
    # 3.6: 6 × 179460 = 1,076,760 over 204,757;
    #      204,757 × 5.255 = 1,075,998.035 and × 5.265 = 1,078,045.605 → 5.26.
    assert points("PAYMENT_DOSSIER_ONLINE", 179460, 204757) == Decimal("5.26")
    # 3.5: 2 × (160/376) / 0.8 = 3200/3008 = 1.0638… (3008 × 1.055 = 3173.44, × 1.065 = 3203.52).
    assert points("PAYMENT_FORMALITY_FEE_DOSSIER", 160, 376) == Decimal("1.06")
    # 3.5b: 2 × (56/376) / 0.8 = 1120/3008 = 0.3723… (3008 × 0.365 = 1097.92, × 0.375 = 1128).
    assert points("PAYMENT_FORMALITY_TRANSACTION", 56, 376) == Decimal("0.37")


def test_dak_lak_payment_group_is_6_69() -> None:
    """The payment group is the sum of its rounded criteria: 5.26 + 1.06 + 0.37 = 6.69."""
    card = build_scorecard(RULES, dak_lak_counts(), agency_id="H15", period="2026", view_end=None)
    payment = next(g for g in card["groups"] if g["key"] == "payment")
    assert payment["score"] == 6.69


def test_dak_lak_receiving_satisfaction_is_5_90() -> None:
    """5.4 = 392869/443565 against a 90% target gives 5.90."""
    # 6 × (392869/443565) / 0.9 = 23,572,140 / 3,992,085;
    # 3,992,085 × 5.895 = 23,533,341.075 and × 5.905 = 23,573,261.925 → 5.90.
    assert points("DOSSIER_RECEIVING_SATISFACTION", 392869, 443565) == Decimal("5.90")


def test_certified_copy_with_nothing_to_count_scores_full() -> None:
    """4.6 with 0/0 earns its full 2 points, as the Đắk Lắk figures show."""
    assert points("ELECTRONIC_CERTIFIED_COPY", 0, 0) == Decimal(2)


def test_dossier_criterion_with_nothing_to_count_scores_zero() -> None:
    """2.1 and 1.4 with 0/0 earn nothing: an agency without dossiers gets no progress points."""
    assert points("ON_TIME", 0, 0) == 0
    assert points("DOSSIER_SYNC", 0, 0) == 0


def test_feedback_and_catalog_criteria_with_nothing_to_count_score_full() -> None:
    """5.2 (feedback, 6) and 1.1 (catalog Decision, 6) with 0/0 earn their maxima."""
    assert points("PETITION_PROCESSING_ON_TIME", 0, 0) == 6
    assert points("PUBLISH_ON_TIME", 0, 0) == 6


def test_shown_only_criterion_scores_nothing() -> None:
    """2.2 carries no points whatever its counts."""
    assert points("AVG_PROCESSING_TIME", 5, 5) == 0


def test_ratio_above_target_is_capped_at_the_maximum() -> None:
    """3.5 with 4/4 procedures is 125% of its 80% target, capped at the 2-point maximum."""
    assert points("PAYMENT_FORMALITY_FEE_DOSSIER", 4, 4) == Decimal("2.00")


def test_exact_half_rounds_up_not_to_even() -> None:
    """A value exactly at .xx5 rounds up: 0.125 → 0.13 (banker's would give 0.12)."""
    # 4.6: 2 × 1/16 = 0.125 exactly.
    assert points("ELECTRONIC_CERTIFIED_COPY", 1, 16) == Decimal("0.13")


def test_exact_half_is_not_spoiled_by_binary_floats() -> None:
    """6 × 67/400 is exactly 1.005 and rounds to 1.01 (float arithmetic gives 1.00)."""
    # 1.4: 6 × 67 = 402, 402/400 = 1.005; float(1.005) is 1.00499999… so round() would give 1.0.
    assert points("DOSSIER_SYNC", 67, 400) == Decimal("1.01")


def test_ratio_is_not_rounded_before_points() -> None:
    """3.5 at 10649/25000 = 0.42596 scores 1.06, not the 1.07 a ratio rounded to 42.60% gives."""
    # Exact: 2 × 0.42596 / 0.8 = 1.0649 → 1.06.  Rounded first: 2 × 0.4260 / 0.8 = 1.065 → 1.07.
    assert points("PAYMENT_FORMALITY_FEE_DOSSIER", 10649, 25000) == Decimal("1.06")


def test_group_sums_rounded_criteria_not_unrounded_points() -> None:
    """Payment at 1.004 + 0.504 + 0.504 scores 2.00, where rounding the unrounded sum gives 2.01."""
    # 3.6: 6 × 251/1500 = 1506/1500 = 1.004 → 1.00
    # 3.5 and 3.5b: 2 × (126/625) / 0.8 = 252/500 = 0.504 → 0.50 each
    # rounded criteria: 1.00 + 0.50 + 0.50 = 2.00; unrounded: 2.012 → 2.01.
    counts = empty_counts()
    counts.update(
        PAYMENT_DOSSIER_ONLINE=(251, 1500),
        PAYMENT_FORMALITY_FEE_DOSSIER=(126, 625),
        PAYMENT_FORMALITY_TRANSACTION=(126, 625),
    )
    card = build_scorecard(RULES, counts, agency_id="X", period="2026", view_end=None)
    payment = next(g for g in card["groups"] if g["key"] == "payment")
    assert payment["score"] == 2.00


def test_total_is_the_sum_of_group_scores() -> None:
    """Đắk Lắk's published criteria with every other count empty total 58.31, Trung bình."""
    # transparency: 1.1 6 + 1.2 4 + 1.3 2 (0/0 full) + 1.4 0 (0/0 zero) = 12
    # progress: 17.72; online_service: 3.1 0/0 → 0; payment: 6.69
    # digitization: 4.5a 2 + 4.6 2 (0/0 full), the rest 0/0 zero → 4
    # satisfaction: 5.2 6 + 5.3 6 (0/0 full) + 5.4 5.90 = 17.90
    # total: 12 + 17.72 + 0 + 6.69 + 4 + 17.90 = 58.31
    card = build_scorecard(RULES, dak_lak_counts(), agency_id="H15", period="2026", view_end=None)
    assert [g["score"] for g in card["groups"]] == [12.0, 17.72, 0.0, 6.69, 4.0, 17.9]
    assert card["total"] == 58.31
    assert card["classification"] == "Trung bình"


def test_all_empty_counts_score_the_full_rule_criteria_only() -> None:
    """With no data, only full-rule criteria score: 6+4+2+2+2+2+2+6+6 = 32, Yếu."""
    card = build_scorecard(RULES, empty_counts(), agency_id="X", period="2026", view_end=None)
    assert card["total"] == 32.0
    assert card["classification"] == "Yếu"


@pytest.mark.parametrize(
    ("total", "label"),
    [
        ("100", "Xuất sắc"),
        ("90.00", "Xuất sắc"),
        ("89.99", "Tốt"),
        ("80", "Tốt"),
        ("79.99", "Khá"),
        ("70", "Khá"),
        ("65.49", "Trung bình"),
        ("50.00", "Trung bình"),
        ("49.99", "Yếu"),
        ("0", "Yếu"),
    ],
)
def test_classification_bands_include_their_lower_bound(total: str, label: str) -> None:
    """A band starts at its threshold: 90 is Xuất sắc, 89.99 is Tốt, 49.99 is Yếu."""
    assert classify(RULES, Decimal(total)) == label


def test_scorecard_has_the_contract_shape() -> None:
    """Top-level, group and criterion keys are exactly those of interface.md, and it is JSON."""
    card = build_scorecard(
        RULES,
        dak_lak_counts(),
        agency_id="H15",
        period="2026",
        view_end="2026-10-10T23:59:59+07:00",
    )
    assert set(card) == {
        "agency_id",
        "period",
        "view_end",
        "ruleset",
        "total",
        "classification",
        "groups",
    }
    assert (card["agency_id"], card["period"], card["ruleset"]) == ("H15", "2026", "portal-2026")
    assert card["view_end"] == "2026-10-10T23:59:59+07:00"
    group = card["groups"][1]
    assert set(group) == {"key", "name_vi", "name_en", "max", "score", "criteria"}
    on_time = group["criteria"][0]
    assert on_time == {
        "id": "2.1",
        "code": "ON_TIME",
        "name_vi": RULES.criterion("ON_TIME").name_vi,
        "name_en": RULES.criterion("ON_TIME").name_en,
        "numerator": 393087,
        "denominator": 443565,
        "ratio": 0.8862,  # 393087/443565 = 0.88619… → 0.8862
        "target": 1.0,
        "max": 20,
        "points": 17.72,
        "points_lost": 2.28,  # 20 − 17.72
    }
    json.dumps(card)


def test_scorecard_shows_shown_only_criteria_with_zero_counts_when_missing() -> None:
    """2.2 appears with 0/0, a null ratio and target, max 0 and 0 points."""
    card = build_scorecard(RULES, dak_lak_counts(), agency_id="H15", period="2026", view_end=None)
    avg = card["groups"][1]["criteria"][1]
    assert (avg["code"], avg["numerator"], avg["denominator"]) == ("AVG_PROCESSING_TIME", 0, 0)
    assert (avg["ratio"], avg["target"], avg["max"], avg["points"]) == (None, None, 0, 0.0)


def test_scorecard_ratio_is_null_for_an_empty_denominator() -> None:
    """4.6 at 0/0 shows ratio null but its 2 points."""
    card = build_scorecard(RULES, dak_lak_counts(), agency_id="H15", period="2026", view_end=None)
    copy = next(c for c in card["groups"][4]["criteria"] if c["id"] == "4.6")
    assert (copy["ratio"], copy["points"], copy["points_lost"]) == (None, 2.0, 0.0)


def test_scorecard_refuses_missing_scored_counts() -> None:
    """Building a card without a scored criterion's counts is an error naming it."""
    counts = empty_counts()
    del counts["ON_TIME"]
    with pytest.raises(CountsError, match="ON_TIME"):
        build_scorecard(RULES, counts, agency_id="X", period="2026", view_end=None)


def counts_doc(**overrides: object) -> dict[str, object]:
    criteria: dict[str, object] = {code: list(pair) for code, pair in dak_lak_counts().items()}
    criteria.update(overrides)
    return {"ruleset": "portal-2026", "criteria": criteria}


def test_parse_counts_reads_a_complete_document() -> None:
    """A full document gives the ruleset and integer pairs keyed by code."""
    ruleset, counts = parse_counts(counts_doc())
    assert ruleset is RULES
    assert counts["ON_TIME"] == (393087, 443565)


@pytest.mark.parametrize("value, says", [
    ([True, True], "not [true,true]."),
    (None, "not null."),
    ({"n": 1, "d": 2}, 'not {"n":1,"d":2}.'),
    ([1, 2, 3], "not [1,2,3]."),
    ([-1, 2], "has a negative count: [-1,2]."),
    ([1] * 100, "1,1,….")
])
def test_a_bad_pair_is_quoted_as_json_as_its_author_wrote_it(value: object, says: str) -> None:
    """The message shows the file's value as JSON (``true``, ``null``), not Python's
    ``True``, ``None``, and cuts a long one short."""
    with pytest.raises(CountsError) as info:
        parse_counts(counts_doc(ON_TIME=value))
    message = str(info.value)
    assert message.startswith("Criterion ON_TIME ") and message.endswith(says)
    assert "True" not in message and "None" not in message and len(message) < 200


def test_parse_counts_uses_the_given_loader() -> None:
    """The ruleset name goes through the injected loader."""
    asked: list[str] = []

    def loader(name: str) -> Ruleset:
        asked.append(name)
        return RULES

    parse_counts(counts_doc(), loader)
    assert asked == ["portal-2026"]


def test_parse_counts_lists_every_missing_scored_code() -> None:
    """Only ON_TIME given: the error names every other scored criterion and not ON_TIME."""
    with pytest.raises(CountsError) as info:
        parse_counts({"ruleset": "portal-2026", "criteria": {"ON_TIME": [1, 2]}})
    assert isinstance(info.value, UserError)
    listed = str(info.value).removeprefix("The counts file is missing criteria ").rstrip(".")
    assert listed.split(", ") == [c.code for c in RULES.scored_criteria() if c.code != "ON_TIME"]


def test_parse_counts_allows_shown_only_codes_to_be_absent_or_present() -> None:
    """2.2 and 5.1 are optional but accepted."""
    _, counts = parse_counts(counts_doc(AVG_PROCESSING_TIME=[3, 10]))
    assert counts["AVG_PROCESSING_TIME"] == (3, 10)


def test_parse_counts_rejects_unknown_codes() -> None:
    """A code the ruleset lacks is named in the error."""
    with pytest.raises(CountsError, match="ONTIME"):
        parse_counts(counts_doc(ONTIME=[1, 2]))


@pytest.mark.parametrize(
    "value", [[1.5, 2], ["1", "2"], [True, 2], [1, 2, 3], [1], 7, None, {"n": 1}]
)
def test_parse_counts_rejects_non_integer_pairs(value: object) -> None:
    """Each value must be exactly two whole numbers; the error names the criterion."""
    with pytest.raises(CountsError, match="ON_TIME"):
        parse_counts(counts_doc(ON_TIME=value))


def test_parse_counts_rejects_negative_counts() -> None:
    """Counts are sizes of sets, never negative."""
    with pytest.raises(CountsError, match="ON_TIME.*negative"):
        parse_counts(counts_doc(ON_TIME=[-1, 5]))


def test_parse_counts_rejects_numerator_above_denominator() -> None:
    """A numerator is a subset of its denominator, so 6/5 is refused naming the code."""
    with pytest.raises(CountsError, match="ON_TIME has numerator 6 greater than denominator 5"):
        parse_counts(counts_doc(ON_TIME=[6, 5]))


@pytest.mark.parametrize(
    "doc",
    [[], "x", None, {"ruleset": "portal-2026"}, {"ruleset": "portal-2026", "criteria": []}],
)
def test_parse_counts_rejects_wrong_shapes(doc: object) -> None:
    """A document that is not {"criteria": {...}} is refused in one sentence."""
    with pytest.raises(CountsError, match="criteria"):
        parse_counts(doc)


def test_parse_counts_rejects_a_non_string_ruleset() -> None:
    """The ruleset must be given by name."""
    with pytest.raises(CountsError, match="ruleset"):
        parse_counts({"ruleset": 2026, "criteria": {}})


def test_parse_counts_reports_an_unknown_ruleset() -> None:
    """An unknown ruleset name surfaces as the ruleset error listing known names."""
    doc = counts_doc()
    doc["ruleset"] = "portal-1999"
    with pytest.raises(UnknownRulesetError, match="portal-2026"):
        parse_counts(doc)


def test_parse_counts_defaults_the_ruleset_when_absent() -> None:
    """Without "ruleset" the caller's default (the configured ruleset) is used."""
    doc = counts_doc()
    del doc["ruleset"]
    ruleset, _ = parse_counts(doc, default_ruleset="portal-2026")
    assert ruleset.name == "portal-2026"
