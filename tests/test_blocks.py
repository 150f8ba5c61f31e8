"""The blocks on a real Prefect server: AIOSSettings overriding config.toml, and notifications
reaching people through a real webhook block when the reactor sees a critical event."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import aios
from aios.config import AIOSConfig, load_config
from aios.errors import ConfigError
from aios.home import HomePaths
from tests.orchestration_helpers import Workspace, events_of, run_flow

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture
def settings_block() -> Iterator[None]:
    """No saved ``aios`` block before or after the test (the server is shared)."""
    from blocks.aios_settings import BLOCK_NAME, AIOSSettings, forget_cached

    def remove() -> None:
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            try:
                document = client.read_block_document_by_name(
                    BLOCK_NAME, AIOSSettings.get_block_type_slug()
                )
            except Exception:  # none saved
                return
            client.delete_block_document(document.id)

    remove()
    forget_cached()
    yield
    remove()
    forget_cached()


def test_a_saved_block_overrides_config_toml_and_empty_fields_keep_it(
    home: HomePaths, settings_block: None
) -> None:
    from blocks.aios_settings import AIOSSettings, effective_config, forget_cached

    home.config.write_text(
        '[reactor]\napproval_timeout = "2h"\n\n[score]\npreset = "ops"\n\n'
        "[monitor.thresholds.memory]\nraise = 60\nclear = 50\n"
    )
    assert effective_config(home).reactor.approval_timeout == timedelta(hours=2)
    AIOSSettings(approval_timeout="30m", thresholds={"cpu": {"raise": 90, "clear": 75}}).save(
        "aios"
    )
    forget_cached()
    config = effective_config(home)
    assert config.reactor.approval_timeout == timedelta(minutes=30)
    assert config.monitor.thresholds["cpu"].raise_at == 90
    assert config.monitor.thresholds["memory"].raise_at == 60  # config.toml's, kept
    assert config.monitor.thresholds["disk"].raise_at == 90  # the default, kept
    assert config.score.preset == "ops"  # empty in the block: config.toml's value


def test_a_bad_block_value_names_the_block_and_the_field(home: HomePaths) -> None:
    from blocks.aios_settings import AIOSSettings

    with pytest.raises(ConfigError) as caught:
        AIOSSettings(approval_timeout="soon").apply(load_config(home))
    message = str(caught.value)
    assert "aios-settings/aios" in message and "reactor.approval_timeout" in message
    with pytest.raises(ConfigError, match=r"monitor\.thresholds"):
        AIOSSettings(thresholds={"cpu": {"raise": 50, "clear": 70}}).apply(load_config(home))


def guarded_config(home: HomePaths, tmp_path: Path) -> tuple[AIOSConfig, Path, Path]:
    """config.toml with the security settings a block might try to loosen: every remediation
    asks a person, two allowed roots, one agent pattern; (the config, the roots)."""
    first, second = tmp_path / "agents-a", tmp_path / "agents-b"
    first.mkdir()
    second.mkdir()
    home.config.write_text(
        f'[reactor]\napprove_from = "low"\nallowed_roots = ["{first}", "{second}"]\n\n'
        '[agents]\npatterns = ["writer=*writer.py*", "*reader.py*"]\n'
    )
    return load_config(home), first, second


def test_a_block_may_tighten_the_security_settings(home: HomePaths, tmp_path: Path) -> None:
    from blocks.aios_settings import AIOSSettings

    config, first, _ = guarded_config(home, tmp_path)
    alias = tmp_path / "alias"
    alias.symlink_to(first)
    applied = AIOSSettings(
        approve_from="low",
        allowed_roots=[str(alias)],  # the configured root, by another name
        agent_patterns=["*reader.py*"],
        approval_timeout="2m",
    ).apply(config)
    assert applied.reactor.approve_from == "low"
    assert applied.reactor.allowed_roots == [first]  # as configured, not the alias
    assert applied.agents.patterns == ["*reader.py*"]
    assert applied.reactor.approval_timeout == timedelta(minutes=2)
    nothing = AIOSSettings(allowed_roots=[], agent_patterns=[]).apply(config)
    assert nothing.reactor.allowed_roots == [] and nothing.agents.patterns == []


@pytest.mark.parametrize(
    ("fields", "field", "why"),
    [
        ({"approve_from": "medium"}, "approve_from", "approve_from = 'low'"),
        ({"allowed_roots": ["{home}"]}, "allowed_roots", "not one of the configured"),
        ({"allowed_roots": ["{first}", "/"]}, "allowed_roots", "not one of the configured"),
        ({"allowed_roots": ["{first}/sub"]}, "allowed_roots", "not one of the configured"),
        ({"allowed_roots": ["{first}/../.."]}, "allowed_roots", "not one of the configured"),
        ({"allowed_roots": ["{first}/escape"]}, "allowed_roots", "not one of the configured"),
        ({"allowed_roots": ["agents-a"]}, "allowed_roots", "not an absolute path"),
        ({"agent_patterns": ["*"]}, "agent_patterns", "'*' is not one of the configured"),
        ({"agent_patterns": ["*reader.py*", "*python*"]}, "agent_patterns", "'*python*'"),
        ({"agent_patterns": ["writer=*"]}, "agent_patterns", "'writer=*'"),
        ({"approval_timeout": "30s"}, "approval_timeout", "shorter than 1m"),
    ],
)
def test_a_block_that_would_loosen_a_security_setting_is_refused(
    home: HomePaths, tmp_path: Path, fields: dict[str, Any], field: str, why: str
) -> None:
    from blocks.aios_settings import AIOSSettings

    config, first, _ = guarded_config(home, tmp_path)
    (first / "escape").symlink_to(Path.home())  # inside the root, pointing outside it
    values = {
        k: [v.format(home=Path.home(), first=first) for v in value]
        if isinstance(value, list)
        else value
        for k, value in fields.items()
    }
    with pytest.raises(ConfigError) as caught:
        AIOSSettings(**values).apply(config)
    message = str(caught.value)
    assert f"aios-settings/aios: {field}: refused" in message and why in message, message


def test_a_flow_run_fails_on_a_block_that_would_loosen_a_setting(
    home: HomePaths, ws: Workspace, settings_block: None
) -> None:
    from blocks.aios_settings import AIOSSettings, forget_cached
    from flows.reactor import reactor_flow

    home.config.write_text('[agents]\npatterns = ["*writer.py*"]\n')
    AIOSSettings(agent_patterns=["*"]).save("aios")  # any process of the AIOS user
    forget_cached()
    ws.playbook("guarded")
    event = aios.emit("test.guarded", severity="high")
    with pytest.raises(ConfigError, match=r"aios-settings/aios: agent_patterns: refused"):
        run_flow(reactor_flow, [event.id])
    assert not events_of(home, "source = 'aios.reactor'") and ws.level() == 1


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        type(self).received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A local webhook receiver: its URL, and the JSON bodies it received."""
    received: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def test_a_critical_event_reaches_people_through_a_webhook_block(
    home: HomePaths,
    monkeypatch: pytest.MonkeyPatch,
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from blocks.aios_settings import forget_cached
    from flows.reactor import reactor_flow

    url, received = webhook
    name = f"ops-{uuid.uuid4().hex[:8]}"
    CustomWebhookNotificationBlock(
        name="ops",
        url=url,
        json_data={"text": "{{subject}}", "detail": "{{body}}"},
        allow_private_urls=True,  # the receiver is on this machine
    ).save(name)
    missing = f"custom-webhook/missing-{uuid.uuid4().hex[:8]}"
    blocks = [f"custom-webhook/{name}", missing]
    monkeypatch.setenv("AIOS_ORCHESTRATION__NOTIFY_BLOCKS", json.dumps(blocks))
    forget_cached()
    event = aios.emit(
        "disk.failing", {"device": "sda"}, severity="critical", labels={"host": "db1"}
    )
    result, _ = run_flow(reactor_flow, [event.id])
    assert result["events"] == [event.id]
    [message] = received
    assert message["text"] == "AIOS: critical disk.failing"
    assert "db1" in message["detail"] and "sda" in message["detail"]
    [(_, _, sent, _)] = events_of(home, "type = 'notification.sent'")
    assert sent["blocks"] == [f"custom-webhook/{name}"]
    [(_, _, failed, _)] = events_of(home, "type = 'notification.failed'")
    assert failed["block"] == missing  # one bad block does not keep the others silent
    forget_cached()
