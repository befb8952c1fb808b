"""kafka-python while its broker does not answer: no socket or thread left behind.

``kernel/kafka_fixes.py`` mends two leaks of kafka-python 3.0: a failed connection attempt
left its socket open until the cyclic garbage collector ran (which a served ``motcua`` process
runs rarely), and a client whose constructor failed left its network client running. Both
against the real bundled broker, or a port where nothing listens.
"""

from __future__ import annotations

import gc
import inspect
import os
import threading
import time
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import pytest
from faults import Role, answers, children, role_env, stat_fields, wait_for
from kafka.net.inet import KafkaNetSocket
from prometheus_client.parser import text_string_to_metric_families

from kernel import kafka as K
from kernel.broker import BundledBroker, free_port
from kernel.kafka_fixes import LIBRARY_CONNECT
from kernel.settings import ACTIONS_TOPIC


def _open_fds(pid: int | str = "self") -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _threads(pid: int) -> int:
    return int(stat_fields(Path(f"/proc/{pid}/stat"))[17])  # num_threads (field 20)


def test_motcua_up_through_a_broker_outage_holds_its_open_files_and_threads(
    tmp_path: Path,
) -> None:
    """``motcua up`` (and its engine process) on an external broker that stops: while its
    clients retry, the open files and threads of both processes stay where they settled, and
    ``/metrics`` shows both processes' open files (``motcua_process_open_fds``,
    ``motcua_engine_process_open_fds``).
    Before the mend, in a 60 s outage: the parent 41 → 290 open files and 16 → 29 threads, the
    engine process 17 → 145 files (about 4 and 2 a second: the usual limit of 1,024 within
    minutes)."""
    port = free_port()
    with BundledBroker(tmp_path / "broker") as broker:
        env = role_env(tmp_path / "home", f"sqlite:///{tmp_path / 'motcua.db'}",
                       broker.bootstrap)
        up = Role("up", env, tmp_path, "--port", str(port)).start()
        try:
            wait_for(lambda: answers(f"http://127.0.0.1:{port}/healthz"), "motcua up to answer",
                     roles=[up])
            up_pid = up.pid
            assert up_pid is not None
            engine = wait_for(lambda: children(up_pid, "engine"), "the engine process",
                              roles=[up])[0]
            broker.stop()
            samples: list[dict[int, tuple[int, int]]] = []
            start = time.monotonic()
            while time.monotonic() - start < 12:  # a sample each half second
                samples.append({pid: (_open_fds(pid), _threads(pid)) for pid in (up_pid, engine)})
                time.sleep(0.5)
            assert up.alive
            # What an operator sees of it: /metrics gives both processes' open files.
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                shown = {s.name: s.value for fam in text_string_to_metric_families(
                    r.read().decode()) for s in fam.samples}
            assert abs(shown["motcua_process_open_fds"] - _open_fds(up_pid)) <= 4
            assert abs(shown["motcua_engine_process_open_fds"] - _open_fds(engine)) <= 4
            settled = samples[8]  # 4 s after the broker stopped: connections found lost
            for pid, (files, threads) in settled.items():
                most_files = max(s[pid][0] for s in samples[8:])
                most_threads = max(s[pid][1] for s in samples[8:])
                assert most_files <= files + 4, (pid, [s[pid] for s in samples])
                assert most_threads <= threads + 1, (pid, [s[pid] for s in samples])
        finally:
            up.stop()


def test_a_client_reconnecting_to_a_stopped_broker_keeps_no_socket_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A consumer whose broker stopped tries to reconnect again and again; with the cyclic
    collector off (as a served process nearly has it), the process's open files must not grow
    with the attempts (kafka-python left one socket open per failed attempt)."""
    attempts = [0]
    make_socket = KafkaNetSocket.socket

    def counted(self: KafkaNetSocket, *args: Any, **kwargs: Any) -> Any:
        attempts[0] += 1
        return make_socket(self, *args, **kwargs)

    monkeypatch.setattr(KafkaNetSocket, "socket", counted)
    gc.collect()
    gc.disable()
    try:
        with BundledBroker(tmp_path / "broker") as broker:
            K.ensure_topics(broker.bootstrap, None, {ACTIONS_TOPIC: 1})
            c = K.consumer(broker.bootstrap)
            try:
                c.assign([K.TopicPartition(ACTIONS_TOPIC, 0)])
                c.poll(200)
                broker.stop()
                before, tried = _open_fds(), attempts[0]
                wait_for(lambda: (c.poll(100), attempts[0] >= tried + 4)[1],
                         "four attempts to reconnect to the stopped broker", timeout=60)
                # (one attempt may be under way)
                assert _open_fds() <= before + 1, (before, _open_fds(), attempts[0] - tried)
            finally:
                c.close()
    finally:
        gc.enable()


def test_waiting_for_a_broker_that_never_answers_leaves_no_thread_or_socket() -> None:
    """``wait_until_reachable`` builds admin clients until one bootstraps; each whose
    constructor fails must be closed: no kafka-python thread goes on, no socket is left for
    the collector to find."""
    port = free_port()
    gc.collect()  # what earlier tests left is not this test's
    before = set(threading.enumerate())
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(K.BrokerUnreachableError):
            K.wait_until_reachable(f"127.0.0.1:{port}", None, timeout=1.0)
        gc.collect()
    unclosed = [str(w.message) for w in seen if issubclass(w.category, ResourceWarning)]
    assert not unclosed, unclosed
    wait_for(lambda: not [t for t in threading.enumerate()
                          if t not in before and t.name.startswith("kafka")],
             "kafka-python's threads to end", timeout=10)


def test_the_mended_connect_is_kafka_python_s_own_with_the_close() -> None:
    """The mend repeats kafka-python 3.0.12's ``KafkaNetSocket.connect`` and closes the socket
    on failure: when an upgrade changes that method (or closes the socket itself), this fails
    and the mend is looked at again."""
    src = inspect.getsource(LIBRARY_CONNECT)
    assert "sock = self.socket(family, sock_type, proto)" in src
    assert "return await self.sock_connect(net, sock, sockaddr, timeout_at=timeout_at)" in src
    assert "close" not in src
    assert KafkaNetSocket.connect is not LIBRARY_CONNECT  # the mend is in place
