"""Read tokens: issued and listed by ``motcua tokens``, checked by ``Ctx.read_grant`` for the
official-level endpoints (a small FastAPI app over the real token table in SQLite)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pipeline import Pipeline
from test_delays import END, P1_STEPS, catalog, dossier

from kernel.grants import TABLE, GrantBook
from motcua.cli import main
from producers.tokens import TokenStore
from projections.api import create_app
from projections.api.common import Ctx, install_error_handlers
from projections.criteria import REGISTRY
from projections.ruleset import load_ruleset
from projections.source import StoreSource
from projections.store import ViewStore


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MOTCUA_HOME", str(tmp_path))
    monkeypatch.delenv("MOTCUA_DATABASE_URL", raising=False)
    return tmp_path


def test_tokens_add_read_issues_a_read_token_and_list_shows_the_kind(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`tokens add --read` prints a read token once (stored hashed); `list` names each kind."""
    assert main(["tokens", "add", "h15-inspectorate", "--agencies", "H15", "--read"]) == 0
    read_token = capsys.readouterr().out.strip()
    assert main(["tokens", "add", "h15-igate", "--agencies", "H15,H15.3"]) == 0
    capsys.readouterr()
    book = GrantBook(f"sqlite:///{home / 'motcua.db'}")
    try:
        grant = book.verify(read_token)
        assert grant is not None and (grant.source, grant.kind) == ("h15-inspectorate", "read")
        assert read_token.split(".")[2] not in orjson.dumps(book.db.rows(f"SELECT * FROM {TABLE}"))\
            .decode()
    finally:
        book.close()
    assert main(["tokens", "list", "--json"]) == 0
    listed = orjson.loads(capsys.readouterr().out)
    assert [(g["source"], g["kind"], g["agencies"]) for g in listed] == [
        ("h15-igate", "write", ["H15", "H15.3"]), ("h15-inspectorate", "read", ["H15"])]
    assert main(["tokens", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [["h15-igate", "write"],
                                                   ["h15-inspectorate", "read"]]


def test_tokens_list_on_a_missing_database_is_one_sentence_and_creates_nothing(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A mistyped database (here: none yet) is named, exit 2, and no empty file is left."""
    assert main(["tokens", "list"]) == 2
    err = capsys.readouterr().err.strip()
    assert "motcua.db" in err and "does not exist" in err and "Traceback" not in err
    assert not (home / "motcua.db").exists()


class Api:
    """A small app with one official-level route guarded by ``Ctx.read_grant``."""

    def __init__(self, url: str) -> None:
        self.book = GrantBook(url)
        ctx = Ctx(cast(Any, None), load_ruleset("portal-2026"), None, REGISTRY,
                  clock=cast(Any, None), grants=self.book)
        app = FastAPI()
        install_error_handlers(app)

        @app.get("/officials/{agency_id}")
        def officials(agency_id: str, request: Request) -> dict[str, Any]:
            grant = ctx.read_grant(request, agency_id)
            return {"source": grant.source, "kind": grant.kind}

        self.client = TestClient(app)

    def get(self, agency_id: str, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.client.get(f"/officials/{agency_id}", headers=headers)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[Api, TokenStore]]:
    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    store = TokenStore(url)
    api = Api(url)
    try:
        yield api, store
    finally:
        api.book.close()
        store.close()


def test_the_read_check_wants_a_valid_read_token_in_scope(api: tuple[Api, TokenStore]) -> None:
    """401 without a valid token, 403 for a write token or another agency, the grant for a
    read token covering the agency (its units included)."""
    app, store = api
    read = store.add("h15-inspectorate", "H15", read=True)
    write = store.add("h15-igate", "H15")
    none = app.get("H15")
    assert none.status_code == 401 and "Bearer" in none.json()["error"]
    assert none.headers["WWW-Authenticate"].startswith("Bearer")
    assert app.get("H15", "mct1.nope.nope").status_code == 401
    refused = app.get("H15", write)
    assert refused.status_code == 403 and "write token" in refused.json()["error"]
    outside = app.get("H16", read)
    assert outside.status_code == 403 and "'H16'" in outside.json()["error"]
    assert app.get("H150", read).status_code == 403
    for agency_id in ("H15", "H15.3.7"):
        ok = app.get(agency_id, read)
        assert ok.status_code == 200 and ok.json() == {"source": "h15-inspectorate",
                                                       "kind": "read"}
    store.revoke("h15-inspectorate")
    assert app.get("H15", read).status_code == 401


def test_an_old_token_table_without_kinds_holds_write_tokens(tmp_path: Path) -> None:
    """A table made before read tokens gains the kind column; its tokens stay write tokens."""
    db = tmp_path / "motcua.db"
    with sqlite3.connect(db) as conn:
        conn.execute(f"CREATE TABLE {TABLE} (source TEXT PRIMARY KEY, token_id TEXT NOT NULL "
                     "UNIQUE, salt TEXT NOT NULL, token_hash TEXT NOT NULL, agencies TEXT NOT "
                     "NULL, created_at TEXT NOT NULL, rotated_at TEXT)")
        conn.execute(f"INSERT INTO {TABLE} VALUES ('old', 'abc', '00', 'x', 'H15', 't', NULL)")
    book = GrantBook(f"sqlite:///{db}")
    try:
        assert [(g.source, g.kind) for g in book.all()] == [("old", "write")]
    finally:
        book.close()
    store = TokenStore(f"sqlite:///{db}")
    try:
        store.add("new", "H16", read=True)
        assert [(g.source, g.kind) for g in store.grants()] == [("new", "read"), ("old", "write")]
    finally:
        store.close()


def test_official_delay_rows_need_a_read_token_scoped_to_the_agency(tmp_path: Path) -> None:
    """``GET …/delays?by=official`` through ``create_app(grants=…)``: 401 without a token, 403
    for a write token or an H16 read token, and the official rows for an H15 read token (the
    dossier of ``test_delays``: late by 16 h at o2's approval, 5 h at o1's processing, 1 h at
    o-rec's reception; one official per unit, so the unit figures by hand)."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    with Pipeline(tmp_path / "m.db") as p:
        p.send(catalog() + dossier("D1", "P1", "12T17:00", *P1_STEPS, end="13T10:00"))
        views = ViewStore(f"sqlite:///{tmp_path / 'views.db'}")
        views.flush(p.counters, {"pos|0": 1})
        store, book = TokenStore(url), GrantBook(url)
        read, write = store.add("h15-reader", "H15", read=True), store.add("h15-igate", "H15")
        other = store.add("h16-reader", "H16", read=True)
        path = "/api/v1/agencies/H15.3/delays?period=2026-10&by=official"
        try:
            with TestClient(create_app(StoreSource(views), p.ruleset, clock=lambda: END,
                                       grants=book)) as client:
                statuses = [client.get(path, headers=h).status_code for h in (
                    {}, {"Authorization": f"Bearer {write}"},
                    {"Authorization": f"Bearer {other}"})]
                ok = client.get(path, headers={"Authorization": f"Bearer {read}"})
        finally:
            views.close()
            store.close()
            book.close()
    assert statuses == [401, 403, 403]
    assert ok.status_code == 200, ok.text
    assert [(r["unit"], r["official"], r["overrun_hours"]) for r in ok.json()["rows"]] == [
        ("H15.3/ld", "o2", 16.0), ("H15.3/kt", "o1", 5.0), ("H15.3", "o-rec", 1.0)]


def test_rotating_a_token_keeps_its_kind_and_scope(tmp_path: Path) -> None:
    """A rotated read token is still a read token for the same agencies; the old one is dead."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    store, book = TokenStore(url), GrantBook(url)
    try:
        old = store.add("h15-reader", "H15,H15.3", read=True)
        new = store.rotate("h15-reader")
        assert book.verify(old) is None
        grant = book.verify(new)
        assert grant is not None
        assert (grant.source, grant.kind, tuple(grant.agencies)) == (
            "h15-reader", "read", ("H15", "H15.3"))
    finally:
        store.close()
        book.close()
