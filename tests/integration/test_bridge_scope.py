"""The bridge scopes every agency an action refers to, the recorded subject's included.

The bridge produces to the real bundled broker; the recorded subjects come from a real engine
on the same SQLite store (``Engine.subject_agencies``, what ``motcua serve`` injects). Each
refusal is checked twice: the response, and that nothing new reached ``motcua.actions``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from conftest import SettingsFor
from fastapi import FastAPI
from fastapi.testclient import TestClient
from scoped import P16, act, agency, feedback, procedure, received

from engine.app import Engine, Message
from kernel import kafka as K
from kernel.broker import BundledBroker
from kernel.grants import GrantBook
from kernel.settings import ACTIONS_TOPIC
from motcua.pipeline import engine_at
from producers.bridge import PATH, BridgeLimits, make_bridge
from producers.tokens import TokenStore

SOURCE = "h15-igate"


@dataclass
class Env:
    client: TestClient
    token: str
    read_token: str
    bootstrap: str

    def post(self, body: Any, token: str | None = None) -> Any:
        return self.client.post(PATH, content=orjson.dumps(body),
                                headers={"Authorization": f"Bearer {token or self.token}"})

    def offsets(self) -> dict[int, int]:
        return K.end_offsets(self.bootstrap, ACTIONS_TOPIC)


def record(engine: Engine, actions: list[dict[str, Any]]) -> None:
    counts = engine.process("setup", [Message(ACTIONS_TOPIC, 0, i, orjson.dumps(a))
                                      for i, a in enumerate(actions)])
    assert counts == {"accepted": len(actions)}, counts


@pytest.fixture
def env(broker: BundledBroker, settings_for: SettingsFor) -> Iterator[Env]:
    """H16's procedure P16 (carried out by H16.1) and dossier H16.1-0001, H15's dossier
    H15.1-0001, recorded by the engine; a write token and a read token scoped to H15."""
    settings = settings_for(bootstrap=broker.bootstrap)
    store = TokenStore(settings.database_url)
    token = store.add(SOURCE, "H15")
    read_token = store.add("h15-inspectorate", "H15", read=True)
    store.close()
    engine = engine_at(settings.database_url)
    record(engine, [agency("catalog", "H16", None, "province"),
                    agency("catalog", "H16.1", "H16", "department"),
                    procedure("catalog", P16, "H16", ["H16.1"]),
                    received("h16-igate", "H16.1-0001", "H16.1", P16),
                    received(SOURCE, "H15.1-0001", "H15.1", P16)])
    app = FastAPI()
    app.include_router(make_bridge(settings, broker.bootstrap, BridgeLimits(rate=1000, burst=1000),
                                   subject_agencies=engine.subject_agencies))
    try:
        with TestClient(app) as client:
            yield Env(client, token, read_token, broker.bootstrap)
    finally:
        engine.close()


def test_actions_reaching_into_another_agency_are_403_and_nothing_is_sent(env: Env) -> None:
    """A procedure carried out by H16.1, re-publishing (or publicizing, repealing) H16's
    procedure, a follow-up on H16's dossier, feedback about it: 403 naming the field."""
    cases = [
        (procedure(SOURCE, "2.000099", "H15", ["H15.1", "H16.1"]),
         "data.implementing_agency_ids[1]", "'H16.1'"),
        (procedure(SOURCE, P16, "H15", ["H15.1"]), "procedure_id", "authority_id is 'H16'"),
        (act(SOURCE, "procedure_publicized", P16), "procedure_id", "'H16'"),
        (act(SOURCE, "procedure_repealed", P16, {"decision_date": "2026-10-01"}),
         "procedure_id", "'H16'"),
        (act(SOURCE, "resolved", "H16.1-0001", {"outcome": "approved"}), "dossier_id",
         "agency_id is 'H16.1'"),
        (feedback(SOURCE, "F-1", "H15.1", "H16.1-0001"), "data.dossier_id", "'H16.1'"),
    ]
    before = env.offsets()
    for action, field, named in cases:
        good = act(SOURCE, "digitized", "H15.1-0001", {"components": 1})
        response = env.post([good, action])
        assert response.status_code == 403, response.text
        body = response.json()
        assert (body["reason"], body["index"], body["field"]) == (
            "agency_out_of_scope", 1, field), body
        assert field in body["error"] and named in body["error"], body["error"]
        assert env.offsets() == before, "a refused request reached Kafka"


def test_the_same_actions_within_the_scope_are_202(env: Env) -> None:
    """In-scope variants: a procedure carried out by H15's units, a follow-up on H15's recorded
    dossier, feedback about it, a follow-up on a dossier not recorded yet (the engine checks it
    when it is applied)."""
    for action in (procedure(SOURCE, "2.000098", "H15", ["H15.1", "H15.2"]),
                   act(SOURCE, "resolved", "H15.1-0001", {"outcome": "approved"}),
                   feedback(SOURCE, "F-2", "H15.1", "H15.1-0001"),
                   act(SOURCE, "resolved", "H16.1-0404", {"outcome": "approved"})):
        response = env.post(action)
        assert response.status_code == 202, response.text


def test_a_read_token_cannot_post_actions(env: Env) -> None:
    """A read token is not a write token: 403 read_only_token, nothing sent."""
    before = env.offsets()
    response = env.post(received("h15-inspectorate", "H15.1-0002", "H15.1", P16),
                        token=env.read_token)
    assert response.status_code == 403, response.text
    assert response.json()["reason"] == "read_only_token"
    assert "read token" in response.json()["error"]
    assert env.offsets() == before


@pytest.mark.postgres
def test_the_grant_book_reads_postgresql_before_and_after_the_first_token(pg_url: str) -> None:
    """No table yet: no grants (the engine runs unscoped); then the scopes and read tokens are
    read back from the real server, and a new grant is seen once the cache's time has passed."""
    now = [0.0]
    book = GrantBook(pg_url, ttl=5.0, clock=lambda: now[0])
    store = TokenStore(pg_url)
    try:
        assert book.all() == [] and book.scope_of(SOURCE) is None
        store.add(SOURCE, "H15")
        read = store.add("h15-inspectorate", "H15", read=True)
        assert book.scope_of(SOURCE) is None  # cached for ttl seconds
        now[0] = 5.0
        grant = book.scope_of(SOURCE)
        assert grant is not None and grant.may_write("H15.1") and not grant.may_write("H16.1")
        reader = book.verify(read)
        assert reader is not None and reader.kind == "read" and not reader.may_write("H15")
    finally:
        store.close()
        book.close()
