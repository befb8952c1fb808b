"""``motcua explain`` adds up: per criterion, its lists give the scorecard's figures.

A simulated province is recorded by the engine and projected into a view store the way the
projection does it (relayed messages folded, flushed page by page with the subject facts); then,
for every criterion of the ruleset, several agencies, periods and view times, the explanation's
numerator and denominator must equal the scorecard's, and what is not counted must say why.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import orjson
import pytest

from engine.app import Message
from engine.relay import event_message
from kernel.calendar import VN_TZ
from motcua.pipeline import engine_at
from producers.simulator import SimConfig, generate
from projections.criteria import REGISTRY, SubjectCriterion
from projections.explain import explain
from projections.fold import Counters
from projections.periods import parse_period
from projections.ruleset import load_ruleset
from projections.store import ViewStore, views_url
from projections.views import Tree, scorecard

RULESET = load_ruleset("portal-2026")
CODES = [c.code for c in RULESET.criteria()]
PERIODS = ["2026", "2026-Q1", "2026-H2", "2026-03"]
NOWS = [datetime(2026, 3, 20, 10, 0, tzinfo=VN_TZ), datetime(2026, 8, 1, 9, 0, tzinfo=VN_TZ),
        datetime(2027, 1, 10, 9, 0, tzinfo=VN_TZ)]


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ViewStore, Counters]]:
    """The view store of a simulated province, written as the projection writes it."""
    db = tmp_path_factory.mktemp("explain") / "m.db"
    url = f"sqlite:///{db}"
    actions = generate(SimConfig(agencies=6, dossiers=1500, seed=5, start=date(2026, 1, 1),
                                 days=300, feedback_per_dossier=0.05))
    engine = engine_at(url)
    views = ViewStore(views_url(url))
    try:
        batch: list[Message] = []
        for i, a in enumerate(actions):
            batch.append(Message("motcua.actions", 0, i, orjson.dumps(a)))
            if len(batch) == 1000:
                engine.process("log", batch)
                batch = []
        engine.process("log", batch)
        counters = Counters()
        pos = 0
        while notes := engine.store.read_facts(pos + 1, 1000):
            for n in notes:
                counters.fold(event_message(n)[1])
            pos = notes[-1][0]
            views.flush(counters, {"pos|0": pos})
        yield views, views.load()
    finally:
        views.close()
        engine.close()


def figures(card: dict[str, Any]) -> dict[str, tuple[int, int]]:
    return {c["code"]: (c["numerator"], c["denominator"])
            for g in card["groups"] for c in g["criteria"]}


def agencies(counters: Counters) -> list[str]:
    tree = Tree.build(counters)
    children = sorted(a for a, p in tree.parent.items() if p == "H15")
    return ["H15", *children[:2]]


@pytest.mark.parametrize("code", CODES)
def test_explanation_adds_up_to_the_scorecard_figure(
    province: tuple[ViewStore, Counters], code: str,
) -> None:
    """For each agency, period and view time, the explanation of a criterion has the
    scorecard's numerator and denominator, and lists exactly that many subjects."""
    views, counters = province
    checked = 0
    for agency in agencies(counters):
        for label in PERIODS:
            period = parse_period(label)
            for now in NOWS:
                want = figures(scorecard(counters, RULESET, agency, period, now))[code]
                got = explain(views, counters, RULESET, agency, period, now, code)
                assert (got["numerator"], got["denominator"]) == want, (agency, label, now)
                listed = len(got["counted"]) + len(got["not_counted"])
                assert listed == got["denominator"], (agency, label, now)
                checked += want[1] > 0
    assert checked > 0, f"{code}: no case with a non-empty denominator"


@pytest.mark.parametrize("code", CODES)
def test_what_is_not_counted_says_why(province: tuple[ViewStore, Counters], code: str) -> None:
    """Every subject in a denominator but not in the numerator carries a specific reason."""
    views, counters = province
    seen = 0
    for label in PERIODS:
        got = explain(views, counters, RULESET, "H15", parse_period(label), NOWS[1], code)
        for item in got["not_counted"]:
            why = item.get("why")
            assert isinstance(why, str) and why not in ("", "counted", "not counted"), item
        seen += len(got["not_counted"])
    declared = REGISTRY.by_code[code]
    if isinstance(declared, SubjectCriterion) and declared.sum_of is not None:
        assert seen == 0, f"{code} is a mean: every finished subject counts with its value"
    else:  # not vacuous: every other criterion leaves some subject of the province uncounted
        assert seen > 0, f"{code}: nothing is left uncounted, so no reason was checked"
