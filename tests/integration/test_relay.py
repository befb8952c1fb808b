"""The relay's promise (engine/relay.py): a position moves only once the broker acknowledged every
message of the page up to it; a page the broker did not take is published again."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import orjson
import pytest
from acts import builder
from faults import consume, stat_fields, wait_for

from engine.app import Message
from engine.relay import Relay
from kernel import kafka as K
from kernel.broker import BundledBroker
from kernel.settings import ACTIONS_TOPIC, EVENTS_TOPIC
from motcua.pipeline import engine_at

act = builder("relay")
DOSSIERS = 10  # one received action each: ten events, positions 1..10
PAGE = 4


def receive(engine: Any, first: int, n: int) -> None:
    """Dossiers D<first>…D<first + n - 1>, one ``received`` action each: one event each."""
    engine.process("test-log", [Message(ACTIONS_TOPIC, 0, i, orjson.dumps(act(
        "received", "10-05T08:00", {"dossier_id": f"D{i}"}, agency_id="H15.15",
        procedure_id="1.001612", channel="online", due_at="2026-10-12T17:00:00+07:00")))
        for i in range(first, first + n)])


class FreezesBroker:
    """The relay's real publisher, which freezes the broker (SIGSTOP) just before the
    ``at``-th message it is given: a broker that stops answering in the middle of a page."""

    def __init__(self, publisher: K.Publisher, broker: BundledBroker, at: int) -> None:
        self.publisher, self.broker, self.at, self.sent = publisher, broker, at, 0

    def send(self, *args: Any, **kw: Any) -> None:
        self.sent += 1
        if self.sent == self.at:
            pid = self.broker.pid
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            # kill() returns before every thread of the broker has stopped: on a busy machine
            # one of them could still take this page (seen once in 8 runs under load).
            wait_for(lambda: _all_threads_stopped(pid), "the broker's threads to stop", 10)
        self.publisher.send(*args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.publisher, name)


def _all_threads_stopped(pid: int) -> bool:
    """Every thread of ``pid`` is stopped (state T in /proc)."""
    try:
        states = [stat_fields(t / "stat")[0] for t in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:  # a thread ended meanwhile: look again
        return False
    return bool(states) and all(st in ("T", "t") for st in states)


def test_a_broker_that_stops_answering_mid_page_moves_no_position_and_the_page_is_redone(
    fresh_broker: BundledBroker, tmp_path: Path,
) -> None:
    """Page one (events 1-4) is acknowledged and recorded; the broker freezes at the second
    message of page two: the relay raises, its position stays at 4 and no partition's moves;
    with the broker back, the same relay publishes events 5-10 and every event is on the topic."""
    engine = engine_at(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        receive(engine, 0, DOSSIERS)
        K.ensure_all_topics(fresh_broker.bootstrap, None, 3)
        # Short timeouts: a frozen broker is given up on within seconds.
        publisher = K.publisher(fresh_broker.bootstrap, None, **{
            "message.timeout.ms": 2_000, "request.timeout.ms": 1_500})
        relay = Relay(engine.store, FreezesBroker(publisher, fresh_broker, at=PAGE + 2),  # type: ignore[arg-type]
                      page=PAGE)
        identity = K.LogIdentity(fresh_broker.bootstrap, None)
        relay.new_log(identity.of(EVENTS_TOPIC))
        identity.close()
        assert relay.run_once() == PAGE
        page_one = _positions(engine)
        assert page_one[Relay.EVENTS] == PAGE
        try:
            with pytest.raises(K.PublishError):
                relay.run_once()
            assert _positions(engine) == page_one
        finally:
            assert fresh_broker.pid is not None
            os.kill(fresh_broker.pid, signal.SIGCONT)
        while relay.run_once():
            pass
        assert _positions(engine)[Relay.EVENTS] == DOSSIERS
        publisher.close()
        # At least once: every event is there (a frozen page may have been taken twice).
        got = consume(fresh_broker.bootstrap, EVENTS_TOPIC, DOSSIERS)
        assert {orjson.loads(r.value)["pos"] for r in got} == set(range(1, DOSSIERS + 1))
        assert {r.key.decode() for r in got} == {f"D{i}" for i in range(DOSSIERS)}
        assert_chained(got)  # the page published again names the same predecessors
    finally:
        engine.close()


def assert_chained(records: list[Any]) -> None:
    """Each message's ``follows`` is the position of the event before it in its partition
    (``kernel.event_order``), 0 for the partition's first, whatever was published twice."""
    by_part: dict[int, dict[int, int]] = {}
    for r in records:
        ev = orjson.loads(r.value)
        by_part.setdefault(r.partition, {})[ev["pos"]] = ev["follows"]
    assert len(by_part) > 1
    for part, follows in by_part.items():
        order = sorted(follows)
        assert [follows[p] for p in order] == [0, *order[:-1]], part


def test_a_relay_built_again_from_the_store_goes_on_with_each_partitions_chain(
    fresh_broker: BundledBroker, tmp_path: Path,
) -> None:
    """A relay publishes two pages; another one, built from the store as after a restart, the
    rest: every message names the event before it in its partition, across the two relays."""
    engine = engine_at(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        receive(engine, 0, DOSSIERS)
        K.ensure_all_topics(fresh_broker.bootstrap, None, 3)
        identity = K.LogIdentity(fresh_broker.bootstrap, None)
        log_id = identity.of(EVENTS_TOPIC)
        identity.close()
        first = Relay(engine.store, K.publisher(fresh_broker.bootstrap, None), page=PAGE)
        first.new_log(log_id)
        assert first.run_once() + first.run_once() == 2 * PAGE
        first.producer.close()
        second = Relay(engine.store, K.publisher(fresh_broker.bootstrap, None), page=PAGE)
        second.new_log(log_id)  # a known log: goes on from the stored positions
        assert second.run_once() == DOSSIERS - 2 * PAGE
        second.producer.close()
        got = consume(fresh_broker.bootstrap, EVENTS_TOPIC, DOSSIERS)
        assert sorted(orjson.loads(r.value)["pos"] for r in got) == list(range(1, DOSSIERS + 1))
        assert_chained(got)
    finally:
        engine.close()


def _positions(engine: Any) -> dict[str, int]:
    """The relay's positions: its own and one per events partition it published to."""
    out = {Relay.EVENTS: engine.store.get_position(Relay.EVENTS)}
    for p in range(3):
        name = f"{Relay.EVENTS}|{p}"
        out[name] = engine.store.get_position(name)
    return out


def test_a_relay_loop_publishes_each_event_and_again_to_a_new_events_log(
    fresh_broker: BundledBroker, tmp_path: Path,
) -> None:
    """The relay on its own thread (engine.relay_loop, beside `motcua up`'s child engine):
    ten recorded events reach motcua.events once each, and events recorded while it runs follow;
    when the events topic is deleted and created again (a new log), it publishes all of them
    again to the new topic. Between looks it waits as its idle wait says (``kernel.idle``)."""
    import threading

    from faults import CountingIdle, wait_for

    from engine.relay_loop import RelayLoop

    engine = engine_at(f"sqlite:///{tmp_path / 'm.db'}")
    stop = threading.Event()
    idle = CountingIdle()
    loop = RelayLoop(engine.store, fresh_broker.bootstrap, None, partitions=3, idle=idle)
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)

    def record(first: int, n: int) -> None:
        receive(engine, first, n)

    try:
        record(0, DOSSIERS)
        thread.start()
        wait_for(lambda: engine.store.get_position(Relay.EVENTS) == DOSSIERS, "ten relayed")
        assert idle.founds >= 1  # the page it published
        wait_for(lambda: idle.empties >= 5, "the relay to look at an empty store again")
        founds = idle.founds
        record(DOSSIERS, 5)  # recorded while the loop runs
        wait_for(lambda: engine.store.get_position(Relay.EVENTS) == DOSSIERS + 5, "five more")
        assert idle.founds > founds
        got = consume(fresh_broker.bootstrap, EVENTS_TOPIC, DOSSIERS + 5)
        assert sorted(orjson.loads(r.value)["pos"] for r in got) == list(range(1, 16))
        with K.admin_client(fresh_broker.bootstrap) as admin:
            admin.delete_topics([EVENTS_TOPIC])
        wait_for(lambda: (e := K.end_offsets(fresh_broker.bootstrap, EVENTS_TOPIC))
                 and sum(e.values()) >= DOSSIERS + 5, "the events again on the new topic",
                 timeout=60, every=0.2)
        again = consume(fresh_broker.bootstrap, EVENTS_TOPIC, DOSSIERS + 5)
        assert {orjson.loads(r.value)["pos"] for r in again} == set(range(1, 16))
        assert_chained(got)
        assert_chained(again)  # the new log's chain starts again at 0
    finally:
        stop.set()
        thread.join(10)
        engine.close()
