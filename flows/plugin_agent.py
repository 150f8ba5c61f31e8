"""Plugin agents as Prefect flows: one flow per agent type, ``aios-<name>``, whose result is
also published as an artifact. ``flows.plugin_agent.plugin_<name>`` is that flow, so a
deployment's entrypoint reaches it in any process where the plugin is installed."""

from __future__ import annotations

import json
from typing import Any

from prefect import Flow, flow

from aios.agents.registry import AgentRegistry
from aios.plugins import AgentContext, PluginError
from aios.plugins.agents import run_agent
from flows import artifacts
from tasks.policy import aios_task, run_context

PREFIX = "plugin_"
_flows: dict[str, Flow[..., dict[str, Any]]] = {}


@aios_task("plugin-agent")
def run_plugin_agent(name: str, previous: dict[str, Any] | None) -> dict[str, Any]:
    """One run of agent type ``name`` (``aios.plugins.agents.run_agent``)."""
    ctx = run_context()
    context = AgentContext(ctx.bus, ctx.paths, ctx.config, dict(previous or {}), agent=name)
    return run_agent(name, AgentRegistry.get(name), context)


def artifact_key(name: str) -> str:
    return f"aios-{name.replace('_', '-')}-result"  # artifact keys: lowercase, digits, dashes


def agent_flow(name: str) -> Flow[..., dict[str, Any]]:
    """The flow of agent type ``name``; PluginError when there is no such agent type."""
    if name not in _flows:
        agent_type = AgentRegistry.get(name)

        def run(previous: dict[str, Any] | None = None) -> dict[str, Any]:
            result = run_plugin_agent(name, previous)
            shown = json.dumps(result, indent=2, default=str)[:20000]
            artifacts.markdown(artifact_key(name), f"```json\n{shown}\n```", f"{name}'s result.")
            return result

        # Prefect names a flow's module entrypoint after its function: make it this module's.
        run.__name__ = run.__qualname__ = f"{PREFIX}{name}"
        run.__doc__ = getattr(agent_type, "description", "") or f"The plugin agent {name}."
        _flows[name] = flow(name=f"aios-{name}", log_prints=False)(run)
    return _flows[name]


def __getattr__(attr: str) -> Any:
    if attr.startswith(PREFIX):
        try:
            return agent_flow(attr[len(PREFIX) :])
        except PluginError as exc:
            raise AttributeError(str(exc)) from None
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
