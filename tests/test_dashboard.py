"""The dashboard: its data over generated history, its HTTP API, and the pages in real headless
Chromium (each page renders with data; a new event appears without reload, over the WebSocket
and over the polling fallback when the WebSocket is blocked)."""

from __future__ import annotations

import hashlib
import json
import socket
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
from tests.orchestration_helpers import wait_for

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
    refused = {
        "remediation_id": "rem-wait",
        "playbook": "restart_worker",
        "risk": "high",
        "approver": "<b>mallory</b>",
        "approve": True,
        "via": "prefect",
        "refusal": "unknown_approver",
        "reason": "'<b>mallory</b>' is not an approver (aios approvals approvers)",
    }
    bus.emit("approval.refused", refused, source="aios.approvals")
    bus.emit("approval.refused", {**refused, "approver": "forged"}, source="evil")
    for signature, agents in (("writer timeout", ["writer"]), ("disk full", ["writer", "reader"])):
        bus.emit(
            "lesson.created",
            {
                "lesson_id": f"lesson-{signature[:4]}",
                "signature": signature,
                "symptom": signature,
                "count": 3,
                "agents": agents,
            },
            source="aios.lessons",
        )
    server = DashboardServer(home, port=0, ui_url=lambda: UI_URL)
    server.live.min_rebuild_s = 0.2
    server.start()
    wait_for(lambda: server.live.snapshot.built, 60, "the dashboard's first build")
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
    [refused] = approvals["refused"]  # only AIOS's own record counts, not one by "evil"
    assert (refused["approver"], refused["refusal"]) == ("<b>mallory</b>", "unknown_approver")
    owners = {lesson["symptom"]: lesson["owner"] for lesson in evolution["lessons"]}
    assert owners == {"writer timeout": "writer", "disk full": "shared"}


def test_it_is_read_only_and_names_unknown_pages(site: Site) -> None:
    assert site.get("/api/pages/nope").status_code == 404
    assert "overview" in site.get("/api/pages/nope").json()["detail"]
    for method in ("POST", "PUT", "DELETE"):
        response = httpx.request(method, f"{site.server.url}/api/pages/overview", timeout=10)
        assert response.status_code == 405
    assert site.get("/api/health").json()["ok"] is True


def test_assets_are_shipped_and_match_their_npm_release() -> None:
    """No CDN: the page loads only its own assets; the shipped files are those recorded for
    the version the lock pins (``make dashboard-assets`` takes both from the npm registry)."""
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
    refused = page.inner_text("#refused-table")
    assert "<b>mallory</b>" in refused and "is not an approver" in refused
    assert page.locator("#refused-table b").count() == 0
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


# ---- hostile and broken input ----------------------------------------------------------


def _next_version(site: Site, after: int) -> dict[str, Any]:
    def newer() -> dict[str, Any] | None:
        page = site.get("/api/pages/overview").json()
        return page if page["version"] > after else None

    found: dict[str, Any] = wait_for(newer, 30, "a rebuild of the dashboard")
    return found


def test_events_of_the_wrong_shape_from_other_programs_break_nothing(site: Site) -> None:
    before = site.server.live.snapshot.version
    bus = aios.bus()
    bus.emit("analysis.reported", {"findings": [1, "two", None]}, source="evil")
    bus.emit("analysis.reported", {"findings": "not a list"}, source="aios.analyst")
    bus.emit("agent.metrics", {"cpu_percent": "lots", "processes": []}, source="exporter")
    bus.emit("score.weights_suggested", {"suggested": {"uptime": 1.0}}, source="evil")
    marker = bus.emit("queue.backlog", {"depth": 1}, severity="high", labels={"host": "w9"})
    page = _next_version(site, before)
    assert str(marker.id) in {row["id"] for row in page["data"]["timeline"]}
    assert site.get("/api/health").json() == {
        "ok": True,
        "version": site.server.live.snapshot.version,
        "built": site.server.live.snapshot.built,
        "error": None,
    }
    evolution = site.get("/api/pages/evolution").json()["data"]
    assert not [s for s in evolution["suggestions"] if "uptime" in s["text"]]


def test_other_sites_and_other_host_names_are_refused(site: Site) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = site.server.url.replace("http://", "ws://") + "/ws?page=approvals"
    with connect(url, origin=site.server.url) as ws:  # type: ignore[arg-type]
        assert json.loads(ws.recv(timeout=10))["page"] == "approvals"
    with pytest.raises(InvalidStatus, match="403"):  # the handshake itself is refused
        connect(url, origin="http://evil.example").close()  # type: ignore[arg-type]
    # DNS rebinding: a name the attacker controls, resolving to 127.0.0.1.
    rebound = httpx.get(
        f"{site.server.url}/api/pages/approvals", headers={"Host": "evil.example"}, timeout=10
    )
    assert rebound.status_code == 400
    assert _handshake(site.server.port, "evil.example").endswith(b"400 Bad Request")


def _handshake(port: int, host: str, origin: str | None = None, page: str = "approvals") -> bytes:
    """The status line a raw WebSocket handshake with these headers gets."""
    extra = f"Origin: {origin}\r\n" if origin else ""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(
            f"GET /ws?page={page} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n".encode()
        )
        return raw.recv(200).split(b"\r\n", 1)[0]


def test_listening_on_every_address_still_refuses_other_names(site: Site) -> None:
    """Bound to 0.0.0.0 it answers to this machine's names and addresses and to
    ``allowed_hosts``, never to a DNS-rebinding name, and warns that it has no login."""
    server = DashboardServer(site.home, host="0.0.0.0", port=0, allowed_hosts=("ops.example",))
    server.start()
    try:
        assert server.exposed and "no login" in server.exposed
        port = server.port

        def status(host: str) -> int:
            url = f"http://127.0.0.1:{port}/api/health"
            return httpx.get(url, headers={"Host": f"{host}:{port}"}, timeout=10).status_code

        wait_for(lambda: status("127.0.0.1") == 200 or None, 30, "the dashboard on 0.0.0.0")
        assert status(socket.gethostname()) == 200
        assert status("ops.example") == 200
        assert status("evil.example") == 400
        rebound = f"evil.example:{port}"
        assert _handshake(port, rebound, f"http://{rebound}").endswith(b"400 Bad Request")
        own = f"127.0.0.1:{port}"
        assert _handshake(port, own, f"http://{own}").endswith(b"101 Switching Protocols")
        assert _handshake(port, own, f"http://{rebound}").endswith(b"403 Forbidden")
    finally:
        server.stop()
    assert DashboardServer(site.home, port=0).exposed is None  # loopback: nothing to warn


def test_a_long_page_name_over_the_websocket_closes_it_cleanly(site: Site) -> None:
    from websockets.exceptions import ConnectionClosedError
    from websockets.sync.client import connect

    url = site.server.url.replace("http://", "ws://") + "/ws?page=" + "x" * 300
    with connect(url) as ws, pytest.raises(ConnectionClosedError) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4404


def test_an_approval_past_its_deadline_is_not_counted_as_waiting(site: Site) -> None:
    before = site.server.live.snapshot.version
    aios.bus().emit(
        "approval.waiting",
        {
            "remediation_id": "rem-gone",
            "playbook": "restart_worker",
            "risk": "medium",
            "flow_run_id": "run-gone",
            "deadline": "2026-01-01T00:00:00+00:00",
        },
        source="aios.approvals",
    )
    overview = _next_version(site, before)["data"]
    approvals = site.get("/api/pages/approvals").json()["data"]
    overdue = {w["remediation_id"]: w["overdue"] for w in approvals["waiting"]}
    assert overdue == {"rem-wait": False, "rem-gone": True}
    assert overview["counts"]["waiting_approvals"] == 1


def test_a_bad_port_or_a_missing_home_is_a_clear_error(tmp_path: Path) -> None:
    from tests.conftest import run_aios

    bad = run_aios("dashboard", "--port", "99999", home=HomePaths(tmp_path))
    assert bad.returncode == 2 and "--port" in bad.stderr and "65535" in bad.stderr
    empty = tmp_path / "just-a-directory"
    empty.mkdir()
    missing = run_aios("dashboard", home=HomePaths(empty))
    assert missing.returncode == 2 and "no AIOS home" in missing.stderr
    assert list(empty.iterdir()) == [], "nothing may be written into it"


@pytest.mark.slow
def test_markup_in_events_is_shown_as_text(browser: Any, site: Site) -> None:
    page = _open(browser, site, "overview")
    hostile = '<img src=x onerror="window.__owned=1">'
    event = aios.bus().emit(
        "queue.backlog", {"depth": 2}, severity="high", source=hostile, labels={"agent": hostile}
    )
    row = page.wait_for_selector(f'#timeline tr[data-event-id="{event.id}"]', timeout=20_000)
    assert hostile in row.inner_text()
    assert page.locator("#timeline img").count() == 0
    assert page.evaluate("window.__owned") is None
    page.close()


@pytest.mark.slow
def test_an_update_keeps_the_readers_place(browser: Any, site: Site) -> None:
    page = browser.new_page(viewport={"width": 1300, "height": 500})
    page.goto(f"{site.server.url}/#performance")
    page.wait_for_selector("main[data-page=performance] #mttr-chart canvas")
    page.evaluate("window.scrollTo(0, 400)")
    version = page.get_attribute("main", "data-version")
    aios.bus().emit("queue.backlog", {"depth": 3}, severity="medium")
    page.wait_for_function(
        f"document.querySelector('main').dataset.version !== '{version}'", timeout=20_000
    )
    page.wait_for_timeout(300)
    assert page.evaluate("window.scrollY") == 400
    page.close()
