"""Who made dossiers late (spec/accountability.md §4): the delays list over HTTP.

Unit rows are public; official rows are personal data and need a read token scoped to the
agency's subtree (``Ctx.authorize_read``)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request

from projections.api.common import Ctx, OrjsonResponse
from projections.delays import delays
from projections.fold import Counters


def router(ctx: Ctx) -> APIRouter:
    r = APIRouter(tags=["accountability"])

    @r.get("/api/v1/agencies/{agency_id}/delays")
    def get_delays(request: Request, agency_id: str, period: str | None = None,
                   now: str | None = None,
                   by: Literal["unit", "official"] = "unit") -> OrjsonResponse:
        """Who made the view's late dossiers late: one row per unit, or per unit and official
        (``by=official``: needs a read token scoped to the agency)."""
        if by == "official":
            ctx.authorize_read(request, agency_id)
        t = ctx.now_of(now)
        p = ctx.period_of(period, t)
        rules = ctx.rules(None, p, t)

        def compute(c: Counters) -> Any:
            ctx.tree_with(c, agency_id)
            return delays(c, ctx.source.unfinished_late_rows, rules, agency_id, p, t, by)

        return OrjsonResponse(ctx.query("delays", (agency_id, p.label, ctx.at(p, t), by),
                                        compute))

    return r
