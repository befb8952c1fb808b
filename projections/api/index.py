"""The index's own routes (contract/interface.md, "HTTP"): scorecards, rankings, late lists,
dossier histories."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from kernel.metrics import METRICS
from projections.api.common import LEVELS, ApiError, Ctx, OrjsonResponse
from projections.fold import Counters
from projections.source import HistoryUnavailableError
from projections.views import overdue_list, ranking, scorecard


def router(ctx: Ctx) -> APIRouter:
    r = APIRouter(tags=["index"])

    @r.get("/api/v1/agencies/{agency_id}/scorecard")
    def get_scorecard(agency_id: str, period: str | None = None, now: str | None = None,
                      ruleset: str | None = None) -> OrjsonResponse:
        """The scorecard of an agency's subtree for a period (default: the current year),
        under the ruleset in force at the view's end (or the one named)."""
        t = ctx.now_of(now)
        p = ctx.period_of(period, t)
        rules = ctx.rules(ruleset, p, t)

        def compute(c: Counters) -> Any:
            return scorecard(c, rules, agency_id, p, t, ctx.tree_with(c, agency_id))

        return OrjsonResponse(ctx.query("scorecard", (agency_id, p.label, ctx.at(p, t),
                                                      rules.name), compute))

    @r.get("/api/v1/ranking")
    def get_ranking(period: str | None = None, level: str | None = None,
                    now: str | None = None, ruleset: str | None = None) -> OrjsonResponse:
        """Agencies ranked by total, ties broken by agency id; ``level`` keeps one level."""
        t = ctx.now_of(now)
        p = ctx.period_of(period, t)
        if level is not None and level not in LEVELS:
            raise ApiError(400, f"Level {level!r} is not one of {', '.join(LEVELS)}.")
        rules = ctx.rules(ruleset, p, t)
        doc = ctx.query("ranking", (p.label, level, ctx.at(p, t), rules.name),
                        lambda c: ranking(c, rules, p, t, level=level or None))
        return OrjsonResponse(doc)

    _lists(r, ctx)
    return r


def _lists(r: APIRouter, ctx: Ctx) -> None:
    """The late list and a dossier's history."""

    @r.get("/api/v1/agencies/{agency_id}/overdue")
    def get_overdue(agency_id: str, period: str | None = None,
                    now: str | None = None) -> OrjsonResponse:
        """The late-dossier list of an agency's subtree, with apology status."""
        t = ctx.now_of(now)
        p = ctx.period_of(period, t)

        def compute(c: Counters) -> Any:
            tree = ctx.tree_with(c, agency_id)
            rows = ctx.source.late_rows(sorted(tree.subtree(agency_id)), p.months)
            doc = overdue_list(rows, c, ctx.rules(None, p, t), agency_id, p, t)
            for d in doc["dossiers"]:
                name = c.procedures.get(d["procedure_id"], {}).get("name")
                if name:
                    d["procedure_name"] = name
            return doc

        return OrjsonResponse(ctx.query("overdue", (agency_id, p.label, ctx.at(p, t)), compute))

    @r.get("/api/v1/dossiers/{dossier_id}/history")
    def get_history(dossier_id: str, now: str | None = None) -> OrjsonResponse:
        """Every recorded event of a dossier, with its source action and offset, and its
        control sheet (phiếu kiểm soát) now."""
        with METRICS.query_seconds.labels(query="history").time():
            try:
                doc = ctx.source.history(dossier_id, ctx.now_of(now))
            except HistoryUnavailableError as e:
                raise ApiError(503, str(e)) from e
        if doc is None:
            raise ApiError(404, f"Dossier {dossier_id!r} is not known.")
        return OrjsonResponse(doc)
