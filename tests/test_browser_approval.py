"""A person approves or rejects a remediation in the Prefect UI, in real headless Chromium.

``aios up`` starts its own Prefect server (with the UI) on a free port; an urgent event pauses
the reactor; the browser opens the paused run, presses Resume, fills the form and submits.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from aios.bus import EventBus
from aios.home import HomePaths
from aios.log import EventLog
from tests.browser import CHROMIUM, chromium
from tests.orchestration_helpers import (
    Up,
    Workspace,
    aios_cli,
    aios_up,
    events_of,
    free_port,
    make_workspace,
    remediations_finished,
    wait_for,
)

pytestmark = pytest.mark.slow


@dataclass
class Site:
    up: Up
    home: HomePaths
    ws: Workspace
    bus: EventBus

    def waiting(self, playbook: str) -> list[dict[str, Any]]:
        result = aios_cli("approvals", "list", "--json", home=self.home, api_url=self.up.api_url)
        assert result.returncode == 0, result.stderr
        return [w for w in json.loads(result.stdout) if w["playbook"] == playbook]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    base = tmp_path_factory.mktemp("browser")
    home = HomePaths(base / "aios-home")
    ws = make_workspace(base)
    for pid in ("ui_approve", "ui_reject"):
        ws.playbook(pid, risk="medium")
    with aios_up(home, port=free_port(), extra=ws.env()) as up:
        log = EventLog(home.events)
        yield Site(up, home, ws, EventBus(log))
        log.close()


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Any]:
    with chromium() as opened:
        yield opened


def answer_in_the_ui(
    browser: Any,
    site: Site,
    flow_run_id: str,
    approve: bool,
    reason: str,
    approver: str,
    code: str | None = None,
) -> str:
    """Open the paused run, Resume, fill the form (the approver's ``code`` too, when given),
    Submit; returns the form's description."""
    page = browser.new_page(viewport={"width": 1400, "height": 1200})
    try:
        page.goto(f"{site.up.ui_url}/runs/flow-run/{flow_run_id}")
        page.get_by_role("button", name="Resume").click(timeout=60_000)
        dialog = page.get_by_role("dialog")
        dialog.get_by_text("Planned actions (dry run)").wait_for(timeout=30_000)
        description = str(dialog.inner_text())
        if approve:
            dialog.locator("[role=switch]").first.click()
        fields = dialog.locator("textarea")  # reason, approver, code, remediation
        fields.nth(0).fill(reason)
        fields.nth(1).fill(approver)
        if code is not None:
            fields.nth(2).fill(code)
        dialog.get_by_role("button", name="Submit").click()
        page.get_by_text("Running").or_(page.get_by_text("Completed")).first.wait_for(
            timeout=60_000
        )
        return description
    finally:
        page.close()


def test_a_person_approves_in_the_prefect_ui(site: Site, browser: Any) -> None:
    site.ws.reset()
    event = site.bus.emit("test.ui_approve", {}, source="test", severity="high")
    [waiting] = wait_for(lambda: site.waiting("ui_approve"), 120, "the run to pause")
    assert site.ws.level() == 1
    description = answer_in_the_ui(
        browser, site, waiting["flow_run_id"], True, "disk checked", "Ada (browser)"
    )
    assert "Playbook ui_approve wants to run" in description
    assert "set limits.level in" in description and "1 -> 2" in description
    finished = remediations_finished(site.home, event.id)
    assert finished[-1][2]["outcome"] == "succeeded" and site.ws.level() == 2
    [(_, _, granted, _)] = events_of(
        site.home, "type = 'approval.granted' AND correlation_id = ?", [event.id]
    )
    assert (granted["approver"], granted["reason"]) == ("Ada (browser)", "disk checked")


def test_a_person_rejects_in_the_prefect_ui(site: Site, browser: Any) -> None:
    site.ws.reset()
    event = site.bus.emit("test.ui_reject", {}, source="test", severity="high")
    [waiting] = wait_for(lambda: site.waiting("ui_reject"), 120, "the run to pause")
    answer_in_the_ui(browser, site, waiting["flow_run_id"], False, "not now", "Grace")
    denied = wait_for(
        lambda: events_of(site.home, "type = 'approval.denied' AND correlation_id = ?", [event.id]),
        90,
        "the denial",
    )
    assert (denied[0][2]["approver"], denied[0][2]["reason"]) == ("Grace", "not now")
    skipped = events_of(site.home, "type = 'playbook.skipped' AND correlation_id = ?", [event.id])
    assert skipped and skipped[-1][2]["reason"] == "denied"
    assert site.ws.level() == 1
    assert not events_of(
        site.home, "type = 'remediation.started' AND correlation_id = ?", [event.id]
    )


def test_only_the_servers_own_ui_may_call_it_from_a_browser(site: Site) -> None:
    """A web page elsewhere must not be able to resume a paused approval (CORS)."""
    import httpx

    def preflight(origin: str) -> httpx.Response:
        return httpx.options(
            f"{site.up.api_url}/flow_runs/00000000-0000-0000-0000-000000000000/resume",
            headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            timeout=10,
        )

    evil = preflight("https://evil.example")
    assert evil.headers.get("access-control-allow-origin") not in ("*", "https://evil.example")
    own = preflight(site.up.ui_url)
    assert own.headers.get("access-control-allow-origin") == site.up.ui_url
