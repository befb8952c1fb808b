"""Rulesets through time: each states when it takes effect; a view is scored under the one in
force at its end, a pinned one, or one named for a what-if; a draft is never in force."""

from __future__ import annotations

import json
from datetime import date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pipeline import Pipeline, points

from kernel.calendar import VN_TZ
from projections.api import create_app
from projections.periods import parse_period
from projections.ruleset import NoRulesetInForceError, Rulesets, UnknownRulesetError
from projections.source import StoreSource
from projections.store import ViewStore
from projections.views import scorecard


def write_ruleset(folder: Path, name: str, effective: str, on_time_max: int,
                  draft: bool = False) -> None:
    """portal-2026 with 2.1 worth ``on_time_max`` (1.4 takes the difference to stay at 100)."""
    doc: dict[str, Any] = json.loads(resources.files("projections.rulesets").joinpath(
        "portal-2026.json").read_text("utf-8"))
    doc.update(name=name, effective_from=effective, draft=draft)
    crit = {c["code"]: c for g in doc["groups"] for c in g["criteria"]}
    delta = on_time_max - 20
    crit["ON_TIME"]["max"] = on_time_max
    crit["DOSSIER_SYNC"]["max"] = 6 - delta
    for g in doc["groups"]:
        g["max"] = sum(c["max"] for c in g["criteria"])
    (folder / f"{name}.json").write_text(json.dumps(doc, ensure_ascii=False), "utf-8")


@pytest.fixture
def rulesets(tmp_path: Path) -> Rulesets:
    write_ruleset(tmp_path, "rules-2025", "2025-01-01", 20)
    write_ruleset(tmp_path, "rules-2026h2", "2026-07-01", 24)
    write_ruleset(tmp_path, "draft-2027", "2026-01-01", 22, draft=True)
    return Rulesets([str(tmp_path)])


def test_the_ruleset_in_force_is_the_latest_to_take_effect_by_that_day(
    rulesets: Rulesets,
) -> None:
    """Effective dates decide; the shipped portal-2026 (2022-06-23) is older than both."""
    assert rulesets.in_force(date(2024, 5, 1)).name == "portal-2026"
    assert rulesets.in_force(date(2026, 6, 30)).name == "rules-2025"
    assert rulesets.in_force(date(2026, 7, 1)).name == "rules-2026h2"


def test_a_draft_is_never_in_force_but_can_be_named(rulesets: Rulesets) -> None:
    """draft-2027 takes "effect" in 2026 but is a draft: only a what-if uses it."""
    assert rulesets.in_force(date(2027, 1, 1)).name == "rules-2026h2"
    assert rulesets.choose("draft-2027", date(2026, 3, 1)).name == "draft-2027"


def test_before_any_ruleset_there_is_none_in_force(tmp_path: Path) -> None:
    """A day before every ruleset's effect is refused in one sentence."""
    with pytest.raises(NoRulesetInForceError, match="2020-01-01"):
        Rulesets().in_force(date(2020, 1, 1))
    with pytest.raises(UnknownRulesetError, match="no-such"):
        Rulesets().get("no-such")


def on_time_stream() -> list[dict[str, Any]]:
    """Two dossiers a month, January to September 2026, one on time, one resolved late."""
    out: list[dict[str, Any]] = []
    for m in range(1, 10):
        for k, resolved in ((1, 5), (2, 12)):
            d = f"D{m}-{k}"
            base = {"schema": "motcua.action/1", "source": "t", "dossier_id": d}
            out.append({**base, "action_id": f"{d}-r", "type": "received",
                        "occurred_at": f"2026-{m:02d}-02T08:00:00+07:00",
                        "data": {"agency_id": "H15.1", "procedure_id": "P1",
                                 "channel": "direct",
                                 "due_at": f"2026-{m:02d}-09T17:00:00+07:00"}})
            out.append({**base, "action_id": f"{d}-s", "type": "resolved",
                        "occurred_at": f"2026-{m:02d}-{resolved:02d}T10:00:00+07:00",
                        "data": {"outcome": "approved"}})
    return out


def test_each_period_is_scored_under_the_ruleset_in_force_at_its_end(
    rulesets: Rulesets, tmp_path: Path,
) -> None:
    """Half the dossiers on time: 2.1 is 10 of 20 points in Q1 (rules-2025), 12 of 24 in Q3
    (rules-2026h2), and a what-if scores Q1 under the draft: 11 of 22."""
    now = datetime(2026, 12, 31, 23, 0, tzinfo=VN_TZ)
    with Pipeline(tmp_path / "m.db") as p:
        p.send(on_time_stream())
        for label, ruleset, expected in (("2026-Q1", None, ("rules-2025", 10.0)),
                                         ("2026-Q3", None, ("rules-2026h2", 12.0)),
                                         ("2026-Q1", "draft-2027", ("draft-2027", 11.0))):
            period = parse_period(label)
            chosen = rulesets.choose(ruleset, period.end)
            card = scorecard(p.counters, chosen, "H15.1", period, now)
            assert (card["ruleset"], points(card)["ON_TIME"]) == expected


def test_http_scores_under_the_ruleset_in_force_or_the_one_asked_for(
    rulesets: Rulesets, tmp_path: Path,
) -> None:
    """``?ruleset=`` is the what-if; without it, the ruleset in force; an unknown one is 400."""
    now = datetime(2026, 12, 31, 23, 0, tzinfo=VN_TZ)
    with Pipeline(tmp_path / "m.db") as p:
        p.send(on_time_stream())
        views = ViewStore(f"sqlite:///{tmp_path / 'views.db'}")
        views.flush(p.counters, {"pos|0": 1})
    with TestClient(create_app(StoreSource(views), rulesets, clock=lambda: now)) as client:
        q3 = client.get("/api/v1/agencies/H15.1/scorecard?period=2026-Q3").json()
        what_if = client.get("/api/v1/agencies/H15.1/scorecard?period=2026-Q3"
                             "&ruleset=rules-2025").json()
        bad = client.get("/api/v1/agencies/H15.1/scorecard?ruleset=nope")
    views.close()
    assert (q3["ruleset"], points(q3)["ON_TIME"]) == ("rules-2026h2", 12.0)
    assert (what_if["ruleset"], points(what_if)["ON_TIME"]) == ("rules-2025", 10.0)
    assert bad.status_code == 400 and "nope" in bad.json()["error"]
