"""The child engine spawned early (motcua.engine_spawn): it starts, imports, and waits on its stdin
without opening the store; it takes its environment from the parent's one line; it ends quietly
when the parent closes its stdin instead; a pipeline takes it while it waits, and spawns anew
when it died."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from motcua import engine_spawn


def _run(code: str, stdin: bytes) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True,
                          timeout=60, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def test_the_child_takes_its_environment_from_the_parents_line() -> None:
    code = ("import os; from motcua import engine_spawn; "
            "print(engine_spawn.await_go(), os.environ.get('MOTCUA_HOME'))")
    rc, out, err = _run(code, b'{"MOTCUA_HOME": "/srv/motcua"}\n')
    assert (rc, out.split()) == (0, ["True", "/srv/motcua"]), err


def test_end_of_file_means_nothing_to_run() -> None:
    code = "from motcua import engine_spawn; print(engine_spawn.await_go())"
    assert _run(code, b"")[:2] == (0, "False\n")


def test_a_line_that_is_no_environment_is_refused_in_one_sentence() -> None:
    code = "from motcua import engine_spawn; engine_spawn.await_go()"
    rc, _, err = _run(code, b'["MOTCUA_HOME"]\n')
    assert rc == 1
    assert err.strip() == "motcua engine --child: the parent's line is not an environment."


def _blocked_on_stdin(pid: int) -> bool:
    """The process sits in read(2) on fd 0 (``/proc/PID/syscall``: number 0, first arg 0)."""
    try:
        fields = Path(f"/proc/{pid}/syscall").read_text().split()
    except OSError:
        return False
    return fields[:2] == ["0", "0x0"]


def test_an_early_child_waits_without_opening_the_store_and_ends_when_not_needed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("MOTCUA_HOME", str(home))
    monkeypatch.setenv("MOTCUA_KAFKA_BOOTSTRAP", "127.0.0.1:9")  # nothing listens there
    engine_spawn.spawn_early()
    (proc,) = engine_spawn._EARLY
    deadline = time.monotonic() + 60
    while not _blocked_on_stdin(proc.pid):  # polling: the child's imports take a while
        assert proc.poll() is None, "the early child exited before it was told anything"
        assert time.monotonic() < deadline, "the early child never waited on its stdin"
        time.sleep(0.05)
    assert not home.exists() or not any(home.iterdir())  # no store opened, no file written
    engine_spawn.discard()
    assert proc.returncode == 0
    assert engine_spawn._EARLY == []
    assert not home.exists() or not any(home.iterdir())


def test_take_prefers_the_waiting_early_child_and_replaces_a_dead_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    spawned: list[subprocess.Popen[bytes]] = []

    def fake_spawn() -> subprocess.Popen[bytes]:
        spawned.append(subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                        stdin=subprocess.PIPE))
        return spawned[-1]

    monkeypatch.setattr(engine_spawn, "spawn", fake_spawn)
    try:
        engine_spawn.spawn_early()
        engine_spawn.spawn_early()  # one early child at most
        assert len(spawned) == 1
        assert engine_spawn.take() is spawned[0]
        assert len(spawned) == 1
        engine_spawn.spawn_early()
        spawned[1].kill()
        spawned[1].wait()
        assert engine_spawn.take() is spawned[2]  # the dead one is passed over
        for p in spawned:
            engine_spawn.go(p, {"MOTCUA_HOME": "/x"})  # a dead child cannot be told: no error
            p.wait(30)
    finally:
        engine_spawn.discard()


def test_the_childs_command_line_runs_the_engine_without_building_the_parser() -> None:
    """``python -m motcua engine --child`` goes straight to the child engine (no parser built:
    a tenth of a second less on the way to the first batch), which ends quietly at end of
    file; the parser's route for the same command line runs the same function."""
    from motcua.cli import build_parser
    from motcua.cli.roles import cmd_child

    code = ("import sys; import motcua.cli as cli; cli.build_parser = None; "
            f"sys.argv = ['motcua', *{engine_spawn.CHILD_ARGS!r}]; raise SystemExit(cli.main())")
    assert _run(code, b"")[:2] == (0, "")
    assert build_parser().parse_args(engine_spawn.CHILD_ARGS).fn is cmd_child
    assert build_parser().parse_args(["engine"]).fn is cmd_child
