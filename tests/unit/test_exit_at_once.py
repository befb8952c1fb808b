"""``exit_at_once``: a long-running command's process ends without the interpreter's teardown
(motcua.cli.common), having flushed what it wrote. Each case runs in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONUNBUFFERED", None)  # standard output to a pipe is then block-buffered
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT,
                          capture_output=True, timeout=60, check=False)


def test_it_flushes_what_was_written_and_skips_the_teardown_with_the_status_given() -> None:
    done = _run("""
        import atexit, logging, sys
        from motcua.cli.common import exit_at_once
        atexit.register(lambda: print("teardown ran", flush=True))
        logging.basicConfig(stream=sys.stderr)
        sys.stdout.write("no newline, still buffered")  # a pipe: block-buffered
        logging.getLogger("x").warning("last words")
        exit_at_once(3)
        print("after the exit")
    """)
    assert done.returncode == 3
    assert done.stdout == b"no newline, still buffered"
    assert b"last words" in done.stderr


def test_only_the_process_s_own_long_running_command_exits_at_once() -> None:
    """The role commands and ``demo`` are long-running, the others are not; ``main(argv)``
    called in-process (tests, embedding) returns its status even for a role command, and only
    the entry point's own command ends the process at once (here on a bad setting, status 2)."""
    done = _run("""
        import atexit, os, sys
        from motcua.cli import build_parser, main
        atexit.register(lambda: print("teardown ran", flush=True))
        parse = build_parser().parse_args
        for argv in (["up"], ["engine"], ["project"], ["serve"], ["alert"], ["demo"],
                     ["ingest", "x"], ["status"]):
            print(argv[0], getattr(parse(argv), "long_running", False))
        os.environ["MOTCUA_HTTP_PORT"] = "not-a-port"
        print("in-process up returned", main(["up"]), flush=True)
        sys.argv = ["motcua", "up"]
        main()
        print("the process's own up returned")
    """)
    assert done.returncode == 2
    assert done.stdout.decode().splitlines() == [
        "up True", "engine True", "project True", "serve True", "alert True", "demo True",
        "ingest False", "status False", "in-process up returned 2"]
    assert b"MOTCUA_HTTP_PORT" in done.stderr
