"""What the alert tests share: the actions of their hand-worked case (worked out in
tests/unit/test_alerts.py), and a webhook receiver, a real HTTP server on a free loopback port
that answers each request with the next status of a script (then 200) and keeps what it got."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from acts import builder

act = builder("al")


def actions() -> list[dict[str, Any]]:
    proc = {"authority_id": "H15", "authority_level": "province", "decision_date": "2026-01-05",
            "legal_basis_effective_date": "2026-02-01", "implementing_agency_ids": ["H15.3"],
            "processing_time": {"value": 5, "unit": "working_days"}}

    def dossier(d: str, *more: tuple[str, str, dict[str, Any]]) -> list[dict[str, Any]]:
        return [act("received", "08-10T08:00", {"dossier_id": d}, agency_id="H15.3",
                    procedure_id="P1", channel="direct", due_at="2026-09-03T17:00:00+07:00",
                    official_id="o-rec")] + [act(t, w, {"dossier_id": d}, **x)
                                             for t, w, x in more]

    return [
        act("agency_registered", "01-02T08:00", {"agency_id": "H15"}, name="Tỉnh",
            level="province"),
        act("agency_registered", "01-02T08:00", {"agency_id": "H15.3"}, name="Sở",
            level="department", parent_id="H15"),
        act("procedure_published", "01-02T08:00", {"procedure_id": "P1"}, **proc),
        *dossier("B", ("handed_over", "08-11T09:00", {"to_unit": "H15.3/kt",
                                                      "to_official": "o1", "step": "process"})),
        *dossier("C", ("apology_issued", "08-25T09:00",
                       {"new_due_at": "2026-09-10T17:00:00+07:00", "reason": "quá tải"})),
        *dossier("G", ("supplement_requested", "08-25T09:00", {})),
        act("feedback_received", "08-10T09:00", {"feedback_id": "FB1"}, agency_id="H15.3",
            classification="procedure"),
    ]



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
