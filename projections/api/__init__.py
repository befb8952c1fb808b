"""The HTTP API and the public scoreboard page (contract/interface.md, "HTTP").

``create_app(source, rulesets)`` builds a FastAPI app over any ``ViewSource``: the live projection
of this process or the view store of another one. Queries read one consistent snapshot of the
counters; their JSON is written by orjson. Mistakes in the query string are 400 with one sentence
naming the bad input, an unknown agency or dossier is 404. Routes live in one module per group
(``index``, ``page``, ``ops``, ``reports``); each takes the shared request context
(``common.Ctx``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from kernel.grants import GrantBook
from projections.api import accountability, alerts, index, ops, page, reports
from projections.api.common import (
    DASHBOARD,
    ApiError,
    Clock,
    Ctx,
    OrjsonResponse,
    install_error_handlers,
)
from projections.criteria import REGISTRY, Registry
from projections.ruleset import Ruleset, Rulesets
from projections.source import ViewSource

__all__ = ["ApiError", "OrjsonResponse", "create_app"]


def create_app(
    source: ViewSource,
    rulesets: Ruleset | Rulesets,
    *,
    pinned: str | None = None,
    registry: Registry = REGISTRY,
    clock: Clock = lambda: datetime.now(UTC),
    bridge: APIRouter | None = None,
    extra: Iterable[APIRouter] = (),
    grants: GrantBook | None = None,
) -> FastAPI:
    """The API, the scoreboard page and, when given, the action bridge's router.

    Each view is scored under the ruleset in force at its end, or the one ``pinned``
    (``MOTCUA_RULESET``), or the one a request names (``?ruleset=``, what-if). ``grants``
    checks the read tokens of official-level data (``Ctx.read_grant``)."""
    app = FastAPI(
        title="motcua",
        version="1",
        summary="Live Decision 766 service index: scorecards, rankings and late-dossier lists.",
        default_response_class=OrjsonResponse,
    )
    install_error_handlers(app)
    ops.install_outage_handler(app)
    ctx = Ctx(source, rulesets, pinned, registry, clock, grants=grants)
    app.state.answers = ctx.cache  # its hits and misses, for tests and benchmarks
    for module in (index, accountability, alerts, page, ops, reports):
        app.include_router(module.router(ctx))
    for r in extra:
        app.include_router(r)
    app.mount("/static", StaticFiles(directory=DASHBOARD), name="static")
    if bridge is not None:  # POST /api/v1/actions lives in the bridge (producers)
        app.include_router(bridge)
    return app
