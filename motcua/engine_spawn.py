"""Starting the child engine of ``motcua up`` and ``motcua demo`` before the parent needs it.

A child engine spends about half a second starting Python and importing what it runs, and the
parent spends as long on its own imports, the broker and the store's tables before it may start
one. So the parent spawns the child first (``spawn_early``, before its heavy imports) and the
two start side by side; the child then waits (``await_go``) for one line on its stdin, a JSON
object of the environment it is to run with (the store, the broker, the log settings: what the
parent knows once the broker runs and the tables exist), and only then opens the store. End of
file instead of that line (the parent is gone, or ended before it needed the child) ends the
child quietly. Its command line (``CHILD_ARGS``) is fixed, so ``motcua.cli.main`` runs it
without building every command's parser. A child started again later
(``motcua.engine_process``) is spawned and told at once, through the same two steps.

Light on purpose: the command line imports this before anything heavy.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import orjson

_PR_SET_PDEATHSIG = 1


def _prctl() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: the child also watches its parent's pid
        return None


# Looked up here, not between fork and exec, where only the call itself should run.
_PRCTL = _prctl()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


# The child spawned early and not yet taken by the pipeline.
_EARLY: list[subprocess.Popen[bytes]] = []


# The child's command line after ``python -m motcua``: fixed, so that the command line takes
# it without building its whole parser (``motcua.cli.main``).
CHILD_ARGS = ["engine", "--child"]


def command() -> list[str]:
    return [sys.executable, "-m", "motcua", *CHILD_ARGS]


def spawn() -> subprocess.Popen[bytes]:
    """A new child engine, waiting for its environment on stdin. If the parent dies, even by
    SIGKILL, the kernel sends it SIGTERM (``PR_SET_PDEATHSIG``)."""
    return subprocess.Popen(command(), stdin=subprocess.PIPE,
                            preexec_fn=_die_with_parent)  # noqa: PLW1509


def spawn_early() -> None:
    """Spawn the child now, for the pipeline to take once it may run."""
    if not _EARLY:
        _EARLY.append(spawn())


@contextlib.contextmanager
def early(wanted: bool) -> Iterator[None]:
    """Around a command that may start a child engine: one spawned now (if ``wanted``), and
    ended at the end if no pipeline took it."""
    if wanted:
        spawn_early()
    try:
        yield
    finally:
        discard()


def take() -> subprocess.Popen[bytes]:
    """The child spawned early if it is still waiting, else a new one."""
    while _EARLY:
        proc = _EARLY.pop()
        if proc.poll() is None:
            return proc
    return spawn()


def go(proc: subprocess.Popen[bytes], env: dict[str, str]) -> None:
    """Tell a waiting child its environment; it then runs. A child that died meanwhile cannot
    be told: its exit is the supervisor's to see (it starts another)."""
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError, OSError):
        proc.stdin.write(orjson.dumps(env) + b"\n")
        proc.stdin.flush()
    with contextlib.suppress(BrokenPipeError, OSError):
        proc.stdin.close()


def discard() -> None:
    """End a child spawned early that no pipeline took (its stdin closed: it exits)."""
    while _EARLY:
        proc = _EARLY.pop()
        with contextlib.suppress(BrokenPipeError, OSError):
            assert proc.stdin is not None
            proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def await_go() -> bool:
    """In the child: wait for the parent's line and take its environment; False at end of
    file (nothing to run)."""
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return False
    env = orjson.loads(line)
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise SystemExit("motcua engine --child: the parent's line is not an environment.")
    os.environ.update(env)
    return True
