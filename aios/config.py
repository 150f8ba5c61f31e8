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
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from aios.durations import Duration, format_duration, parse_duration
from aios.errors import ConfigError, DurationError
from aios.home import HomePaths

_HEADER = re.compile(r"^\[\[?([^\]]+)\]\]?\s*(#.*)?$")
ENV_PREFIX = "AIOS_"
ENV_DELIMITER = "__"


# A plugin's name: dotted lowercase, its package's name first (acme.redis).
NAMESPACED = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")


class _Section(BaseModel):
    """A table of config.toml: unknown keys, NaN and infinity are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class LogSettings(_Section):
    segment_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=4096,
        description="Start a new segment when the current one reaches this many bytes.",
    )


class SubscriberSettings(_Section):
    pattern: str = Field(description="Event type glob, e.g. 'task.*'.")
    handler: str = Field(description="MODULE:FUNCTION called with each matching event.")


class BusSettings(_Section):
    subscribers: list[SubscriberSettings] = Field(
        default_factory=list,
        description="Handlers that `aios events replay` delivers stored events to.",
    )


def project_playbooks() -> Path:
    """The playbooks shipped with AIOS (``<project>/playbooks``)."""
    return Path(__file__).resolve().parent.parent / "playbooks"


class ReactorSettingsModel(_Section):
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
    approve_from: Literal["medium", "low"] = Field(
        default="medium",
        description="Risk policy: remediations at or above this risk wait for a person "
        "(medium: medium and high, the default; low: every remediation).",
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
            if os.path.realpath(root) == "/":  # also /tmp/.., //, a symlink to /
                how = "" if str(root) == "/" else f"{root} resolves to /, and "
                raise ValueError(f"{how}/ cannot be an allowed root")
        return roots


class AgentSettings(_Section):
    patterns: list[str] = Field(
        default_factory=list,
        description="Name or command-line globs of the managed agent processes.",
    )


class ScoreSettings(_Section):
    preset: Literal["evolution", "ops"] = Field(
        default="evolution", description="evolution or ops."
    )
    window: Duration = Field(default=timedelta(hours=24), description="Scores cover this much.")
    weights: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Per preset, component weights that replace the preset's defaults.",
    )
    latency_budget_ms: float = Field(
        default=5000.0, gt=0, description="p95 task latency at which efficiency reaches 0."
    )
    trend_points: int = Field(default=6, ge=3, description="Scores the trend is fitted over.")

    @field_validator("weights")
    @classmethod
    def _known(cls, weights: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        from aios.score.engine import PRESETS

        for preset, table in weights.items():
            if preset not in PRESETS:
                raise ValueError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
            unknown = set(table) - set(PRESETS[preset])
            if unknown:
                raise ValueError(
                    f"{preset}: unknown component(s) {', '.join(sorted(unknown))} "
                    f"(known: {', '.join(PRESETS[preset])})"
                )
            if any(w < 0 for w in table.values()):
                raise ValueError(f"{preset}: weights must not be negative")
        return weights


class Threshold(_Section):
    """Raise at ``raise_at``, clear only at ``clear_at`` (below it): hysteresis."""

    model_config = ConfigDict(populate_by_name=True)

    raise_at: float = Field(alias="raise", ge=0, le=100, description="Percent that raises it.")
    clear_at: float = Field(alias="clear", ge=0, le=100, description="Percent that clears it.")

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.clear_at > self.raise_at:
            raise ValueError("clear must not be above raise")
        return self


Resource = Literal["cpu", "memory", "disk", "gpu"]


def _default_thresholds() -> dict[Resource, Threshold]:
    return {
        "cpu": Threshold(raise_at=80, clear_at=70),
        "memory": Threshold(raise_at=85, clear_at=75),
        "disk": Threshold(raise_at=90, clear_at=80),
        "gpu": Threshold(raise_at=90, clear_at=80),
    }


class MonitorSettings(_Section):
    interval: Duration = Field(default=timedelta(minutes=5), description="Between cycles.")
    sample: Duration = Field(
        default=timedelta(seconds=1), description="CPU and network are measured over this."
    )
    thresholds: dict[Resource, Threshold] = Field(
        default_factory=_default_thresholds, description="Per resource: raise and clear."
    )
    agent_memory_mb: float = Field(
        default=1024, gt=0, description="An agent above this RSS raises agent.memory_high."
    )
    burst_failures: int = Field(default=3, ge=1, description="task.failed of one agent...")
    burst_window: Duration = Field(
        default=timedelta(minutes=10), description="...within this raise agent.degraded."
    )
    baseline_history: Duration = Field(
        default=timedelta(days=7), description="History a baseline is learnt from."
    )
    baseline_recent: Duration = Field(
        default=timedelta(minutes=15), description="The recent window compared with it."
    )
    baseline_z: float = Field(default=3.5, gt=0, description="Robust z-score that is anomalous.")
    baseline_min_buckets: int = Field(default=6, ge=3, description="Hours of history needed.")
    baseline_min_samples: int = Field(default=5, ge=1, description="Recent tasks needed.")
    blocked_cooldown: Duration = Field(
        default=timedelta(minutes=5), description="A blocked agent returns to idle after this."
    )
    record_score: bool = Field(default=True, description="Record the score every cycle.")

    @field_validator("thresholds", mode="before")
    @classmethod
    def _merge(cls, value: Any) -> Any:
        if isinstance(value, dict):  # a partial table keeps the other defaults
            return {**_default_thresholds(), **value}
        return value


class IngestSettings(_Section):
    host: str = Field(default="127.0.0.1", description="Address the HTTP endpoint listens on.")
    port: int = Field(default=8766, ge=1, le=65535, description="Its port.")
    token: str | None = Field(
        default=None, description="Bearer token; default: $AIOS_HOME/ingest.token (aios init)."
    )
    token_block: str | None = Field(
        default=None,
        description="A Prefect Secret block holding the token (read through the Prefect API "
        "when the endpoint starts); wins over token.",
    )
    max_body_bytes: int = Field(default=5 * 2**20, ge=1024, description="Larger bodies: 413.")


class DashboardSettings(_Section):
    enabled: bool = Field(default=True, description="Whether aios up serves the dashboard.")
    host: str = Field(default="127.0.0.1", description="Address the dashboard listens on.")
    port: int = Field(default=8765, ge=0, le=65535, description="Its port; 0 takes a free one.")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="More host names browsers may use for it (a DNS name for a non-loopback "
        "host); others get 400.",
    )


_FOREVER = ("off", "never", "forever", "none")


def _retention_input(value: object) -> timedelta | None:
    """``"off"`` (or 0) keeps forever: None. A zero retention would remove everything at once,
    so it is never taken literally."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _FOREVER):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float | timedelta):
        raise ValueError(f'not a duration: {value!r} (expected e.g. 90d, or "off")')
    try:
        delta = value if isinstance(value, timedelta) else parse_duration(value)
    except DurationError as exc:
        raise ValueError(f'{exc}; "off" keeps forever') from None
    return delta or None


Retention = Annotated[
    timedelta | None,
    BeforeValidator(_retention_input),
    PlainSerializer(lambda d: "off" if d is None else format_duration(d), return_type=str),
    WithJsonSchema({"type": "string", "description": 'A duration (90d), or "off": forever.'}),
]
"""A retention period: a duration, or ``"off"`` / ``0`` (None: keep forever)."""


class MaintenanceSettings(_Section):
    log_retention: Retention = Field(
        default=timedelta(days=90),
        description='Log segments whose newest event is older than this are removed; "off" '
        "keeps the log forever.",
    )
    backup_retention: Duration = Field(
        default=timedelta(days=30),
        description="Remediation backups are removed this long after the remediation finished.",
    )
    keep_snapshots: int = Field(
        default=3, ge=1, description="Daily snapshots of the store and config.toml kept."
    )


class OrchestrationSettings(_Section):
    remediation_timeout: Duration = Field(
        default=timedelta(seconds=300),
        description="A remediation task (actions, verify, rollback) is stopped after this.",
    )
    max_concurrent_remediations: int = Field(
        default=3,
        ge=1,
        description="Slots of the global concurrency limit aios-remediations when AIOS "
        "creates it (a value set in the Prefect UI is kept).",
    )
    approval_poll: Duration = Field(
        default=timedelta(seconds=2), description="How often a paused run checks for an answer."
    )
    dedupe_window: Duration = Field(
        default=timedelta(seconds=30),
        description="An urgent event identical to one within this window starts no new run.",
    )
    urgent_max_age: Duration = Field(
        default=timedelta(hours=1),
        description="Urgent events older than this (missed while aios up was down) start no "
        "reactor run.",
    )
    interrupted_after: Duration = Field(
        default=timedelta(hours=1),
        description="The validator rolls back a remediation unfinished this long after it "
        "started, when nothing runs it any more.",
    )
    notify_blocks: list[str] = Field(
        default_factory=list,
        description="Prefect notification blocks (BLOCK-TYPE/NAME) told about critical "
        "alerts and approvals waiting.",
    )


class MemorySettings(_Section):
    backend: str = Field(
        default="chroma",
        description="Where memories and lessons live: chroma, json, or a plugin's name (an "
        "aios.memory_backends entry point, e.g. acme.redis).",
    )
    embedding: Literal["auto", "hash", "minilm"] = Field(
        default="auto",
        description="auto: the sentence model when installed (the sentence extra), else the "
        "offline hashing embedding.",
    )
    chroma_url: str | None = Field(
        default=None,
        description="A Chroma server (http://HOST:PORT); default: the one aios up started, "
        "else embedded under $AIOS_HOME/chroma. AIOS_CHROMA_URL overrides it.",
    )

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        if value in ("chroma", "json") or NAMESPACED.match(value):
            return value
        raise ValueError("chroma, json, or a plugin's name like acme.redis")


class LessonSettings(_Section):
    min_count: int = Field(
        default=3, ge=2, description="A failure signature seen this often becomes a lesson..."
    )
    window: Duration = Field(default=timedelta(days=7), description="...within this window.")
    hardened_after: int = Field(
        default=5, ge=2, description="Verified successes in a row that harden a lesson."
    )
    similarity: float | None = Field(
        default=None,
        gt=0,
        le=1,
        description="A new failure at least this similar (cosine) to a verified lesson is "
        "offered its fix; default: the embedding's own (0.4 for hash).",
    )


class AutonomySettings(_Section):
    demote_after: int = Field(
        default=2, ge=1, description="Failed verifications in a row that make a playbook ask."
    )
    promote_after: int = Field(
        default=5,
        ge=1,
        description="Approved and verified runs in a row that propose a promotion to a person.",
    )


RiskLevel = Literal["low", "medium", "high"]
# An approver's name: no spaces or brackets, so it can never be taken for AIOS's own answers
# ("aios (timeout)") or be misread in the log.
APPROVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
# RFC 4226 asks for at least 128 bits of shared secret: 26 base32 characters.
MIN_SECRET_CHARS = 26


class ApproverSettings(_Section):
    """One person who may answer approvals: up to which risk, and the secret behind the
    one-time codes of their authenticator app (TOTP)."""

    max_risk: RiskLevel = Field(description="The highest risk this approver may approve.")
    totp_secret: SecretStr = Field(
        description="Base32 TOTP secret (aios approvals add-approver makes one)."
    )

    @field_validator("totp_secret")
    @classmethod
    def _base32(cls, secret: SecretStr) -> SecretStr:
        text = secret.get_secret_value().replace(" ", "").upper().rstrip("=")
        if len(text) < MIN_SECRET_CHARS or not re.fullmatch(r"[A-Z2-7]+", text):
            raise ValueError(
                f"not a base32 secret of at least {MIN_SECRET_CHARS} characters "
                "(aios approvals add-approver makes one)"
            )
        return SecretStr(text)


class ApprovalSettings(_Section):
    approvers: dict[str, ApproverSettings] = Field(
        default_factory=dict,
        description="Who may answer approvals, by name. None listed: anyone may, and the name "
        "given is recorded unchecked.",
    )

    @field_validator("approvers")
    @classmethod
    def _names(cls, approvers: dict[str, ApproverSettings]) -> dict[str, ApproverSettings]:
        for name in approvers:
            if not APPROVER_NAME.match(name):
                raise ValueError(
                    f"approver name {name!r}: letters, digits and . _ @ - only (at most 64)"
                )
        return approvers


class EvolvedAgent(_Section):
    """Where one agent's tunables live: keys in its config file, or a Prefect deployment's
    parameters. Any of the three may be left out."""

    file: Path | None = Field(
        default=None, description="The agent's config file (JSON, YAML, TOML)."
    )
    deployment: str | None = Field(
        default=None, description="Or its Prefect deployment (FLOW/DEPLOYMENT): parameters."
    )
    timeout: str | None = Field(default=None, description="Key of its timeout in seconds.")
    retries: str | None = Field(default=None, description="Key of its retry count.")
    concurrency: str | None = Field(default=None, description="Key of its concurrency.")

    @model_validator(mode="after")
    def _one_place(self) -> EvolvedAgent:
        if (self.file is None) == (self.deployment is None):
            raise ValueError("give either file or deployment")
        return self


class EvolutionSettings(_Section):
    agents: dict[str, EvolvedAgent] = Field(
        default_factory=dict, description="Agents AIOS may tune, by name, and where."
    )
    failures: int = Field(default=3, ge=1, description="Failures of an agent...")
    window: Duration = Field(default=timedelta(hours=24), description="...within this: evolve.")
    observe: Duration = Field(
        default=timedelta(hours=24), description="A change is judged on this much before/after."
    )
    min_samples: int = Field(default=20, ge=5, description="Tasks needed on each side.")
    timeout_factor: float = Field(default=2.0, gt=1, description="A timeout is raised by this.")
    max_timeout: float = Field(default=3600, gt=0, description="...never above this (seconds).")
    max_retries: int = Field(default=5, ge=1, description="Retries are raised up to this.")


class AIOSConfig(BaseSettings):
    """Everything in config.toml. Sections are added by the parts of AIOS that read them."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter=ENV_DELIMITER, extra="forbid"
    )

    log: LogSettings = Field(default_factory=LogSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    reactor: ReactorSettingsModel = Field(default_factory=ReactorSettingsModel)
    agents: AgentSettings = Field(default_factory=AgentSettings)
    score: ScoreSettings = Field(default_factory=ScoreSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    maintenance: MaintenanceSettings = Field(default_factory=MaintenanceSettings)
    orchestration: OrchestrationSettings = Field(default_factory=OrchestrationSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    lessons: LessonSettings = Field(default_factory=LessonSettings)
    autonomy: AutonomySettings = Field(default_factory=AutonomySettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    evolution: EvolutionSettings = Field(default_factory=EvolutionSettings)

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


def private_problems(path: Path) -> list[str]:
    """Why ``path`` is not its owner's alone: readable or writable by group or others, owned
    by another user; nothing for a private or missing file."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return []
    problems = []
    if status.st_mode & 0o077:
        problems.append(
            f"its mode is {status.st_mode & 0o777:04o} (group or others may read or write it)"
        )
    if status.st_uid != os.geteuid():
        problems.append(f"it belongs to uid {status.st_uid}, not to this user ({os.geteuid()})")
    return problems


def require_private(path: Path, holds: str, until: str) -> None:
    """Raise ConfigError when ``path``, which holds ``holds`` (secrets), is readable or
    writable by group or others, or owned by another user; ``until`` says what is refused
    meanwhile. A missing file passes."""
    problems = private_problems(path)
    if problems:
        raise ConfigError(
            f"holds {holds} but " + " and ".join(problems) + f": {until} (chmod 600 {path})",
            path=str(path),
        )


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
        except ValueError as exc:  # tomllib passes on int()'s refusal of over 4300 digits
            raise ConfigError(f"not valid TOML: {exc}", path=str(path)) from None
        except RecursionError:  # tomllib follows nested arrays and tables by recursion
            raise ConfigError("not valid TOML: nested too deeply", path=str(path)) from None
    try:
        return AIOSConfig(**data)
    except ValidationError as exc:
        raise _config_error(exc, path, text) from None
    except (SettingsError, RecursionError) as exc:  # an AIOS_* variable's JSON: bad, too deep
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
        if upper == "AIOS_HOME":  # where config.toml is, not an override: [home] is the file's
            continue
        section = ENV_PREFIX + loc[0].upper() if loc and loc[0] else ""
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
# Risk policy: "medium" (medium and high risk wait for a person) or "low" (everything does).
approve_from = "medium"
# How long files.cleanup keeps removed files in $AIOS_HOME/trash for a rollback.
trash_retention = "7d"

[agents]
# Name or command-line globs of the agent processes AIOS manages, e.g. ["*my_agent.py*"].
# "name=glob" names the agent; otherwise the name is the glob without its wildcards.
patterns = []

[score]
# evolution: 0.4 task success + 0.3 correction + 0.2 uptime + 0.1 learning
# ops:       0.4 health + 0.25 efficiency + 0.25 stability + 0.1 headroom
preset = "evolution"
window = "24h"
# p95 task latency at which the ops preset's efficiency reaches 0.
latency_budget_ms = 5000
# How many recorded scores the trend is fitted over.
trend_points = 6
# Replace a preset's weights, e.g.:
# [score.weights.evolution]
# task_success_rate = 0.5
# correction_rate = 0.3
# uptime = 0.2
# learning = 0.0

[monitor]
interval = "5m"            # between cycles of `aios monitor` (and the monitor flow)
sample = "1s"              # CPU and network rates are measured over this
agent_memory_mb = 1024     # an agent above this RSS raises agent.memory_high
burst_failures = 3         # this many task.failed of one agent...
burst_window = "10m"       # ...within this raise agent.degraded
baseline_history = "7d"    # latency and error-rate baselines learn from this much history
baseline_recent = "15m"    # and compare this recent window with it
baseline_z = 3.5           # robust z-score beyond which it is an anomaly
blocked_cooldown = "5m"    # a blocked agent returns to idle after this
record_score = true        # record the score (score.updated) every cycle

[monitor.thresholds]       # percent: raise at the first number, clear below the second
cpu = { raise = 80, clear = 70 }
memory = { raise = 85, clear = 75 }
disk = { raise = 90, clear = 80 }
gpu = { raise = 90, clear = 80 }

[ingest]
# POST /events on http://host:port with "Authorization: Bearer <token>".
host = "127.0.0.1"
port = 8766
# token = "..."            # default: the one in $AIOS_HOME/ingest.token
# token_block = "aios-ingest-token"   # or a Prefect Secret block holding it

[dashboard]
# The read-only web dashboard that aios up serves (also: aios dashboard).
enabled = true
host = "127.0.0.1"
port = 8765                 # 0 takes a free port
# allowed_hosts = ["ops.example.org"]  # more names browsers may use (others: 400)

[maintenance]
# Event-log segments whose newest event is older than this are removed once the store has
# them ($AIOS_HOME/events.anchor and a log.retention_applied event record it); "off" keeps
# the whole log.
log_retention = "90d"
# A remediation's backups ($AIOS_HOME/backups/<remediation>) are removed this long after it
# finished; those of unfinished remediations are kept.
backup_retention = "30d"
# Daily snapshots of aios.duckdb and config.toml in $AIOS_HOME/backups/snapshots: how many.
keep_snapshots = 3

[orchestration]
# A remediation (its actions, verify and any rollback) is stopped after this.
remediation_timeout = "300s"
# Remediations at once: the global concurrency limit aios-remediations that aios up creates.
max_concurrent_remediations = 3
# A run paused for approval checks for the answer this often.
approval_poll = "2s"
# An urgent event identical to one seen within this window starts no new reactor run.
dedupe_window = "30s"
# Urgent events older than this (emitted while aios up was down) start no reactor run.
urgent_max_age = "1h"
# The validator rolls back a remediation left unfinished this long, once nothing runs it.
interrupted_after = "1h"
# Prefect notification blocks (BLOCK-TYPE/NAME, e.g. "slack-webhook/ops") told about critical
# alerts and approvals waiting.
notify_blocks = []

[memory]
# Where memories and lessons live: "chroma" (embedded under $AIOS_HOME/chroma, or the Chroma
# server aios up starts) or "json" (files under $AIOS_HOME/memory; fine for thousands).
backend = "chroma"
# "auto": the sentence model when the sentence extra is installed, else "hash" (offline,
# deterministic, no download).
embedding = "auto"
# chroma_url = "http://127.0.0.1:8000"   # a Chroma server; AIOS_CHROMA_URL overrides it

[autonomy]
demote_after = 2           # failed verifications in a row that make a playbook ask a person
promote_after = 5          # approved and verified runs in a row that propose a promotion

[approvals]
# Who may answer approvals (the Prefect UI's Resume form, aios approvals approve|reject,
# aios react), and up to which risk. With no approver listed, anyone may approve and the name
# typed is recorded, not checked. A listed approver answers with the 6-digit code of an
# authenticator app; add one with `aios approvals add-approver NAME --max-risk high`, which
# writes the secret here. With approvers listed, this file must be its owner's alone (chmod
# 600): otherwise every answer is refused.
# [approvals.approvers.ana]
# max_risk = "high"                # low | medium | high
# totp_secret = "BASE32..."        # made by aios approvals add-approver

[lessons]
min_count = 3              # a failure signature seen this often...
window = "7d"              # ...within this window becomes a draft lesson
hardened_after = 5         # verified successes in a row that harden a lesson
# similarity = 0.4         # how alike a new failure must be to a proven lesson to be offered
                           # its fix (default: the embedding's own)
"""
