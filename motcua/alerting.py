"""The alerting role in a process (``motcua up``, ``motcua alert``, ``motcua demo``): its
store beside the views, the lifecycle rules the facts were derived under, the wall clock, and
the delivery settings (``MOTCUA_SMTP_URL``); and the demo's local receiver."""

from __future__ import annotations

import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from kernel.lifecycle import load_lifecycle
from kernel.settings import Settings
from projections.alerts.deliver import Dispatcher
from projections.alerts.role import AlertLoop, Decider
from projections.alerts.store import AlertStore
from projections.feed import StoreFeed
from projections.store import views_url


def alert_loop(settings: Settings, bootstrap: str, group: bool,
               feed: StoreFeed | None = None) -> AlertLoop:
    """The role over the configured store and broker, or the event store's ``feed``
    (``projections.feed``); the caller runs ``run`` and ``deliver`` in threads, and closes
    ``decider.store``."""
    import time

    store = AlertStore(views_url(settings.database_url))
    decider = Decider(store, load_lifecycle(settings.lifecycle_rules), time.time)
    dispatcher = Dispatcher(store, time.time, smtp_url=settings.smtp_url)
    return AlertLoop(decider, dispatcher, bootstrap, settings.kafka_security,
                     partitions=settings.partitions,
                     group=f"{settings.consumer_group}-alerts" if group else None,
                     session_timeout_ms=settings.session_timeout_ms, feed=feed)


class DemoReceiver:
    """A webhook receiver on loopback that prints each alert it gets (``motcua demo``) and
    answers 200; a repeat of an Idempotency-Key it has seen is acknowledged, not shown. Past
    the first ``shown`` alerts it only counts them (a simulated province's backlog has many)."""

    def __init__(self, show: Any = print, shown: int = 20) -> None:
        seen: set[str] = set()
        lock = threading.Lock()
        self.received = 0

        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = self.headers.get("Idempotency-Key", "")
                with lock:
                    new = key not in seen
                    seen.add(key)
                    if new:
                        outer.received += 1
                if new and outer.received <= shown:
                    show(_line(orjson.loads(body)))
                    if outer.received == shown:
                        show("motcua demo: (further alerts are counted, not shown)")
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # (serve_forever looks for shutdown() every poll interval: 0.5 s by default, which
        # was most of `motcua demo`'s stop)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       name="demo-receiver", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _line(a: dict[str, Any]) -> str:
    subject = a.get("dossier_id") or a.get("feedback_id")
    due = datetime.fromisoformat(a["due_at"]).strftime("%d/%m %H:%M")
    holder = a.get("holder") or {}
    who = f" held by {holder.get('unit')}" if holder else ""
    return f"motcua demo: alert {a['rule']:<12} {subject} ({a['agency_id']}) due {due}{who}"
