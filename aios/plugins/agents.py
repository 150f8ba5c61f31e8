"""Running a plugin agent once: its ``run(context)`` tracked as a task of that agent.

The flow wrapper (``flows/plugin_agent.py``) and the orchestrator call this; it needs no
Prefect.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aios.plugins.discovery import PluginError
from aios.plugins.interfaces import AgentContext
from aios.track import track


def run_agent(name: str, agent_type: type, context: AgentContext) -> dict[str, Any]:
    """Run agent ``name`` (an instance of ``agent_type``) once; what its ``run`` returned.

    The agent gets ``context`` as agent ``name`` (its ``memory()`` is that agent's view). The
    run is recorded as ``task.started`` / ``task.completed`` (or ``task.failed``) of agent
    ``name``. Raises PluginError when ``run`` returns something other than a dict or exits
    (SystemExit, which would otherwise end the flow's process); whatever else ``run`` raises is
    recorded and passed on.
    """
    context = dataclasses.replace(context, agent=name)
    with track(f"{name}.run", agent=name, bus=context.bus):
        try:
            result = agent_type().run(context)
        except SystemExit as exc:
            raise PluginError(f"agent {name!r} exited: SystemExit: {exc}") from None
        if not isinstance(result, dict):
            raise PluginError(f"agent {name!r}: run returned {type(result).__name__}, not a dict")
    return result
