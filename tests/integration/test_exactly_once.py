"""Exactly-once through the real broker: SIGKILLed engines, a forgetful broker, held actions.

Each test runs ``motcua engine`` as a subprocess against a broker of its own and compares what the
store recorded with a reference: the same actions processed once, in order, by an in-process
``Engine`` on a separate SQLite file.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from faults import (
    EngineThread,
    Probe,
    Recorded,
    Role,
    Wall,
    consume,
    disorder,
    lines_of,
    publish_each,
    publish_lines,
    recorded,
    recorded_by,
    reference_engine,
    role_env,
    simulate,
    wait_for,
)

from kernel.broker import BundledBroker
from kernel.settings import ACTIONS_TOPIC, REJECTED_TOPIC


@dataclass(frozen=True)
class Stream:
    """A simulated province: its actions in time order, the faulty stream, and the reference."""

    lines: list[bytes]
    stream: list[bytes]
    reference: Recorded


_streams: dict[tuple[int, int], Stream] = {}


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int, int], Stream]:
    """``province(agencies, dossiers)``: built and processed by the reference engine once."""

    def build(agencies: int, dossiers: int) -> Stream:
        key = (agencies, dossiers)
        if key not in _streams:
            lines = lines_of(simulate(agencies, dossiers))
            db = tmp_path_factory.mktemp("reference") / "reference.db"
            engine = reference_engine(db, lines)
            try:
                _streams[key] = Stream(lines, disorder(lines), recorded_by(engine))
            finally:
                engine.close()
        return _streams[key]

    return build


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The engine's store: a SQLite file, or a fresh database on the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'motcua.db'}"
    return str(request.getfixturevalue("pg_url"))


def assert_same_facts(got: Recorded, ref: Recorded) -> None:
    """Same subjects, same event types in the same order, same final facts; one event per
    (action, subject)."""
    repeated = {k: n for k, n in got.causes.items() if n != 1}
    assert not repeated, f"actions recorded more than once: {list(repeated.items())[:5]}"
    assert got.actions() == ref.actions()
    got_shape, ref_shape = got.shape(), ref.shape()
    differ = [sid for sid in ref_shape.keys() | got_shape.keys()
              if got_shape.get(sid) != ref_shape.get(sid)]
    assert not differ, (
        f"{len(differ)} subjects differ from the reference, e.g. "
        + "; ".join(f"{sid}: got {got_shape.get(sid)} want {ref_shape.get(sid)}"
                    for sid in differ[:3]))


def test_engine_killed_mid_stream_records_every_action_exactly_once(
    province: Callable[[int, int], Stream], database_url: str, fresh_broker: BundledBroker,
    tmp_path: Path,
) -> None:
    """An engine SIGKILLed twice mid-stream and restarted records each action once, as the
    reference does, and counts every repeat as a duplicate."""
    s = province(8, 1800)
    total = len(s.stream)
    half = total // 2
    probe = Probe(database_url)
    env = role_env(tmp_path / "home", database_url, fresh_broker.bootstrap,
                   MOTCUA_HOLD_SECONDS="600")
    engine = Role("engine", env, tmp_path)
    rng = random.Random(766)
    killed_at: list[int] = []

    def kill_after_more_than(done: int) -> None:
        # A kill point drawn by progress, not by time: somewhere in the next few batches.
        more = done + rng.randint(1, 2_000)
        wait_for(lambda: probe.intake() >= more, f"the engine to record {more} offsets",
                 timeout=60, roles=[engine])
        engine.kill()
        killed_at.append(probe.intake())

    try:
        publish_lines(fresh_broker.bootstrap, s.stream[:half])
        engine.start()
        kill_after_more_than(0)
        engine.start()
        publish_lines(fresh_broker.bootstrap, s.stream[half:])
        kill_after_more_than(killed_at[-1])
        engine.start()
        wait_for(lambda: probe.intake() == total and ("held", None) not in probe.outcomes(),
                 f"the engine to record all {total} offsets", timeout=120, roles=[engine])
    finally:
        engine.stop()
    assert 0 < killed_at[0] < killed_at[1] < total, f"kills not mid-stream: {killed_at}"
    assert probe.repeated_offsets() == 0
    assert probe.outcomes() == Counter({("accepted", None): len(s.lines),
                                        ("duplicate", None): len(s.lines)})
    assert_same_facts(recorded(database_url), s.reference)


def test_engine_reads_a_restarted_broker_from_its_beginning(
    province: Callable[[int, int], Stream], fresh_broker: BundledBroker, tmp_path: Path,
) -> None:
    """When the broker forgets its topics mid-stream and the source resyncs, the engine reads
    the new log from offset 0, records each action once and republishes every event."""
    s = province(6, 1500)
    total = len(s.stream)
    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    probe = Probe(url)
    env = role_env(tmp_path / "home", url, fresh_broker.bootstrap,
                   MOTCUA_HOLD_SECONDS="600")
    with Role("engine", env, tmp_path) as engine:
        publish_lines(fresh_broker.bootstrap, s.stream)
        wait_for(lambda: probe.intake() > 0, "the engine to record offsets", roles=[engine])
        fresh_broker.restart()
        first_log = probe.intake()
        assert first_log < total, "the broker restart came too late to be mid-stream"
        publish_lines(fresh_broker.bootstrap, s.stream)  # the source system resyncs

        def new_log_done() -> bool:
            logs = probe.logs()
            return (len(logs) >= 2 and probe.intake(logs[-1]) == total
                    and ("held", None) not in probe.outcomes())

        wait_for(new_log_done, f"the engine to record all {total} offsets of the new log",
                 timeout=120, roles=[engine])
        got = recorded(url)
        last_pos = sum(len(t) for t in got.types.values())
        wait_for(lambda: probe.relayed_all(last_pos), "the relay to republish every event",
                 roles=[engine])
    new_log = probe.logs()[-1]
    assert fresh_broker.cluster_id and fresh_broker.cluster_id in new_log
    assert probe.repeated_offsets() == 0
    outcomes = probe.outcomes(new_log)
    assert set(outcomes) == {("accepted", None), ("duplicate", None)}, outcomes
    everywhere = probe.outcomes()
    assert set(everywhere) == {("accepted", None), ("duplicate", None)}, everywhere
    assert everywhere[("accepted", None)] == len(s.lines), "an action was accepted twice"
    assert_same_facts(got, s.reference)
    published = consume(fresh_broker.bootstrap, "motcua.events", last_pos)
    assert {orjson.loads(r.value)["pos"] for r in published} == set(range(1, last_pos + 1))


def _subject(action: dict[str, Any]) -> str:
    for name in ("dossier_id", "feedback_id", "procedure_id", "agency_id"):
        if name in action:
            return f"{name}:{action[name]}"
    raise AssertionError(action)


@dataclass
class HoldCase:
    """A small province cut into the pieces the hold tests publish in a chosen order."""

    catalog: list[dict[str, Any]]  # agencies and procedures, without procedure P
    procedure: list[dict[str, Any]]  # procedure P's actions
    a: list[dict[str, Any]]  # a dossier with its own due time
    b: list[dict[str, Any]]  # a dossier whose due time comes from procedure P
    c: list[dict[str, Any]]  # another dossier with its own due time


def hold_case() -> HoldCase:
    actions = simulate(1, 40)
    by: dict[str, list[dict[str, Any]]] = {}
    for x in actions:
        by.setdefault(_subject(x), []).append(x)
    dossiers = [v for k, v in by.items() if k.startswith("dossier_id:")]
    b = next(v for v in dossiers if v[0]["data"].get("due_at") is None)
    p = b[0]["data"]["procedure_id"]
    others = [v for v in dossiers if v[0]["data"].get("due_at") is not None
              and v[0]["data"]["procedure_id"] != p and len(v) >= 4]
    catalog = [x for x in actions if "dossier_id" not in x and x.get("procedure_id") != p]
    return HoldCase(catalog, by[f"procedure_id:{p}"], others[0], b, others[1])


def test_actions_held_until_their_subject_arrives_are_then_applied(
    fresh_broker: BundledBroker, tmp_path: Path,
) -> None:
    """Actions published before their dossier's ``received``, and a ``received`` published
    before its procedure, are all applied once the missing subject arrives."""
    h = hold_case()
    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    probe = Probe(url)
    early = h.catalog + h.a[1:] + h.b
    late = h.a[:1] + h.procedure
    env = role_env(tmp_path / "home", url, fresh_broker.bootstrap, MOTCUA_HOLD_SECONDS="600")
    with Role("engine", env, tmp_path) as engine:
        publish_lines(fresh_broker.bootstrap, lines_of(early))
        waiting = len(h.a) - 1 + len(h.b)
        wait_for(lambda: probe.intake() == len(early)
                 and probe.outcomes()[("held", None)] == waiting,
                 f"{waiting} actions to be held", roles=[engine])
        publish_lines(fresh_broker.bootstrap, lines_of(late))
        wait_for(lambda: probe.outcomes() == Counter({("accepted", None): len(early + late)}),
                 "every held action to be applied", roles=[engine])
    in_order = lines_of(x for x in simulate(1, 40) if x in early + late)
    reference = recorded_by(reference_engine(tmp_path / "reference.db", in_order))
    assert_same_facts(recorded(url), reference)


def test_actions_whose_subject_never_arrives_are_rejected_with_their_bytes(
    fresh_broker: BundledBroker, tmp_path: Path,
) -> None:
    """Held actions whose dossier or procedure never arrives become ``unknown_dossier`` /
    ``no_due_time`` in the ledger and on ``motcua.rejected``, with their original bytes."""
    h = hold_case()
    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    probe = Probe(url)
    orphans = lines_of(h.c[1:] + h.b[:1])
    env = role_env(tmp_path / "home", url, fresh_broker.bootstrap, MOTCUA_HOLD_SECONDS="2")
    with Role("engine", env, tmp_path) as engine:
        publish_lines(fresh_broker.bootstrap, lines_of(h.catalog))
        where = publish_each(fresh_broker.bootstrap, orphans)
        expected = Counter({("accepted", None): len(h.catalog),
                            ("rejected", "unknown_dossier"): len(h.c) - 1,
                            ("rejected", "no_due_time"): 1})
        wait_for(lambda: probe.outcomes() == expected, "the holds to expire", timeout=30,
                 roles=[engine])
        dead = consume(fresh_broker.bootstrap, REJECTED_TOPIC, len(orphans))
    assert len(dead) == len(orphans)
    sent = {pos: line for pos, line in zip(where, orphans, strict=True)}
    for r in dead:
        headers = {k: v.decode() for k, v in r.headers}
        pos = (int(headers["source_partition"]), int(headers["source_offset"]))
        assert headers["source_topic"] == ACTIONS_TOPIC
        assert r.value == sent.pop(pos), "the dead letter is not the original bytes"
        want = "no_due_time" if orjson.loads(r.value)["type"] == "received" else "unknown_dossier"
        assert headers["reason"] == want
        assert headers["message"].endswith(".")
    assert not sent


def test_held_actions_outlive_an_engine_outage_longer_than_the_hold(
    fresh_broker: BundledBroker, tmp_path: Path,
) -> None:
    """An engine restarted after an outage longer than the hold reads its backlog before it
    gives up on a held action: the dossier waiting there still releases it. The engine's wall
    clock is moved past the hold while it is down, instead of sleeping through it."""
    h = hold_case()
    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    probe = Probe(url)
    early, received = lines_of(h.catalog + h.a[1:2]), lines_of(h.a[:1])
    wall = Wall()
    with EngineThread(url, fresh_broker.bootstrap, hold_seconds=600, wall=wall):
        publish_lines(fresh_broker.bootstrap, early)
        wait_for(lambda: probe.outcomes()[("held", None)] == 1, "the action to be held")
    # While the engine is down: a backlog on the dossier's own partition, longer than one
    # poll, before its received; and the outage outlasts the hold.
    backlog = early[-1:] * 12_000 + received
    publish_lines(fresh_broker.bootstrap, backlog)
    wall.ahead = 601
    with EngineThread(url, fresh_broker.bootstrap, hold_seconds=600, wall=wall):
        wait_for(lambda: probe.intake() == len(early) + len(backlog),
                 "the engine to read the backlog")
        wait_for(lambda: ("held", None) not in probe.outcomes(), "the hold to settle")
    assert probe.outcomes() == Counter({("accepted", None): len(early) + 1,
                                        ("duplicate", None): 12_000})
