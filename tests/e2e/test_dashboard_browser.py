"""The public scoreboard in real headless Chromium, over a served simulated province."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from engine.app import Message
from engine.relay import event_message
from kernel.broker import free_port
from motcua.pipeline import engine_at
from producers.simulator import SimConfig, generate
from projections.api import create_app
from projections.fold import Counters
from projections.ruleset import Ruleset, load_ruleset
from projections.source import StoreSource
from projections.store import ViewStore, views_url

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
NOW = datetime.fromisoformat("2026-10-31T16:00:00+07:00")
CONFIG = SimConfig(agencies=12, dossiers=4000, seed=2026)
DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "scoreboard.png"


class Pipeline:
    """Actions → engine → stored events → fold → view store, as the runners do, without Kafka."""

    def __init__(self, directory: Path, ruleset: Ruleset) -> None:
        self.url = f"sqlite:///{directory / 'motcua.db'}"
        self.engine = engine_at(self.url)
        self.counters = Counters()
        self.store = ViewStore(views_url(self.url))
        self.offset = self.pos = 0

    def feed(self, actions: Iterable[dict[str, Any]]) -> None:
        batch = []
        for a in actions:
            batch.append(Message("motcua.actions", 0, self.offset, orjson.dumps(a)))
            self.offset += 1
        for i in range(0, len(batch), 2000):
            self.engine.process("e2e-log", batch[i:i + 2000])
        for n in self.engine.store.read_facts(self.pos + 1, 10**9):
            self.counters.fold(event_message(n)[1])
            self.pos = n[0]
        self.store.flush(self.counters, {"pos|0": self.pos})

    def close(self) -> None:
        self.store.close()
        self.engine.close()


class Server:
    """uvicorn on a free loopback port, in a thread of this process."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                timeout_graceful_shutdown=2, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def actions() -> list[dict[str, Any]]:
    return list(generate(CONFIG))


@pytest.fixture
def served(tmp_path: Path, actions: list[dict[str, Any]]) -> Iterator[tuple[Server, Pipeline]]:
    ruleset = load_ruleset("portal-2026")
    pipeline = Pipeline(tmp_path, ruleset)
    pipeline.feed(actions)
    source = StoreSource(ViewStore(views_url(pipeline.url)), pipeline.engine, check_every=0.2)
    try:
        with Server(create_app(source, ruleset, clock=lambda: NOW)) as server:
            yield server, pipeline
    finally:
        pipeline.close()


def late_dossiers(actions: list[dict[str, Any]], agency: str, n: int) -> list[dict[str, Any]]:
    """``n`` new dossiers of ``agency`` received on 1 October, due the next day, still open."""
    template = next(a for a in actions if a["type"] == "received"
                    and a["data"]["agency_id"] == agency)
    out = []
    for i in range(n):
        a = orjson.loads(orjson.dumps(template))
        a["action_id"] = a["dossier_id"] = f"{agency}-LATE-{i:03d}"
        a["occurred_at"] = "2026-10-01T09:00:00+07:00"
        a["data"]["due_at"] = "2026-10-02T17:00:00+07:00"
        out.append(a)
    return out


def shown_totals(page: Any) -> dict[str, str]:
    return dict(page.eval_on_selector_all(
        "#ranking tbody tr[data-agency]",
        "rows => rows.map(r => [r.dataset.agency,"
        " r.querySelector('[data-testid=total]').dataset.value])"))


def test_scoreboard_shows_the_ranking_detail_languages_and_live_updates(
        chromium: str, served: tuple[Server, Pipeline], actions: list[dict[str, Any]],
        tmp_path: Path) -> None:
    """The page ranks the simulated agencies with the API's totals, explains one, and follows."""
    from playwright.sync_api import sync_playwright

    server, pipeline = served
    api = httpx.Client(base_url=server.url, timeout=30)
    agencies = sorted(a["agency_id"] for a in actions if a["type"] == "agency_registered")
    errors: list[str] = []

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "/")
            page.wait_for_selector("#ranking tbody tr[data-agency]")

            # The ranking: every simulated agency, with the API's scorecard totals.
            totals = shown_totals(page)
            assert sorted(totals) == agencies
            for agency, value in totals.items():
                card = api.get(f"/api/v1/agencies/{agency}/scorecard").json()
                assert float(value) == card["total"], agency
            first = page.locator("#ranking tbody tr[data-agency]").first
            text = first.locator("[data-testid=total]").inner_text()
            expected = api.get("/api/v1/ranking").json()["ranking"][0]
            assert text == f"{expected['total']:.2f}".replace(".", ",")  # Vietnamese decimals

            # The detail of one department: criteria, trend and late dossiers.
            chosen = next(r["agency_id"] for r in api.get("/api/v1/ranking").json()["ranking"]
                          if r["level"] == "department")
            page.click(f"#ranking tbody tr[data-agency='{chosen}']")
            page.wait_for_selector("#detail:not([hidden]) #criteria tbody tr[data-code]")
            card = api.get(f"/api/v1/agencies/{chosen}/scorecard").json()
            codes = page.eval_on_selector_all("#criteria tbody tr[data-code]",
                                              "rows => rows.map(r => r.dataset.code)")
            assert codes == [c["code"] for g in card["groups"] for c in g["criteria"]]
            assert page.locator("#criteria tbody tr").count() == len(codes) + len(card["groups"])
            total = page.get_attribute("#detail-total", "data-value")
            assert total is not None
            assert float(total) == card["total"]
            on_time = page.locator("#criteria tbody tr[data-code=ON_TIME] .why").inner_text()
            c21 = [c for g in card["groups"] for c in g["criteria"] if c["code"] == "ON_TIME"][0]
            assert f"{c21['numerator']:,}".replace(",", ".") in on_time
            page.wait_for_selector("#trend svg circle")
            late = api.get(f"/api/v1/agencies/{chosen}/overdue").json()
            assert page.locator("#late tbody tr").count() == min(late["count"], 100)

            # The at-risk panel follows the chosen agency, with the API's rows and stakes.
            page.wait_for_function(f"document.querySelector('#atrisk-agency').textContent"
                                   f" === '{chosen}'")
            risk = api.get(f"/api/v1/agencies/{chosen}/at-risk?within=2").json()
            risk_rows = risk["due_soon"] + risk["overdue_open"]
            assert page.get_attribute("#atrisk", "data-count") == str(len(risk_rows))
            shown = page.eval_on_selector_all(
                "#atrisk tbody tr", "rows => rows.map(r => [r.dataset.dossier,"
                " r.querySelector('.stake').textContent])")
            assert shown == [[r["dossier_id"], f"{r['stake']:.2f}".replace(".", ",")]
                             for r in risk_rows[:100]]

            page.screenshot(path=str(tmp_path / "scoreboard-vi.png"), full_page=True)
            page.screenshot(path=str(tmp_path / "scoreboard.png"))
            if os.environ.get("MOTCUA_UPDATE_SCREENSHOT"):  # refresh the README's picture
                shutil.copy(tmp_path / "scoreboard.png", DOCS_SHOT)

            # English, and back.
            page.click("#lang-toggle")
            page.wait_for_function("document.documentElement.lang === 'en'")
            assert page.inner_text("h1") == "Citizen and business service index"
            assert page.inner_text("#lang-toggle") == "VI"
            assert "Points by criterion" in (page.text_content("#detail") or "")
            english_total = first.locator("[data-testid=total]").inner_text()
            assert english_total == f"{expected['total']:.2f}"
            page.screenshot(path=str(tmp_path / "scoreboard-en.png"), full_page=True)
            page.click("#lang-toggle")
            page.wait_for_function("document.documentElement.lang === 'vi'")

            # Live: forty late dossiers of the chosen agency reach the page without a reload.
            before = shown_totals(page)[chosen]
            late_before = page.locator("#late tbody tr").count()
            pipeline.feed(late_dossiers(actions, chosen, 40))
            new_total = api.get(f"/api/v1/agencies/{chosen}/scorecard").json()["total"]
            for _ in range(50):  # StoreSource notices within 0.2 s; the page refreshes within 1 s
                if api.get(f"/api/v1/agencies/{chosen}/scorecard").json()["total"] != float(before):
                    break
                time.sleep(0.1)
            new_total = api.get(f"/api/v1/agencies/{chosen}/scorecard").json()["total"]
            assert new_total < float(before)
            page.wait_for_function(
                "([id, v]) => document.querySelector(`#ranking tr[data-agency='${id}']"
                " [data-testid=total]`).dataset.value === String(v)",
                arg=[chosen, new_total], timeout=15_000)
            page.wait_for_function(f"document.querySelectorAll('#late tbody tr').length > "
                                   f"{late_before}", timeout=15_000)
            # … and to the at-risk panel: forty more open past due.
            page.wait_for_function(f"document.querySelector('#atrisk').dataset.count === "
                                   f"'{len(risk_rows) + 40}'", timeout=15_000)
            assert page.get_attribute("#live", "data-state") == "live"
            page.screenshot(path=str(tmp_path / "scoreboard-live.png"), full_page=True)

            # A phone: one column, nothing wider than the screen.
            phone = browser.new_page(viewport={"width": 390, "height": 844})
            phone.goto(f"{server.url}/?agency={chosen}")
            phone.wait_for_selector("#detail:not([hidden]) #criteria tbody tr[data-code]")
            assert phone.evaluate("document.documentElement.scrollWidth") <= 390
            ranking_box = phone.locator("#ranking").bounding_box()
            detail_box = phone.locator("#detail").bounding_box()
            assert ranking_box is not None and detail_box is not None
            assert detail_box["y"] >= ranking_box["y"] + ranking_box["height"]
            phone.screenshot(path=str(tmp_path / "scoreboard-phone.png"), full_page=True)

            # The period selector does not offer a part of the year not begun by the page's
            # now (its view would be empty, scored "Yếu"); earlier years are offered whole,
            # and going back to this year from a month it has not reached shows the year.
            then = browser.new_page()
            then.goto(f"{server.url}/?now=2026-10-31T16:00:00%2B07:00")
            then.wait_for_selector("#ranking tbody tr[data-agency]")
            offered = "os => os.map(o => [o.value, !o.disabled])"
            parts = then.eval_on_selector_all("#period option", offered)
            assert [v for v, ok in parts if not ok] == ["11", "12"]
            assert [v for v, ok in parts if ok] == [
                "Y", "H1", "H2", "Q1", "Q2", "Q3", "Q4", *(f"{m:02d}" for m in range(1, 11))]
            assert then.eval_on_selector_all("#year option", "os => os.map(o => o.value)") == [
                "2026", "2025", "2024", "2023"]
            then.select_option("#year", "2025")
            then.wait_for_function("document.querySelectorAll('#period option').length === 19"
                                   " && !document.querySelector('#period option:disabled')")
            then.select_option("#period", "12")
            then.wait_for_function("new URLSearchParams(location.search).get('period')"
                                   " === '2025-12'")
            then.select_option("#year", "2026")
            then.wait_for_function("new URLSearchParams(location.search).get('period')"
                                   " === '2026'")
            assert then.eval_on_selector("#period", "s => s.value") == "Y"
        finally:
            browser.close()
    assert errors == []
