"""``motcua up`` runs its engine role in a child process (motcua.engine_process, issue 14).

Real processes on the embedded default (SQLite, the bundled broker ``up`` starts): the child
records every action exactly once, its metrics are served by the parent's ``/metrics``, it does
not outlive a SIGKILLed parent, a child that dies is started again without losing or doubling an
action, and ``MOTCUA_ENGINE_PROCESS=0`` keeps everything in one process.
"""

from __future__ import annotations

import os
import signal
import urllib.request
from pathlib import Path

from faults import Probe, Role, children, cli, embedded_env, lines_of, simulate, wait_for
from test_durable import assert_once_each, start_up, wait_all_recorded

from kernel.broker import free_port


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def _metrics(port: int) -> dict[str, float]:
    """``/metrics`` as {sample with labels: value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:  # noqa: S310
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def _up(tmp_path: Path, agencies: int, dossiers: int,
        **extra: str) -> tuple[list[bytes], dict[str, str], Probe, Role]:
    """A simulated province's actions, and ``motcua up`` on the embedded default under
    ``tmp_path`` (holds of ten minutes: nothing expires mid-test)."""
    lines = lines_of(simulate(agencies, dossiers))
    home = tmp_path / "home"
    env = embedded_env(home, MOTCUA_HOLD_SECONDS="600",
                       **{"MOTCUA_HTTP_PORT": str(free_port()), **extra})
    probe = Probe(f"sqlite:///{home / 'motcua.db'}")
    return lines, env, probe, start_up(env, home, tmp_path)


def test_up_records_through_its_child_engine_which_dies_with_it(tmp_path: Path) -> None:
    """The engine of ``motcua up`` is a ``motcua engine --child`` process: every action of a
    file is recorded once, the parent's ``/metrics`` shows the child's engine positions (one
    more than the last offset of each partition sums to the number of actions) beside its own
    projection's counts (read from the event store), and a SIGKILL of ``up`` takes the child
    with it."""
    lines, env, probe, up = _up(tmp_path, 3, 300)
    port = int(env["MOTCUA_HTTP_PORT"])
    try:
        assert up.pid is not None
        (child,) = wait_for(lambda: children(up.pid or 0, "--child"), "the child engine",
                            roles=[up])
        done = cli(env, "ingest", str(_write(tmp_path / "f.ndjson", lines)))
        assert done.returncode == 0, done.stderr
        wait_all_recorded(probe, len(lines), [up])

        def positions() -> dict[str, float]:
            got = _metrics(port)
            pos = {k: v for k, v in got.items() if k.startswith("motcua_engine_position{")}
            ok = len(pos) == 3 and sum(v + 1 for v in pos.values()) == len(lines)
            return got if ok and got.get("motcua_events_folded_total", 0) > 0 else {}

        metrics = wait_for(positions, "the child's positions in the parent's /metrics",
                           roles=[up])
        assert metrics['motcua_actions_total{outcome="accepted"}'] > 0
        # Its projection reads the event store (projections.feed), not motcua.events: its lag
        # is counted against the store (no gauge per events partition).
        wait_for(lambda: {k: v for k, v in _metrics(port).items()
                          if k.startswith("motcua_projection_lag_messages{")}
                 == {'motcua_projection_lag_messages{partition="store"}': 0},
                 "the projection's only lag gauge, against the event store, at 0", roles=[up])
        up.kill()
        wait_for(lambda: not _alive(child), "the child engine to stop with its parent",
                 timeout=30)
    finally:
        up.stop()
    assert_once_each(probe, len(lines))


def test_a_child_engine_that_dies_is_started_again_and_nothing_is_lost(tmp_path: Path) -> None:
    """The child engine is SIGKILLed between two files: ``up`` starts another one, and every
    action of both files is recorded exactly once."""
    lines, env, probe, up = _up(tmp_path, 3, 400)
    half = len(lines) // 2
    try:
        (child,) = wait_for(lambda: children(up.pid or 0, "--child"), "the child engine",
                            roles=[up])
        assert cli(env, "ingest", str(_write(tmp_path / "a.ndjson", lines[:half]))
                   ).returncode == 0
        os.kill(child, signal.SIGKILL)
        assert cli(env, "ingest", str(_write(tmp_path / "b.ndjson", lines[half:]))
                   ).returncode == 0
        wait_all_recorded(probe, len(lines), [up])
        assert up.log_events("engine_process_exited")
        (again,) = children(up.pid or 0, "--child")
        assert again != child
    finally:
        up.stop()
    assert_once_each(probe, len(lines))


def test_engine_process_0_keeps_up_in_one_process(tmp_path: Path) -> None:
    """With ``MOTCUA_ENGINE_PROCESS=0`` the engine is a thread of ``up`` again: no child, and
    the actions are recorded all the same."""
    lines, env, probe, up = _up(tmp_path, 2, 100, MOTCUA_ENGINE_PROCESS="0")
    try:
        assert cli(env, "ingest", str(_write(tmp_path / "f.ndjson", lines))).returncode == 0
        wait_all_recorded(probe, len(lines), [up])
        assert children(up.pid or 0, "--child") == []
        assert not up.log_events("engine_process_started")
    finally:
        up.stop()
    assert_once_each(probe, len(lines))


def test_an_interrupted_up_stops_its_child_and_broker_says_so_and_exits_0(
        tmp_path: Path) -> None:
    """SIGINT to ``motcua up`` after its work: every process it started is gone when it has
    exited with status 0 (it ends without the interpreter's teardown, motcua.cli.common
    ``exit_at_once``, so its last log line must still be written), and everything it was sent
    is recorded once."""
    lines, env, probe, up = _up(tmp_path, 2, 120, MOTCUA_LOG_LEVEL="info")
    try:
        assert up.proc is not None and up.pid is not None
        (child,) = wait_for(lambda: children(up.pid or 0, "--child"), "the child engine",
                            roles=[up])
        started = set(children(up.pid))  # the child engine and the bundled broker
        assert len(started) >= 2
        assert cli(env, "ingest", str(_write(tmp_path / "f.ndjson", lines))).returncode == 0
        wait_all_recorded(probe, len(lines), [up])
        up.proc.send_signal(signal.SIGINT)
        assert up.proc.wait(30) == 0
        assert not [pid for pid in started if _alive(pid)]
        assert not _alive(child)
        assert up.log_events("bundled_broker_stopped")  # its last words, written
    finally:
        up.stop()
    assert_once_each(probe, len(lines))
