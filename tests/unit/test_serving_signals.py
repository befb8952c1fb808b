"""``run_until_signal``: what ends it, and a handler that cannot deadlock the process.

An engine child of ``motcua up`` was found alive half an hour after its parent was killed: its
main thread was stuck in its own SIGTERM handler. The handler set a ``threading.Event``; a second
signal (the kernel's parent-death SIGTERM and the test's own) ran a second handler inside the
first while the first held the event's lock, and neither could go on. The handler now takes no
lock at all, which these tests check by profiling the installed handler's C calls. Each case
runs in a fresh interpreter: only a main thread may install signal handlers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[2]

# The handler, called the way the interpreter calls it, under a profiler that records every
# C function it calls: a lock's acquire (or ``with lock``) is what can deadlock.
PROBE = textwrap.dedent("""
    import signal, sys, orjson
    from motcua.serving import run_until_signal

    seen = {}

    def alive():
        handler = signal.getsignal(signal.SIGTERM)
        calls = []
        def prof(frame, event, arg):
            if event == "c_call":
                calls.append(getattr(arg, "__qualname__", repr(arg)))
        sys.setprofile(prof)
        try:
            handler(signal.SIGTERM, None)
            handler(signal.SIGINT, None)
        finally:
            sys.setprofile(None)
        seen["c_calls"] = calls
        return True

    run_until_signal(lambda: seen.update(stopped=seen.get("stopped", 0) + 1), alive)
    print(orjson.dumps(seen).decode())
""")


def _python(code: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_the_signal_handler_takes_no_lock_and_ends_the_wait() -> None:
    p = _python(PROBE)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err.decode()
    seen = orjson.loads(out)
    locks = [c for c in seen["c_calls"] if "acquire" in c or "__enter__" in c or "wait" in c]
    assert locks == [], f"the handler called {locks}"
    assert seen["stopped"] == 1  # the handled signal ended the wait, and stop ran once


def test_sigterm_stops_it_and_stop_runs_once() -> None:
    code = textwrap.dedent("""
        from motcua.serving import run_until_signal
        calls = []
        ready = []

        def alive():  # first called once the handlers are in place
            if not ready:
                ready.append(print("ready", flush=True))
            return True

        run_until_signal(lambda: calls.append(1), alive)
        print("stopped", len(calls), flush=True)
    """)
    p = _python(code)
    assert p.stdout is not None
    assert p.stdout.readline() == b"ready\n"
    p.send_signal(signal.SIGTERM)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err.decode()
    assert out == b"stopped 1\n"


def test_it_ends_when_alive_turns_false() -> None:
    code = textwrap.dedent("""
        import time
        from motcua.serving import run_until_signal
        t0 = time.monotonic()
        run_until_signal(lambda: print("stopped", flush=True), lambda: time.monotonic() - t0 < 0.3)
    """)
    p = _python(code)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err.decode()
    assert out == b"stopped\n"
