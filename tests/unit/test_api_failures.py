"""What the API answers when a request fails on something that is not the user's mistake: a
dependency away (even when its error comes wrapped in another one) is 503 with Retry-After, a
bug is 500; both JSON with one sentence, never a plain-text page or a traceback."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from projections.api import create_app
from projections.ruleset import default_rulesets
from projections.source import StoreSource
from projections.store import ViewStore


class _Wrapped(RuntimeError):
    """An error of ours raised ``from`` a driver's error."""


def _failing() -> APIRouter:
    r = APIRouter()

    @r.get("/boom/database")
    def database() -> None:
        raise sqlite3.OperationalError("database is locked")

    @r.get("/boom/wrapped")
    def wrapped() -> None:
        try:
            raise sqlite3.OperationalError("unable to open database file")
        except sqlite3.OperationalError as e:
            raise _Wrapped("could not read the views") from e

    @r.get("/boom/bug")
    def bug() -> None:
        raise KeyError("no such thing")

    return r


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    views = ViewStore(f"sqlite:///{tmp_path / 'views.db'}")
    app = create_app(StoreSource(views), default_rulesets(()), extra=[_failing()])
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    views.close()


def test_a_database_away_is_503_with_retry_after(client: TestClient) -> None:
    """The driver's own error: 503, one sentence naming the database, Retry-After."""
    r = client.get("/boom/database")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert r.json() == {"error": "The database is unreachable right now; try again shortly."}


def test_a_database_error_wrapped_in_another_is_still_503(client: TestClient) -> None:
    """An error raised from a driver's error is an outage too, not a bug (a views query during
    a PostgreSQL restart once answered a plain 500)."""
    r = client.get("/boom/wrapped")
    assert r.status_code == 503
    assert r.headers["retry-after"] == "5"
    assert "database is unreachable" in r.json()["error"]


def test_a_bug_is_500_json_with_one_sentence(client: TestClient) -> None:
    """Anything else: 500, JSON with one sentence, no traceback in the answer."""
    r = client.get("/boom/bug")
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body == {"error": "The server failed on this request; the error is in its log."}
    assert "Traceback" not in r.text and "KeyError" not in r.text
