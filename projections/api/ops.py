"""Operations: health with the projection's position, Prometheus metrics, and outages.

``/healthz`` says ``"status": "ok"``, or ``"degraded"`` with each part of this process (engine,
projection, forwarder, bridge, serve) that cannot reach a dependency (database, kafka) and since
when, or when the projection quarantined events; ``ok`` again once it can. It answers 200 either
way: the process is alive and retrying by itself. A query that needs the database while it is
away is 503 with one sentence and ``Retry-After`` (also when its error comes wrapped in
another); any other failure is 500 with one sentence.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from kernel.failures import describe
from kernel.health import HEALTH, INTERNAL, dependency_of, outage_errors
from kernel.metrics import render
from projections.api.common import Ctx, OrjsonResponse, error

log = structlog.get_logger("motcua.api")

PART = "serve"


def router(ctx: Ctx) -> APIRouter:
    r = APIRouter(tags=["operations"])

    @r.get("/healthz")
    def healthz() -> OrjsonResponse:
        """Health: ``ok``, or ``degraded`` when a part of this process cannot reach a
        dependency (which, since when) or the projection stepped over events it could not fold
        or store; with the projection's version and folded event-store position."""
        version: int | None = None
        position: int | None = None
        quarantined: Any = None
        try:
            version, position = ctx.source.version(), ctx.source.position()
            quarantined = ctx.source.quarantined()
        except Exception as e:
            if not _outage(e):
                raise
        else:
            _back()
        report = HEALTH.report()
        return OrjsonResponse({"status": "degraded" if quarantined else report["status"],
                               "degraded": report["degraded"],
                               "version": version, "position": position,
                               "quarantined_events": quarantined,
                               "ruleset": ctx.pinned_name()})

    # HEAD too, as load balancers ask (the same answer, without its body; not in the schema).
    r.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)

    @r.get("/metrics")
    def metrics() -> Response:
        """Prometheus metrics of every role in this process."""
        return Response(render(), media_type=CONTENT_TYPE_LATEST)

    return r


def install_outage_handler(app: FastAPI) -> None:
    """A request that fails because the database (or Kafka) is away: 503, one sentence."""

    async def outage(_: Request, e: Exception) -> Any:
        _outage(e)
        return _unavailable(e)

    async def unexpected(request: Request, e: Exception) -> Any:
        # A dependency's error may come wrapped in another one (raised ``from`` it): still an
        # outage, not a bug. Anything else is a bug: 500 with one sentence, never a plain page.
        if _outage(e):
            return _unavailable(e)
        log.error("request_failed", path=request.url.path,
                  error=describe(e, "serve", "request"))
        return error(500, "The server failed on this request; the error is in its log.")

    for cls in outage_errors():  # the rest (also wrapped in another error): unexpected()
        app.add_exception_handler(cls, outage)
    app.add_exception_handler(Exception, unexpected)


def _unavailable(e: BaseException) -> Any:
    return error(503, f"The {dependency_of(e)} is unreachable right now; try again shortly.",
                 {"Retry-After": "5"})


def _outage(e: BaseException) -> bool:
    """Note an outage met by a request (True), or say it is not one (a bug)."""
    dependency = dependency_of(e)
    if dependency == INTERNAL:
        return False
    if HEALTH.down(PART, dependency, e):
        log.warning("dependency_unreachable", part=PART, dependency=dependency, error=repr(e))
    return True


def _back() -> None:
    for d in HEALTH.up(PART):
        log.info("dependency_reachable", part=PART, dependency=d.dependency)
