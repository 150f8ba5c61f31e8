"""Where the ingest endpoint's token comes from: a Prefect Secret block, config.toml (its
owner's alone), or $AIOS_HOME/ingest.token; and what a wrong source says."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import aios
from aios.config import load_config
from aios.errors import InputError
from aios.home import HomePaths
from aios.observe.http_ingest import create_app, resolve_token, token_path

TOKEN = "a-token-from-the-vault-0123456789"


@pytest.fixture
def api_url(prefect_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("PREFECT_API_URL", prefect_server)
    yield prefect_server


def test_a_secret_block_holds_the_token(home: HomePaths, api_url: str) -> None:
    from prefect.blocks.system import Secret

    Secret(value=TOKEN).save("aios-ingest-test", overwrite=True)
    home.config.write_text('[ingest]\ntoken_block = "aios-ingest-test"\n')
    os.chmod(home.config, 0o644)  # holds no secret: its mode does not matter
    token, source = resolve_token(home, load_config(home))
    assert token == TOKEN and "aios-ingest-test" in source
    assert not token_path(home).exists()
    client = TestClient(create_app(aios.bus(), token))
    event = {"type": "task.failed", "labels": {"agent": "w"}}
    assert client.post("/events", json=event).status_code == 401
    sent = client.post("/events", json=event, headers={"Authorization": f"Bearer {TOKEN}"})
    assert sent.status_code == 201


def test_a_missing_secret_block_is_named(home: HomePaths, api_url: str) -> None:
    home.config.write_text('[ingest]\ntoken_block = "no-such-block"\n')
    with pytest.raises(InputError, match="token_block 'no-such-block'"):
        resolve_token(home, load_config(home))


def test_a_token_in_a_config_others_can_read_is_refused(home: HomePaths) -> None:
    home.config.write_text(f'[ingest]\ntoken = "{TOKEN}"\n')
    os.chmod(home.config, 0o644)
    with pytest.raises(InputError, match=r"mode is 0644.*chmod 600"):
        resolve_token(home, load_config(home))
    os.chmod(home.config, 0o600)
    assert resolve_token(home, load_config(home)) == (TOKEN, "[ingest] token")


def test_a_short_token_is_refused_and_the_default_is_the_home_file(home: HomePaths) -> None:
    home.config.write_text('[ingest]\ntoken = "short"\n')
    os.chmod(home.config, 0o600)
    with pytest.raises(InputError, match="at least"):
        resolve_token(home, load_config(home))
    home.config.unlink()
    token, source = resolve_token(home, load_config(home))
    assert source == str(token_path(home)) and token_path(home).read_text().strip() == token
    assert token_path(home).stat().st_mode & 0o777 == 0o600


def test_a_token_file_others_could_read_is_replaced_not_trusted(home: HomePaths) -> None:
    token, _ = resolve_token(home, load_config(home))
    os.chmod(token_path(home), 0o644)  # someone may have read it meanwhile
    new, source = resolve_token(home, load_config(home))
    assert new != token and "a new token" in source
    assert token_path(home).stat().st_mode & 0o777 == 0o600
    client = TestClient(create_app(aios.bus(), new))
    event = {"type": "task.failed", "labels": {"agent": "w"}}
    old = client.post("/events", json=event, headers={"Authorization": f"Bearer {token}"})
    assert old.status_code == 401
    assert resolve_token(home, load_config(home)) == (new, str(token_path(home)))  # kept now


def test_more_events_than_one_request_may_carry_is_a_413_and_nothing_is_written(
    home: HomePaths,
) -> None:
    from aios.observe.http_ingest import MAX_EVENTS_PER_REQUEST

    client = TestClient(create_app(aios.bus(), TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    before = len(list(aios.bus().log.events()))
    many = [{"type": "agent.note"}] * (MAX_EVENTS_PER_REQUEST + 1)
    refused = client.post("/events", json=many, headers=auth)
    assert refused.status_code == 413 and f"at most {MAX_EVENTS_PER_REQUEST}" in refused.text
    assert len(list(aios.bus().log.events())) == before
    taken = client.post("/events", json={"events": many[:-1]}, headers=auth)
    assert taken.status_code == 201 and taken.json()["accepted"] == MAX_EVENTS_PER_REQUEST
