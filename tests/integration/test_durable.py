"""What an acknowledgement means, and roles that outlive their dependencies (issue 10, 3 and 4).

``motcua up`` runs as a real process on the embedded default (SQLite and the bundled broker it
starts itself, memory-only); it is SIGKILLed right after ``motcua ingest`` printed "published"
or the bridge answered 202, which takes its broker and everything the broker held with it.
Restarted, it must record every acknowledged action exactly once. A PostgreSQL server stopped
under running ``motcua engine`` / ``project`` / ``serve`` processes must not need anyone to
restart them: they say they are degraded, then resume, and the views come out right.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from conftest import PgServer
from faults import (
    Probe,
    Role,
    answers,
    children,
    cli,
    embedded_broker_pid,
    embedded_env,
    fold_all,
    future_start,
    lines_of,
    publish_lines,
    recorded,
    recorded_by,
    reference_engine,
    role_env,
    simulate,
    wait_for,
)
from test_exactly_once import assert_same_facts
from test_projection_faults import AGENCIES, cli_scores

from kernel.broker import BundledBroker, free_port
from producers.tokens import TokenStore
from projections.periods import parse_instant, parse_period
from projections.ruleset import load_ruleset
from projections.views import scorecard

SOURCE = "daklak-igate"  # the simulator's source


def start_up(env: dict[str, str], home: Path, tmp_path: Path, up: Role | None = None) -> Role:
    """``motcua up`` on the embedded default, once its bundled broker is announced."""
    up = (up or Role("up", env, tmp_path)).start()
    wait_for(lambda: embedded_broker_pid(home) == up.pid, "motcua up to start its broker",
             roles=[up])
    return up


def wait_all_recorded(probe: Probe, n: int, roles: list[Role]) -> None:
    wait_for(lambda: probe.outcomes()[("accepted", None)] == n
             and ("held", None) not in probe.outcomes() and probe.spool_backlog() == 0,
             f"all {n} actions to be recorded", timeout=120, roles=roles)


def assert_once_each(probe: Probe, n: int) -> None:
    """``n`` actions accepted, each once; anything else consumed is a repeat copy."""
    outcomes = probe.outcomes()
    assert outcomes[("accepted", None)] == n
    assert set(outcomes) <= {("accepted", None), ("duplicate", None)}, outcomes
    assert max(probe.accepted_keys().values()) == 1
    assert probe.repeated_offsets() == 0
    assert probe.spool_settled_twice() == 0


def test_published_actions_survive_a_sigkill_of_up_right_after_ingest(tmp_path: Path) -> None:
    """``motcua ingest`` prints "published", ``motcua up`` (and its in-memory broker) is
    SIGKILLed at once; restarted, it records every action of the file exactly once, as an
    in-order reference does (same events, same facts)."""
    lines = lines_of(simulate(3, 500))
    reference = reference_engine(tmp_path / "reference.db", lines)
    try:
        want = recorded_by(reference)
    finally:
        reference.close()
    home = tmp_path / "home"
    env = embedded_env(home, MOTCUA_HOLD_SECONDS="600", MOTCUA_HTTP_PORT=str(free_port()))
    path = tmp_path / "file.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    probe = Probe(f"sqlite:///{home / 'motcua.db'}")
    up = start_up(env, home, tmp_path)
    try:
        done = cli(env, "ingest", str(path))
        assert done.returncode == 0, done.stderr
        assert f"published {len(lines):,} actions" in done.stderr
        up.kill()  # right after the acknowledgement: the broker dies with it
        start_up(env, home, tmp_path, up)
        wait_all_recorded(probe, len(lines), [up])
        # The same file again, --json: what was published, as JSON; recorded as duplicates.
        again = cli(env, "ingest", str(path), "--json")
        assert again.returncode == 0, again.stderr
        assert orjson.loads(again.stdout) == {"published": len(lines), "too_large": 0}
    finally:
        up.stop()
    assert_once_each(probe, len(lines))
    assert_same_facts(recorded(probe.url), want)




def test_a_bundled_broker_that_dies_under_up_is_restarted_and_nothing_is_lost(
    tmp_path: Path,
) -> None:
    """The bundled broker of a running ``motcua up`` is SIGKILLed after a first file was
    published and while a second one is: ``up`` starts it again, and every action of both
    files is recorded exactly once."""
    import os
    import signal

    lines = lines_of(simulate(3, 500))
    half = len(lines) // 2
    home = tmp_path / "home"
    env = embedded_env(home, MOTCUA_HOLD_SECONDS="600", MOTCUA_HTTP_PORT=str(free_port()))
    first, second = tmp_path / "first.ndjson", tmp_path / "second.ndjson"
    first.write_bytes(b"\n".join(lines[:half]) + b"\n")
    second.write_bytes(b"\n".join(lines[half:]) + b"\n")
    probe = Probe(f"sqlite:///{home / 'motcua.db'}")
    up = start_up(env, home, tmp_path)
    try:
        assert up.pid is not None
        assert cli(env, "ingest", str(first)).returncode == 0
        (broker,) = children(up.pid, "tansu")
        os.kill(broker, signal.SIGKILL)
        done = cli(env, "ingest", str(second))
        assert done.returncode == 0, done.stderr
        wait_all_recorded(probe, len(lines), [up])
        assert up.log_events("bundled_broker_exited")  # and it was started again
    finally:
        up.stop()
    assert_once_each(probe, len(lines))


def post(url: str, token: str, body: list[dict[str, Any]]) -> int:
    request = urllib.request.Request(url, data=orjson.dumps(body), method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return int(response.status)


def test_actions_answered_202_survive_a_sigkill_of_up(tmp_path: Path) -> None:
    """16 bridge requests of 500 actions each are answered 202, ``motcua up`` is SIGKILLed at
    once; restarted, it records all 8,000 actions exactly once."""
    actions = simulate(4, 1450)[:8000]
    assert len(actions) == 8000
    home = tmp_path / "home"
    port = free_port()
    env = embedded_env(home, MOTCUA_HOLD_SECONDS="600", MOTCUA_HTTP_PORT=str(port))
    url = f"sqlite:///{home / 'motcua.db'}"
    home.mkdir()
    tokens = TokenStore(url)
    try:
        token = tokens.add(SOURCE, "H15")
    finally:
        tokens.close()
    probe = Probe(url)
    up = start_up(env, home, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(f"{base}/healthz"), "the API to answer", roles=[up])
        statuses = [post(f"{base}/api/v1/actions", token, actions[i:i + 500])
                    for i in range(0, 8000, 500)]
        up.kill()  # right after the last 202
        assert statuses == [202] * 16
        start_up(env, home, tmp_path, up)
        wait_all_recorded(probe, 8000, [up])
    finally:
        up.stop()
    assert_once_each(probe, 8000)


def healthz(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        return orjson.loads(r.read())  # type: ignore[no-any-return]


def answer(url: str, body: bytes | None = None,
           token: str | None = None) -> tuple[int, dict[str, Any], str | None]:
    """Status, JSON body and ``Retry-After`` of a GET (or, with ``body``, a POST)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as r:
            return int(r.status), orjson.loads(r.read()), r.headers.get("Retry-After")
    except urllib.error.HTTPError as e:
        return e.code, orjson.loads(e.read()), e.headers.get("Retry-After")


@pytest.mark.postgres
def test_a_postgresql_restart_under_running_roles_is_survived_and_the_views_are_right(
    pg_server: PgServer, pg_url: str, fresh_broker: BundledBroker, tmp_path: Path,
) -> None:
    """PostgreSQL stops under running ``engine``, ``project`` and ``serve`` processes:
    ``/healthz`` says degraded (the database, since when), the projection logs the outage once;
    PostgreSQL comes back: ``ok`` again, one line saying so, and the actions published after it
    are folded: the scores equal one in-process fold of the same facts. Meanwhile a query that
    needs the views' database, and a bridge request, are 503 with one sentence."""
    lines = lines_of(simulate(3, 600))
    half = len(lines) // 2
    year = future_start().year
    period, now = str(year), f"{year}-11-15T12:00:00+07:00"
    reference = reference_engine(tmp_path / "reference.db", lines)
    try:
        counters = fold_all(recorded_by(reference, keep_events=True).events)
    finally:
        reference.close()
    ruleset = load_ruleset("portal-2026")
    want = {a: scorecard(counters, ruleset, a, parse_period(period), parse_instant(now))
            for a in AGENCIES}

    port = free_port()
    env = role_env(tmp_path / "home", pg_url, fresh_broker.bootstrap, MOTCUA_HOLD_SECONDS="600",
                   MOTCUA_LOG_LEVEL="info", MOTCUA_HTTP_PORT=str(port))
    roles = [Role("engine", env, tmp_path), Role("project", env, tmp_path),
             Role("serve", env, tmp_path)]
    engine, project, serve = roles
    probe = Probe(pg_url)
    tokens = TokenStore(pg_url)
    try:
        token = tokens.add("outage-igate", "H15")
    finally:
        tokens.close()
    try:
        for r in roles:
            r.start()
        publish_lines(fresh_broker.bootstrap, lines[:half])
        wait_for(lambda: probe.projected() > 0 and answers(f"http://127.0.0.1:{port}/healthz"),
                 "the projection to fold events", roles=roles)
        assert healthz(port)["status"] == "ok"

        pg_server.stop()
        try:
            down = wait_for(lambda: (h := healthz(port))["status"] == "degraded" and h,
                            "/healthz to say degraded", roles=roles)
            wait_for(lambda: project.log_events("dependency_unreachable"),
                     "the projection to notice", roles=roles)
            # An outage of some seconds (many retries, still one line): degraded throughout.
            until = time.monotonic() + 2
            while time.monotonic() < until:
                assert healthz(port)["status"] == "degraded"
                time.sleep(0.1)
            api = f"http://127.0.0.1:{port}/api/v1"
            # (Not a dossier's history: the event store's pool waits ~150 s before it gives up.)
            query = answer(f"{api}/agencies/H15/overdue?period={period}")
            mine = orjson.dumps({**orjson.loads(lines[0]), "source": "outage-igate"})
            post = answer(f"{api}/actions", mine, token)
        finally:
            pg_server.start()
        # Which parts noticed first depends on when each touched the database; what they
        # noticed does not.
        assert down["degraded"] and all(d["dependency"] == "database" and d["since"]
                                        for d in down["degraded"]), down
        for status, body, _ in (query, post):
            assert status == 503 and set(body) <= {"error", "reason", "index", "field"}, body
            assert body["error"].count(". ") == 0 and body["error"].endswith("."), body
        # The bridge says what a sender needs to retry: nothing was taken, when to come back.
        assert (post[1].get("reason"), post[2]) == ("store_unavailable", "5"), post

        wait_for(lambda: healthz(port)["status"] == "ok", "/healthz to say ok again",
                 roles=roles)
        publish_lines(fresh_broker.bootstrap, lines[half:])
        wait_for(lambda: probe.intake() == len(lines) and ("held", None) not in probe.outcomes(),
                 "every action to be recorded after the restart", timeout=120, roles=roles)
        events = sum(len(t) for t in recorded(pg_url).types.values())
        wait_for(lambda: probe.relayed_all(events) and probe.projection_caught_up(),
                 "the projection to fold every event", timeout=60, roles=roles)
        got = {a: cli_scores(env, a, period, now) for a in AGENCIES}
    finally:
        for r in reversed(roles):
            r.stop()
    assert got == want
    for role, part in ((project, "projection"), (engine, "engine")):
        # One line when the database went away and one when it came back, however many retries.
        changes = Counter((e["event"], e["dependency"]) for event in (
            "dependency_unreachable", "dependency_reachable") for e in role.log_events(event)
            if e["part"] == part)
        assert changes == {("dependency_unreachable", "database"): 1,
                           ("dependency_reachable", "database"): 1}, (part, changes)
        assert not role.log_events("role_failing")
