"""Plugins: third-party packages extend AIOS through entry points, with no change to AIOS.

Each group takes one kind; the entry point's name is the plugin's name:

- ``aios.actions``: an ``aios.actions.ActionSpec`` subclass with ``type: Literal["acme.x"]``
  (the entry point name; namespaced, never a built-in's namespace), ``risk_floor`` (a playbook
  can raise the risk, never lower it), parameters as pydantic fields, and ``plan`` /
  ``execute`` / ``rollback`` as the built-ins have them. Playbooks validate it like any other.
- ``aios.probes``: a ``ProbePlugin`` (name, params model, ``read`` returning a number), for
  ``verify: {probe: acme.queue_depth, ...}``.
- ``aios.collectors``: a function of a ``CollectorContext`` returning event dicts, called once
  per monitor cycle.
- ``aios.memory_backends``: a factory ``(paths, config) -> MemoryBackend`` that
  ``[memory] backend = "acme.redis"`` selects.
- ``aios.agents``: a ``PluginAgent`` class (``run(context) -> dict``, ``schedule``,
  ``in_dag``), also registrable with ``AgentRegistry.register(name, cls)``.

In a distribution's ``pyproject.toml``::

    [project.entry-points."aios.actions"]
    "acme.restart_service" = "acme_aios.actions:RestartService"

A plugin that does not import, or is not what its group expects, is listed as failed with the
reason (``aios plugins list``) and left out; it never stops AIOS. Once loaded, whatever its code
raises where AIOS calls it (SystemExit included; only Ctrl-C goes through) fails that one step,
named after the plugin: a playbook that does not load, a remediation that fails, a probe reading
that fails, a collector reported as ``plugin.failed``, an agent run that fails. An action whose
``floor()`` fails counts as high risk.
"""

from __future__ import annotations

from aios.plugins.discovery import (
    GROUPS,
    Kind,
    PluginError,
    PluginRecord,
    discover,
    forget,
    loaded,
    require,
)
from aios.plugins.interfaces import (
    AgentContext,
    Collector,
    CollectorContext,
    MemoryBackendFactory,
    PluginAgent,
    ProbePlugin,
    Schedule,
)

__all__ = [
    "GROUPS",
    "AgentContext",
    "Collector",
    "CollectorContext",
    "Kind",
    "MemoryBackendFactory",
    "PluginAgent",
    "PluginError",
    "PluginRecord",
    "ProbePlugin",
    "Schedule",
    "discover",
    "forget",
    "loaded",
    "require",
]
