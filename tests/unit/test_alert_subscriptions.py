"""Alert subscriptions: ``motcua alerts add/list/remove`` and the HTTP routes, which need a
write token covering every agency of the subscription."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from kernel.errors import UserError
from kernel.grants import GrantBook
from motcua.cli import main
from producers.tokens import TokenStore
from projections.alerts.store import check_subscription
from projections.api import create_app
from projections.fold import Counters
from projections.ruleset import load_ruleset
from projections.source import StoreSource
from projections.store import ViewStore, views_url


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MOTCUA_HOME", str(tmp_path))
    monkeypatch.delenv("MOTCUA_DATABASE_URL", raising=False)
    return tmp_path


def test_alerts_add_list_and_remove_from_the_command_line(
        home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`add` prints the new id; `list --json` shows it with its deliveries (no secret);
    `remove` deletes it; a bad URL, rule or unknown id is one sentence and exit 2."""
    assert main(["alerts", "add", "--agencies", "H15.3", "--webhook",
                 "https://hooks.h15.gov.vn/motcua", "--secret", "s3cret", "--rules",
                 "due_soon,overdue", "--within", "3"]) == 0
    sub_id = capsys.readouterr().out.strip()
    assert sub_id.startswith("sub-")
    assert main(["alerts", "add", "--agencies", "H15", "--email", "lanh.dao@h15.gov.vn"]) == 0
    capsys.readouterr()
    assert main(["alerts", "list", "--json"]) == 0
    subs = orjson.loads(capsys.readouterr().out)
    first = next(s for s in subs if s["id"] == sub_id)
    assert (first["agencies"], first["channel"], first["rules"], first["within"],
            first["state"], first["signed"]) == (["H15.3"], "webhook", ["due_soon", "overdue"],
                                                 3, "active", True)
    assert first["deliveries"] == {"pending": 0, "delivered": 0, "dead": 0, "cancelled": 0}
    assert "s3cret" not in str(subs)
    assert main(["alerts", "list"]) == 0
    assert sub_id in capsys.readouterr().out
    assert main(["alerts", "remove", sub_id]) == 0
    assert main(["alerts", "list", "--json"]) == 0
    assert [s["channel"] for s in orjson.loads(capsys.readouterr().out)] == ["email"]
    capsys.readouterr()
    for argv, names in ((["add", "--agencies", "H15", "--webhook", "ftp://x"], "ftp://x"),
                        (["add", "--agencies", "H15", "--email", "a@b", "--rules", "late"],
                         "'late'"),
                        (["add", "--agencies", "H15", "--email", "nobody"], "nobody"),
                        (["remove", "sub-nothere"], "sub-nothere")):
        assert main(["alerts", *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and names in err[0], err


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[Any, dict[str, str]]]:
    from fastapi.testclient import TestClient

    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    tokens = TokenStore(url)
    write = tokens.add("h15-3-igate", "H15.3")
    read = tokens.add("h15-inspect", "H15", read=True)
    views = ViewStore(views_url(url))
    views.flush(Counters(), {"pos|0": 1})
    app = create_app(StoreSource(views), load_ruleset("portal-2026"),
                     clock=lambda: datetime(2026, 9, 1, tzinfo=UTC), grants=GrantBook(url))
    with TestClient(app) as c:
        yield c, {"write": write, "read": read}
    views.close()
    tokens.close()


def test_http_subscriptions_need_a_write_token_of_their_agencies(
        client: tuple[Any, dict[str, str]]) -> None:
    """No token: 401; a read token: 403; an agency outside the token: 403; in scope: 201,
    listed, then deleted; a bad body is 400 with one sentence."""
    c, tok = client
    body = {"agencies": ["H15.3"], "webhook": "https://hooks.example.vn/a", "secret": "s"}

    def auth(kind: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tok[kind]}"}

    assert c.post("/api/v1/alerts/subscriptions", json=body).status_code == 401
    assert c.post("/api/v1/alerts/subscriptions", json=body,
                  headers=auth("read")).status_code == 403
    # The token before the body: a bad body without a write token is still 401 / 403.
    assert c.post("/api/v1/alerts/subscriptions", json={}).status_code == 401
    assert c.post("/api/v1/alerts/subscriptions", content=b"{not json",
                  headers=auth("read")).status_code == 403
    wide = c.post("/api/v1/alerts/subscriptions", json={**body, "agencies": ["H15"]},
                  headers=auth("write"))
    assert wide.status_code == 403 and "'H15'" in wide.json()["error"]
    both = c.post("/api/v1/alerts/subscriptions", json={**body, "email": "a@b.vn"},
                  headers=auth("write"))
    assert both.status_code == 400 and "exactly one" in both.json()["error"]
    bad = c.post("/api/v1/alerts/subscriptions", json={**body, "rules": ["soon"]},
                 headers=auth("write"))
    assert bad.status_code == 400 and "'soon'" in bad.json()["error"]
    for content, says in ((b"{not json", "The body is not valid JSON"),
                          (b"[]", "The body must be a JSON object, got []."),
                          (b"{}", "The body has no 'agencies', which is required."),
                          (orjson.dumps({**body, "within": "soon"}),
                           "The body's 'within' is not valid ('soon')")):
        bad = c.post("/api/v1/alerts/subscriptions", content=content,
                     headers={**auth("write"), "Content-Type": "application/json"})
        assert bad.status_code == 400 and bad.json()["error"].startswith(says), bad.text
    for url in ("http://[::1/h", "http://h:abc/h", "https://u:pw@hooks.example.vn/a"):
        bad = c.post("/api/v1/alerts/subscriptions", json={**body, "webhook": url},
                     headers=auth("write"))
        assert bad.status_code == 400 and repr(url) in bad.json()["error"], url
    made = c.post("/api/v1/alerts/subscriptions", json=body, headers=auth("write"))
    assert made.status_code == 201
    sub_id = made.json()["id"]
    listed = c.get("/api/v1/alerts/subscriptions", headers=auth("write")).json()
    assert [s["id"] for s in listed["subscriptions"]] == [sub_id]
    assert c.delete(f"/api/v1/alerts/subscriptions/{sub_id}",
                    headers=auth("write")).status_code == 200
    assert c.delete(f"/api/v1/alerts/subscriptions/{sub_id}",
                    headers=auth("write")).status_code == 404


@pytest.mark.parametrize("url", ["http://mail.h15.gov.vn:25", "smtp://", "smtps://u:p@h:0",
                                 "smtp://host:notaport"])
def test_a_bad_smtp_url_is_one_sentence_naming_the_variable_without_its_password(
        url: str, tmp_path: Path) -> None:
    """MOTCUA_SMTP_URL must be smtp://host:port or smtps://user:pass@host:port."""
    from kernel.errors import ConfigurationError
    from kernel.settings import Settings

    with pytest.raises(ConfigurationError) as e:
        Settings.from_env({"MOTCUA_HOME": str(tmp_path), "MOTCUA_SMTP_URL": url})
    assert "MOTCUA_SMTP_URL" in str(e.value) and ":p@" not in str(e.value)
    ok = Settings.from_env({"MOTCUA_HOME": str(tmp_path),
                            "MOTCUA_SMTP_URL": "smtps://u:p@mail.h15.gov.vn:465"})
    assert ok.smtp_url == "smtps://u:p@mail.h15.gov.vn:465" and "p@" not in repr(ok)


@pytest.mark.parametrize(("url", "says"), [
    ("http://[::1/h", "Invalid IPv6 URL"),
    ("http://[zz]/h", "'zz'"),
    ("http://127.0.0.1:99999/h", "out of range"),
    ("http://h:abc/h", "'abc'"),
    ("http://h:0/h", "port 0"),
    ("http://exa mple.vn/h", "a space or a control character"),
    ("http://hooks.example.vn/a\x01", "a space or a control character"),
    ("https://user:pw@hooks.example.vn/h", "user name or password"),
    ("ftp://hooks.example.vn/h", "not an http:// or https:// URL"),
])
def test_a_webhook_no_delivery_could_reach_is_refused_in_one_sentence(url: str, says: str) -> None:
    """What ``urllib.request`` could never deliver to is refused when subscribed, not retried
    for ever after: a bad host in brackets, a port that is no port, a space or control
    character, a user name or password (not sent); the URL and the cause named."""
    with pytest.raises(UserError) as e:
        check_subscription(["H15"], "webhook", url, ["overdue"], 3)
    message = str(e.value)
    assert repr(url) in message and says in message and "\n" not in message


def test_a_deliverable_webhook_is_taken() -> None:
    for url in ("https://hooks.example.vn/a", "http://[::1]:8080/h", "http://10.0.0.7:65535/x"):
        check_subscription(["H15"], "webhook", url, ["overdue"], 3)  # raises nothing
