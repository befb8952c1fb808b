"""A change of a fact rule is applied to history: the engine refuses to record under other
rules, ``rederive`` recomputes every event's facts from the domain events, the views rebuilt
from them score history under the new rule, and ``replay --verify`` then finds nothing."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from oracle import Oracle

from engine.app import FactsVersionError, Message
from kernel.calendar import VN_TZ
from kernel.lifecycle import LifecycleRules
from motcua.pipeline import engine_at
from producers.simulator import SimConfig, generate
from projections.periods import parse_period
from projections.rederive import rederive
from projections.replay import Replayer
from projections.ruleset import Ruleset, load_ruleset
from projections.store import ViewStore, views_url
from projections.views import Tree, counts_for

NOW = datetime(2026, 6, 30, 23, 0, tzinfo=VN_TZ)
SHORTER = LifecycleRules(petition_answer_working_days=3)


def actions() -> list[dict[str, Any]]:
    return list(generate(SimConfig(agencies=4, dossiers=400, seed=21, start=date(2026, 1, 5),
                                   days=150, feedback_per_dossier=0.3)))


def record(url: str, stream: list[dict[str, Any]]) -> int:
    engine = engine_at(url, hold_seconds=3600)
    try:
        msgs = [Message("motcua.actions", 0, i, orjson.dumps(a)) for i, a in enumerate(stream)]
        for i in range(0, len(msgs), 1000):
            engine.process("log", msgs[i:i + 1000])
        return int(engine.store.last_fact())
    finally:
        engine.close()


def rebuild(engine: Any, views: ViewStore) -> None:
    replayer = Replayer(engine.store, views)
    replayer.swap(*replayer.rebuild(resume=False))


def with_rules(rules: LifecycleRules) -> Ruleset:
    from dataclasses import replace

    return replace(load_ruleset("portal-2026"), lifecycle=rules)


def feedback_counts(views: ViewStore, ruleset: Ruleset) -> dict[str, tuple[int, int]]:
    c = views.load()
    counts, _ = counts_for(c, ruleset, Tree.build(c), "H15", parse_period("2026-H1"), NOW)
    return {k: v for k, v in counts.items() if k.startswith("PETITION")}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    return str(request.getfixturevalue("pg_url"))


def test_a_changed_fact_rule_rescores_history_after_rederive(store_url: str) -> None:
    """Petition answers due in 3 working days instead of 15: the engine refuses to start,
    rederive recomputes every event's facts, the rebuilt views equal the oracle's counts under
    the new rule (and differ from the old ones), and a verify finds no difference."""
    url = store_url
    stream = actions()
    events = record(url, stream)
    views = ViewStore(views_url(url))
    try:
        engine = engine_at(url)
        rebuild(engine, views)
        engine.close()
        before = feedback_counts(views, with_rules(LifecycleRules()))

        with pytest.raises(FactsVersionError, match="replay --rederive"):
            engine_at(url, rules=SHORTER)
        engine = engine_at(url, rules=SHORTER, check_facts=False)
        assert rederive(engine, page=37) == events
        rebuild(engine, views)
        engine.close()

        after = feedback_counts(views, with_rules(SHORTER))
        oracle = Oracle(stream, with_rules(SHORTER)).counts(
            "H15", date(2026, 1, 1), date(2026, 6, 30), NOW)
        assert after == {k: v for k, v in oracle.items() if k.startswith("PETITION")}
        assert after["PETITION_PROCESSING_ON_TIME"][0] < before["PETITION_PROCESSING_ON_TIME"][0]

        engine = engine_at(url, rules=SHORTER)  # the store now holds these rules' facts
        assert Replayer(engine.store, views).verify() == []
        engine.close()
        with pytest.raises(FactsVersionError):
            engine_at(url)
    finally:
        views.close()


def test_on_sqlite_the_facts_caches_position_is_its_rowid_before_and_after_rederive(
    tmp_path: Path,
) -> None:
    """``pos INTEGER PRIMARY KEY``: no second index beside the table (docs/decisions.md), in
    the cache the engine creates and in the one ``rederive`` swaps in; rows read back by
    position are the rows written."""
    import sqlite3

    url = f"sqlite:///{tmp_path / 'm.db'}"
    stream = list(generate(SimConfig(agencies=2, dossiers=20, seed=5, start=date(2026, 1, 5),
                                     days=30)))
    events = record(url, stream)

    def shape() -> tuple[list[str], list[int]]:
        with sqlite3.connect(tmp_path / "m.db") as db:
            indexes = [r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='motcua_facts'")]
            same = [r[0] for r in db.execute("SELECT pos FROM motcua_facts WHERE pos = rowid")]
        return indexes, same

    indexes, same = shape()
    assert indexes == [] and same == list(range(1, events + 1))
    engine = engine_at(url, check_facts=False)
    try:
        assert rederive(engine, page=7) == events
    finally:
        engine.close()
    indexes, same = shape()
    assert indexes == [] and same == list(range(1, events + 1))
