"""The HTTP bridge: ``POST /api/v1/actions`` for one-stop-shop systems that do not speak Kafka.

A request carries one action or a JSON array of them and a per-source bearer token
(:mod:`producers.tokens`). It is taken or refused as a whole, in this order:

1. no token, or not a valid one → 401; a read token → 403;
2. more requests than the source's token bucket allows → 429 with ``Retry-After``;
3. a body over the size limit → 413;
4. an action the schema refuses (:func:`kernel.contract.actions.validate_action`) → 400 with its
   ``index``, ``reason`` and ``field``;
5. an action of another ``source``, or for an agency outside the token's scope → 403;
6. otherwise every action is committed to the durable intake (:class:`producers.forwarder.Intake`:
   the spool in the event store's database, forwarded to ``motcua.actions`` keyed by subject
   id), then 202 ``{"accepted": [ids]}``. The 202 means the actions survive a crash of any
   motcua process and the loss of the bundled broker's memory; with an external Kafka, also
   that the broker acknowledged them (``acks=all``). An external broker that does not within
   15 s → 503 ``broker_unavailable``, a database that cannot be written → 503
   ``store_unavailable``, both with ``Retry-After``; sending the request again is safe (the
   engine keeps one fact per action id).

Nothing of a refused request is sent. Every refusal is logged with the source and counted in
``motcua_bridge_refusals_total{status}``.

Scope (step 5) is the rule of :func:`kernel.grants.references`, the engine's own: every agency
an action names (``data.agency_id``, ``agency_id``, ``data.parent_id``, ``data.authority_id``,
each ``data.implementing_agency_ids`` entry) and, for an action on a subject that is already
recorded, the agencies that subject belongs to (a dossier's or feedback's agency, a procedure's
current authority and implementing agencies, an agency's current parent, the dossier a feedback
names). The bridge keeps no state about subjects: the composition root gives it
``subject_agencies`` (``Engine.subject_agencies``, read from the event store). A subject not
recorded yet is checked by the engine when the action is applied (dead letter
``agency_out_of_scope``). A read token (``motcua tokens add … --read``) may not send actions: 403
``read_only_token``, right after authentication.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from kernel.contract.actions import Action, InvalidActionError, validate_action
from kernel.contract.bounds import check_keys_once, exact_numbers
from kernel.grants import WRITE, Grant, OutOfScopeError, SubjectAgencies, bearer_token, check_action
from kernel.health import DATABASE, HEALTH, dependency_of
from kernel.metrics import METRICS
from kernel.settings import Settings
from producers.client import Record
from producers.errors import DeliveryError, RefusedRequestError
from producers.forwarder import Intake
from producers.tokens import TokenStore

log = structlog.get_logger("motcua.bridge")

PATH = "/api/v1/actions"


@dataclass(frozen=True)
class BridgeLimits:
    """Request size and per-source rate limits of the bridge."""

    max_body_bytes: int = 1 << 20
    rate: float = 50.0  # requests per second, per source
    burst: int = 100

    @classmethod
    def from_settings(cls, settings: Settings) -> BridgeLimits:
        """The limits ``settings`` carries (``bridge_max_body_bytes``, ``bridge_rate``,
        ``bridge_burst``), else the defaults."""
        return cls(
            max_body_bytes=int(getattr(settings, "bridge_max_body_bytes", cls.max_body_bytes)),
            rate=float(getattr(settings, "bridge_rate", cls.rate)),
            burst=int(getattr(settings, "bridge_burst", cls.burst)),
        )


class RateLimiter:
    """One token bucket per key: ``rate`` tokens a second, at most ``burst`` saved up."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key → (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 if a request of ``key`` may go now (and count it), else the seconds to wait."""
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate


class Bridge:
    """The bridge's state: the token store, the rate limiter and the durable intake (the
    process's own, e.g. ``motcua up``'s, or one of the bridge's)."""

    ACK_TIMEOUT = 15.0  # an external broker's acknowledgement, before a 503

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        limits: BridgeLimits | None = None,
        *,
        tokens: TokenStore | None = None,
        subject_agencies: SubjectAgencies | None = None,
        clock: Callable[[], float] = time.monotonic,
        intake: Intake | None = None,
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.limits = limits or BridgeLimits.from_settings(settings)
        self.tokens = tokens or TokenStore(settings.database_url)
        # Without it (a bridge with no event store at hand) follow-ups are checked by the
        # engine only.
        self.subject_agencies = subject_agencies
        self.limiter = RateLimiter(self.limits.rate, self.limits.burst, clock)
        self._intake = intake
        self._own_intake: Intake | None = None
        self._lock = threading.Lock()

    # -- the steps, each raising RefusedRequestError --------------------------------------

    def authenticate(self, authorization: str | None) -> Grant:
        token = bearer_token(authorization)
        if token is None:
            raise _refusal(
                401,
                "An Authorization: Bearer <token> header is required.",
                "missing_token",
                headers=_CHALLENGE,
            )
        try:
            grant = self.tokens.verify(token)
        except Exception as e:
            # Not noted as the bridge's outage: /healthz would stay degraded until the next
            # request got through (the API's own database checks say when it is away).
            raise self._store_away(e, "The token could not be checked now", note=False) from e
        if grant is None:
            raise _refusal(
                401,
                "The bearer token is not valid (unknown, rotated or revoked).",
                "invalid_token",
                headers=_CHALLENGE,
            )
        if grant.kind != WRITE:
            raise _refusal(
                403,
                f"The token of {grant.source!r} is a read token; sending actions needs a "
                "write token.",
                "read_only_token",
            )
        return grant

    def admit(self, grant: Grant) -> None:
        wait = self.limiter.take(grant.source)
        if wait > 0:
            raise _refusal(
                429,
                f"Too many requests from {grant.source!r}; retry later.",
                "rate_limited",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

    def check_size(self, size: int) -> None:
        if size > self.limits.max_body_bytes:
            raise _refusal(
                413,
                f"The body exceeds {self.limits.max_body_bytes} bytes; "
                "send fewer actions per request.",
                "body_too_large",
            )

    def forward(self, grant: Grant, body: bytes) -> list[str]:
        """Validate and authorize every action, then produce them all; returns their ids."""
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise _refusal(400, f"The body is not valid UTF-8 JSON: {e}.", "malformed_json") from e
        # Its integers as sent when orjson may have read one as a float (validate_action then
        # walks the action exactly and refuses it, naming the field).
        if (exact := exact_numbers(body)) is not None:
            payload = exact
        items = payload if isinstance(payload, list) else [payload]
        records: list[Record] = []
        existing = self._existing()
        for i, obj in enumerate(items):
            try:
                action = validate_action(obj)
            except InvalidActionError as e:
                raise _refusal(400, e.message, e.reason, index=i, field=e.field) from e
            authorize(grant, action, i, existing)
            records.append(Record.of(action, obj))
        # A key given twice: the decoder kept one of its values. Looked for once every action
        # is valid, so that the payload is one orjson encodes.
        try:
            check_keys_once(body, orjson.dumps(payload), "The body")
        except InvalidActionError as e:
            raise _refusal(400, e.message, e.reason) from e
        self.submit(records)
        return [r.action_id for r in records]

    @staticmethod
    def _store_away(e: Exception, what: str, note: bool = True) -> Exception:
        """503 ``store_unavailable`` with Retry-After when the database is away; anything else
        is raised as it is (a bug)."""
        if dependency_of(e) != DATABASE:
            return e
        if note and HEALTH.down("bridge", DATABASE, e):
            log.warning("dependency_unreachable", part="bridge", dependency=DATABASE,
                        error=repr(e))
        return _refusal(503, f"{what}; sending the request again is safe.",
                        "store_unavailable", headers={"Retry-After": "5"})

    def submit(self, records: list[Record]) -> None:
        """Commit the records to the intake (and, with an external Kafka, see the broker take
        them); a 503 when that cannot be done now."""
        try:
            self.intake().submit([(r.key, r.value) for r in records], timeout=self.ACK_TIMEOUT)
        except DeliveryError as e:
            raise _refusal(
                503,
                "Kafka did not acknowledge the actions in time; sending the request again is safe.",
                "broker_unavailable",
                headers={"Retry-After": "5"},
            ) from e
        except Exception as e:
            raise self._store_away(e, "The actions could not be stored now") from e
        for d in HEALTH.up("bridge"):
            log.info("dependency_reachable", part="bridge", dependency=d.dependency)

    def _existing(self) -> SubjectAgencies | None:
        """``subject_agencies`` for one request: each subject read once; a store that cannot
        be read refuses the request (503), never lets it through unchecked."""
        lookup = self.subject_agencies
        if lookup is None:
            return None
        seen: dict[tuple[str, str], Any] = {}

        def existing(kind: str, subject_id: str) -> Any:
            key = (kind, subject_id)
            if key not in seen:
                try:
                    seen[key] = lookup(kind, subject_id)
                except Exception as e:
                    log.warning("bridge_store_unavailable", error=type(e).__name__)
                    raise _refusal(
                        503, "The event store could not be read to check the scope; retry "
                        "later.", "store_unavailable", headers={"Retry-After": "5"}) from e
            return seen[key]

        return existing

    # -- plumbing -------------------------------------------------------------------------

    def intake(self) -> Intake:
        """The process's intake, or the bridge's own, opened on first use (with a forwarder
        of its own: only the holder of the spool's lease sends)."""
        with self._lock:
            if self._intake is None:
                self._intake = self._own_intake = Intake.open(
                    self.settings, self.bootstrap, part="bridge-forwarder").start()
            return self._intake

    def close(self) -> None:
        with self._lock:
            own, self._own_intake = self._own_intake, None
            self._intake = None
        if own is not None:
            own.close()
        self.tokens.close()

    def refuse(self, e: RefusedRequestError, grant: Grant | None) -> JSONResponse:
        METRICS.http_refusals.labels(status=str(e.status)).inc()
        log.warning(
            "bridge_refused",
            status=e.status,
            reason=e.reason,
            source=grant.source if grant else None,
            index=e.index,
            field=e.field,
            error=e.message,
        )
        return JSONResponse(
            {"error": e.message, "reason": e.reason, "index": e.index, "field": e.field},
            status_code=e.status, headers=e.headers,
        )  # fmt: skip

    def router(self) -> APIRouter:
        """``POST /api/v1/actions``; the bridge is closed when the app shuts down."""

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            try:
                yield
            finally:
                self.close()

        router = APIRouter(tags=["producers"], lifespan=lifespan)

        @router.post(
            PATH,
            status_code=202,
            openapi_extra=_OPENAPI,
            summary="Send one action or an array of actions (bearer token)",
        )
        async def post_actions(request: Request) -> JSONResponse:
            grant: Grant | None = None
            try:
                grant = await run_in_threadpool(
                    self.authenticate, request.headers.get("authorization")
                )
                self.admit(grant)
                body = await _read_limited(request, self.check_size)
                ids = await run_in_threadpool(self.forward, grant, body)
            except RefusedRequestError as e:
                return self.refuse(e, grant)
            log.info("bridge_accepted", source=grant.source, actions=len(ids))
            return JSONResponse({"accepted": ids}, status_code=202)

        return router


def make_bridge(
    settings: Settings,
    bootstrap: str,
    limits: BridgeLimits | None = None,
    *,
    subject_agencies: SubjectAgencies | None = None,
    clock: Callable[[], float] = time.monotonic,
    intake: Intake | None = None,
) -> APIRouter:
    """The bridge's router, for ``projections.api.create_app(..., bridge=router)``;
    ``subject_agencies`` (``Engine.subject_agencies``) lets it scope follow-up actions,
    ``clock`` (monotonic seconds) paces the rate limiter (tests inject one), and ``intake`` is
    the process's durable intake (else the bridge opens its own)."""
    return Bridge(settings, bootstrap, limits, subject_agencies=subject_agencies,
                  clock=clock, intake=intake).router()


# ----- scope ---------------------------------------------------------------------------------


def authorize(grant: Grant, action: Action, index: int,
              existing: SubjectAgencies | None = None) -> None:
    """Refuse (403) an action of another source, or one that refers to an agency outside the
    grant's scope (:func:`kernel.grants.check_action`; ``existing``: a recorded subject's
    agencies)."""
    if action.source != grant.source:
        raise _refusal(
            403,
            f"Action source {action.source!r} is not this token's source {grant.source!r}.",
            "wrong_source",
            index=index,
            field="source",
        )
    try:
        check_action(grant, action, existing)
    except OutOfScopeError as e:
        raise _refusal(403, e.message, e.reason, index=index, field=e.field) from e


# ----- helpers -------------------------------------------------------------------------------

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="motcua"'}


def _refusal(
    status: int,
    message: str,
    reason: str,
    *,
    index: int | None = None,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> RefusedRequestError:
    return RefusedRequestError(
        status, message, reason=reason, index=index, field=field, headers=headers
    )


async def _read_limited(request: Request, check_size: Callable[[int], None]) -> bytes:
    """The body, refused (413) as soon as its declared or streamed size passes the limit."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        check_size(int(declared))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        check_size(size)
        chunks.append(chunk)
    return b"".join(chunks)


_REFUSAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "reason": {"type": "string"},
        "index": {"type": ["integer", "null"]},
        "field": {"type": ["string", "null"]},
    },
}
_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {
            "description": "One motcua.action/1 object or an array of them (contract: "
                           "actions.md).",
            "oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}],
        }}},
    },
    "responses": {
        "202": {"description": "Forwarded to motcua.actions", "content": {"application/json": {
            "schema": {"type": "object", "properties": {
                "accepted": {"type": "array", "items": {"type": "string"}}}}}}},
        **{str(code): {"description": text,
                       "content": {"application/json": {"schema": _REFUSAL_SCHEMA}}}
           for code, text in ((400, "An action fails the schema (index, reason, field)"),
                              (401, "Missing or invalid bearer token"),
                              (403, "A read token, another source, or an agency outside "
                                    "the token's scope"),
                              (413, "Body too large"),
                              (429, "Rate limited (Retry-After)"),
                              (503, "Kafka or the event store unavailable (Retry-After)"))},
    },
}  # fmt: skip
