"""The projection under faults: SIGKILLed mid-stream, and fed every event twice.

``motcua engine`` and ``motcua project`` run as subprocesses against a broker of their own; the
scores that ``motcua scores --json`` prints must equal the scores of the same actions recorded by
an in-process engine and folded exactly once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from faults import (
    ROOT,
    Probe,
    Role,
    consume,
    disorder,
    fold_all,
    future_start,
    lines_of,
    publish_lines,
    recorded_by,
    reference_engine,
    role_env,
    simulate,
    wait_for,
)

from kernel import kafka as K
from kernel.broker import BundledBroker
from kernel.settings import EVENTS_TOPIC
from projections.periods import parse_instant, parse_period
from projections.ruleset import load_ruleset
from projections.views import scorecard

AGENCIES = ("H15", "H15.1", "H15.2")  # the province and two of its units


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store: a SQLite file, or a fresh database on the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'motcua.db'}"
    return str(request.getfixturevalue("pg_url"))


def cli_scores(env: dict[str, str], agency: str, period: str, now: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "motcua", "scores", agency, "--period", period, "--now", now,
         "--json"], cwd=ROOT, env=env, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return orjson.loads(done.stdout)  # type: ignore[no-any-return]


def republish_events(bootstrap: str, at_least: int) -> dict[int, int]:
    """Send every ``motcua.events`` message again to its partition; the new end offsets."""
    records = consume(bootstrap, EVENTS_TOPIC, at_least)
    producer = K.producer(bootstrap)
    try:
        for r in records:
            producer.send(EVENTS_TOPIC, key=r.key, value=r.value, partition=r.partition)
        producer.flush()
    finally:
        producer.close()
    return K.end_offsets(bootstrap, EVENTS_TOPIC)


def test_projection_killed_mid_stream_and_fed_twice_scores_as_if_folded_once(
    database_url: str, fresh_broker: BundledBroker, tmp_path: Path,
) -> None:
    """A projection SIGKILLed mid-stream, restarted, then handed every event a second time,
    scores the province and its units exactly as one in-process fold of the same facts."""
    lines = lines_of(simulate(6, 2000))
    year = future_start().year
    period, now = str(year), f"{year}-11-15T12:00:00+07:00"
    ruleset = load_ruleset("portal-2026")
    reference = reference_engine(tmp_path / "reference.db", lines)
    try:
        events = recorded_by(reference, keep_events=True).events
    finally:
        reference.close()
    counters = fold_all(events)
    want = {a: scorecard(counters, ruleset, a, parse_period(period), parse_instant(now))
            for a in AGENCIES}

    stream = disorder(lines)
    probe = Probe(database_url)
    env = role_env(tmp_path / "home", database_url, fresh_broker.bootstrap,
                   MOTCUA_HOLD_SECONDS="600")
    engine = Role("engine", env, tmp_path)
    project = Role("project", env, tmp_path)
    roles = [engine, project]
    try:
        engine.start()
        project.start()
        publish_lines(fresh_broker.bootstrap, stream)
        wait_for(lambda: probe.projected() > 0, "the projection to fold events", roles=roles)
        project.kill()
        # Mid-stream for the projection: some partition has not folded every event yet.
        assert not (probe.relayed_all(len(events)) and probe.projection_caught_up()), \
            "the kill came too late to be mid-stream"
        project.start()
        wait_for(lambda: probe.intake() == len(stream) and probe.relayed_all(len(events))
                 and probe.projection_caught_up(), "the projection to catch up",
                 timeout=120, roles=roles)
        got = {a: cli_scores(env, a, period, now) for a in AGENCIES}
        assert got == want

        ends = republish_events(fresh_broker.bootstrap, len(events))

        def read_again() -> bool:
            offs = {k.rsplit("|", 1)[1]: v for k, v in probe.view_positions().items()
                    if k.startswith("off|")}
            return all(offs.get(str(p), 0) >= end for p, end in ends.items())

        # The Kafka offsets are written in the same transaction as the counters: once they
        # are past the republished events, so is every fold those events could have caused.
        wait_for(read_again, "the projection to read the events again", roles=roles)
        assert {a: cli_scores(env, a, period, now) for a in AGENCIES} == want
    finally:
        project.stop()
        engine.stop()
