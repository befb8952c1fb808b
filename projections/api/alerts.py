"""Alert subscriptions over HTTP (contract/interface.md "Alert delivery").

Subscriptions name where alerts go (URLs, e-mail addresses): every route needs a write token
(``Authorization: Bearer …``, ``motcua tokens add``) whose agencies cover every agency of the
subscription; a listing shows only the subscriptions the token covers. The store is the
alerting role's (``projections.alerts.store``), beside the views."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from kernel.grants import WRITE, Grant
from projections.alerts.rules import RULES
from projections.alerts.store import AlertStore
from projections.api.common import ApiError, Ctx, OrjsonResponse


class NewSubscription(BaseModel):
    agencies: list[str] = Field(min_length=1)
    webhook: str | None = None
    email: str | None = None
    secret: str | None = None
    rules: list[str] = Field(default_factory=lambda: list(RULES))
    within: int = Field(2, ge=0, le=366)


def router(ctx: Ctx) -> APIRouter:
    r = APIRouter(tags=["alerts"])
    opened: list[AlertStore] = []

    def store() -> AlertStore:
        if not opened:  # the views' database, opened on first use
            opened.append(AlertStore(ctx.source.read(lambda s: s.url)))
        return opened[0]

    def grant(request: Request, agencies: list[str] | None = None) -> Grant:
        return ctx.bearer_grant(request, WRITE, "Managing alert subscriptions", agencies or ())

    @r.get("/api/v1/alerts/subscriptions")
    def list_subscriptions(request: Request) -> OrjsonResponse:
        """The subscriptions the token covers, with their deliveries by state."""
        g = grant(request)
        subs = [s for s in store().listing() if all(g.covers(a) for a in s["agencies"])]
        return OrjsonResponse({"subscriptions": subs})

    def writer(request: Request) -> Grant:
        """The token first (a dependency runs before the body is read): a missing, unknown or
        read token is 401 / 403 whatever the body holds."""
        return grant(request)

    @r.post("/api/v1/alerts/subscriptions", status_code=201)
    def add_subscription(body: NewSubscription,
                         g: Grant = Depends(writer)) -> OrjsonResponse:  # noqa: B008
        """Subscribe a webhook (``webhook``, optional ``secret``) or an ``email`` address."""
        ctx.covering(g, body.agencies)
        if (body.webhook is None) == (body.email is None):
            raise ApiError(400, "A subscription needs exactly one of webhook and email.")
        channel, target = (("webhook", body.webhook) if body.webhook is not None
                           else ("email", body.email or ""))
        sub_id = store().add(body.agencies, channel, target, body.secret, body.rules,
                             body.within)
        return OrjsonResponse({"id": sub_id}, status_code=201)

    @r.delete("/api/v1/alerts/subscriptions/{sub_id}")
    def remove_subscription(request: Request, sub_id: str) -> OrjsonResponse:
        """Remove a subscription the token covers; its undelivered alerts are cancelled."""
        g = grant(request)
        found: dict[str, Any] | None = next(
            (s for s in store().listing() if s["id"] == sub_id), None)
        if found is None:
            raise ApiError(404, f"Subscription {sub_id!r} does not exist.")
        ctx.covering(g, found["agencies"])
        store().remove(sub_id)
        return OrjsonResponse({"removed": sub_id})

    return r
