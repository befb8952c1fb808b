"""Operations: liveness with the projection's position, and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from kernel.metrics import render
from projections.api.common import Ctx, OrjsonResponse


def router(ctx: Ctx) -> APIRouter:
    r = APIRouter(tags=["operations"])

    @r.get("/healthz")
    def healthz() -> OrjsonResponse:
        """Liveness, with the projection's version and folded event-store position;
        ``degraded`` when the projection stepped over events it could not fold or store."""
        quarantined = ctx.source.quarantined()
        return OrjsonResponse({"status": "degraded" if quarantined else "ok",
                               "version": ctx.source.version(),
                               "position": ctx.source.position(),
                               "quarantined_events": quarantined,
                               "ruleset": ctx.pinned_name()})

    @r.get("/metrics")
    def metrics() -> Response:
        """Prometheus metrics of every role in this process."""
        return Response(render(), media_type=CONTENT_TYPE_LATEST)

    return r
