"""Who made dossiers late (spec/accountability.md §4) and what is at risk (§5) over HTTP.

Unit rows are public; official rows are personal data and need a read token scoped to the
agency's subtree (``Ctx.authorize_read``). The at-risk list names a dossier's current holder
the way the scoreboard does for the units, and is public like it."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from projections.api.common import Ctx, OrjsonResponse
from projections.atrisk import DEFAULT_WITHIN, at_risk
from projections.delays import delays
from projections.fold import Counters
from projections.periods import Period


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

    @r.get("/api/v1/agencies/{agency_id}/at-risk")
    def get_at_risk(agency_id: str, within: int = Query(DEFAULT_WITHIN, ge=0, le=366),
                    now: str | None = None) -> OrjsonResponse:
        """The open dossiers falling due within ``within`` working days, then those already
        past due, each with its holder and the points at stake (accountability §5)."""
        t = ctx.now_of(now).replace(microsecond=0)

        def rules_of(p: Period) -> Any:
            return ctx.rules(None, p, t)

        def compute(c: Counters) -> Any:
            ctx.tree_with(c, agency_id)
            return at_risk(c, lambda ags, day: ctx.source.read(lambda s: s.open_rows(ags, day)),
                           rules_of, agency_id, t, within)

        return OrjsonResponse(ctx.query("at_risk", (agency_id, within, t), compute))

    return r
