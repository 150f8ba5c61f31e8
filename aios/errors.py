"""The one exception tree of AIOS; every error carries what a user needs to fix it.

AIOSError
├── InputError             bad input from a user or caller (CLI exit code 2)
│   ├── EventValidationError   an event that breaks the model (names the field)
│   ├── ConfigError            config.toml or an AIOS_* variable (names file, line, key)
│   ├── DurationError          a duration or time that does not parse
│   └── SQLRefusedError        SQL that would write, or does not parse
├── LogError               the event log cannot be used
│   └── LogIntegrityError      the log's on-disk form is not what the writer expects
└── StoreError             the DuckDB store cannot be opened or brought up to date
"""

from __future__ import annotations


class AIOSError(Exception):
    """Base of every error AIOS raises on purpose."""

    exit_code = 1


class InputError(AIOSError):
    """The caller gave something AIOS cannot accept; nothing was written."""

    exit_code = 2


class EventValidationError(InputError):
    """An event field is invalid. ``field`` names it (dotted for nested fields)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field, self.reason = field, message
        super().__init__(f"{field}: {message}" if field else message)

    def within(self, prefix: str) -> EventValidationError:
        """The same error for an event nested at ``prefix`` (e.g. ``[2]`` in a batch)."""
        return EventValidationError(
            self.reason, field=f"{prefix}.{self.field}" if self.field else prefix
        )


class ConfigError(InputError):
    """The configuration is invalid; ``path``, ``line`` and ``key`` say where."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.path, self.line, self.key = path, line, key
        where = path or "configuration"
        if line is not None:
            where += f":{line}"
        if key:
            where += f": {key}"
        super().__init__(f"{where}: {message}")


class DurationError(InputError):
    """A duration (``5m``, ``24h``, ``7d``) or timestamp that does not parse."""


class SQLRefusedError(InputError):
    """SQL that AIOS will not run: it writes, or it does not parse."""


class LogError(AIOSError):
    """The event log cannot be read or appended to."""


class LogIntegrityError(LogError):
    """The event log's files are not in the form the writer left them in."""

    def __init__(self, message: str, *, segment: str | None = None, line: int | None = None):
        self.segment, self.line = segment, line
        where = segment or "event log"
        if line is not None:
            where += f" line {line}"
        super().__init__(f"{where}: {message}")


class StoreError(AIOSError):
    """The DuckDB store cannot be opened, synced or queried."""
