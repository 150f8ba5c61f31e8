"""Configuration: ``$AIOS_HOME/config.toml`` with every key overridable from the environment.

An override is ``AIOS_<SECTION>__<KEY>`` (double underscore), e.g.
``AIOS_LOG__SEGMENT_MAX_BYTES=1048576``; lists and tables take JSON. Errors name the file, the
line where it can be found, and the key, or the environment variable.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from aios.durations import Duration
from aios.errors import ConfigError
from aios.home import HomePaths

_HEADER = re.compile(r"^\[\[?([^\]]+)\]\]?\s*(#.*)?$")
ENV_PREFIX = "AIOS_"
ENV_DELIMITER = "__"


class LogSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segment_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=4096,
        description="Start a new segment when the current one reaches this many bytes.",
    )


class SubscriberSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(description="Event type glob, e.g. 'task.*'.")
    handler: str = Field(description="MODULE:FUNCTION called with each matching event.")


class BusSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscribers: list[SubscriberSettings] = Field(
        default_factory=list,
        description="Handlers that `aios events replay` delivers stored events to.",
    )


def project_playbooks() -> Path:
    """The playbooks shipped with AIOS (``<project>/playbooks``)."""
    return Path(__file__).resolve().parent.parent / "playbooks"


class ReactorSettingsModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    playbook_dirs: list[Path] = Field(
        default_factory=lambda: [project_playbooks()],
        description="Where playbooks are loaded from (files or directories).",
    )
    allowed_roots: list[Path] = Field(
        default_factory=list,
        description="The only directories config.update, files.cleanup and file_value touch.",
    )
    protected_patterns: list[str] = Field(
        default_factory=list,
        description="Command-line globs of processes no action may ever touch.",
    )
    approval_timeout: Duration = Field(
        default=timedelta(hours=1), description="An unanswered approval is denied after this."
    )
    trash_retention: Duration = Field(
        default=timedelta(days=7), description="How long files.cleanup keeps removed files."
    )

    @field_validator("allowed_roots")
    @classmethod
    def _absolute(cls, roots: list[Path]) -> list[Path]:
        for root in roots:
            if not root.is_absolute():
                raise ValueError(f"{root} is not an absolute path")
            if root == Path("/"):
                raise ValueError("/ cannot be an allowed root")
        return roots


class AgentSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patterns: list[str] = Field(
        default_factory=list,
        description="Name or command-line globs of the managed agent processes.",
    )


class AIOSConfig(BaseSettings):
    """Everything in config.toml. Sections are added by the parts of AIOS that read them."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, extra="forbid"
    )

    log: LogSettings = Field(default_factory=LogSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    reactor: ReactorSettingsModel = Field(default_factory=ReactorSettingsModel)
    agents: AgentSettings = Field(default_factory=AgentSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first (it overrides), then what load_config read from the file.
        return env_settings, init_settings


def load_config(paths: HomePaths | None = None) -> AIOSConfig:
    """Read config.toml (if present) and the AIOS_* overrides; raises ConfigError."""
    paths = paths or HomePaths.current()
    path = paths.config
    data: dict[str, Any] = {}
    text = ""
    if path.exists():
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            match = re.search(r"line (\d+)", str(exc))
            raise ConfigError(
                f"not valid TOML: {exc}",
                path=str(path),
                line=int(match.group(1)) if match else None,
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read: {exc}", path=str(path)) from None
    try:
        return AIOSConfig(**data)
    except ValidationError as exc:
        raise _config_error(exc, path, text) from None
    except SettingsError as exc:  # an AIOS_* variable that does not parse (e.g. bad JSON)
        names = [n for n in os.environ if n.upper().startswith(ENV_PREFIX) and n != "AIOS_HOME"]
        raise ConfigError(
            f"{exc}; check {', '.join(sorted(names)) or 'the AIOS_* variables'}",
            path="environment",
        ) from None


def _config_error(exc: ValidationError, path: Path, text: str) -> ConfigError:
    first = exc.errors()[0]
    loc = [str(part) for part in first.get("loc", ())]
    key = ".".join(loc)
    message = str(first.get("msg", "invalid"))
    if first.get("type") == "extra_forbidden":
        message = "unknown key"
    for name in os.environ:
        upper = name.upper()
        section = ENV_PREFIX + loc[0].upper() if loc else ""
        exact = ENV_PREFIX + ENV_DELIMITER.join(part.upper() for part in loc[:2])
        if section and (upper == section or upper.startswith(exact)):
            return ConfigError(message, path=f"environment variable {name}", key=key)
    return ConfigError(message, path=str(path), line=_line_of(text, loc), key=key)


def _line_of(text: str, loc: list[str]) -> int | None:
    """The line of ``[section]`` / ``key =`` in the TOML text, best effort."""
    if not loc:
        return None
    section, key = loc[0], loc[1] if len(loc) > 1 else None
    in_section = False
    section_line = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = _HEADER.match(line)
        if header:
            in_section = header.group(1).strip().strip("\"'") == section
            if in_section:
                section_line = number
            continue
        if in_section and key and re.match(rf"{re.escape(key)}\s*=", line):
            return number
    return section_line


def config_template() -> str:
    """The commented config.toml that ``aios init`` writes."""
    return _TEMPLATE.replace("<project>/playbooks", str(project_playbooks()))


_TEMPLATE = """\
# AIOS configuration.
# Every key can be overridden by an environment variable AIOS_<SECTION>__<KEY>,
# e.g. AIOS_LOG__SEGMENT_MAX_BYTES=1048576 (lists and tables as JSON).

[log]
# The event log (events/) rotates to a new segment at this size, and at each new UTC day.
segment_max_bytes = 67108864

[bus]
# Handlers that `aios events replay` delivers stored events to, e.g.
# subscribers = [{ pattern = "task.*", handler = "mypackage.handlers:on_task" }]
subscribers = []

[reactor]
# Where playbooks are loaded from (directories are searched for *.yaml, *.yml, *.json).
playbook_dirs = ["<project>/playbooks"]
# The only directories config.update and files.cleanup may touch (absolute paths).
allowed_roots = []
# Command-line globs of processes no action may touch (pid 1, AIOS itself and the Prefect
# and Chroma servers are always protected).
protected_patterns = []
# An approval nobody answers is denied after this long.
approval_timeout = "1h"
# How long files.cleanup keeps removed files in $AIOS_HOME/trash for a rollback.
trash_retention = "7d"

[agents]
# Name or command-line globs of the agent processes AIOS manages, e.g. ["*my_agent.py*"].
patterns = []
"""
