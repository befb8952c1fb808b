"""The criteria registry is the one home of a criterion: a new one needs the registry and a
ruleset, nothing else, and the fold, the counts, explain and the API all follow it."""

from __future__ import annotations

import json
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pipeline import Pipeline, ratio

from kernel.calendar import VN_TZ
from projections import facts as F
from projections.api import create_app
from projections.criteria import REGISTRY, Registry, SubjectCriterion, has
from projections.explain import explain
from projections.layout import Layout
from projections.periods import parse_period
from projections.ruleset import Ruleset, parse_ruleset
from projections.source import StoreSource
from projections.store import ViewStore

NEW = SubjectCriterion(
    "SYNCED_AND_DIGITIZED", "dossier",
    num=(has(F.SYNCED, "not synced"), has(F.DIGITIZED, "not digitized")),
    label=("hồ sơ đồng bộ và số hóa", "dossiers synced and digitized"))
EXTENDED: Registry = REGISTRY.extended(NEW)
NOW = datetime(2026, 10, 31, 12, 0, tzinfo=VN_TZ)
OCTOBER = parse_period("2026-10")


def extended_ruleset() -> Ruleset:
    """portal-2026 with 2 of 1.4's 6 points given to the new criterion (the JSON edit an
    analyst would make)."""
    doc: dict[str, Any] = json.loads(resources.files("projections.rulesets").joinpath(
        "portal-2026.json").read_text("utf-8"))
    doc["name"] = "test-extra"
    group = next(g for g in doc["groups"] if g["key"] == "transparency")
    sync = next(c for c in group["criteria"] if c["code"] == "DOSSIER_SYNC")
    sync["max"] = 4
    group["criteria"].append({"id": "1.5", "code": "SYNCED_AND_DIGITIZED", "max": 2,
                              "target": 1, "zero_denominator": "zero",
                              "name_vi": "Hồ sơ đồng bộ và số hóa",
                              "name_en": "Dossiers synced and digitized"})
    return parse_ruleset(json.dumps(doc), "test-extra", registry=EXTENDED)


def act(i: int, type_: str, dossier: str, at: str, **data: Any) -> dict[str, Any]:
    return {"schema": "motcua.action/1", "source": "t", "action_id": f"a{i}", "type": type_,
            "occurred_at": at, "dossier_id": dossier, "data": data}


def four_dossiers() -> list[dict[str, Any]]:
    """D1 synced and digitized, D2 synced, D3 digitized, D4 neither."""
    out = []
    n = 0
    for d, marks in (("D1", ("synced", "digitized")), ("D2", ("synced",)),
                     ("D3", ("digitized",)), ("D4", ())):
        n += 1
        out.append(act(n, "received", d, "2026-10-05T08:00:00+07:00", agency_id="H15.1",
                       procedure_id="P1", channel="direct",
                       due_at="2026-10-20T17:00:00+07:00"))
        for m in marks:
            n += 1
            out.append(act(n, m, d, "2026-10-06T08:00:00+07:00",
                           **({"components": 1} if m == "digitized" else {})))
    return out


@pytest.fixture
def pipeline(tmp_path: Path) -> Any:
    with Pipeline(tmp_path / "m.db", extended_ruleset(), layout=Layout(EXTENDED)) as p:
        p.send(four_dossiers())
        yield p


def test_a_new_criterion_is_counted_and_scored_from_its_declaration(pipeline: Any) -> None:
    """1 of 4 dossiers is synced and digitized: 2 × 1/4 = 0.50 points; 1.4 (now 4 points)
    counts 2 of 4 = 2.00."""
    card = pipeline.scorecard("H15.1", OCTOBER, NOW)
    assert ratio(card)["SYNCED_AND_DIGITIZED"] == (1, 4)
    rows = {c["code"]: c for g in card["groups"] for c in g["criteria"]}
    assert rows["SYNCED_AND_DIGITIZED"]["points"] == 0.5
    assert rows["DOSSIER_SYNC"]["points"] == 2.0
    assert card["ruleset"] == "test-extra"


def test_explain_gives_the_declared_reasons_of_a_new_criterion(pipeline: Any,
                                                                tmp_path: Path) -> None:
    """Explain reads the new criterion's own reasons, one per requirement not met."""
    views = ViewStore(f"sqlite:///{tmp_path / 'views.db'}", layout=pipeline.counters.layout)
    views.flush(pipeline.counters, {})
    out = explain(views, pipeline.counters, extended_ruleset(), "H15.1", OCTOBER, NOW,
                  "SYNCED_AND_DIGITIZED")
    views.close()
    assert (out["numerator"], out["denominator"]) == (1, 4)
    assert {i["id"]: i["why"] for i in out["not_counted"]} == {
        "D2": "not digitized", "D3": "not synced", "D4": "not synced; not digitized"}


def test_the_api_serves_the_new_criterion_and_what_it_counts(pipeline: Any,
                                                             tmp_path: Path) -> None:
    """The page's labels come from the registry through /api/v1/ruleset."""
    url = f"sqlite:///{tmp_path / 'views.db'}"
    views = ViewStore(url, layout=pipeline.counters.layout)
    views.flush(pipeline.counters, {"pos|0": 1})
    app = create_app(StoreSource(views), extended_ruleset(), registry=EXTENDED,
                     clock=lambda: NOW)
    with TestClient(app) as client:
        doc = client.get("/api/v1/ruleset").json()
        card = client.get("/api/v1/agencies/H15.1/scorecard?period=2026-10").json()
    views.close()
    new = next(c for g in doc["groups"] for c in g["criteria"]
               if c["code"] == "SYNCED_AND_DIGITIZED")
    assert (new["counts_vi"], new["counts_en"], new["measure"]) == (
        "hồ sơ đồng bộ và số hóa", "dossiers synced and digitized", "ratio")
    assert ratio(card)["SYNCED_AND_DIGITIZED"] == (1, 4)


def test_a_ruleset_naming_an_undeclared_criterion_is_refused() -> None:
    """The ruleset may only score what the registry declares."""
    from kernel.errors import ConfigurationError

    doc = json.loads(resources.files("projections.rulesets").joinpath(
        "portal-2026.json").read_text("utf-8"))
    doc["name"] = "x"
    doc["groups"][0]["criteria"][0]["code"] = "NOT_DECLARED"
    with pytest.raises(ConfigurationError, match="NOT_DECLARED have no definition"):
        parse_ruleset(json.dumps(doc), "x")


def test_every_declared_criterion_of_the_default_registry_is_in_the_shipped_ruleset() -> None:
    """No declaration is left unused by portal-2026 (a stale one would hide a missing row)."""
    from projections.ruleset import load_ruleset

    assert {c.code for c in load_ruleset("portal-2026").criteria()} == set(REGISTRY.codes)
