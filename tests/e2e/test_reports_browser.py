"""The published report of the demo, looked at in real headless Chromium: ``/reports/2026-10``
shows the publication (its recording instant, its hash, its ranking), never the live figures,
and its PDF and XLSX links download the real files."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from demo_support import feed_size, settled
from openpyxl import load_workbook
from pypdf import PdfReader

from kernel.broker import free_port
from kernel.calendar import VN_TZ

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
LIVE_QUERIES = ("/api/v1/ranking", "/scorecard", "/overdue", "/trend", "/api/v1/stream")


def _month_before_last() -> str:
    """The month before last (2026-10 in December 2026): finished, and inside the demo's
    simulated 300 days, whenever the test runs."""
    today = datetime.now(VN_TZ).date()
    year, month = (today.year, today.month - 2) if today.month > 2 else (
        today.year - 1, today.month + 10)
    return f"{year:04d}-{month:02d}"


MONTH = _month_before_last()


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOTCUA_")}
    return {**env, "MOTCUA_HOME": str(home), "MOTCUA_LOG_LEVEL": "warning"}


def _motcua(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "motcua", *args], env=_env(home), text=True,
                          capture_output=True, timeout=180)


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A running ``motcua demo`` on a free port, fed a small province; stopped with Ctrl-C."""
    port = free_port()
    sizes = {feed_size(5, 600, 13)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "motcua", "demo", "--port", str(port), "--agencies", "5",
         "--dossiers", "600", "--rate", "400", "--seed", "13"],
        env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sizes.add(feed_size(5, 600, 13))  # midnight may pass meanwhile
    try:
        yield {"url": f"http://127.0.0.1:{port}", "home": tmp_path / "demo", "sizes": sizes}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("motcua demo did not stop within 30 s of Ctrl-C") from None


def _live_month(url: str) -> list[Any]:
    """The live ranking of the published month (October 2026 when written)."""
    doc = httpx.get(f"{url}/api/v1/ranking", params={"period": MONTH}, timeout=10).json()
    return [(r["agency_id"], r["total"]) for r in doc["ranking"]]


def _late_dossiers(path: Path, n: int) -> None:
    lines = [orjson.dumps({
        "schema": "motcua.action/1", "action_id": f"late-{i}", "source": "e2e",
        "type": "received", "occurred_at": f"{MONTH}-05T08:00:00+07:00",
        "dossier_id": f"LATE-{i}",
        "data": {"agency_id": "H15.1", "procedure_id": "E2E.1", "channel": "direct",
                 "due_at": f"{MONTH}-06T17:00:00+07:00"}}) for i in range(n)]
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_the_report_page_shows_the_publication_not_the_live_figures_and_its_files_download(
    demo: dict[str, Any], tmp_path: Path,
) -> None:
    """Publish October 2026 (the month before last) of the running demo; then late dossiers
    of that month arrive and the live ranking moves. ``/reports/2026-10`` still shows the
    publication's instant, hash and totals, reads nothing of the live views, and its PDF and
    XLSX links give the real files."""
    from playwright.sync_api import sync_playwright

    url, home = demo["url"], demo["home"]
    _wait(lambda: len(_live_month(url)) >= 6, 90, "a ranking of the month of 6 agencies")
    _wait(lambda: settled(home, url, demo["sizes"]), 90, "the whole feed recorded and folded")
    published = _motcua(home, "publish", "--period", MONTH, "--json")
    assert published.returncode == 0, published.stderr
    pub = orjson.loads(published.stdout)
    content = httpx.get(f"{url}/api/v1/reports/{MONTH}", timeout=10).json()
    assert (content["version"], content["sha256"]) == (pub["version"], pub["sha256"])
    totals = {r["agency_id"]: r["total"] for r in content["content"]["ranking"]["ranking"]}
    assert totals == dict(_live_month(url))

    before = _live_month(url)
    extra = tmp_path / "late.ndjson"
    _late_dossiers(extra, 40)
    assert _motcua(home, "ingest", str(extra)).returncode == 0
    _wait(lambda: _live_month(url) != before, 60, "the live ranking to move")
    assert dict(_live_month(url)) != totals

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url + "/reports/")
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        page.click(f"#publications a[href='./{MONTH}']")
        page.wait_for_selector("body[data-ready='1']", timeout=30_000)
        assert page.url == f"{url}/reports/{MONTH}"
        assert page.get_attribute("[data-testid=recorded-at]", "data-value") == \
            pub["recorded_at"]
        assert page.inner_text("[data-testid=sha256]").strip() == pub["sha256"]
        shown: dict[str | None, float] = {}
        for r in page.query_selector_all("#ranking tbody tr[data-agency]"):
            total = r.query_selector("[data-testid=total]")
            assert total is not None
            shown[r.get_attribute("data-agency")] = float(total.get_attribute("data-value")
                                                          or "nan")
        assert shown == totals
        page.screenshot(path=str(tmp_path / "report.png"), full_page=False)

        files = {}
        for kind in ("pdf", "xlsx"):
            with page.expect_download() as download:
                page.click(f"#files a[data-kind={kind}]")
            files[kind] = Path(download.value.path()).read_bytes()
            assert download.value.suggested_filename == \
                f"motcua-{MONTH}-v{pub['version']}.{kind}"
        assert Path(pub["files"]["pdf"]).read_bytes() == files["pdf"]
        browser.close()

    assert not [u for u in requests if any(q in u for q in LIVE_QUERIES)], requests
    text = PdfReader(io.BytesIO(files["pdf"])).pages[0].extract_text()
    assert f"Tháng {int(MONTH[5:])}/{MONTH[:4]}" in text and pub["sha256"] in text
    wb = load_workbook(io.BytesIO(files["xlsx"]), read_only=True)
    rows = list(wb["Xếp hạng"].iter_rows(values_only=True))
    assert {r[1]: r[4] for r in rows[1:]} == pytest.approx(totals)


HAND_DELAYS = [
    {"by": "unit", "rows": [
        {"unit": "H15.1/phòng-hộ-tịch", "official": None, "late_dossiers": 2, "late_steps": 3,
         "overrun_hours": 17.25, "apology_in_time": 1, "apology_late": 0,
         "apology_missing": 1}]},
    {"by": "official", "rows": [
        {"unit": "H15.1/phòng-hộ-tịch", "official": "Nguyễn Thị Ánh", "late_dossiers": 2,
         "late_steps": 2, "overrun_hours": 12.5, "apology_in_time": 1, "apology_late": 0,
         "apology_missing": 1}]}]


def test_the_report_page_shows_a_delays_list_and_prints_without_its_links(tmp_path: Path) -> None:
    """A publication carrying a delays list (made by hand, in the shape of ``delays --json``)
    shows it by unit and by official, beside its late list; printed, the page drops its links
    and file buttons."""
    from datetime import UTC, date

    from playwright.sync_api import sync_playwright

    from engine.app import Message
    from motcua.pipeline import engine_at
    from motcua.serving import serve_http, stop_http
    from producers.simulator import SimConfig, generate
    from projections.api import create_app
    from projections.periods import parse_period
    from projections.publication import SECTIONS, per_root
    from projections.publication_store import PublicationStore
    from projections.publishing import publish
    from projections.replay import Replayer
    from projections.ruleset import load_ruleset
    from projections.source import StoreSource
    from projections.store import ViewStore, views_url

    url = f"sqlite:///{tmp_path / 'motcua.db'}"
    engine = engine_at(url, hold_seconds=3600, clock=lambda: datetime(2025, 1, 1, tzinfo=UTC))
    lines = [orjson.dumps(a) for a in generate(SimConfig(
        agencies=3, dossiers=120, seed=9, start=date(2026, 10, 1), days=31))]
    engine.process("log", [Message("motcua.actions", 0, i, b) for i, b in enumerate(lines)])
    views = ViewStore(views_url(url))
    pubs = PublicationStore(views.url)
    ruleset = load_ruleset("portal-2026")
    delays = per_root(lambda f, root: [
        {"agency_id": root, "period": f.period.label, "view_end": "2026-10-31T23:59:59+07:00",
         "late_dossiers": 2, **doc} for doc in HAND_DELAYS])
    pub = publish(Replayer(engine.store, views), pubs, parse_period("2026-10"),
                  datetime.now(UTC), ruleset, sections=(*SECTIONS, ("delays", delays)))
    late = sum(len(doc["dossiers"]) for doc in orjson.loads(pub.content)["late_dossiers"])
    server, _ = serve_http(create_app(StoreSource(ViewStore(views.url)), ruleset), "127.0.0.1",
                           port := free_port())
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/reports/2026-10")
            page.wait_for_selector("body[data-ready='1']", timeout=30_000)
            by_unit = page.inner_text("table.delays[data-by=unit] tbody")
            by_official = page.inner_text("table.delays[data-by=official] tbody")
            assert "H15.1/phòng-hộ-tịch" in by_unit and "17,25" in by_unit
            assert "Nguyễn Thị Ánh" in by_official and "12,50" in by_official
            assert len(page.query_selector_all("#late tbody tr")) == late > 0
            assert page.is_visible("#files a[data-kind=pdf]")
            page.emulate_media(media="print")
            assert not page.is_visible("#files a[data-kind=pdf]")
            assert not page.is_visible("#print")
            page.screenshot(path=str(tmp_path / "report-print.png"), full_page=True)
            browser.close()
    finally:
        stop_http(server)
        pubs.close()
        views.close()
        engine.close()
