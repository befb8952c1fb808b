"""The HTTP API and the public scoreboard page (contract/interface.md, "HTTP").

``create_app(source, rulesets)`` builds a FastAPI app over any ``ViewSource``: the live projection
of this process or the view store of another one. Queries read one consistent snapshot of the
counters; their JSON is written by orjson. Mistakes in the query string are 400 with one sentence
naming the bad input, an unknown agency or dossier is 404.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Hashable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from kernel.calendar import VN_TZ, local_date
from kernel.errors import UserError
from kernel.metrics import METRICS, render
from projections.criteria import REGISTRY, Registry, SubjectCriterion
from projections.fold import Counters
from projections.periods import Period, current_year, parse_instant, parse_period
from projections.ruleset import Ruleset, Rulesets, pick
from projections.source import HistoryUnavailableError, ViewSource
from projections.views import Tree, UnknownAgencyError, overdue_list, ranking, scorecard

DASHBOARD = Path(__file__).with_name("dashboard")
LEVELS = ("ministry", "province", "department", "district", "commune")
Clock = Callable[[], datetime]


class OrjsonResponse(JSONResponse):
    """JSON written by orjson (FastAPI's own ORJSONResponse is deprecated)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class ApiError(Exception):
    """A request that cannot be answered: an HTTP status and one sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> OrjsonResponse:
    return OrjsonResponse({"error": message}, status_code=status)


class _Cache:
    """Answers per (query, arguments, projection version): many viewers, one computation."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.items: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        hit = self.items.get(key)
        if hit is not None:
            self.items.move_to_end(key)
            return hit
        value = self.items[key] = compute()
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        return value


def create_app(
    source: ViewSource,
    rulesets: Ruleset | Rulesets,
    *,
    pinned: str | None = None,
    registry: Registry = REGISTRY,
    clock: Clock = lambda: datetime.now(UTC),
    bridge: APIRouter | None = None,
) -> FastAPI:
    """The API, the scoreboard page and, when given, the action bridge's router.

    Each view is scored under the ruleset in force at its end, or ``ruleset`` when one is
    ``pinned`` (``MOTCUA_RULESET``), or the one a request names (``?ruleset=``, what-if)."""
    app = FastAPI(
        title="motcua",
        version="1",
        summary="Live Decision 766 service index: scorecards, rankings and late-dossier lists.",
        default_response_class=OrjsonResponse,
    )
    cache = _Cache()
    _install_error_handlers(app)

    def now_of(text: str | None) -> datetime:
        return clock() if text is None or text == "" else parse_instant(text, "Parameter now")

    def period_of(text: str | None, now: datetime) -> Period:
        return current_year(now) if text is None or text == "" else parse_period(text)

    def query(name: str, key: tuple[Any, ...], compute: Callable[[Counters], Any]) -> Any:
        """Run ``compute`` on a snapshot, timed, and shared by equal requests of one version."""
        with METRICS.query_seconds.labels(query=name).time(), source.snapshot() as counters:
            return cache.get((name, source.version(), *key), lambda: compute(counters))

    def rules(name: str | None, p: Period, t: datetime) -> Ruleset:
        return pick(rulesets, name or pinned, local_date(p.view_end(t)))

    def at(p: Period, t: datetime) -> datetime:
        """What an answer depends on of ``now``: the view's end, to the second (a scorecard
        is judged per day, and shows E to the second)."""
        return p.view_end(t).replace(microsecond=0)

    def tree_with(counters: Counters, agency_id: str) -> Tree:
        tree = Tree.build(counters)
        if agency_id not in tree.parent:
            raise ApiError(404, f"Agency {agency_id!r} is not known.")
        return tree

    @app.get("/api/v1/agencies/{agency_id}/scorecard", tags=["index"])
    def get_scorecard(agency_id: str, period: str | None = None, now: str | None = None,
                      ruleset: str | None = None) -> OrjsonResponse:
        """The scorecard of an agency's subtree for a period (default: the current year),
        under the ruleset in force at the view's end (or the one named)."""
        t = now_of(now)
        p = period_of(period, t)
        r = rules(ruleset, p, t)

        def compute(c: Counters) -> Any:
            return scorecard(c, r, agency_id, p, t, tree_with(c, agency_id))

        return OrjsonResponse(query("scorecard", (agency_id, p.label, at(p, t), r.name),
                                    compute))

    @app.get("/api/v1/ranking", tags=["index"])
    def get_ranking(period: str | None = None, level: str | None = None,
                    now: str | None = None, ruleset: str | None = None) -> OrjsonResponse:
        """Agencies ranked by total, ties broken by agency id; ``level`` keeps one level."""
        t = now_of(now)
        p = period_of(period, t)
        if level is not None and level not in LEVELS:
            raise ApiError(400, f"Level {level!r} is not one of {', '.join(LEVELS)}.")
        r = rules(ruleset, p, t)
        doc = query("ranking", (p.label, level, at(p, t), r.name),
                    lambda c: ranking(c, r, p, t, level=level or None))
        return OrjsonResponse(doc)

    @app.get("/api/v1/agencies/{agency_id}/overdue", tags=["index"])
    def get_overdue(agency_id: str, period: str | None = None,
                    now: str | None = None) -> OrjsonResponse:
        """The late-dossier list of an agency's subtree, with apology status."""
        t = now_of(now)
        p = period_of(period, t)

        def compute(c: Counters) -> Any:
            tree = tree_with(c, agency_id)
            rows = source.late_rows(sorted(tree.subtree(agency_id)), p.months)
            doc = overdue_list(rows, c, rules(None, p, t), agency_id, p, t)
            for d in doc["dossiers"]:
                name = c.procedures.get(d["procedure_id"], {}).get("name")
                if name:
                    d["procedure_name"] = name
            return doc

        return OrjsonResponse(query("overdue", (agency_id, p.label, at(p, t)), compute))

    @app.get("/api/v1/dossiers/{dossier_id}/history", tags=["index"])
    def get_history(dossier_id: str) -> OrjsonResponse:
        """Every recorded event of a dossier, with its source action and offset."""
        with METRICS.query_seconds.labels(query="history").time():
            try:
                events = source.history(dossier_id)
            except HistoryUnavailableError as e:
                raise ApiError(503, str(e)) from e
        if events is None:
            raise ApiError(404, f"Dossier {dossier_id!r} is not known.")
        return OrjsonResponse({"dossier_id": dossier_id, "events": events})

    @app.get("/api/v1/agencies", tags=["page"])
    def get_agencies() -> OrjsonResponse:
        """The agency tree: every agency with its name, level and parent."""

        def compute(c: Counters) -> Any:
            tree = Tree.build(c)
            rows = [{"agency_id": a, "name": tree.name[a], "level": tree.level[a],
                     "parent_id": tree.parent[a]} for a in sorted(tree.parent)]
            return {"agencies": rows,
                    "roots": [a for a in sorted(tree.parent) if tree.parent[a] is None]}

        return OrjsonResponse(query("agencies", (), compute))

    @app.get("/api/v1/agencies/{agency_id}/trend", tags=["page"])
    def get_trend(agency_id: str, year: int | None = Query(None, ge=1900, le=9999),
                  now: str | None = None) -> OrjsonResponse:
        """Month-by-month totals of an agency for a year, up to the month of ``now``."""
        t = now_of(now)
        local = t.astimezone(VN_TZ)
        y = local.year if year is None else year
        last = 12 if y < local.year else local.month if y == local.year else 0

        def compute(c: Counters) -> Any:
            tree = tree_with(c, agency_id)
            months = []
            for m in range(1, last + 1):
                pm = parse_period(f"{y:04d}-{m:02d}")
                card = scorecard(c, rules(None, pm, t), agency_id, pm, t, tree)
                received = next((c["denominator"] for g in card["groups"]
                                 for c in g["criteria"] if c["code"] == "ON_TIME"), None)
                months.append({"period": card["period"], "view_end": card["view_end"],
                               "total": card["total"], "classification": card["classification"],
                               "dossiers": received,
                               "groups": {g["key"]: g["score"] for g in card["groups"]}})
            return {"agency_id": agency_id, "year": y, "months": months}

        key_end = min(t, parse_period(f"{y:04d}").view_end(t)).replace(microsecond=0)
        return OrjsonResponse(query("trend", (agency_id, y, key_end), compute))

    @app.get("/api/v1/ruleset", tags=["page"])
    def get_ruleset(name: str | None = None, now: str | None = None) -> OrjsonResponse:
        """A ruleset's groups, criteria (names, maxima, targets, what each counts) and
        classification bands: the one named, else the one in force now."""
        t = now_of(now)
        return OrjsonResponse(_ruleset_doc(rules(name, current_year(t), t), registry))

    @app.get("/api/v1/stream", tags=["page"])
    async def stream(request: Request, max_events: int | None = Query(None, ge=1),
                     seconds: float = Query(300.0, gt=0, le=3600),
                     heartbeat: float = Query(15.0, gt=0)) -> StreamingResponse:
        """Server-sent events: ``data: {"version": N}`` now and whenever the views change.

        The stream ends after ``max_events`` events or ``seconds``; browsers reconnect by
        themselves. Comment lines keep idle connections open.
        """
        return StreamingResponse(
            _events(request, source, max_events, seconds, heartbeat),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/healthz", tags=["operations"])
    def healthz() -> OrjsonResponse:
        """Liveness, with the projection's version and folded event-store position."""
        return OrjsonResponse({"status": "ok", "version": source.version(),
                               "position": source.position(),
                               "ruleset": pinned or (rulesets.name if isinstance(
                                   rulesets, Ruleset) else "in force")})

    @app.get("/metrics", tags=["operations"])
    def metrics() -> Response:
        """Prometheus metrics of every role in this process."""
        return Response(render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(DASHBOARD / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=DASHBOARD), name="static")
    if bridge is not None:  # POST /api/v1/actions lives in the bridge (producers)
        app.include_router(bridge)
    return app


async def _events(request: Request, source: ViewSource, max_events: int | None,
                  seconds: float, heartbeat: float) -> AsyncIterator[bytes]:
    started = last_beat = time.monotonic()
    version = await anyio.to_thread.run_sync(source.version)
    yield b"retry: 2000\n" + _sse(version)
    sent = 1
    while max_events is None or sent < max_events:
        await asyncio.sleep(0.25)
        now = time.monotonic()
        if now - started >= seconds or await request.is_disconnected():
            return
        current = await anyio.to_thread.run_sync(source.version)
        if current != version:
            version = current
            sent += 1
            last_beat = now
            yield _sse(version)
        elif now - last_beat >= heartbeat:
            last_beat = now
            yield b": heartbeat\n\n"


def _sse(version: int) -> bytes:
    return b"data: " + orjson.dumps({"version": version}) + b"\n\n"


def _ruleset_doc(ruleset: Ruleset, registry: Registry) -> dict[str, Any]:
    return {
        "name": ruleset.name,
        "effective_from": ruleset.effective_from.isoformat(),
        "draft": ruleset.draft,
        "bands": [{"min": float(t), "label": label} for t, label in ruleset.bands],
        "groups": [
            {"key": g.key, "name_vi": g.name_vi, "name_en": g.name_en, "max": float(g.max),
             "criteria": [_criterion_doc(c, registry) for c in g.criteria]}
            for g in ruleset.groups],
    }


def _criterion_doc(c: Any, registry: Registry) -> dict[str, Any]:
    declared = registry.by_code[c.code]
    counts_vi, counts_en = declared.label
    mean = isinstance(declared, SubjectCriterion) and declared.sum_of is not None
    return {"id": c.id, "code": c.code, "name_vi": c.name_vi, "name_en": c.name_en,
            "max": float(c.max), "target": None if c.target is None else float(c.target),
            "zero_denominator": c.zero_denominator, "shown_only": c.shown_only,
            "counts_vi": counts_vi, "counts_en": counts_en,
            "measure": "mean" if mean else "ratio"}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> OrjsonResponse:
        return _error(e.status, e.message)

    @app.exception_handler(UserError)
    async def user_error(_: Request, e: UserError) -> OrjsonResponse:
        return _error(400, str(e))

    @app.exception_handler(UnknownAgencyError)
    async def unknown_agency(_: Request, e: UnknownAgencyError) -> OrjsonResponse:
        return _error(404, f"Agency {e.args[0]!r} is not known.")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> OrjsonResponse:
        err = e.errors()[0] if e.errors() else {}
        name = str(err.get("loc", ("", "input"))[-1])
        value = err.get("input")
        msg = str(err.get("msg", "is not valid")).rstrip(".")
        shown = f" {value!r}" if value is not None else ""
        return _error(400, f"Parameter {name}{shown} is not valid: {msg}.")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> OrjsonResponse:
        if e.status_code == 404:
            message = f"There is nothing at {request.url.path}."
        elif e.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}."
        else:
            message = str(e.detail).rstrip(".") + "."
        return _error(e.status_code, message)
