"""config.toml with environment overrides, and the duration/time parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aios.config import config_template, load_config
from aios.durations import format_duration, parse_duration, parse_time
from aios.errors import ConfigError, DurationError
from aios.home import HomePaths


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("24h", 86400),
        ("7d", 604800),
        ("1w", 604800),
        ("250ms", 0.25),
        ("1.5h", 5400),
        ("42", 42),
        (" 2 m ", 120),
    ],
)
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5x", "m5", "-5m", "5m-", "1h 30", "abc", "1e400"])
def test_bad_durations_are_refused_with_the_text(text: str) -> None:
    with pytest.raises(DurationError):
        parse_duration(text)


def test_times_are_a_duration_ago_or_iso() -> None:
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    assert parse_time("24h", now=now) == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_time("2026-11-21T08:00Z") == datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    assert parse_time("2026-11-21T10:00+02:00") == datetime(2026, 11, 21, 8, 0, tzinfo=UTC)
    assert parse_time("2026-11-21") == datetime(2026, 11, 21, tzinfo=UTC)
    with pytest.raises(DurationError, match="yesterday"):
        parse_time("yesterday")


def test_format_duration_is_short() -> None:
    assert format_duration(timedelta(seconds=5400)) == "1h30m"
    assert format_duration(0.25) == "250ms"


def test_defaults_apply_without_a_file(home: HomePaths) -> None:
    assert load_config(home).log.segment_max_bytes == 64 * 1024 * 1024


def test_the_template_is_the_defaults(home: HomePaths) -> None:
    home.config.write_text(config_template())
    assert load_config(home) == load_config(HomePaths(home.root / "nowhere"))


def test_environment_overrides_the_file(home: HomePaths, monkeypatch: pytest.MonkeyPatch) -> None:
    home.config.write_text("[log]\nsegment_max_bytes = 100000\n")
    assert load_config(home).log.segment_max_bytes == 100000
    monkeypatch.setenv("AIOS_LOG__SEGMENT_MAX_BYTES", "200000")
    assert load_config(home).log.segment_max_bytes == 200000
    monkeypatch.setenv("AIOS_BUS__SUBSCRIBERS", '[{"pattern": "task.*", "handler": "m:f"}]')
    assert load_config(home).bus.subscribers[0].handler == "m:f"


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("[log]\n\nsegment_max_bytes = 'big'\n", 3, "log.segment_max_bytes"),
        ("[log]\nsegment_max_bytes = 10\n", 2, "log.segment_max_bytes"),
        ("[log]\nsegment_max_bytes = 100000\nsegmentmax = 1\n", 3, "log.segmentmax"),
        ("[logs]\nx = 1\n", 1, "logs"),
        ("[log\n", 1, None),
    ],
)
def test_config_errors_name_file_line_and_key(
    home: HomePaths, text: str, line: int, key: str | None
) -> None:
    home.config.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(home)
    assert info.value.path == str(home.config)
    assert info.value.line == line
    assert info.value.key == key
    assert str(home.config) in str(info.value)


def test_a_bad_environment_override_names_the_variable(
    home: HomePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOS_LOG__SEGMENT_MAX_BYTES", "lots")
    with pytest.raises(ConfigError, match="AIOS_LOG__SEGMENT_MAX_BYTES"):
        load_config(home)


def test_an_override_that_is_not_json_is_a_config_error(
    home: HomePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIOS_BUS__SUBSCRIBERS", "notjson")
    with pytest.raises(ConfigError, match="AIOS_BUS__SUBSCRIBERS"):
        load_config(home)


def test_a_bad_whole_section_override_names_its_variable(
    home: HomePaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    home.config.write_text("[log]\nsegment_max_bytes = 100000\n")
    monkeypatch.setenv("AIOS_LOG", '{"segment_max_bytes": 1}')
    with pytest.raises(ConfigError, match="environment variable AIOS_LOG"):
        load_config(home)
