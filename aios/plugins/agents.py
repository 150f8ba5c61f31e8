"""Running a plugin agent once: its ``run(context)`` tracked as a task of that agent.

The flow wrapper (``flows/plugin_agent.py``) and the orchestrator call this; it needs no
Prefect.
"""

from __future__ import annotations

from typing import Any

from aios.plugins.discovery import PluginError
from aios.plugins.interfaces import AgentContext
from aios.track import track


def run_agent(name: str, agent_type: type, context: AgentContext) -> dict[str, Any]:
    """Run agent ``name`` (an instance of ``agent_type``) once; what its ``run`` returned.

    The run is recorded as ``task.started`` / ``task.completed`` (or ``task.failed``) of agent
    ``name``. Raises PluginError when ``run`` returns something other than a dict; whatever
    ``run`` raises is recorded and passed on.
    """
    with track(f"{name}.run", agent=name, bus=context.bus):
        result = agent_type().run(context)
        if not isinstance(result, dict):
            raise PluginError(f"agent {name!r}: run returned {type(result).__name__}, not a dict")
    return result
