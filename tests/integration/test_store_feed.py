"""The views and the alerting read from the event store (``projections.feed``) keep what a
reader of ``motcua.events`` keeps: the same counters in the same events partitions, positions
either reader takes on from, nothing folded twice across a restart, and a poison event stepped
over. Real bundled broker for the Kafka reader; SQLite stores."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from faults import CountingIdle, lines_of, simulate, wait_for

from engine.app import Engine, Message
from engine.relay import Relay, partition_for
from kernel import kafka as K
from kernel.broker import BundledBroker
from kernel.kafka import LogIdentity
from kernel.lifecycle import load_lifecycle
from kernel.metrics import METRICS
from kernel.settings import ACTIONS_TOPIC, EVENTS_TOPIC
from motcua.pipeline import engine_at
from projections.alerts.deliver import Dispatcher
from projections.alerts.role import AlertLoop, Decider
from projections.alerts.store import AlertStore
from projections.feed import ALERTING_COLUMNS, PROJECTION_COLUMNS, StoreFeed
from projections.replay import Replayer
from projections.runner import ProjectionLoop
from projections.store import ViewStore


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = engine_at(f"sqlite:///{tmp_path / 'motcua.db'}", hold_seconds=600)
    yield e
    e.close()


def record(engine: Engine, lines: list[bytes], first: int = 0) -> None:
    for i in range(0, len(lines), 500):
        engine.process("test-log", [Message(ACTIONS_TOPIC, 0, off, line) for off, line in
                                    enumerate(lines[i:i + 500], first + i)])


def relay_all(engine: Engine, bootstrap: str) -> Relay:
    """A relay on the broker's events topic that published everything recorded so far."""
    K.ensure_all_topics(bootstrap, None, 3)
    relay = Relay(engine.store, K.publisher(bootstrap, None))
    identity = LogIdentity(bootstrap, None)
    try:
        relay.new_log(identity.of(EVENTS_TOPIC))
    finally:
        identity.close()
    while relay.run_once():
        pass
    return relay


def store_reader(views: ViewStore, engine: Engine) -> ProjectionLoop:
    return ProjectionLoop(views, "127.0.0.1:9", None,  # never connects: reads the store
                          feed=StoreFeed(engine.store, PROJECTION_COLUMNS), max_records=700)


def read_store(loop: ProjectionLoop) -> int:
    """Pages until the store has no more; how many pages."""
    pages = 0
    while loop._read_store():
        pages += 1
    return pages


def read_kafka(loop: ProjectionLoop, engine: Engine) -> None:
    """Poll until every partition stands where the relay last published to it."""
    loop.setup()
    want = {int(k.rsplit("|", 1)[1]): v
            for k, v in engine.store.positions_like(f"{Relay.EVENTS}|").items()}
    assert loop.consumer is not None
    for _ in range(200):
        if all(loop.applied(p) >= v for p, v in want.items()):
            return
        polled = loop.consumer.poll(timeout_ms=500, max_records=700)
        if polled:
            loop.apply(polled)
    raise AssertionError(f"the Kafka reader stopped at {loop.positions}, not {want}")


def cells(views: ViewStore, part: int) -> dict[Any, list[int]]:
    return dict(views.load(part).cells)


def test_the_store_reader_keeps_the_counters_a_kafka_reader_keeps_partition_by_partition(
        engine: Engine, fresh_broker: BundledBroker, tmp_path: Path) -> None:
    """Two views stores, one folded from motcua.events, one from the event store: each events
    partition's counters are the same, and both equal a clean rebuild. The store reader waits,
    folding nothing, until the relay has recorded the partition count."""
    lines = lines_of(simulate(3, 300))
    record(engine, lines)
    assert engine.store.last_fact() > 1000
    by_store = ViewStore(f"sqlite:///{tmp_path / 'store-views.db'}")
    by_kafka = ViewStore(f"sqlite:///{tmp_path / 'kafka-views.db'}")
    s = store_reader(by_store, engine)
    k = ProjectionLoop(by_kafka, fresh_broker.bootstrap, None, max_records=700)
    try:
        # No relay yet: no partition count, so no partition to put an event under.
        assert not s._read_store() and not s.ready.is_set() and s.applied(0) == 0
        relay = relay_all(engine, fresh_broker.bootstrap)
        relay.producer.close()
        assert read_store(s) > 1 and s.ready.is_set()
        read_kafka(k, engine)
        last = engine.store.last_fact()
        assert s.cursor == last
        for p in range(3):
            assert cells(by_store, p) == cells(by_kafka, p), p
            assert cells(by_store, p)  # every partition got dossiers
            # Every partition stands at the last row read: all of its events up to it applied.
            assert s.applied(p) == last >= k.applied(p)
        assert Replayer(engine.store, by_store).verify() == []
        assert Replayer(engine.store, by_kafka).verify() == []
        s._lag()
        assert METRICS.projection_lag.labels(partition="store")._value.get() == 0
    finally:
        k.close()
        by_store.close()
        by_kafka.close()


@pytest.mark.parametrize("first", ["store", "kafka"])
def test_either_reader_takes_on_the_views_the_other_kept(
        first: str, engine: Engine, fresh_broker: BundledBroker, tmp_path: Path) -> None:
    """Half the province folded by one reader, the rest by the other on the same views:
    nothing folded twice, nothing left out (a clean rebuild agrees)."""
    lines = lines_of(simulate(3, 240))
    half = len(lines) // 2
    views = ViewStore(f"sqlite:///{tmp_path / 'views.db'}")
    try:
        record(engine, lines[:half])
        relay_all(engine, fresh_broker.bootstrap).producer.close()
        if first == "store":
            s = store_reader(views, engine)
            read_store(s)
            assert s.cursor == engine.store.last_fact()
        else:
            k = ProjectionLoop(views, fresh_broker.bootstrap, None, max_records=700)
            read_kafka(k, engine)
            k.close()
        record(engine, lines[half:], half)
        relay_all(engine, fresh_broker.bootstrap).producer.close()
        if first == "store":
            k = ProjectionLoop(views, fresh_broker.bootstrap, None, max_records=700)
            read_kafka(k, engine)
            k.close()
        else:
            s = store_reader(views, engine)
            read_store(s)
        assert Replayer(engine.store, views).verify() == []
    finally:
        views.close()


def test_a_store_reader_started_again_goes_on_from_its_partitions_positions(
        engine: Engine, tmp_path: Path) -> None:
    """A reader stopped after some pages (a crash after its last flush) and a new one on the
    same views: the new one starts at the lowest partition position and skips what was folded
    (skipped counted, folded once)."""
    lines = lines_of(simulate(2, 200))
    record(engine, lines)
    engine.store.set_position(Relay.PARTITIONS, 3)  # as the relay records it
    views = ViewStore(f"sqlite:///{tmp_path / 'views.db'}")
    try:
        s = store_reader(views, engine)
        assert s._read_store() and s._read_store()
        stopped_at = s.cursor
        again = store_reader(views, engine)
        assert again._setup_store() and again.cursor == stopped_at
        read_store(again)
        assert again.cursor == engine.store.last_fact()
        assert Replayer(engine.store, views).verify() == []
        # Partition 1 set back (as a replay's swap sets positions): the next reader starts
        # there, folds partition 1's rows after it and skips the other partitions' rows.
        last = engine.store.last_fact()
        low = last - 500
        views.flush_parts({}, {"pos|1": low})
        between = [partition_for(r[2].encode(), 3)
                   for r in engine.store.read_facts(low + 1, 10**6, columns=PROJECTION_COLUMNS)]
        skipped, folded = (METRICS.events_skipped._value.get(),
                           METRICS.events_folded._value.get())
        third = store_reader(views, engine)
        read_store(third)
        assert third.applied(1) == last
        assert METRICS.events_folded._value.get() - folded == between.count(1) > 0
        assert METRICS.events_skipped._value.get() - skipped == len(between) - between.count(1)
    finally:
        views.close()


def test_an_event_the_store_reader_cannot_fold_is_quarantined_and_passed(
        engine: Engine, tmp_path: Path) -> None:
    """A row whose facts cannot be folded, between good ones: stepped over and recorded as
    ``quarantined|PARTITION|POSITION``; the rest of its page is folded; every partition moves
    past it."""
    record(engine, lines_of(simulate(1, 30)))
    rows = engine.store.read_facts(1, 10**6, columns=PROJECTION_COLUMNS)
    views = ViewStore(f"sqlite:///{tmp_path / 'views.db'}")
    try:
        loop = ProjectionLoop(views, "127.0.0.1:9", None)
        loop.take([0, 1])
        loop.feed_parts = 2
        # In store order, the bad row sixth (positions numbered again around it).
        ordered = [*rows[:5], ("?", "dossier", "BAD", None, b"5"), *rows[5:]]
        page = [(partition_for(r[2].encode(), 2), (pos, *r[1:]))
                for pos, r in enumerate(ordered, 1)]
        bad_pos, last = 6, len(ordered)
        before = METRICS.events_quarantined._value.get()
        loop.apply_page(page)
        assert METRICS.events_quarantined._value.get() - before == 1
        part = partition_for(b"BAD", 2)
        assert views.positions()[f"quarantined|{part}|{bad_pos}"] == bad_pos
        assert loop.quarantined() == 1
        assert loop.cursor == last
        assert loop.applied(0) == loop.applied(1) == last
        assert views.subject_facts("dossiers", "BAD") is None
        good = {r[2] for r in rows if r[1] == "dossier"}
        assert all(views.subject_facts("dossiers", sid) for sid in good)
    finally:
        views.close()


def followed(store: AlertStore) -> list[tuple[Any, ...]]:
    with store.db.tx(write=False) as c:
        c.execute("SELECT kind, id, agency, facts FROM alert_subjects ORDER BY kind, id")
        return [(r[0], r[1], r[2], orjson.loads(r[3])) for r in c.fetchall()]


def alert_loop(path: Path, bootstrap: str, feed: StoreFeed | None) -> AlertLoop:
    store = AlertStore(f"sqlite:///{path}")
    decider = Decider(store, load_lifecycle())
    return AlertLoop(decider, Dispatcher(store, lambda: 0.0), bootstrap, None, feed=feed)


def test_the_alerting_reading_the_store_follows_what_it_follows_reading_kafka(
        engine: Engine, fresh_broker: BundledBroker, tmp_path: Path) -> None:
    """The same subjects with the same latest facts, either way; the store reader's positions
    stand at the last row for every partition, and read again nothing is followed twice."""
    record(engine, lines_of(simulate(2, 200)))
    relay_all(engine, fresh_broker.bootstrap).producer.close()
    by_store = alert_loop(tmp_path / "a1.db", fresh_broker.bootstrap,
                          StoreFeed(engine.store, ALERTING_COLUMNS))
    by_kafka = alert_loop(tmp_path / "a2.db", fresh_broker.bootstrap, None)
    try:
        while by_store._read_store():
            pass
        by_kafka.setup()
        assert by_kafka.consumer is not None
        want = {f"pos|{k.rsplit('|', 1)[1]}": v
                for k, v in engine.store.positions_like(f"{Relay.EVENTS}|").items()}
        for _ in range(200):
            if all(by_kafka.decider.positions.get(k, 0) >= v for k, v in want.items()):
                break
            polled = by_kafka.consumer.poll(timeout_ms=500, max_records=5000)
            if polled:
                by_kafka.apply(polled)
        assert all(by_kafka.decider.positions.get(k, 0) >= v for k, v in want.items())
        subjects = followed(by_store.decider.store)
        assert subjects  # the open ones (finished dossiers are dropped)
        assert subjects == followed(by_kafka.decider.store)
        last = engine.store.last_fact()
        stored = by_store.decider.store.positions()
        assert [stored[f"pos|{p}"] for p in range(3)] == [last] * 3
        # Read again from the start (as a reader whose positions were lost would): every
        # event is at or below its partition's position, so nothing is followed twice.
        events = [(p, {"pos": r[0], "kind": r[1], "sid": r[2], "recorded_at": r[3],
                       "facts": None if r[4] is None else orjson.loads(r[4])})
                  for p, r in StoreFeed(engine.store, ALERTING_COLUMNS).page(0, 10**6, 3)]
        assert len(events) == last
        assert by_store.decider.follow(events, through=(3, last)) == 0
        assert followed(by_store.decider.store) == subjects
    finally:
        if by_kafka.consumer is not None:
            by_kafka.consumer.close()
        by_kafka.identity.close()  # a client left open reconnects (with jitter) in the background
        by_store.decider.store.close()
        by_kafka.decider.store.close()


def reads_as_its_idle_wait_says(engine: Engine, loop: ProjectionLoop | AlertLoop,
                                idle: CountingIdle, rest: list[bytes], first: int) -> None:
    """``loop.run()`` on a thread of its own: it reads what the store holds, telling ``idle``
    of each page found and asking it how long to wait after each empty look; what is recorded
    while it idles (``rest``, from offset ``first``) is read too."""
    stop = threading.Event()
    thread = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    thread.start()
    try:
        before = engine.store.last_fact()
        wait_for(lambda: loop.cursor == before, "the reader to read what was recorded")
        founds = idle.founds
        assert founds >= 1
        wait_for(lambda: idle.empties >= 5, "the reader to look at an empty store again")
        assert idle.founds == founds  # nothing new: no look found work
        record(engine, rest, first=first)
        last = engine.store.last_fact()
        assert last > before
        wait_for(lambda: loop.cursor == last, "the reader to read what came while it idled")
        assert idle.founds > founds
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_the_store_reader_waits_as_its_idle_wait_says(engine: Engine, tmp_path: Path) -> None:
    """The projection's ``run()`` on the store waits as its idle wait says (``kernel.idle``:
    how an idle ``motcua up`` stops looking 200 times a second); events recorded while it
    idles are still folded."""
    lines = lines_of(simulate(1, 60))
    half = len(lines) // 2
    record(engine, lines[:half])
    engine.store.set_position(Relay.PARTITIONS, 3)
    views = ViewStore(f"sqlite:///{tmp_path / 'views.db'}")
    idle = CountingIdle()
    loop = ProjectionLoop(views, "127.0.0.1:9", None, max_records=50,  # never connects
                          feed=StoreFeed(engine.store, PROJECTION_COLUMNS), idle=idle)
    try:
        first_part = engine.store.last_fact()
        reads_as_its_idle_wait_says(engine, loop, idle, lines[half:], half)
        assert idle.founds >= first_part // 50  # pages of at most 50 rows, each one found
    finally:
        views.close()


def test_the_alerting_store_reader_waits_as_its_idle_wait_says(
        engine: Engine, tmp_path: Path) -> None:
    """The same for the alerting role's ``run()`` on the store: what is recorded while it
    idles is still followed."""
    lines = lines_of(simulate(1, 60))
    half = len(lines) // 2
    record(engine, lines[:half])
    engine.store.set_position(Relay.PARTITIONS, 3)
    loop = alert_loop(tmp_path / "alerts.db", "127.0.0.1:9",  # never connects: the store
                      StoreFeed(engine.store, ALERTING_COLUMNS))
    idle = loop.idle = CountingIdle()
    try:
        reads_as_its_idle_wait_says(engine, loop, idle, lines[half:], half)
    finally:
        loop.decider.store.close()
