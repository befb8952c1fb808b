"""No poison pill (issue 10 item 2): a message the store cannot take becomes a dead letter with a
reason and its partition goes on, on PostgreSQL and SQLite.

Two kinds of poison: what the schema now refuses before the store (NUL in the idempotency key, the
subject id or an agency id; times past the date arithmetic), and a failure only the store detects,
made real here by a trigger that refuses one dossier's facts row with a data exception, as
PostgreSQL refuses a NUL. Each batch is: good action, poison, good action — the good ones must be
recorded, the poison dead-lettered, and the stored position must reach the last offset.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import psycopg
import pytest
from fastapi.testclient import TestClient
from kafka import TopicPartition

from engine.app import Message
from engine.relay import event_message
from kernel.metrics import METRICS
from kernel.settings import EVENTS_TOPIC
from motcua.pipeline import engine_at
from projections.api import create_app
from projections.ruleset import load_ruleset
from projections.runner import ProjectionLoop
from projections.source import LiveSource
from projections.store import ViewStore, views_url

pytestmark = pytest.mark.postgres

TOPIC = "motcua.actions"
LOG = "log-1"
AT = "2026-10-05T08:00:00+07:00"
DUE = "2026-10-12T17:00:00+07:00"


def received(action_id: str, dossier_id: str, agency_id: str = "H15.15",
             at: str = AT, due: str = DUE) -> bytes:
    return orjson.dumps({
        "schema": "motcua.action/1", "action_id": action_id, "source": "igate",
        "type": "received", "occurred_at": at, "dossier_id": dossier_id,
        "data": {"agency_id": agency_id, "procedure_id": "1.1", "channel": "online",
                 "due_at": due}})


def batch(poison: bytes) -> list[Message]:
    return [Message(TOPIC, 0, i, raw) for i, raw in
            enumerate([received("ok-1", "D-1"), poison, received("ok-2", "D-2")])]


def dead_letters(engine: Any) -> list[dict[str, Any]]:
    return engine.store.dead_letters_after(0, 100)  # type: ignore[no-any-return]


@pytest.fixture(params=["postgres", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'm.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.mark.parametrize(("poison", "reason", "field"), [
    (received("a\x00b", "D-9"), "invalid_field", "action_id"),
    (received("p-1", "D\x009"), "invalid_field", "dossier_id"),
    (received("p-2", "D-9", agency_id="H\x0015"), "invalid_field", "data.agency_id"),
    (received("p-3", "D-9", at="9999-12-31T23:00:00-07:00", due="9999-12-31T23:59:00-07:00"),
     "invalid_time", "occurred_at"),
    (received("p-4", "D-9", at="0001-01-01T00:00:00+07:00", due="0001-01-01T01:00:00+07:00"),
     "invalid_time", "occurred_at"),
])
def test_an_action_the_store_cannot_hold_is_dead_lettered_and_the_partition_goes_on(
        url: str, poison: bytes, reason: str, field: str) -> None:
    """NUL in action_id, dossier_id or data.agency_id, or a year 9999/0001 time: one dead
    letter naming the field, both good actions recorded, the position at the last offset."""
    engine = engine_at(url)
    try:
        counts = engine.process(LOG, batch(poison))
        assert counts["accepted"] == 2 and counts[f"rejected:{reason}"] == 1
        [dl] = dead_letters(engine)
        assert (dl["off"], dl["reason"], dl["field"]) == (1, reason, field)
        assert bytes(dl["raw"]) == poison
        assert engine.position(LOG, TOPIC, 0) == 2
        assert engine.history("dossier", "D-1") and engine.history("dossier", "D-2")
    finally:
        engine.close()


def _poison_trigger(url: str) -> None:
    """Make the store itself refuse the facts row of dossier D-POISON (a data exception)."""
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as c:
            c.execute("CREATE TRIGGER poison BEFORE INSERT ON motcua_facts "
                      "WHEN NEW.sid = 'D-POISON' BEGIN SELECT RAISE(ABORT, 'poison'); END")
        return
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN "
                  "IF NEW.sid = 'D-POISON' THEN RAISE EXCEPTION 'cannot store %', NEW.sid "
                  "USING ERRCODE = '22000'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql")
        c.execute("CREATE TRIGGER poison BEFORE INSERT ON motcua_facts FOR EACH ROW "
                  "EXECUTE FUNCTION poison()")


def test_a_failure_only_the_store_detects_quarantines_that_message_alone(url: str) -> None:
    """The batch is split until the failing message is found: it becomes an ``unstorable``
    dead letter (a repeated race on SQLite, a data exception on PostgreSQL) and every other
    message of the batch is recorded once."""
    engine = engine_at(url)
    try:
        _poison_trigger(url)
        messages = [Message(TOPIC, 0, i, received(f"a-{i}", f"D-{i}")) for i in range(9)]
        messages[5] = Message(TOPIC, 0, 5, received("a-5", "D-POISON"))
        # SQLite reports RAISE(ABORT) as a constraint failure, which is a race until it repeats:
        # the runner then asks for isolation (REDO_LIMIT); PostgreSQL's data exception is not.
        counts = engine.process(LOG, messages, isolate=url.startswith("sqlite"))
        assert counts["accepted"] == 8 and counts["rejected:unstorable"] == 1
        [dl] = dead_letters(engine)
        assert (dl["off"], dl["reason"], dl["akey"]) == (5, "unstorable", None)
        assert "store cannot record" in dl["message"]
        assert engine.position(LOG, TOPIC, 0) == 8
        assert engine.history("dossier", "D-POISON") is None
        assert all(engine.history("dossier", f"D-{i}") for i in range(9) if i != 5)
        # The next batch goes on from there.
        more = engine.process(LOG, [Message(TOPIC, 0, 9, received("a-9", "D-9"))])
        assert more["accepted"] == 1 and engine.position(LOG, TOPIC, 0) == 9
    finally:
        engine.close()


# ----- the projection ------------------------------------------------------------------------


class Record(NamedTuple):
    """The two fields of a Kafka consumer record that ``ProjectionLoop.apply`` reads."""

    value: bytes
    offset: int


def real_events(url: str, n: int) -> list[dict[str, Any]]:
    """The motcua.events values of ``n`` received dossiers, as the relay publishes them."""
    engine = engine_at(url)
    try:
        engine.process(LOG, [Message(TOPIC, 0, i, received(f"e-{i}", f"E-{i}"))
                             for i in range(n)])
        return [event_message(row)[1] for row in engine.store.read_facts(1, 100)]
    finally:
        engine.close()


def test_an_event_the_projection_cannot_fold_or_store_is_quarantined_and_shown(
        url: str) -> None:
    """Between good events: one whose facts cannot be folded, and (PostgreSQL) one whose agency
    holds a NUL the views cannot store. Each is stepped over, recorded and counted; the good
    ones are folded; the position passes them; /healthz says degraded; a restart keeps all."""
    good = real_events(url, 3)
    unfoldable = {**good[0], "pos": 0, "sid": "BAD", "facts": 5}  # pos set below
    unstorable = {**good[0], "sid": "NUL", "facts": ["H\x0015", *good[0]["facts"][1:]]}
    stream = [good[0], unfoldable, good[1], unstorable, good[2]]
    for pos, ev in enumerate(stream, 1):
        ev["pos"] = pos
    store = ViewStore(views_url(url))
    loop = ProjectionLoop(store, "127.0.0.1:9", None)  # never connects: apply only
    loop.take([0])
    before = METRICS.events_quarantined._value.get()
    try:
        loop.apply({TopicPartition(EVENTS_TOPIC, 0): [
            Record(orjson.dumps(ev), i) for i, ev in enumerate(stream)]})
        expected = 2 if url.startswith("postgresql") else 1  # SQLite text holds a NUL
        assert loop.quarantined() == expected
        assert METRICS.events_quarantined._value.get() - before == expected
        assert loop.applied(0) == 5
        assert all(store.subject_facts("dossiers", f"E-{i}") for i in range(3))
        assert store.subject_facts("dossiers", "BAD") is None
        with TestClient(create_app(LiveSource(loop, store), load_ruleset("portal-2026"))) as c:
            health = c.get("/healthz").json()
            assert (health["status"], health["quarantined_events"]) == ("degraded", expected)
        # What the store kept: a new process sees the same positions and quarantine.
        again = ViewStore(views_url(url))
        try:
            positions = again.positions()
            assert positions["pos|0"] == 5
            assert positions["quarantined|0|1"] == 2
        finally:
            again.close()
    finally:
        store.close()
