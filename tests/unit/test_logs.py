"""Logs: structlog JSON lines (or console lines) on stderr, tracebacks without local variables
(README configuration table; ``motcua/logs.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
import structlog

from motcua.logs import configure

SECRET = "mct1.0123456789abcdef.a-token-on-its-way-to-be-checked"


@pytest.fixture(autouse=True)
def keep_structlog() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def fail_with_a_secret_local() -> None:
    token = SECRET  # a frame's local, as the bridge holds a token it checks
    raise ValueError(f"bad action ({len(token)} bytes)")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_logged_traceback_names_the_error_but_not_the_frames_locals(
        fmt: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The exception and its frames are logged; the value of a local variable is not."""
    configure("info", fmt)
    try:
        fail_with_a_secret_local()
    except ValueError:
        structlog.get_logger().exception("action_failed")
    err = capsys.readouterr().err
    assert "fail_with_a_secret_local" in err and "bad action" in err
    assert SECRET not in err
    if fmt == "json":
        (line,) = err.strip().splitlines()
        record = orjson.loads(line)
        assert (record["event"], record["level"]) == ("action_failed", "error")
