"""Serving a running pipeline over HTTP until a signal: shared by ``motcua up``/``serve`` and
``motcua demo``, so the demo does not reach into the command line."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from kernel.errors import UserError
from kernel.settings import Settings


def run_until_signal(stop: Callable[[], None], alive: Callable[[], bool] = lambda: True) -> None:
    """Block until SIGINT or SIGTERM (or until ``alive()`` is false), then call ``stop``.

    The handler only appends to a list, taking no lock. It runs in the main thread between two
    bytecodes, even inside another run of itself: when it set a ``threading.Event``, a second
    signal arriving while the first handler held the event's lock deadlocked the process for
    good (an engine child outlived its killed parent so, found in a test run)."""
    received: list[int] = []

    def _handler(signum: int, frame: Any) -> None:
        received.append(signum)

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    try:
        ticks = 0
        while not received:
            time.sleep(0.1)
            ticks += 1
            if ticks % 5 == 0 and not alive():
                break
    finally:
        stop()


def serve_http(app: Any, host: str, port: int) -> tuple[Any, threading.Thread]:
    """Start uvicorn on ``host:port`` in a thread; return once it listens. The socket is
    bound here first, so a port in use or a host that is not this machine's is one sentence
    with its cause (uvicorn would log its own error line and exit its thread)."""
    import socket

    import uvicorn

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family)
    except OSError as e:
        cause = (e.strerror or str(e)).split(" (while attempting")[0].rstrip(".")
        raise UserError(f"The HTTP server could not listen on {host}:{port}: {cause}.") from None
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            lifespan="off")
    server = uvicorn.Server(config)
    t = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="http",
                         daemon=True)
    t.start()
    deadline = time.monotonic() + 15
    while not server.started and time.monotonic() < deadline:
        if not t.is_alive():
            raise UserError(f"The HTTP server could not listen on {host}:{port}.")
        time.sleep(0.05)
    return server, t


def stop_http(server: Any) -> None:
    """Ask a server started by :func:`serve_http` to exit."""
    server.should_exit = True


def api(pipeline: Any, settings: Settings, live: bool) -> Any:
    """The HTTP app over a pipeline's views (its live projection if ``live``), with the bridge."""
    from kernel.grants import GrantBook
    from projections.api import create_app
    from projections.source import LiveSource, StoreSource

    source: LiveSource | StoreSource
    if live and pipeline.projection is not None:
        source = LiveSource(pipeline.projection, pipeline.views, pipeline.engine)
    else:
        source = StoreSource(pipeline.views, pipeline.engine)
    bridge = None
    try:
        from producers.bridge import make_bridge

        # The bridge scopes follow-ups by the agencies of the recorded subject they change.
        agencies = pipeline.engine.subject_agencies if pipeline.engine is not None else None
        bridge = make_bridge(settings, pipeline.bootstrap, subject_agencies=agencies,
                             intake=pipeline.intake)
    except ImportError:
        pass
    return create_app(source, pipeline.rulesets, pinned=settings.ruleset, bridge=bridge,
                      grants=GrantBook(settings.database_url))
