"""Publications and the provinces' other reports over HTTP (contract/interface.md, second round).

``/reports/`` and ``/reports/{period}`` are pages that read only ``/api/v1/reports…``: a stored
publication, never the live views. The legacy report and the reconciliation are queries of the
live views, like the scorecard.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from projections.api.common import DASHBOARD, ApiError, Ctx, OrjsonResponse
from projections.fold import Counters
from projections.legacy import legacy_report
from projections.periods import parse_period
from projections.publication_store import MEDIA_TYPES, Publication, PublicationStore
from projections.reconcile import agree, read_portal_file, reconcile

MAX_PORTAL_FILE = 64 * 1024 * 1024


class _Publications:
    """The publication store beside the views this app serves, opened on first use."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.store: PublicationStore | None = None
        self.lock = threading.Lock()

    def __call__(self) -> PublicationStore:
        with self.lock:
            if self.store is None:
                self.store = PublicationStore(self.ctx.source.read(lambda s: s.url))
            return self.store


def router(ctx: Ctx) -> APIRouter:
    r = APIRouter(tags=["reports"])
    pubs = _Publications(ctx)

    @r.get("/api/v1/reports")
    def list_reports() -> OrjsonResponse:
        """Every stored publication version, newest period and version first."""
        return OrjsonResponse({"publications": pubs().summaries()})

    @r.get("/api/v1/reports/{period}")
    def get_report(period: str, version: int | None = Query(None, ge=1)) -> OrjsonResponse:
        """A period's publication (the latest version unless one is named): its recording
        instant, SHA-256, files, the other versions, and its content."""
        pub = _find(pubs(), period, version)
        return OrjsonResponse({**pub.summary(), "files": _files(pub),
                               "versions": pubs().summaries(pub.period),
                               "content": _content(pub)})

    @r.get("/reports", include_in_schema=False)
    def reports_redirect() -> RedirectResponse:
        return RedirectResponse("/reports/")

    @r.get("/reports/", include_in_schema=False)
    def reports_page() -> FileResponse:
        return FileResponse(DASHBOARD / "reports.html", headers={"Cache-Control": "no-cache"})

    @r.get("/reports/{period}", include_in_schema=False)
    def report_page(period: str, version: int | None = Query(None, ge=1)) -> FileResponse:
        _find(pubs(), period, version)
        return FileResponse(DASHBOARD / "report.html", headers={"Cache-Control": "no-cache"})

    @r.get("/reports/{period}/v{version}/{name}", include_in_schema=False)
    def report_file(period: str, version: int, name: str) -> Response:
        found = pubs().file(parse_period(period).label, version, name)
        if found is None:
            raise ApiError(404, f"Publication {period} version {version} has no file {name!r}.")
        kind, body = found
        return Response(body, media_type=MEDIA_TYPES.get(kind, "application/octet-stream"),
                        headers={"Content-Disposition": f'attachment; filename="{name}"',
                                 "Cache-Control": "public, max-age=31536000, immutable"})

    _queries(r, ctx)
    return r


def _queries(r: APIRouter, ctx: Ctx) -> None:
    """The legacy report and the reconciliation, on the live views."""

    @r.get("/api/v1/agencies/{agency_id}/legacy-report")
    def get_legacy(agency_id: str, period: str | None = None,
                   now: str | None = None) -> OrjsonResponse:
        """The provinces' older monthly form (publication spec §2) for an agency's subtree."""
        t = ctx.now_of(now)
        p = ctx.period_of(period, t)

        def compute(c: Counters) -> Any:
            tree = ctx.tree_with(c, agency_id)
            return ctx.source.read(lambda s: legacy_report(s, tree, agency_id, p, t))

        return OrjsonResponse(ctx.query("legacy", (agency_id, p.label, ctx.at(p, t)), compute))

    @r.post("/api/v1/reconcile")
    async def post_reconcile(request: Request, period: str | None = None,
                             now: str | None = None) -> OrjsonResponse:
        """The national portal's per-unit export (the request body, TSV or CSV) against the
        views (publication spec §3); ``"agree"`` says whether anything differs."""
        body = await request.body()
        if len(body) > MAX_PORTAL_FILE:
            raise ApiError(413, f"The portal export is {len(body):,} bytes; at most "
                                f"{MAX_PORTAL_FILE:,} are accepted.")
        t = ctx.now_of(now)
        p = ctx.period_of(period, t)
        rules = ctx.rules(None, p, t)
        portal = read_portal_file(body, "the request body", rules)

        def compute() -> Any:
            with ctx.source.snapshot() as c:
                out = reconcile(portal, c, rules, p, t, lambda agencies, months: ctx.source.read(
                    lambda s: s.subject_rows("dossiers", agencies, months)))
            return {**out, "agree": agree(out)}

        return OrjsonResponse(await anyio.to_thread.run_sync(compute))


def _find(store: PublicationStore, period: str, version: int | None) -> Publication:
    label = parse_period(period).label
    pub = store.get(label, version)
    if pub is None:
        which = f"version {version} of " if version else ""
        raise ApiError(404, f"There is no publication of {which}period {label}.")
    return pub


def _files(pub: Publication) -> list[dict[str, Any]]:
    return [{"kind": f.kind, "name": f.name, "sha256": f.sha256, "size": f.size,
             "url": f"/reports/{pub.period}/v{pub.version}/{f.name}"} for f in pub.files]


def _content(pub: Publication) -> Any:
    return orjson.loads(pub.content)
