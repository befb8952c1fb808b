"""The HTTP server's start: listening, or one sentence with the cause."""

from __future__ import annotations

import socket
import urllib.request
from typing import Any

import pytest

from kernel.errors import UserError
from motcua.serving import serve_http, stop_http


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"up"})


def test_a_port_in_use_is_one_sentence_with_its_cause() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(UserError) as e:
            serve_http(_app, "127.0.0.1", port)
    message = str(e.value)
    assert message == (f"The HTTP server could not listen on 127.0.0.1:{port}: "
                       "Address already in use.")


def test_a_host_that_is_not_this_machine_is_one_sentence() -> None:
    with pytest.raises(UserError) as e:
        serve_http(_app, "192.0.2.1", 8000)  # TEST-NET-1: no interface of this machine
    assert str(e.value).startswith("The HTTP server could not listen on 192.0.2.1:8000: ")


def test_a_free_port_serves() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    server, thread = serve_http(_app, "127.0.0.1", port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.read() == b"up"
    finally:
        stop_http(server)
        thread.join(10)
    assert not thread.is_alive()
