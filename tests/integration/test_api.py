"""The HTTP API over views built the real way: actions → engine → stored events → fold → store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pytest
from fastapi.testclient import TestClient
from kafka import TopicPartition

from engine.app import Message
from engine.relay import event_message
from kernel.settings import EVENTS_TOPIC
from motcua.pipeline import engine_at
from producers.simulator import SimConfig, generate
from projections.api import create_app
from projections.fold import Counters
from projections.periods import parse_period
from projections.ruleset import Ruleset, load_ruleset
from projections.runner import ProjectionLoop
from projections.source import LiveSource, StoreSource
from projections.store import ViewStore, views_url
from projections.views import overdue_list, ranking, scorecard

NOW = datetime.fromisoformat("2026-10-20T10:00:00+07:00")
NOW_TEXT = NOW.isoformat()
CONFIG = SimConfig(agencies=5, dossiers=900, seed=11, days=280)


class Pipeline:
    """The engine and the projection's fold without Kafka: what the runners do, in one thread."""

    def __init__(self, directory: Path, ruleset: Ruleset) -> None:
        self.url = f"sqlite:///{directory / 'motcua.db'}"
        self.engine = engine_at(self.url)
        self.counters = Counters()
        self.store = ViewStore(views_url(self.url))
        self.offset = 0
        self.pos = 0

    def record(self, actions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Record actions in the event store; returns the new ``motcua.events`` messages."""
        batch = []
        for a in actions:
            batch.append(Message("motcua.actions", 0, self.offset, orjson.dumps(a)))
            self.offset += 1
        for i in range(0, len(batch), 1000):
            self.engine.process("test-log", batch[i:i + 1000])
        notes = self.engine.store.read_facts(self.pos + 1, 10**9)
        events = [event_message(n)[1] for n in notes]
        if events:
            self.pos = events[-1]["pos"]
        return events

    def feed(self, actions: Iterable[dict[str, Any]]) -> None:
        """Record, fold and flush with the new position, as the projection loop does."""
        for ev in self.record(actions):
            self.counters.fold(ev)
        self.store.flush(self.counters, {"pos|0": self.pos})

    def close(self) -> None:
        self.store.close()
        self.engine.close()


class Record(NamedTuple):
    """The two fields of a Kafka consumer record that ``ProjectionLoop.apply`` reads."""

    value: bytes
    offset: int


@pytest.fixture(scope="module")
def ruleset() -> Ruleset:
    return load_ruleset("portal-2026")


@pytest.fixture(scope="module")
def actions() -> list[dict[str, Any]]:
    return list(generate(CONFIG))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory, ruleset: Ruleset,
             actions: list[dict[str, Any]]) -> Iterator[Pipeline]:
    p = Pipeline(tmp_path_factory.mktemp("api"), ruleset)
    p.feed(actions)
    yield p
    p.close()


@pytest.fixture(scope="module")
def client(pipeline: Pipeline, ruleset: Ruleset) -> Iterator[TestClient]:
    source = StoreSource(ViewStore(views_url(pipeline.url)), pipeline.engine)
    with TestClient(create_app(source, ruleset, clock=lambda: NOW)) as c:
        yield c


def agency_ids(actions: list[dict[str, Any]]) -> list[str]:
    return sorted(a["agency_id"] for a in actions if a["type"] == "agency_registered")


def one_sentence(response: Any, *named: str) -> str:
    """The body's error: one line, one sentence, naming each of ``named``."""
    message = response.json()["error"]
    assert isinstance(message, str) and "\n" not in message and message.endswith(".")
    for n in named:
        assert n in message
    return message


def test_scorecard_json_has_the_shape_of_the_contract(client: TestClient) -> None:
    """The scorecard carries the contract's fields, six groups and criteria with counts."""
    r = client.get("/api/v1/agencies/H15/scorecard", params={"period": "2026", "now": NOW_TEXT})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    card = r.json()
    assert {"agency_id", "period", "view_end", "ruleset", "total", "classification",
            "groups"} <= card.keys()
    assert (card["agency_id"], card["period"], card["ruleset"]) == ("H15", "2026", "portal-2026")
    assert card["view_end"] == "2026-10-20T10:00:00+07:00"
    assert [g["key"] for g in card["groups"]] == ["transparency", "progress", "online_service",
                                                   "payment", "digitization", "satisfaction"]
    for g in card["groups"]:
        assert {"key", "max", "score", "criteria", "name_vi", "name_en"} <= g.keys()
        for c in g["criteria"]:
            assert {"id", "code", "numerator", "denominator", "ratio", "target", "max",
                    "points"} <= c.keys()
            if c["denominator"] == 0:
                assert c["ratio"] is None
            elif c["code"] != "AVG_PROCESSING_TIME":  # a mean of days, not a share
                assert 0 <= c["ratio"] <= 1
    assert round(sum(g["score"] for g in card["groups"]), 2) == card["total"]


def test_http_scorecards_equal_the_scorecard_query_on_the_same_counters(
        client: TestClient, pipeline: Pipeline, ruleset: Ruleset,
        actions: list[dict[str, Any]]) -> None:
    """Every agency's HTTP scorecard, for several periods, is exactly ``views.scorecard``."""
    counters = pipeline.store.load()
    for agency in agency_ids(actions):
        for period in ("2026", "2026-H1", "2026-Q3", "2026-10"):
            r = client.get(f"/api/v1/agencies/{agency}/scorecard",
                           params={"period": period, "now": NOW_TEXT})
            assert r.status_code == 200
            expected = scorecard(counters, ruleset, agency, parse_period(period), NOW)
            assert r.json() == orjson.loads(orjson.dumps(expected))


def test_default_period_is_the_current_year_and_default_now_is_the_clock(
        client: TestClient) -> None:
    """Without period and now, the view is the clock's year, ending at the clock."""
    card = client.get("/api/v1/agencies/H15/scorecard").json()
    assert card["period"] == "2026"
    assert card["view_end"] == NOW_TEXT


def test_ranking_is_ordered_by_total_then_agency_id(
        client: TestClient, pipeline: Pipeline, ruleset: Ruleset,
        actions: list[dict[str, Any]]) -> None:
    """The ranking lists every agency, by total descending and agency id, as the query does."""
    r = client.get("/api/v1/ranking", params={"period": "2026", "now": NOW_TEXT})
    assert r.status_code == 200
    rows = r.json()["ranking"]
    assert sorted(row["agency_id"] for row in rows) == agency_ids(actions)
    assert [(row["total"], row["agency_id"]) for row in rows] == sorted(
        ((row["total"], row["agency_id"]) for row in rows), key=lambda x: (-x[0], x[1]))
    assert [row["rank"] for row in rows] == list(range(1, len(rows) + 1))
    expected = ranking(pipeline.store.load(), ruleset, parse_period("2026"), NOW)
    assert r.json() == orjson.loads(orjson.dumps(expected))
    communes = client.get("/api/v1/ranking", params={"level": "commune", "now": NOW_TEXT})
    assert {row["level"] for row in communes.json()["ranking"]} == {"commune"}


@pytest.mark.parametrize("path", ["/api/v1/agencies/H15/scorecard", "/api/v1/ranking",
                                  "/api/v1/agencies/H15/overdue"])
def test_a_bad_period_is_400_with_one_sentence_naming_it(client: TestClient, path: str) -> None:
    """``period=2026-13`` is refused with one sentence that quotes it; so is ``period=``
    given empty (the year of now only when there is no ``period`` at all)."""
    r = client.get(path, params={"period": "2026-13"})
    assert r.status_code == 400
    one_sentence(r, "2026-13")
    r = client.get(path, params={"period": ""})
    assert r.status_code == 400
    one_sentence(r, "Period ''")


@pytest.mark.parametrize("path", ["/api/v1/agencies/H15/scorecard", "/api/v1/ranking",
                                  "/api/v1/agencies/H15/overdue", "/api/v1/agencies/H15/trend"])
def test_a_bad_now_is_400_with_one_sentence_naming_it(client: TestClient, path: str) -> None:
    """``now=yesterday`` is refused with one sentence that quotes it."""
    r = client.get(path, params={"now": "yesterday"})
    assert r.status_code == 400
    one_sentence(r, "yesterday", "now")


def test_bad_level_and_year_are_400_with_one_sentence(client: TestClient) -> None:
    """A level that is not a level and a year that is not a number are named in the answer."""
    one_sentence(client.get("/api/v1/ranking", params={"level": "galaxy"}), "galaxy")
    r = client.get("/api/v1/agencies/H15/trend", params={"year": "abc"})
    assert r.status_code == 400
    one_sentence(r, "abc", "year")


@pytest.mark.parametrize("path", ["/api/v1/agencies/NOPE/scorecard",
                                  "/api/v1/agencies/NOPE/overdue",
                                  "/api/v1/agencies/NOPE/trend"])
def test_an_unknown_agency_is_404_with_one_sentence(client: TestClient, path: str) -> None:
    """An agency id that no agency has is 404, and the sentence names it."""
    r = client.get(path)
    assert r.status_code == 404
    one_sentence(r, "NOPE")


def test_overdue_list_equals_the_query_and_names_procedures(
        client: TestClient, pipeline: Pipeline, ruleset: Ruleset) -> None:
    """The late list is ``views.overdue_list`` over the stored late rows of the subtree."""
    r = client.get("/api/v1/agencies/H15/overdue", params={"period": "2026", "now": NOW_TEXT})
    assert r.status_code == 200
    doc = r.json()
    counters = pipeline.store.load()
    period = parse_period("2026")
    subtree = [a for a in counters.agencies]
    expected = overdue_list(pipeline.store.late_rows(subtree, period.months), counters, ruleset,
                            "H15", period, NOW)
    assert doc["count"] == expected["count"] > 0
    assert [d["dossier_id"] for d in doc["dossiers"]] == [
        d["dossier_id"] for d in expected["dossiers"]]
    first = doc["dossiers"][0]
    assert {"dossier_id", "procedure_id", "due_date", "days_late", "apology_issued",
            "apology_in_time", "status"} <= first.keys()


def test_history_lists_a_dossiers_events_with_their_source_actions(
        client: TestClient, actions: list[dict[str, Any]]) -> None:
    """A dossier's history holds its events oldest first, each with the action and offset."""
    dossier = next(a["dossier_id"] for a in actions if a["type"] == "received")
    r = client.get(f"/api/v1/dossiers/{dossier}/history")
    assert r.status_code == 200
    events = r.json()["events"]
    assert events[0]["type"] == "Received"
    assert events[0]["cause"]["source"] == CONFIG.source
    assert isinstance(events[0]["cause"]["offset"], int)
    one_sentence(client.get("/api/v1/dossiers/NO-SUCH/history"), "NO-SUCH")


def test_history_without_an_event_store_is_503(pipeline: Pipeline, ruleset: Ruleset) -> None:
    """A server that only has the views says so instead of pretending the dossier is unknown."""
    source = StoreSource(ViewStore(views_url(pipeline.url)), None)
    with TestClient(create_app(source, ruleset)) as c:
        r = c.get("/api/v1/dossiers/X/history")
    assert r.status_code == 503
    one_sentence(r)


def test_page_endpoints_give_the_tree_the_trend_and_the_ruleset(
        client: TestClient, pipeline: Pipeline, ruleset: Ruleset,
        actions: list[dict[str, Any]]) -> None:
    """The page's own endpoints: the agency tree, month-by-month totals, the ruleset."""
    tree = client.get("/api/v1/agencies").json()
    assert [a["agency_id"] for a in tree["agencies"]] == agency_ids(actions)
    assert tree["roots"] == ["H15"]
    trend = client.get("/api/v1/agencies/H15.1/trend", params={"year": "2026", "now": NOW_TEXT})
    months = trend.json()["months"]
    assert [m["period"] for m in months] == [f"2026-{m:02d}" for m in range(1, 11)]
    counters = pipeline.store.load()
    assert months[3]["total"] == scorecard(counters, ruleset, "H15.1", parse_period("2026-04"),
                                           NOW)["total"]
    doc = client.get("/api/v1/ruleset").json()
    assert sum(g["max"] for g in doc["groups"]) == 100
    assert doc["bands"][0]["label"] == "Xuất sắc"


def test_metrics_healthz_openapi_and_page(client: TestClient) -> None:
    """Operations endpoints answer; the OpenAPI document lists the contract's paths."""
    client.get("/api/v1/ranking")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert "motcua_" in metrics.text
    assert 'motcua_query_seconds_count{query="ranking"}' in metrics.text
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["version"] >= 1 and health["position"] > 0
    head = client.head("/healthz")  # as load balancers ask: the status, no body
    assert (head.status_code, head.content) == (200, b"")
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/api/v1/agencies/{agency_id}/scorecard", "/api/v1/ranking",
              "/api/v1/agencies/{agency_id}/overdue", "/api/v1/dossiers/{dossier_id}/history",
              "/healthz", "/metrics", "/api/v1/stream"):
        assert p in paths
    page = client.get("/")
    assert page.status_code == 200 and 'id="ranking"' in page.text
    assert client.get("/static/app.js").status_code == 200
    one_sentence(client.get("/no/such/page"), "/no/such/page")


def later_actions(actions: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``n`` new dossiers received on 2026-10-15 at H15.1: new facts for a live update."""
    template = next(a for a in actions if a["type"] == "received" and a["data"].get("due_at"))
    out = []
    for i in range(n):
        a = orjson.loads(orjson.dumps(template))
        a["action_id"] = f"later-{i}-{time.monotonic_ns()}"
        a["dossier_id"] = f"LATER-{i}-{time.monotonic_ns()}"
        a["occurred_at"] = "2026-10-15T09:00:00+07:00"
        a["data"]["due_at"] = "2026-10-16T17:00:00+07:00"
        out.append(a)
    return out


def test_store_source_follows_the_store_and_the_stream_says_so(
        tmp_path: Path, ruleset: Ruleset, actions: list[dict[str, Any]]) -> None:
    """A flush by another writer reaches ``serve``: new version on the stream, new totals."""
    pipeline = Pipeline(tmp_path, ruleset)
    pipeline.feed(actions[:len(actions) // 2])
    source = StoreSource(ViewStore(views_url(pipeline.url)), None, check_every=0.05)
    try:
        with TestClient(create_app(source, ruleset, clock=lambda: NOW)) as c:
            before = c.get("/api/v1/agencies/H15/scorecard", params={"period": "2026-10"}).json()
            version = c.get("/healthz").json()["version"]
            lines: list[str] = []
            feeder = threading.Timer(0.5, pipeline.feed, [later_actions(actions, 40)])
            feeder.start()
            with c.stream("GET", "/api/v1/stream", params={"max_events": 2}) as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                lines = [line for line in r.iter_lines() if line.startswith("data:")]
            feeder.join()
            seen = [orjson.loads(line[5:])["version"] for line in lines]
            assert seen[0] == version and seen[1] > version
            after = c.get("/api/v1/agencies/H15/scorecard", params={"period": "2026-10"}).json()
            on_time = [cr for g in after["groups"] for cr in g["criteria"]
                       if cr["code"] == "ON_TIME"][0]
            on_time_before = [cr for g in before["groups"] for cr in g["criteria"]
                              if cr["code"] == "ON_TIME"][0]
            assert on_time["denominator"] == on_time_before["denominator"] + 40
            assert source.wait_for_change(seen[1], 0.2) == seen[1]  # nothing new: times out
    finally:
        pipeline.close()


def test_live_source_wakes_on_the_projection_loops_apply(
        tmp_path: Path, ruleset: Ruleset, actions: list[dict[str, Any]]) -> None:
    """In one process the API reads the loop's counters and wakes when ``apply`` folds more."""
    pipeline = Pipeline(tmp_path, ruleset)
    loop = ProjectionLoop(pipeline.store, "127.0.0.1:9", None)  # never connects: apply only
    loop.take([0])

    def apply(events: list[dict[str, Any]]) -> None:
        records = [Record(orjson.dumps(e), i) for i, e in enumerate(events)]
        loop.apply({TopicPartition(EVENTS_TOPIC, 0): records})

    apply(pipeline.record(actions))
    source = LiveSource(loop, pipeline.store, pipeline.engine)
    try:
        with TestClient(create_app(source, ruleset, clock=lambda: NOW)) as c:
            card = c.get("/api/v1/agencies/H15/scorecard").json()
            assert card == orjson.loads(orjson.dumps(
                scorecard(loop.counters, ruleset, "H15", parse_period("2026"), NOW)))
            assert c.get("/healthz").json()["position"] == pipeline.pos
            version = source.version()
            more = pipeline.record(later_actions(actions, 5))
            timer = threading.Timer(0.2, apply, [more])
            timer.start()
            assert source.wait_for_change(version, 5.0) == version + 1
            timer.join()
            late = c.get("/api/v1/agencies/H15/overdue", params={"now": NOW_TEXT}).json()
            assert any(d["dossier_id"].startswith("LATER-") for d in late["dossiers"])
    finally:
        loop.identity.close()
        pipeline.close()


def on_time(card: dict[str, Any]) -> dict[str, Any]:
    return next(c for g in card["groups"] for c in g["criteria"] if c["code"] == "ON_TIME")


def test_the_answer_cache_hits_within_a_view_end_and_a_new_fact_invalidates_it(
        tmp_path: Path, ruleset: Ruleset, actions: list[dict[str, Any]]) -> None:
    """A ticking clock does not defeat the answer cache (a past period's view end is fixed, the
    current one's moves by the second), and a write to the views is seen by the next request."""
    pipeline = Pipeline(tmp_path, ruleset)
    pipeline.feed(actions[:len(actions) // 2])
    ticks = iter(range(10**6))  # each reading of the clock 0.3 s after the previous one
    clock = lambda: NOW + timedelta(milliseconds=300 * next(ticks))  # noqa: E731
    source = StoreSource(ViewStore(views_url(pipeline.url)), None, check_every=0.0)
    try:
        app = create_app(source, ruleset, clock=clock)
        answers = app.state.answers
        with TestClient(app) as c:
            past = [c.get("/api/v1/agencies/H15/scorecard", params={"period": "2026-09"})
                    for _ in range(5)]  # 1.2 s of clock: E is still 2026-09-30 end of day
            assert {r.json()["view_end"] for r in past} == {"2026-09-30T23:59:59+07:00"}
            assert (answers.misses, answers.hits) == (1, 4)
            # October is the current month: E is the clock, to the second. Readings 5..9 are
            # 1.5, 1.8 | 2.1, 2.4, 2.7 s after NOW: two distinct seconds, two computations.
            now_ = [c.get("/api/v1/agencies/H15/scorecard", params={"period": "2026-10"}).json()
                    for _ in range(5)]
            assert [r["view_end"][17:19] for r in now_] == ["01", "01", "02", "02", "02"]
            assert (answers.misses, answers.hits) == (3, 7)
            pipeline.feed(later_actions(actions, 40))  # another writer records 40 dossiers
            same_e = {"period": "2026-10", "now": "2026-10-20T10:00:02+07:00"}
            fresh = c.get("/api/v1/agencies/H15/scorecard", params=same_e)
            assert fresh.json()["view_end"] == now_[-1]["view_end"]  # the same E as before,
            assert answers.misses == 4  # but a new version of the views: computed again
            assert on_time(fresh.json())["denominator"] == on_time(now_[-1])["denominator"] + 40
    finally:
        pipeline.close()
