"""The ``AIOSSettings`` block: the settings an operator changes in the Prefect UI.

Saved under the name ``aios`` (Blocks > AIOS Settings > aios), its fields override config.toml
and the AIOS_* variables for every AIOS flow run; a field left empty keeps what config.toml
says. Without a saved block, config.toml and the environment apply.

Anyone who can reach the Prefect API can save this block, so it may only tighten what guards
the machine, never loosen it: ``approve_from`` only toward asking more (low), ``allowed_roots``
only some of the configured roots, ``agent_patterns`` only some of the configured patterns,
``approval_timeout`` no shorter than a minute. A block that asks for more fails every flow run
that reads it (and ``aios up``) with a ConfigError naming the field and why, rather than being
applied in part: what runs is then never other than what the operator saved.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, ValidationError

from aios.actions.base import Risk
from aios.config import AIOSConfig, load_config
from aios.durations import format_duration
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
        "(medium: medium and high; low: every remediation). Only as strict as config.toml's "
        "or stricter.",
    )
    allowed_roots: list[str] | None = Field(
        default=None,
        description="The only directories config.update and files.cleanup may touch "
        "(absolute paths): some of config.toml's [reactor] allowed_roots, never others.",
    )
    agent_patterns: list[str] | None = Field(
        default=None,
        description="Name or command-line globs of the managed agent processes: some of "
        "config.toml's [agents] patterns, never others.",
    )
    approval_timeout: str | None = Field(
        default=None,
        description='An unanswered approval is denied after this, e.g. "30m" (at least 1m).',
    )
    notify_blocks: list[str] | None = Field(
        default=None,
        description="Notification blocks (BLOCK-TYPE/NAME, e.g. slack-webhook/ops) told about "
        "critical alerts and approvals waiting.",
    )

    def apply(self, config: AIOSConfig) -> AIOSConfig:
        """``config`` with this block's non-empty fields in place; raises ConfigError naming
        the field when a value is invalid or would loosen a security setting of ``config``."""
        self._refuse_loosening(config)
        changes: dict[str, dict[str, Any]] = {}

        def put(section: str, key: str, value: Any) -> None:
            if value is not None:
                changes.setdefault(section, {})[key] = value

        if self.thresholds is not None:  # per resource, over what config.toml says
            configured = {
                name: threshold.model_dump(by_alias=True)
                for name, threshold in config.monitor.thresholds.items()
            }
            put("monitor", "thresholds", {**configured, **self.thresholds})
        put("score", "preset", self.score_preset)
        put("score", "weights", self.score_weights)
        put("reactor", "approve_from", self.approve_from)
        put("reactor", "allowed_roots", self._kept_roots(config))
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
                    str(first.get("msg", "invalid")), path=_WHERE, key=f"{section}.{field}"
                ) from None
        applied = config.model_copy(update=update)
        if (
            self.approval_timeout is not None
            and applied.reactor.approval_timeout < MIN_APPROVAL_TIMEOUT
        ):
            raise _refused(
                "approval_timeout",
                f"{format_duration(applied.reactor.approval_timeout)} is shorter than "
                f"{format_duration(MIN_APPROVAL_TIMEOUT)}: every approval would be denied before "
                "anyone could answer it",
            )
        return applied

    def _refuse_loosening(self, config: AIOSConfig) -> None:
        """Raise ConfigError when a security setting of this block asks for more than
        ``config`` allows."""
        configured = config.reactor.approve_from
        if self.approve_from is not None and Risk(self.approve_from).rank > Risk(configured).rank:
            raise _refused(
                "approve_from",
                f"{self.approve_from!r} would let remediations run without a person that the "
                f"configuration ([reactor] approve_from = {configured!r}) has a person approve; "
                "the block may only ask more (low)",
            )
        if self.agent_patterns is not None:
            extra = [p for p in self.agent_patterns if p not in config.agents.patterns]
            if extra:
                raise _refused(
                    "agent_patterns",
                    f"{extra[0]!r} is not one of the configured [agents] patterns "
                    f"({', '.join(map(repr, config.agents.patterns)) or 'none'}); the block may "
                    "only keep some of them, so actions on agents reach no other processes",
                )

    def _kept_roots(self, config: AIOSConfig) -> list[Path] | None:
        """This block's allowed_roots as the configured roots they are (None when empty).

        Each must be one of ``[reactor] allowed_roots``, compared resolved (symlinks
        followed); a directory inside a root is refused too: whoever may write in the root may
        replace it with a symlink to anywhere, and a root is followed where it points.
        """
        if self.allowed_roots is None:
            return None
        configured = {os.path.realpath(root): root for root in config.reactor.allowed_roots}
        kept: list[Path] = []
        for given in self.allowed_roots:
            if not os.path.isabs(given) or "\0" in given:
                raise _refused("allowed_roots", f"{given!r} is not an absolute path")
            root = configured.get(os.path.realpath(given))
            if root is None:
                names = ", ".join(str(r) for r in config.reactor.allowed_roots) or "none"
                raise _refused(
                    "allowed_roots",
                    f"{given} is not one of the configured [reactor] allowed_roots ({names}); "
                    "the block may only keep some of them (add others in config.toml)",
                )
            if root not in kept:
                kept.append(root)
        return kept


_WHERE = f"Prefect block {AIOSSettings.get_block_type_slug()}/{BLOCK_NAME}"
MIN_APPROVAL_TIMEOUT = timedelta(minutes=1)


def _refused(field: str, why: str) -> ConfigError:
    return ConfigError(f"refused: {why}", path=_WHERE, key=field)


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
