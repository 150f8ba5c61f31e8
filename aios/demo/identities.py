"""What the demo's agents, playbooks and approver are called: shared by the files the demo
writes, the scenario that drives it, and the summary that reads the log back."""

from __future__ import annotations

IDLE_AGENT = "demo-idle-agent"
# The idle agent's command line carries its name (`idle_agent.py --agent demo-idle-agent`).
# A bare glob is named after itself without the wildcards: demo-idle-agent.
IDLE_AGENT_GLOB = f"*{IDLE_AGENT}*"
# The flaky agent is a Prefect flow of this name; its tool call is the Prefect task FLAKY_TASK,
# tracked as the agent's task of the same name.
FLAKY_AGENT = "demo-researcher"
FLAKY_TASK = "search"

KILL_IDLE = "demo_kill_idle_agents"
RAISE_TIMEOUT = "demo_raise_tool_timeout"
TENFOLD_TIMEOUT = "demo_tenfold_tool_timeout"
CLEAN_TEMP = "demo_clean_temp_dir"

APPROVER = "aios demo (demo mode)"
APPROVAL_REASON = (
    "granted automatically because this is aios demo; in real use a person decides in the "
    "Prefect UI or with `aios approvals approve`"
)

# The flaky agent's tool answers after this long; its timeout starts at START_TIMEOUT_S.
TOOL_LATENCY_S = 2.0
START_TIMEOUT_S = 0.5
