"""The dashboard: its data over generated history, its HTTP API, and the pages in real headless
Chromium (each page renders with data; a new event appears without reload, over the WebSocket
and over the polling fallback when the WebSocket is blocked)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import aios
from aios import insights, runtime
from aios.dashboard.server import DashboardServer
from aios.errors import InputError
from aios.home import HomePaths
from tests.browser import chromium
from tests.history import History, generate

UI_URL = "http://127.0.0.1:4200"
STATIC = Path(__file__).parents[1] / "aios" / "dashboard" / "static"


class Site:
    def __init__(self, home: HomePaths, history: History, server: DashboardServer) -> None:
        self.home, self.history, self.server = home, history, server

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.server.url}{path}", timeout=10)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    home = HomePaths(tmp_path_factory.mktemp("dashboard") / "aios-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("AIOS_HOME", str(home.root))
    home.root.mkdir()
    runtime.reset()
    history = generate(home, days=2)
    bus = aios.bus()
    deadline = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    bus.emit(
        "approval.waiting",
        {
            "remediation_id": "rem-wait",
            "playbook": "restart_worker",
            "risk": "high",
            "flow_run_id": "0b7c6d2e-1111-4222-8333-944455556666",
            "deadline": deadline,
        },
        source="aios.approvals",
    )
    server = DashboardServer(home, port=0, ui_url=lambda: UI_URL)
    server.live.min_rebuild_s = 0.2
    server.start()
    yield Site(home, history, server)
    server.stop()
    runtime.reset()
    mp.undo()


def test_pages_hold_what_the_history_says(site: Site) -> None:
    overview = site.get("/api/pages/overview").json()["data"]
    with insights.open_home(site.home.root) as con:
        scores = insights.score_history(con)
    assert overview["score"]["value"] == pytest.approx(scores["score"].iloc[-1], abs=1e-4)
    assert overview["score"]["grade"] == scores["grade"].iloc[-1]
    assert len(overview["series"]["t"]) == len(overview["series"]["score"]) > 20
    assert overview["counts"]["waiting_approvals"] == 1
    agents = site.get("/api/pages/agents").json()["data"]
    assert {a["agent"] for a in agents["agents"]} >= {"writer", "reader", "planner"}
    evolution = site.get("/api/pages/evolution").json()["data"]
    playbooks = {p["playbook"]: p for p in evolution["playbooks"]}
    rolled = sum(1 for v in site.history.remediations.values() if v == "rolled_back")
    assert playbooks["restart_worker"]["rolled_back"] == rolled
    assert "task_success_rate" in evolution["components"]
    performance = site.get("/api/pages/performance").json()["data"]
    started = sum(1 for v in site.history.remediations.values() if v != "denied")
    assert performance["remediation"]["count"] == started
    assert performance["remediation"]["mttr_s"] > 0
    approvals = site.get("/api/pages/approvals").json()["data"]
    [waiting] = approvals["waiting"]
    assert waiting["link"] == f"{UI_URL}/runs/flow-run/0b7c6d2e-1111-4222-8333-944455556666"


def test_it_is_read_only_and_names_unknown_pages(site: Site) -> None:
    assert site.get("/api/pages/nope").status_code == 404
    assert "overview" in site.get("/api/pages/nope").json()["detail"]
    for method in ("POST", "PUT", "DELETE"):
        response = httpx.request(method, f"{site.server.url}/api/pages/overview", timeout=10)
        assert response.status_code == 405
    assert site.get("/api/health").json()["ok"] is True


def test_assets_are_shipped_and_match_their_npm_release() -> None:
    """No CDN: the page loads only its own assets, which are the npm release's files."""
    html = (STATIC / "index.html").read_text()
    assert "http://" not in html and "https://" not in html and "//cdn" not in html
    lock = json.loads((STATIC.parent / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/uplot"]["version"] == "1.6.32"
    sums = dict(
        line.split()[::-1] for line in (STATIC / "vendor" / "SHA256SUMS").read_text().splitlines()
    )
    for name, digest in sums.items():
        assert hashlib.sha256((STATIC / "vendor" / name).read_bytes()).hexdigest() == digest


def test_a_taken_port_is_a_clear_error(site: Site) -> None:
    with pytest.raises(InputError, match=f"port {site.server.port} on 127.0.0.1 is in use"):
        DashboardServer(site.home, port=site.server.port)


# ---- in real headless Chromium -----------------------------------------------------------


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    with chromium() as opened:
        yield opened


def _open(browser: Any, site: Site, name: str, *, block_websocket: bool = False) -> Any:
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    if block_websocket:  # as a proxy that refuses WebSocket upgrades would
        page.route_web_socket("**/ws*", lambda ws: ws.close(code=1008, reason="blocked"))
    page.goto(f"{site.server.url}/#{name}")
    page.wait_for_selector(f"main[data-page={name}] .card")
    return page


@pytest.mark.slow
def test_each_page_renders_with_data(browser: Any, site: Site) -> None:
    page = _open(browser, site, "overview")
    with insights.open_home(site.home.root) as con:
        latest = float(insights.score_history(con)["score"].iloc[-1])
    assert page.inner_text("#score-value") == f"{latest:.2f}"
    assert page.locator("#timeline tbody tr").count() > 5
    assert page.locator("#score-chart canvas").count() == 1
    assert page.inner_text("#waiting-count") == "1"

    page.click("nav a[data-tab=agents]")
    page.wait_for_selector("main[data-page=agents] #agents-table")
    agents = page.inner_text("#agents-table")
    assert all(name in agents for name in ("writer", "reader", "planner"))
    assert page.locator("#tasks-table tbody tr").count() > 5

    page.click("nav a[data-tab=evolution]")
    page.wait_for_selector("main[data-page=evolution] #playbooks-table")
    assert "restart_worker" in page.inner_text("#playbooks-table")
    assert page.locator("#components-chart canvas").count() == 1

    page.click("nav a[data-tab=performance]")
    page.wait_for_selector("main[data-page=performance] #remediation-count")
    started = sum(1 for v in site.history.remediations.values() if v != "denied")
    assert page.inner_text("#remediation-count") == str(started)
    for chart in ("#rates-chart", "#throughput-chart", "#latency-chart", "#mttr-chart"):
        assert page.locator(f"{chart} canvas").count() == 1, chart

    page.click("nav a[data-tab=approvals]")
    page.wait_for_selector("main[data-page=approvals] #approvals-table")
    link = page.locator("#approvals-table a")
    assert link.get_attribute("href") == (
        f"{UI_URL}/runs/flow-run/0b7c6d2e-1111-4222-8333-944455556666"
    )
    assert page.errors == []
    page.close()


def _new_event_appears(page: Any, severity: str) -> None:
    page.evaluate("window.__notReloaded = true")
    event = aios.bus().emit(
        "queue.backlog", {"depth": 900}, severity=severity, labels={"host": "web7"}
    )
    page.wait_for_selector(f'#timeline tr[data-event-id="{event.id}"]', timeout=20_000)
    assert page.evaluate("window.__notReloaded") is True


@pytest.mark.slow
def test_a_new_event_appears_without_reload_over_the_websocket(browser: Any, site: Site) -> None:
    page = _open(browser, site, "overview")
    page.wait_for_selector("#status[data-transport=live]")
    _new_event_appears(page, "high")
    assert page.get_attribute("#status", "data-transport") == "live"
    assert page.errors == []
    page.close()


@pytest.mark.slow
def test_polling_takes_over_when_the_websocket_is_blocked(browser: Any, site: Site) -> None:
    page = _open(browser, site, "overview", block_websocket=True)
    page.wait_for_selector("#status[data-transport=polling]")
    _new_event_appears(page, "medium")
    assert page.get_attribute("#status", "data-transport") == "polling"
    assert page.errors == []
    page.close()
