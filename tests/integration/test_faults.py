"""The fault suite: real processes, faults at random points, then the invariants (issue 10).

Each run ingests a simulated province whose every action comes twice, reordered, with junk lines
among them (not JSON, or JSON without a key), in chunks, through real ``motcua ingest``
processes, next to ``motcua engine`` and ``motcua project`` processes; one fault is injected at a
random point of each chunk: SIGKILL of the ingest, the engine, the engine while its relay is
behind, the projection, a replay; a restart of the broker (which forgets everything) or of
PostgreSQL. Then, once all is quiet:

- every acknowledged line is recorded (its key accepted once) or dead-lettered with a reason:
  lost 0; nothing is accepted, caused or dead-lettered more often than it was submitted:
  doubled 0;
- no partition, no spooled line, no relay or projection position is left behind: stuck 0;
- ``motcua replay --verify`` finds the live views equal to a clean rebuild.

The short form (one run, every kind of fault once) is part of the test command; the long form
is ``scripts/faults RUNS`` (``MOTCUA_FAULT_RUNS``), which writes its tally to
``benchmarks/results/faults.json`` (docs/reliability.md, "Faults"). The driver is
``tests/fault_suite.py``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from conftest import PgServer, SettingsFor
from fault_suite import FAULT_KINDS, FaultRun, Tally
from faults import Probe, lines_of, publish_lines, simulate, wait_for

from engine.app import Message
from engine.relay import Relay
from engine.runner import EngineLoop
from kernel import kafka as K
from kernel.broker import BundledBroker
from kernel.event_order import AHEAD, NEXT, turn
from kernel.health import HEALTH
from kernel.kafka import LogIdentity
from kernel.settings import ACTIONS_TOPIC, EVENTS_TOPIC
from motcua.pipeline import Pipeline, engine_at
from projections.replay import Replayer
from projections.runner import ProjectionLoop
from projections.store import ViewStore, views_url

ROOT = Path(__file__).resolve().parents[2]


def assert_clean(t: Tally) -> None:
    assert (t.lost, t.doubled, t.stuck, t.views_differ) == (0, 0, 0, 0), t.as_dict()


@pytest.mark.postgres
def test_every_kind_of_fault_once_loses_nothing_and_doubles_nothing(
    pg_server: PgServer, pg_url: str, fresh_broker: BundledBroker, tmp_path: Path,
) -> None:
    """One run with each kind of fault at a random point of its own chunk: every acknowledged
    action recorded once or dead-lettered with a reason, no partition stuck, and the views equal
    a clean rebuild."""
    run = FaultRun(tmp_path, pg_url, fresh_broker, pg_server, seed=766, faults=FAULT_KINDS)
    tally = run.run()
    assert tally.acknowledged == sum(len(c) for c in run.chunks)
    assert sum(tally.faults.values()) == len(FAULT_KINDS)
    assert tally.views_differ == 0, run.verify_output
    assert_clean(tally)
    # The junk lines are the only acknowledged lines the engine can refuse here.
    assert set(tally.dead_lettered) <= {"malformed_json", "missing_field"}, tally.dead_lettered


@pytest.mark.parametrize("read_store", [True, False], ids=["from-store", "from-kafka"])
def test_a_replay_swapped_in_before_the_relays_first_page_folds_nothing_twice(
    read_store: bool, fresh_broker: BundledBroker, settings_for: SettingsFor, tmp_path: Path,
) -> None:
    """An engine that has set up and recorded actions, but whose relay has not published a
    page yet, and a replay swapped in just then: once the relay and the projection run, the
    views equal a clean rebuild (no events partition is folded again from its beginning),
    whether the projection reads the event store or motcua.events."""
    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    lines = lines_of(simulate(2, 200))
    engine = engine_at(url, hold_seconds=600)
    loop = EngineLoop(engine, fresh_broker.bootstrap, None)
    views = ViewStore(views_url(url))
    try:
        loop.setup()  # what the engine role does before its first batch
        for i in range(0, len(lines), 500):
            engine.process(loop.log_id, [Message(ACTIONS_TOPIC, 0, off, line)
                                         for off, line in enumerate(lines[i:i + 500], i)])
        replayer = Replayer(engine.store, views)
        shadow, counters, done = replayer.rebuild()
        replayer.swap(shadow, counters, done)
        shadow.close()
    finally:
        views.close()
        loop.close()
        engine.close()
    probe = Probe(url)
    settings = settings_for(url, fresh_broker.bootstrap, MOTCUA_HOLD_SECONDS="600")
    with Pipeline(settings, roles=frozenset({"engine", "project"}), read_store=read_store) as p:
        p.wait_ready()
        wait_for(lambda: probe.relayed_all(done) and probe.projection_caught_up(),
                 "the relay and the projection to catch up")
        assert p.engine is not None and p.views is not None
        assert Replayer(p.engine.store, p.views).verify() == []


def test_events_topic_back_with_another_partition_count_folds_nothing_twice(
    fresh_broker: BundledBroker, settings_for: SettingsFor, tmp_path: Path,
) -> None:
    """The bundled broker restarts and a client's mere question brings motcua.events back with
    the broker's own partition count (4, not 3): the relay republishes every event to the
    partition it had before, and the views still equal a clean rebuild (the projection reads
    motcua.events, as a one-role ``motcua project`` does)."""
    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    lines = lines_of(simulate(2, 200))
    probe = Probe(url)
    settings = settings_for(url, fresh_broker.bootstrap, MOTCUA_HOLD_SECONDS="600")
    with Pipeline(settings, roles=frozenset({"engine", "project"}), read_store=False) as p:
        p.wait_ready()
        publish_lines(fresh_broker.bootstrap, lines)
        wait_for(lambda: probe.intake() == len(lines) and probe.relayed_all(last_pos(probe))
                 and probe.projection_caught_up(), "the first log to be folded")
        fresh_broker.restart()
        asker = K.producer(fresh_broker.bootstrap)
        try:
            assert len(asker.partitions_for(EVENTS_TOPIC)) == 4  # tansu's default, not ours
        finally:
            asker.close()
        wait_for(lambda: len(probe.positions("relay:log:")) == 2 and probe.relayed_all(
            last_pos(probe)) and probe.projection_caught_up(), "the new log to be republished")
        assert p.engine is not None and p.views is not None
        assert Replayer(p.engine.store, p.views).verify() == []


def test_a_page_published_into_a_new_log_before_the_relay_notices_loses_nothing(
    fresh_broker: BundledBroker, tmp_path: Path,
) -> None:
    """The broker restarts, forgetting its topics, while the projection is a page behind the
    relay; the relay, not aware of it yet, publishes its next page into the topics made anew,
    and the projection reads that page first. Its messages are ahead of the events the broker
    lost (``kernel.event_order``): left out, and folded in turn once the relay publishes the new
    log from its start. Meanwhile ``/healthz`` says ``degraded`` (the projection, on
    ``motcua.events``). The views then equal a clean rebuild; a projection that took the page
    skipped the lost events as redeliveries and stayed short of them for good."""
    bootstrap = fresh_broker.bootstrap
    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    lines = lines_of(simulate(2, 150))
    third = len(lines) // 3
    engine = engine_at(url, hold_seconds=600)
    views = ViewStore(views_url(url))
    projection = ProjectionLoop(views, bootstrap, None)
    identity = LogIdentity(bootstrap, None)

    def record(part: list[bytes], first: int) -> None:
        engine.process("test-log", [Message(ACTIONS_TOPIC, 0, off, line)
                                    for off, line in enumerate(part, first)])

    def publish(relay: Relay) -> None:  # a page the broker did not take is published again
        wait_for(lambda: _published(relay), "the relay's page to be acknowledged", timeout=30)

    def fold() -> Counter[int]:
        """Poll until the topic has nothing more; how many of each turn the polls held."""
        seen: Counter[int] = Counter()
        assert projection.consumer is not None
        while polled := projection.consumer.poll(timeout_ms=1500, max_records=500):
            for records in polled.values():
                for r in records:
                    p = r.partition
                    seen[turn(orjson.loads(r.value), projection.applied(p))] += 1
            projection.apply(polled)
        return seen

    try:
        K.ensure_all_topics(bootstrap, None, 3)
        relay = Relay(engine.store, K.publisher(bootstrap, None))
        relay.new_log(identity.of(EVENTS_TOPIC))
        record(lines[:third], 0)
        publish(relay)
        projection.setup()
        assert fold()[NEXT] > 0
        record(lines[third:2 * third], third)
        publish(relay)  # published; the projection does not get to read it
        fresh_broker.restart()
        K.ensure_all_topics(bootstrap, None, 3)  # as any client's setup makes them
        record(lines[2 * third:], 2 * third)
        publish(relay)  # the same relay: into the new log, from where it was
        projection.setup()  # the projection notices the new log first
        assert fold()[AHEAD] > 0  # every partition had events in the lost page
        assert _events_gap() == "degraded"  # /healthz says why the views do not move
        relay.producer.close()
        relay = Relay(engine.store, K.publisher(bootstrap, None))
        relay.new_log(identity.of(EVENTS_TOPIC))  # the relay notices: all again, from 1
        publish(relay)
        fold()
        last = engine.store.last_fact()
        assert all(projection.applied(p) == pos for p, pos in relay._last_in.items()), (
            projection.positions, relay._last_in, last)
        assert Replayer(engine.store, views).verify() == []
        assert _events_gap() == "ok"
    finally:
        relay.producer.close()
        projection.close()
        identity.close()
        views.close()
        engine.close()


def _events_gap() -> str:
    """``degraded`` while this process's projection waits for events its log lost, or ``ok``."""
    gaps = [d for d in HEALTH.report()["degraded"]
            if (d["part"], d["dependency"]) == ("projection", EVENTS_TOPIC)]
    assert all("lacks the events after store position" in d["error"] for d in gaps), gaps
    return "degraded" if gaps else "ok"


def _published(relay: Relay) -> bool:
    """One ``run_once`` of ``relay`` until it has nothing left; False if the broker refused."""
    try:
        while relay.run_once():
            pass
    except Exception:  # noqa: BLE001 - the broker is coming back: the same page again
        return False
    return True


def last_pos(probe: Probe) -> int:
    rows = probe._rows(probe.url, "SELECT MAX(pos) FROM motcua_facts")
    return int(rows[0][0] or 0) if rows else 0
