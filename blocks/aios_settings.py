"""The ``AIOSSettings`` block: the settings an operator changes in the Prefect UI.

Saved under the name ``aios`` (Blocks > AIOS Settings > aios), its fields override config.toml
and the AIOS_* variables for every AIOS flow run; a field left empty keeps what config.toml
says. Without a saved block, config.toml and the environment apply.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, ValidationError

from aios.config import AIOSConfig, load_config
from aios.errors import ConfigError
from aios.home import HomePaths

BLOCK_NAME = "aios"
_CACHE_S = 10.0
_cache: dict[str, tuple[float, AIOSConfig]] = {}


class AIOSSettings(Block):
    """AIOS settings, editable in the Prefect UI.

    Example:
        ```python
        from blocks.aios_settings import AIOSSettings

        AIOSSettings(
            thresholds={"cpu": {"raise": 90, "clear": 75}},
            approval_timeout="30m",
            notify_blocks=["slack-webhook/ops"],
        ).save("aios", overwrite=True)
        ```
    """

    _block_type_name = "AIOS Settings"
    _block_type_slug = "aios-settings"
    _description = (
        "Thresholds, score, risk policy, allowed roots, agent patterns, approval timeout and "
        "notifications for AIOS. Save it as 'aios'; empty fields keep config.toml's values."
    )

    thresholds: dict[str, dict[str, float]] | None = Field(
        default=None,
        description='Per resource (cpu, memory, disk, gpu), e.g. {"cpu": {"raise": 85, '
        '"clear": 70}}: raise at the first percent, clear below the second.',
    )
    score_preset: Literal["evolution", "ops"] | None = Field(
        default=None, description="Which score preset the score uses."
    )
    score_weights: dict[str, dict[str, float]] | None = Field(
        default=None,
        description='Per preset, component weights, e.g. {"ops": {"health": 0.5, '
        '"efficiency": 0.2, "stability": 0.2, "headroom": 0.1}}.',
    )
    approve_from: Literal["medium", "low"] | None = Field(
        default=None,
        description="Risk policy: remediations at or above this risk wait for a person "
        "(medium: medium and high; low: every remediation).",
    )
    allowed_roots: list[str] | None = Field(
        default=None,
        description="The only directories config.update and files.cleanup may touch "
        "(absolute paths).",
    )
    agent_patterns: list[str] | None = Field(
        default=None, description="Name or command-line globs of the managed agent processes."
    )
    approval_timeout: str | None = Field(
        default=None, description='An unanswered approval is denied after this, e.g. "30m".'
    )
    notify_blocks: list[str] | None = Field(
        default=None,
        description="Notification blocks (BLOCK-TYPE/NAME, e.g. slack-webhook/ops) told about "
        "critical alerts and approvals waiting.",
    )

    def apply(self, config: AIOSConfig) -> AIOSConfig:
        """``config`` with this block's non-empty fields in place; raises ConfigError naming
        the field when a value is invalid."""
        changes: dict[str, dict[str, Any]] = {}

        def put(section: str, key: str, value: Any) -> None:
            if value is not None:
                changes.setdefault(section, {})[key] = value

        put("monitor", "thresholds", self.thresholds)
        put("score", "preset", self.score_preset)
        put("score", "weights", self.score_weights)
        put("reactor", "approve_from", self.approve_from)
        put("reactor", "allowed_roots", self.allowed_roots)
        put("agents", "patterns", self.agent_patterns)
        put("reactor", "approval_timeout", self.approval_timeout)
        put("orchestration", "notify_blocks", self.notify_blocks)
        update = {}
        for section, values in changes.items():
            current = getattr(config, section)
            try:
                update[section] = type(current).model_validate(
                    {**current.model_dump(by_alias=True), **values}
                )
            except ValidationError as exc:
                first = exc.errors()[0]
                field = ".".join(str(part) for part in first.get("loc", ()))
                raise ConfigError(
                    str(first.get("msg", "invalid")),
                    path=f"Prefect block {self._block_type_slug}/{BLOCK_NAME}",
                    key=f"{section}.{field}",
                ) from None
        return config.model_copy(update=update)


def saved_settings() -> AIOSSettings | None:
    """The saved ``aios`` block, or None when nobody saved one."""
    try:
        loaded = AIOSSettings.load(BLOCK_NAME)
    except ValueError:  # Prefect's answer for a block document that does not exist
        return None
    return loaded if isinstance(loaded, AIOSSettings) else None


def effective_config(paths: HomePaths | None = None) -> AIOSConfig:
    """config.toml and AIOS_* variables, overridden by the saved block (cached for 10 s)."""
    paths = paths or HomePaths.current()
    key = str(paths.root)
    cached = _cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < _CACHE_S:
        return cached[1]
    config = load_config(paths)
    block = saved_settings()
    if block is not None:
        config = block.apply(config)
    _cache[key] = (time.monotonic(), config)
    return config


def forget_cached() -> None:
    _cache.clear()
