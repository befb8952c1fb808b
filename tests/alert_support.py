"""A webhook receiver for the alert tests: a real HTTP server on a free loopback port that
answers each request with the next status of a script (then 200), and keeps what it got."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """``Receiver([500, 500, 500])`` fails three times, then answers 200."""

    def __init__(self, script: list[int] | None = None,
                 on_request: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.script = list(script or [])
        self.on_request = on_request
        self.got: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                req = {"body": body, "headers": {k.lower(): v for k, v in self.headers.items()}}
                with outer.lock:
                    outer.got.append(req)
                    status = outer.script.pop(0) if outer.script else 200
                    outer.arrived.notify_all()
                if outer.on_request is not None:
                    outer.on_request(req)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.got) >= n, timeout)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
