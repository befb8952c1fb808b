"""The routes the scoreboard page reads: the agency tree, trends, the ruleset with what each
criterion counts, and a stream of changes; and the page itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, StreamingResponse

from kernel.calendar import VN_TZ
from projections.api.common import DASHBOARD, Ctx, OrjsonResponse
from projections.criteria import Registry, SubjectCriterion
from projections.fold import Counters
from projections.periods import current_year, parse_period
from projections.ruleset import Ruleset
from projections.source import ViewSource
from projections.views import Tree, scorecard


def router(ctx: Ctx) -> APIRouter:
    r = APIRouter(tags=["page"])

    @r.get("/api/v1/agencies")
    def get_agencies() -> OrjsonResponse:
        """The agency tree: every agency with its name, level and parent."""

        def compute(c: Counters) -> Any:
            tree = Tree.build(c)
            rows = [{"agency_id": a, "name": tree.name[a], "level": tree.level[a],
                     "parent_id": tree.parent[a]} for a in sorted(tree.parent)]
            return {"agencies": rows,
                    "roots": [a for a in sorted(tree.parent) if tree.parent[a] is None]}

        return OrjsonResponse(ctx.query("agencies", (), compute))

    @r.get("/api/v1/agencies/{agency_id}/trend")
    def get_trend(agency_id: str, year: int | None = Query(None, ge=1900, le=9999),
                  now: str | None = None) -> OrjsonResponse:
        """Month-by-month totals of an agency for a year, up to the month of ``now``."""
        t = ctx.now_of(now)
        local = t.astimezone(VN_TZ)
        y = local.year if year is None else year
        last = 12 if y < local.year else local.month if y == local.year else 0

        def compute(c: Counters) -> Any:
            tree = ctx.tree_with(c, agency_id)
            months = [_month(c, ctx, agency_id, parse_period(f"{y:04d}-{m:02d}"), t, tree)
                      for m in range(1, last + 1)]
            return {"agency_id": agency_id, "year": y, "months": months}

        key_end = ctx.at(parse_period(f"{y:04d}"), t)
        return OrjsonResponse(ctx.query("trend", (agency_id, y, key_end), compute))

    @r.get("/api/v1/ruleset")
    def get_ruleset(name: str | None = None, now: str | None = None) -> OrjsonResponse:
        """A ruleset's groups, criteria (names, maxima, targets, what each counts) and
        classification bands: the one named, else the one in force now."""
        t = ctx.now_of(now)
        return OrjsonResponse(ruleset_doc(ctx.rules(name, current_year(t), t), ctx.registry))

    @r.get("/api/v1/stream")
    async def stream(request: Request, max_events: int | None = Query(None, ge=1),
                     seconds: float = Query(300.0, gt=0, le=3600),
                     heartbeat: float = Query(15.0, gt=0)) -> StreamingResponse:
        """Server-sent events: ``data: {"version": N}`` now and whenever the views change.

        The stream ends after ``max_events`` events or ``seconds``; browsers reconnect by
        themselves. Comment lines keep idle connections open.
        """
        return StreamingResponse(
            _events(request, ctx.source, max_events, seconds, heartbeat),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @r.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(DASHBOARD / "index.html", headers={"Cache-Control": "no-cache"})

    return r


def _month(c: Counters, ctx: Ctx, agency_id: str, p: Any, t: Any, tree: Tree) -> dict[str, Any]:
    card = scorecard(c, ctx.rules(None, p, t), agency_id, p, t, tree)
    received = next((x["denominator"] for g in card["groups"] for x in g["criteria"]
                     if x["code"] == "ON_TIME"), None)
    return {"period": card["period"], "view_end": card["view_end"], "total": card["total"],
            "classification": card["classification"], "dossiers": received,
            "groups": {g["key"]: g["score"] for g in card["groups"]}}


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


def ruleset_doc(ruleset: Ruleset, registry: Registry) -> dict[str, Any]:
    """A ruleset as the page reads it, with what each criterion counts (from the registry)."""
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
