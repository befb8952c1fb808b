"""The HTTP bridge on a bare FastAPI app, producing to the real bundled broker.

Each refusal is checked twice: the response, and that nothing new reached ``motcua.actions``.
The token store is checked on SQLite and on the real PostgreSQL server.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import SettingsFor
from fastapi import FastAPI
from fastapi.testclient import TestClient
from structlog.testing import capture_logs
from test_producer_client import consume_all

from kernel import kafka as K
from kernel.broker import BundledBroker
from kernel.metrics import REGISTRY
from kernel.settings import ACTIONS_TOPIC
from motcua.cli import main
from producers.bridge import PATH, BridgeLimits, make_bridge
from producers.errors import SourceExistsError, UnknownSourceError
from producers.tokens import TABLE, TokenStore

AT = "2026-10-05T08:14:00+07:00"


def received(
    source: str, dossier_id: str, agency_id: str = "H15.15", **extra: Any
) -> dict[str, Any]:
    return {"schema": "motcua.action/1", "action_id": f"a-{uuid.uuid4().hex[:12]}",
            "source": source, "type": "received", "occurred_at": AT, "dossier_id": dossier_id,
            "data": {"agency_id": agency_id, "procedure_id": "1.001612", "channel": "online"},
            **extra}  # fmt: skip


def follow_up(source: str, dossier_id: str, type_: str = "resolved") -> dict[str, Any]:
    return {"schema": "motcua.action/1", "action_id": f"a-{uuid.uuid4().hex[:12]}",
            "source": source, "type": type_, "occurred_at": AT, "dossier_id": dossier_id,
            "data": {"outcome": "approved"}}  # fmt: skip


@dataclass
class Env:
    client: TestClient
    store: TokenStore
    source: str
    token: str
    bootstrap: str
    db_path: Path

    def post(self, body: Any, token: str | None = None, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return self.client.post(PATH, content=orjson.dumps(body), headers=headers, **kw)

    def offsets(self) -> dict[int, int]:
        return K.end_offsets(self.bootstrap, ACTIONS_TOPIC)


def make_env(
    broker: BundledBroker, settings_for: SettingsFor, limits: BridgeLimits,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Env]:
    settings = settings_for(bootstrap=broker.bootstrap)
    store = TokenStore(settings.database_url)
    source = f"igate-{uuid.uuid4().hex[:8]}"
    token = store.add(source, "H15,G09.2")
    app = FastAPI()
    app.include_router(make_bridge(settings, broker.bootstrap, limits, clock=clock))
    try:
        with TestClient(app) as client:
            yield Env(client, store, source, token, broker.bootstrap, settings.sqlite_path)
    finally:
        store.close()


@pytest.fixture
def env(broker: BundledBroker, settings_for: SettingsFor) -> Iterator[Env]:
    """The bridge with a 4 KiB body limit and a generous rate, and a token scoped to H15."""
    yield from make_env(broker, settings_for, BridgeLimits(max_body_bytes=4096, rate=1000,
                                                           burst=1000))


def refused(env: Env, before: dict[int, int], response: Any, status: int, reason: str) -> Any:
    """Assert the refusal and that nothing new is on the topic; returns the JSON body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["reason"] == reason and body["error"]
    assert env.offsets() == before, "a refused request reached Kafka"
    return body


# ----- accepted ------------------------------------------------------------------------------


def test_a_good_action_is_forwarded_exactly_once_keyed_by_its_dossier(env: Env) -> None:
    """202 with the action id, and the action on the topic once, keyed by its dossier id."""
    before = env.offsets()
    action = received(env.source, "H15.15-0001")
    response = env.post(action)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": [action["action_id"]]}
    new = consume_all(env.bootstrap, before)
    assert [(r.key, orjson.loads(r.value)) for r in new] == [(b"H15.15-0001", action)]


def test_an_array_is_forwarded_whole_and_in_order(env: Env) -> None:
    """An array's actions are all forwarded, one dossier's in the order given."""
    before = env.offsets()
    actions = [received(env.source, "H15.15-0002"),
               follow_up(env.source, "H15.15-0002", "withdrawn"),
               received(env.source, "G09.2.1-0001", agency_id="G09.2.1")]  # fmt: skip
    response = env.post(actions)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == [a["action_id"] for a in actions]
    new = consume_all(env.bootstrap, before)
    ids = [orjson.loads(r.value)["action_id"] for r in sorted(new, key=lambda r: r.offset)
           if r.key == b"H15.15-0002"]  # fmt: skip
    assert ids == [actions[0]["action_id"], actions[1]["action_id"]] and len(new) == 3


def test_follow_up_actions_need_no_agency_in_scope(env: Env) -> None:
    """A follow-up on a dossier no store here has recorded is forwarded (this bridge has no
    ``subject_agencies``; the engine checks the dossier's agency when it applies the action)."""
    response = env.post(follow_up(env.source, "H16.2-0001"))
    assert response.status_code == 202, response.text


# ----- refused -------------------------------------------------------------------------------


def test_a_bad_action_refuses_the_whole_request_with_its_reason(env: Env) -> None:
    """One invalid action in an array: 400 naming it, and none of the array is sent."""
    before = env.offsets()
    bad = received(env.source, "H15.15-0003")
    del bad["data"]["agency_id"]
    body = refused(env, before, env.post([received(env.source, "H15.15-0004"), bad]), 400,
                   "missing_field")  # fmt: skip
    assert (body["index"], body["field"]) == (1, "data.agency_id")
    assert "data.agency_id" in body["error"]
    body = refused(env, before, env.client.post(PATH, content=b"{not json", headers={
        "Authorization": f"Bearer {env.token}"}), 400, "malformed_json")  # fmt: skip
    assert body["index"] is None
    # An integer past 64 bits, which orjson would read as a float: refused as sent.
    big = received(env.source, "H15.15-0005")
    big["data"]["extra"] = 0
    text = orjson.dumps([received(env.source, "H15.15-0006"), big]).replace(
        b'"extra":0', b'"extra":1180591620717411303424')
    body = refused(env, before, env.client.post(PATH, content=text, headers={
        "Authorization": f"Bearer {env.token}"}), 400, "invalid_field")  # fmt: skip
    assert (body["index"], body["field"]) == (1, "data.extra")
    # A key given twice (orjson keeps the last value, which alone is a valid action).
    text = orjson.dumps([received(env.source, "H15.15-0007")]).replace(
        b'"channel":"online"', b'"channel":"fax","channel":"online"')
    body = refused(env, before, env.client.post(PATH, content=text, headers={
        "Authorization": f"Bearer {env.token}"}), 400, "malformed_json")  # fmt: skip
    assert "the key 'channel' twice" in body["error"]


def test_a_missing_or_wrong_token_is_401(env: Env) -> None:
    """No header, another scheme, garbage, or a wrong secret for a real token id: 401."""
    before = env.offsets()
    action = received(env.source, "H15.15-0005")
    no_header = env.client.post(PATH, content=orjson.dumps(action))
    refused(env, before, no_header, 401, "missing_token")
    assert no_header.headers["WWW-Authenticate"].startswith("Bearer")
    basic = env.client.post(PATH, content=orjson.dumps(action),
                            headers={"Authorization": "Basic dXNlcjpwYXNz"})  # fmt: skip
    refused(env, before, basic, 401, "missing_token")
    token_id = env.token.split(".")[1]
    for wrong in ("nonsense", f"mct1.{token_id}.not-the-secret", env.token + "x"):
        refused(env, before, env.post(action, token=wrong), 401, "invalid_token")


def test_an_action_for_an_agency_outside_the_scope_is_403(env: Env) -> None:
    """Reception, registration (agency or parent) and publication outside the scope: 403."""
    before = env.offsets()
    cases = [
        (received(env.source, "H16.1-0001", agency_id="H16.1"), "data.agency_id"),
        (received(env.source, "H150-0001", agency_id="H150"), "data.agency_id"),  # not H15.*
        ({"schema": "motcua.action/1", "action_id": "r1", "source": env.source,
          "type": "agency_registered", "occurred_at": AT, "agency_id": "H16.4",
          "data": {"name": "Sở X", "level": "department", "parent_id": "H16"}}, "agency_id"),
        ({"schema": "motcua.action/1", "action_id": "r2", "source": env.source,
          "type": "agency_registered", "occurred_at": AT, "agency_id": "H15.40",
          "data": {"name": "Sở Y", "level": "department", "parent_id": "H16"}},
         "data.parent_id"),
        ({"schema": "motcua.action/1", "action_id": "p1", "source": env.source,
          "type": "procedure_published", "occurred_at": AT, "procedure_id": "1.000001",
          "data": {"authority_id": "H16", "authority_level": "province",
                   "decision_date": "2026-01-05", "legal_basis_effective_date": "2026-01-01",
                   "implementing_agency_ids": ["H15.1"],
                   "processing_time": {"value": 5, "unit": "working_days"}}},
         "data.authority_id"),
        ({"schema": "motcua.action/1", "action_id": "f1", "source": env.source,
          "type": "feedback_received", "occurred_at": AT, "feedback_id": "F-1",
          "data": {"agency_id": "H16.2", "classification": "other"}}, "data.agency_id"),
    ]  # fmt: skip
    for action, field in cases:
        body = refused(env, before, env.post([received(env.source, "H15.1-0001"), action]), 403,
                       "agency_out_of_scope")  # fmt: skip
        assert (body["index"], body["field"]) == (1, field), body


def test_an_action_of_another_source_is_403(env: Env) -> None:
    """A token speaks for its own source only."""
    before = env.offsets()
    body = refused(env, before, env.post(received("someone-else", "H15.15-0006")), 403,
                   "wrong_source")  # fmt: skip
    assert (body["index"], body["field"]) == (0, "source")


def test_an_oversized_body_is_413_declared_or_streamed(env: Env) -> None:
    """A body over the limit is refused by its Content-Length, or while it streams in."""
    before = env.offsets()
    action = received(env.source, "H15.15-0007", padding="x" * 5000)
    refused(env, before, env.post(action), 413, "body_too_large")
    body = orjson.dumps(action)
    chunked = env.client.post(PATH, content=iter([body[:3000], body[3000:]]),
                              headers={"Authorization": f"Bearer {env.token}"})  # fmt: skip
    assert "content-length" not in chunked.request.headers
    refused(env, before, chunked, 413, "body_too_large")


def test_a_flood_is_429_with_retry_after(broker: BundledBroker, settings_for: SettingsFor) -> None:
    """Past the burst, a source's requests are refused with Retry-After until it refills."""
    now = [1000.0]  # the limiter's clock, moved by the test (monotonic seconds)
    for env in make_env(broker, settings_for, BridgeLimits(rate=0.5, burst=3),
                        clock=lambda: now[0]):
        statuses = [env.post(follow_up(env.source, f"H15.1-{i}")).status_code for i in range(3)]
        assert statuses == [202, 202, 202]
        before = env.offsets()
        response = env.post(follow_up(env.source, "H15.1-9"))
        refused(env, before, response, 429, "rate_limited")
        # The bucket is empty and refills at 0.5 a second: one request's token takes 2 s.
        assert response.headers["Retry-After"] == "2"
        now[0] += 1.9
        refused(env, before, env.post(follow_up(env.source, "H15.1-9")), 429, "rate_limited")
        now[0] += 2.0  # 0.95 + 1.0 tokens: one request goes, the next waits again
        assert env.post(follow_up(env.source, "H15.1-9")).status_code == 202
        after = env.offsets()
        refused(env, after, env.post(follow_up(env.source, "H15.1-10")), 429, "rate_limited")


def test_a_rotated_token_stops_working_and_the_new_one_works(env: Env) -> None:
    """After rotation the old token gets 401 and the new one 202; after revocation, 401."""
    before = env.offsets()
    new = env.store.rotate(env.source)
    refused(env, before, env.post(follow_up(env.source, "H15.1-0010"), token=env.token), 401,
            "invalid_token")  # fmt: skip
    assert env.post(follow_up(env.source, "H15.1-0010"), token=new).status_code == 202
    env.store.revoke(env.source)
    before = env.offsets()
    refused(env, before, env.post(follow_up(env.source, "H15.1-0011"), token=new), 401,
            "invalid_token")  # fmt: skip


def test_tokens_are_stored_hashed_with_a_salt(env: Env) -> None:
    """The table holds the token id, a salt and sha256(salt || secret), never the secret."""
    _, token_id, secret = env.token.split(".")
    with sqlite3.connect(env.db_path) as conn:
        rows = conn.execute(f"SELECT * FROM {TABLE} WHERE source = ?", (env.source,)).fetchall()
        columns = [d[0] for d in conn.execute(f"SELECT * FROM {TABLE}").description]
    assert len(rows) == 1
    row = dict(zip(columns, rows[0], strict=True))
    assert not any(secret in str(v) or env.token in str(v) for v in row.values())
    assert row["token_id"] == token_id
    assert row["token_hash"] == hashlib.sha256(bytes.fromhex(row["salt"]) + secret.encode()
                                               ).hexdigest()  # fmt: skip


def test_every_refusal_is_logged_with_its_source_and_counted(env: Env) -> None:
    """A refusal leaves a bridge_refused log line naming the source and a counted metric."""

    def count(status: str) -> float:
        return REGISTRY.get_sample_value("motcua_bridge_refusals_total", {"status": status}) or 0

    before = (count("403"), count("401"))
    with capture_logs() as logs:
        env.post(received("someone-else", "H15.15-0008"))
        env.post(received(env.source, "H15.15-0008"), token="nonsense")
    assert (count("403"), count("401")) == (before[0] + 1, before[1] + 1)
    refusals = [e for e in logs if e["event"] == "bridge_refused"]
    assert [(e["status"], e["source"], e["reason"]) for e in refusals] == [
        (403, env.source, "wrong_source"), (401, None, "invalid_token")]


def test_the_router_adds_only_the_post_endpoint(env: Env) -> None:
    """The bridge guards POST /api/v1/actions only; read endpoints are not its business."""
    doc = env.client.get("/openapi.json").json()
    assert {p: sorted(ops) for p, ops in doc["paths"].items()} == {PATH: ["post"]}
    assert set(doc["paths"][PATH]["post"]["responses"]) >= {"202", "400", "401", "403", "413",
                                                            "429"}
    assert env.client.get(PATH).status_code == 405


# ----- the token store, on SQLite and PostgreSQL ---------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'motcua.db'}"
    return str(request.getfixturevalue("pg_url"))


def test_the_token_store_adds_verifies_rotates_and_revokes(database_url: str) -> None:
    """The same store behaviour on both databases, scope prefixes included."""
    store = TokenStore(database_url)
    try:
        token = store.add("igate", "H15, H15.3,H15")
        with pytest.raises(SourceExistsError):
            store.add("igate", "H16")
        grant = store.verify(token)
        assert grant is not None and grant.source == "igate" and grant.agencies == ("H15",
                                                                                   "H15.3")
        assert grant.covers("H15") and grant.covers("H15.3.7") and not grant.covers("H150")
        assert store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        new = store.rotate("igate")
        assert store.verify(token) is None and store.verify(new) is not None
        assert [g.source for g in store.grants()] == ["igate"]
        store.revoke("igate")
        assert store.verify(new) is None and store.grants() == []
        with pytest.raises(UnknownSourceError):
            store.rotate("igate")
    finally:
        store.close()


def test_motcua_tokens_prints_the_token_once_and_lists_without_it(
    motcua_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`motcua tokens add` prints a working token; `list` shows the scope but no secret."""
    monkeypatch.setenv("MOTCUA_HOME", str(motcua_home))
    monkeypatch.delenv("MOTCUA_DATABASE_URL", raising=False)
    assert main(["tokens", "add", "daklak-igate", "--agencies", "H15,H15.3"]) == 0
    token = capsys.readouterr().out.strip()
    store = TokenStore(f"sqlite:///{motcua_home / 'motcua.db'}")
    try:
        grant = store.verify(token)
    finally:
        store.close()
    assert grant is not None and grant.agencies == ("H15", "H15.3")
    assert main(["tokens", "list", "--json"]) == 0
    listed = orjson.loads(capsys.readouterr().out)
    assert [(g["source"], g["agencies"]) for g in listed] == [("daklak-igate", ["H15", "H15.3"])]
    assert token.split(".")[2] not in orjson.dumps(listed).decode()
    assert main(["tokens", "add", "daklak-igate", "--agencies", "H15"]) == 2
    assert "rotate" in capsys.readouterr().err
