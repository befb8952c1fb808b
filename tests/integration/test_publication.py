"""Publications on SQLite and on PostgreSQL: frozen as recorded at T, reproduced after more facts
and a full replay, versioned, immutable, and caught when edited in the database.

The engine records a simulated province's first half; T is taken; the live views are rebuilt
(what motcua showed at T) and the month is published as recorded at T. Then the second half is
recorded and the views are replayed from scratch: the live figures move, and ``verify`` still
reproduces the publication exactly. Edits made behind motcua's back (the triggers dropped first)
are named by ``verify``.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from engine.app import Engine, Message
from motcua.pipeline import engine_at
from producers.simulator import SimConfig, generate
from projections.delays import delays
from projections.periods import parse_period
from projections.publication_store import PublicationStore
from projections.publishing import publish, verify
from projections.replay import Replayer
from projections.ruleset import load_ruleset
from projections.store import ViewStore, views_url
from projections.views import Tree, scorecard

RULESET = load_ruleset("portal-2026")
PERIOD = parse_period("2026-05")
PAST = datetime(2025, 1, 1, tzinfo=UTC)  # the deadline watcher's clock: before every due time


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'motcua.db'}"
    return str(request.getfixturevalue("pg_url"))


@dataclass
class World:
    url: str
    engine: Engine
    views: ViewStore
    replayer: Replayer
    pubs: PublicationStore
    offset: int = 0

    def record(self, lines: list[bytes]) -> None:
        for i in range(0, len(lines), 500):
            chunk = lines[i:i + 500]
            self.engine.process("test-log", [Message("motcua.actions", 0, self.offset + j, raw)
                                              for j, raw in enumerate(chunk)])
            self.offset += len(chunk)

    def replay(self) -> None:
        """A full rebuild of the live views from the event store, swapped in."""
        shadow, counters, done = self.replayer.rebuild(resume=False)
        self.replayer.swap(shadow, counters, done)
        shadow.close()

    def verify(self, version: int) -> list[str]:
        pub = self.pubs.get(PERIOD.label, version)
        assert pub is not None
        return list(verify(self.replayer, self.pubs, pub, lambda name: RULESET).differences)


@pytest.fixture
def world(database_url: str) -> Iterator[World]:
    engine = engine_at(database_url, hold_seconds=3600, clock=lambda: PAST)
    views = ViewStore(views_url(database_url))
    w = World(database_url, engine, views, Replayer(engine.store, views),
              PublicationStore(views_url(database_url)))
    yield w
    w.pubs.close()
    views.close()
    engine.close()


def province() -> list[bytes]:
    return [orjson.dumps(a) for a in generate(SimConfig(
        agencies=4, dossiers=300, seed=5, start=date(2026, 4, 1), days=120,
        feedback_per_dossier=0.05))]


def instant_between() -> datetime:
    """Now, once the clock has moved past the events recorded so far (and before the next)."""
    t = datetime.now(UTC)
    while datetime.now(UTC) <= t:
        time.sleep(0.0005)
    return t


def _tables(world: World) -> set[str]:
    with world.views.tx() as c:
        if world.views.is_pg:
            c.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        else:
            c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {r[0] for r in c.fetchall()}


def test_a_publication_is_reproduced_after_more_facts_and_a_full_replay(world: World) -> None:
    """Published at T, the content is what the views showed at T; after the second half and a
    replay from scratch the live figures differ, yet verify recomputes the publication
    identically; publishing again adds version 2 and keeps version 1 as it was."""
    lines = province()
    half = len(lines) // 2
    world.record(lines[:half])
    t = instant_between()
    world.replay()
    live = world.views.load()
    shown_at_t = {a: scorecard(live, RULESET, a, PERIOD, t) for a in Tree.build(live).parent}
    delays_at_t = [delays(live, world.views.unfinished_late_rows, RULESET, "H15", PERIOD, t, by)
                   for by in ("unit", "official")]

    v1 = publish(world.replayer, world.pubs, PERIOD, t, RULESET)
    content = orjson.loads(v1.content)
    assert v1.version == 1
    assert {c["agency_id"]: c for c in content["scorecards"]} == shown_at_t
    assert content["delays"] == delays_at_t  # who made them late, official rows included
    assert any(doc["rows"] for doc in content["delays"]), "the simulated month has delays"
    assert v1.sha256 == hashlib.sha256(v1.content).hexdigest()
    assert {f.kind for f in v1.files} == {"csv", "xlsx", "pdf"}
    assert not any(n.startswith("pub_") for n in _tables(world)), "scratch tables left behind"

    world.record(lines[half:])
    world.replay()
    now_live = scorecard(world.views.load(), RULESET, "H15", PERIOD, t)
    assert now_live != shown_at_t["H15"], "the second half must change the month's figures"
    assert world.verify(1) == []

    v2 = publish(world.replayer, world.pubs, PERIOD, instant_between(), RULESET)
    assert v2.version == 2 and v2.sha256 != v1.sha256
    assert [s["version"] for s in world.pubs.summaries(PERIOD.label)] == [2, 1]
    again = world.pubs.get(PERIOD.label, 1)
    assert again is not None and again.content == v1.content
    assert world.verify(1) == [] and world.verify(2) == []


def _unguard(world: World) -> Any:
    """A raw connection to the publications' database with the immutability triggers dropped
    (what someone editing the rows by hand would do)."""
    if world.views.is_pg:
        import psycopg

        conn: Any = psycopg.connect(world.url, autocommit=True)
        for t in ("publications", "publication_files"):
            conn.execute(f"DROP TRIGGER IF EXISTS {t}_immutable ON {t}")
        return conn
    conn = sqlite3.connect(world.views.url.removeprefix("sqlite:///"), isolation_level=None)
    for t in ("publications", "publication_files"):
        for op in ("update", "delete"):
            conn.execute(f"DROP TRIGGER IF EXISTS {t}_no_{op}")
    return conn


def _sql(world: World, sql: str) -> str:
    return sql.replace("?", "%s") if world.views.is_pg else sql


def test_stored_publications_refuse_to_be_changed_or_deleted(world: World) -> None:
    """The rows are guarded: an UPDATE or a DELETE of a publication or of its files fails."""
    world.record(province()[:400])
    publish(world.replayer, world.pubs, PERIOD, instant_between(), RULESET)
    for sql in ("UPDATE publications SET sha256 = 'x'", "DELETE FROM publications",
                "UPDATE publication_files SET body = ?", "DELETE FROM publication_files"):
        with pytest.raises(Exception, match="never changed"), world.views.tx() as c:
            c.execute(_sql(world, sql), (b"x",) if "?" in sql else ())


def test_verify_names_content_and_files_edited_in_the_database(world: World) -> None:
    """Version 1's content edited (a numerator + 1): its hash no longer matches and the value
    is named. Version 2's content edited with a hash to match: the recomputation names the
    value. A file of version 2 overwritten: named by its hash."""
    world.record(province()[:1000])
    t = instant_between()
    publish(world.replayer, world.pubs, PERIOD, t, RULESET)
    publish(world.replayer, world.pubs, PERIOD, t, RULESET)
    v1 = world.pubs.get(PERIOD.label, 1)
    assert v1 is not None
    cards = re.compile(rb'"scorecards":\[.*?\{"agency_id":"H15\.1".*?"code":"ON_TIME".*?'
                       rb'"numerator":(\d+)')
    match = cards.search(v1.content)
    assert match is not None
    n = int(match.group(1))
    edited = v1.content[:match.start(1)] + str(n + 1).encode() + v1.content[match.end(1):]
    conn = _unguard(world)
    try:
        conn.execute(_sql(world, "UPDATE publications SET content = ? WHERE version = 1"),
                     (edited,))
        conn.execute(_sql(world, "UPDATE publications SET content = ?, sha256 = ? WHERE "
                                 "version = 2"), (edited, hashlib.sha256(edited).hexdigest()))
        conn.execute(_sql(world, "UPDATE publication_files SET body = ? WHERE version = 2 AND "
                                 "kind = 'pdf'"), (b"%PDF-1.4 not the published file",))
    finally:
        conn.close()
    value = (f"content.scorecards[H15.1].groups[progress].criteria[ON_TIME].numerator: "
             f"published {n + 1}, recomputed {n}")
    first = world.verify(1)
    assert len(first) == 2
    assert "the content was changed after publication" in first[0]
    assert first[1] == value
    second = world.verify(2)
    assert len(second) == 2
    assert "motcua-2026-05-v2.pdf" in second[0] and "file was changed" in second[0]
    assert second[1] == value


def test_http_serves_the_publications_the_legacy_report_and_reconciliation(tmp_path: Path) -> None:
    """Over HTTP: the list and a period's latest or named version (content as stored), its
    page and its files; a bad period is a 400, an unknown one a 404; the legacy report is the
    projection's own; a bad portal export is a 400 naming its problem, a good one is compared."""
    from fastapi.testclient import TestClient

    from projections.api import create_app
    from projections.legacy import legacy_report
    from projections.source import StoreSource

    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    engine = engine_at(url, hold_seconds=3600, clock=lambda: PAST)
    views = ViewStore(views_url(url))
    w = World(url, engine, views, Replayer(engine.store, views), PublicationStore(views.url))
    try:
        w.record(province()[:1200])
        w.replay()
        v1 = publish(w.replayer, w.pubs, PERIOD, instant_between(), RULESET)
        v2 = publish(w.replayer, w.pubs, PERIOD, instant_between(), RULESET)
        source = StoreSource(ViewStore(views.url), engine)
        with TestClient(create_app(source, RULESET)) as client:
            listed = client.get("/api/v1/reports").json()["publications"]
            assert [(p["period"], p["version"]) for p in listed] == [("2026-05", 2),
                                                                     ("2026-05", 1)]
            latest = client.get("/api/v1/reports/2026-05").json()
            assert (latest["version"], latest["sha256"]) == (2, v2.sha256)
            assert latest["content"] == orjson.loads(v2.content)
            assert [v["version"] for v in latest["versions"]] == [2, 1]
            first = client.get("/api/v1/reports/2026-05", params={"version": 1}).json()
            assert first["content"] == orjson.loads(v1.content)
            pdf = next(f for f in first["files"] if f["kind"] == "pdf")
            got = client.get(pdf["url"])
            assert got.status_code == 200 and got.headers["content-type"] == "application/pdf"
            assert hashlib.sha256(got.content).hexdigest() == pdf["sha256"]
            assert client.get("/reports/2026-05").text.startswith("<!doctype html>")
            for path, status, says in (
                    ("/api/v1/reports/2026-13", 400, "'2026-13'"),
                    ("/api/v1/reports/2026-04", 404, "no publication of period 2026-04"),
                    ("/api/v1/reports/2026-05?version=7", 404, "version 7 of period 2026-05"),
                    # Past what a store holds (a 64-bit integer): not there, not a 500.
                    (f"/api/v1/reports/2026-05?version={2**63}", 404, f"version {2**63} "),
                    (f"/reports/2026-05?version={10**23}", 404, f"version {10**23} "),
                    (f"/reports/2026-05/v{2**64}/x.pdf", 404, "no file 'x.pdf'"),
                    ("/reports/2026-04", 404, "no publication of period 2026-04"),
                    ("/reports/2026-05/v1/other.pdf", 404, "no file 'other.pdf'")):
                r = client.get(path)
                assert (r.status_code, says in r.json()["error"]) == (status, True), r.text

            now = "2026-12-31T12:00:00+07:00"
            legacy = client.get("/api/v1/agencies/H15/legacy-report",
                                params={"period": "2026-05", "now": now}).json()
            counters = views.load()
            assert legacy == legacy_report(views, Tree.build(counters), "H15", PERIOD,
                                           datetime.fromisoformat(now))
            assert client.get("/api/v1/agencies/H99/legacy-report").status_code == 404

            bad = client.post("/api/v1/reconcile", params={"period": "2026-05"},
                              content=b"unit_code,metric_code,numerator\nH15,ON_TIME,1\n")
            assert bad.status_code == 400
            assert "lacks the column denominator" in bad.json()["error"]
            card = next(c for c in latest["content"]["scorecards"] if c["agency_id"] == "H15")
            on_time = next(x for g in card["groups"] for x in g["criteria"]
                           if x["code"] == "ON_TIME")
            n = on_time["numerator"]
            body = f"unit_code,metric_code,numerator,denominator\nH15,ON_TIME,{n + 1},\n"
            r = client.post("/api/v1/reconcile", params={"period": "2026-05", "now": now},
                            content=body.encode())
            assert r.status_code == 200
            doc = r.json()
            assert doc["agree"] is False and doc["compared"] == 1
            assert doc["differences"] == [{"unit_code": "H15", "metric_code": "ON_TIME",
                                           "portal": [n + 1, None],
                                           "motcua": [n, on_time["denominator"]]}]
    finally:
        w.pubs.close()
        views.close()
        engine.close()
