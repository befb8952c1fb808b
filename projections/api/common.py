"""What every route of the API shares: JSON responses, errors, the answer cache, and the
request context (the clock, the rulesets, the views)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kernel.calendar import local_date
from kernel.contract.errors import show
from kernel.contract.types import AGENCY_LEVELS
from kernel.errors import UserError
from kernel.grants import READ, WRITE, Grant, GrantBook, bearer_token
from kernel.metrics import METRICS
from projections.criteria import Registry
from projections.fold import Counters
from projections.periods import Period, current_year, parse_instant, parse_period
from projections.ruleset import Ruleset, Rulesets, pick
from projections.source import ViewSource
from projections.views import Tree, UnknownAgencyError

DASHBOARD = Path(__file__).resolve().parent.parent / "dashboard"
LEVELS = AGENCY_LEVELS
Clock = Callable[[], datetime]


class OrjsonResponse(JSONResponse):
    """JSON written by orjson (FastAPI's own ORJSONResponse is deprecated)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class ApiError(Exception):
    """A request that cannot be answered: an HTTP status and one sentence."""

    def __init__(self, status: int, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error(status: int, message: str, headers: dict[str, str] | None = None) -> OrjsonResponse:
    return OrjsonResponse({"error": message}, status_code=status, headers=headers)


class AnswerCache:
    """Answers per (query, arguments, projection version): many viewers, one computation.

    The key holds everything an answer depends on (``Ctx.query``): the views' version and the
    view's end E, never the request's clock as such. ``hits``/``misses`` say whether it works."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.items: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            hit = self.items.get(key)
            if hit is not None:
                self.items.move_to_end(key)
                self.hits += 1
                return hit
            self.misses += 1
        value = compute()  # outside the lock: a slow answer holds up no other query's hit
        with self._lock:
            self.items[key] = value
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


@dataclass
class Ctx:
    """The request context every router reads: views, rulesets, clock, cache."""

    source: ViewSource
    rulesets: Ruleset | Rulesets
    pinned: str | None
    registry: Registry
    clock: Clock
    cache: AnswerCache = field(default_factory=AnswerCache)
    # The read tokens (kernel.grants) that official-level data needs; None: none can be checked.
    grants: GrantBook | None = None

    def now_of(self, text: str | None) -> datetime:
        """The request's ``now=``, else the clock to the second: views show E to the second,
        and a clock read to the microsecond would make every answer a new cache key."""
        return self.clock().replace(microsecond=0) if text is None else parse_instant(
            text, "Parameter now")

    def period_of(self, text: str | None, now: datetime) -> Period:
        """The request's ``period=``, else the year of ``now`` (``period=`` given empty is
        refused, as on the command line)."""
        return current_year(now) if text is None else parse_period(text)

    def rules(self, name: str | None, p: Period, t: datetime) -> Ruleset:
        """The ruleset a view is scored under: named, pinned, or in force at its end."""
        return pick(self.rulesets, name or self.pinned, local_date(p.view_end(t)))

    @staticmethod
    def at(p: Period, t: datetime) -> datetime:
        """What an answer depends on of ``now``: the view's end E = min(now, end of the period).
        For a past period that is constant, for the current one it moves with the clock's
        second (``now_of``); the views' version is the other half of the key (``query``)."""
        return p.view_end(t)

    def query(self, name: str, key: tuple[Any, ...], compute: Callable[[Counters], Any]) -> Any:
        """Run ``compute`` on a snapshot, timed, and shared by equal requests of one version."""
        with METRICS.query_seconds.labels(query=name).time(), self.source.snapshot() as c:
            return self.cache.get((name, self.source.version(), *key), lambda: compute(c))

    @staticmethod
    def tree_with(counters: Counters, agency_id: str) -> Tree:
        tree = Tree.of(counters)
        if agency_id not in tree.parent:
            raise ApiError(404, f"Agency {agency_id!r} is not known.")
        return tree

    def bearer_grant(self, request: Request, kind: str, purpose: str,
                     agencies: Iterable[str] = ()) -> Grant:
        """The grant of the request's bearer token, of ``kind`` (``READ`` or ``WRITE``) and
        covering every one of ``agencies``, for ``purpose`` (what the route gives, in words):
        401 without a valid token, 403 for a token of the other kind or an agency outside its
        scope."""
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            raise ApiError(401, f"{purpose} requires an Authorization: Bearer <{kind} token> "
                           "header.", _CHALLENGE)
        grant = self.grants.verify(token) if self.grants is not None else None
        if grant is None:
            raise ApiError(401, "The bearer token is not valid (unknown, rotated or revoked).",
                           _CHALLENGE)
        if grant.kind != kind:
            extra = " --read" if kind != WRITE else ""
            raise ApiError(403, f"The token of {grant.source!r} is a {grant.kind} token; "
                           f"{purpose[0].lower()}{purpose[1:]} requires a {kind} token "
                           f"(motcua tokens add SOURCE --agencies A{extra}).")
        return self.covering(grant, agencies)

    @staticmethod
    def covering(grant: Grant, agencies: Iterable[str]) -> Grant:
        """``grant`` when its scope covers every one of ``agencies``, else 403 naming one."""
        outside = [a for a in agencies if not grant.covers(a)]
        if outside:
            raise ApiError(403, f"Agency {outside[0]!r} is outside the agencies of the "
                           f"{grant.kind} token of {grant.source!r} "
                           f"({', '.join(grant.agencies)}).")
        return grant

    def read_grant(self, request: Request, agency_id: str) -> Grant:
        """The read grant of the request's bearer token when it covers ``agency_id``, for
        official-level data (officials' ids are personal data)."""
        return self.bearer_grant(request, READ, "Official-level data", [agency_id])

    def authorize_read(self, request: Request, agency_id: str) -> None:
        """Let a request read official-level (personal) data of an agency's subtree, or refuse
        it (:meth:`read_grant`)."""
        self.read_grant(request, agency_id)

    def pinned_name(self) -> str:
        if self.pinned:
            return self.pinned
        return self.rulesets.name if isinstance(self.rulesets, Ruleset) else "in force"


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="motcua"'}


def invalid_request(errors: Sequence[Any]) -> str:
    """FastAPI's first validation error as one sentence: a query or path parameter by its
    name, a JSON body's field by its dotted path (the value shown short, never the whole
    body)."""
    err = errors[0] if errors else {}
    loc = [str(x) for x in err.get("loc", ())]
    msg = str(err.get("msg", "is not valid")).rstrip(".")
    value = err.get("input")
    if loc[:1] == ["body"]:
        if err.get("type") == "json_invalid":
            return f"The body is not valid JSON: {msg}."
        field = ".".join(loc[1:])
        if not field:
            return f"The body must be a JSON object, got {show(value)}."
        if err.get("type") == "missing":
            return f"The body has no {field!r}, which is required."
        return f"The body's {field!r} is not valid ({show(value)}): {msg}."
    name = loc[-1] if loc else "input"
    shown = f" {show(value)}" if value is not None else ""
    return f"Parameter {name}{shown} is not valid: {msg}."


def install_error_handlers(app: FastAPI) -> None:
    """Every refusal is JSON ``{"error": one sentence}`` with its status."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> OrjsonResponse:
        return error(e.status, e.message, e.headers)

    @app.exception_handler(UserError)
    async def user_error(_: Request, e: UserError) -> OrjsonResponse:
        return error(400, str(e))

    @app.exception_handler(UnknownAgencyError)
    async def unknown_agency(_: Request, e: UnknownAgencyError) -> OrjsonResponse:
        return error(404, f"Agency {e.args[0]!r} is not known.")

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> OrjsonResponse:
        return error(400, invalid_request(e.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> OrjsonResponse:
        if e.status_code == 404:
            message = f"There is nothing at {request.url.path}."
        elif e.status_code == 405:
            message = f"Method {request.method} is not allowed on {request.url.path}."
        else:
            message = str(e.detail).rstrip(".") + "."
        return error(e.status_code, message)
