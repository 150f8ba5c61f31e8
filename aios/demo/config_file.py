"""The demo's ``config.toml``: its playbooks, agent pattern, allowed root, short timeouts, and
the thresholds it lowers so an ordinary machine trips them (each change is said out loud).

The disk threshold starts out of reach (100%) and is set just before the temp directory fills,
from the use measured then: the monitor reads config.toml afresh on every run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import tomlkit

from aios.atomic import write_atomic
from aios.config import AIOSConfig, load_config
from aios.demo.demo_home import DemoSite
from aios.demo.identities import IDLE_AGENT, IDLE_AGENT_GLOB

DEFAULT_CPU_RAISE = 80.0  # AIOS's own default
MAX_BURNERS = 8


@dataclass(frozen=True)
class CpuPlan:
    """How many CPU burners the demo runs, and the CPU threshold that they trip."""

    cpus: int
    burners: int
    raise_at: float

    @property
    def clear_at(self) -> float:
        return max(0.0, self.raise_at - 10.0)

    @property
    def lowered(self) -> bool:
        return self.raise_at < DEFAULT_CPU_RAISE


def cpu_plan(cpus: int) -> CpuPlan:
    """One burner per CPU (at most MAX_BURNERS); with more CPUs than burners, a threshold at
    three quarters of what the burners alone can use."""
    cpus = max(1, cpus)
    burners = min(cpus, MAX_BURNERS)
    share = 100.0 * burners / cpus
    raise_at = DEFAULT_CPU_RAISE if share >= 100.0 else round(0.75 * share, 1)
    return CpuPlan(cpus, burners, raise_at)


def _s(value: object) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(str(value))


def write_config(site: DemoSite, cpu: CpuPlan, dashboard_port: int) -> None:
    """Write config.toml; raises ConfigError if AIOS would not accept it."""
    text = f"""\
# Written by `aios demo` for its own home; the next `aios demo` clears this directory.

[reactor]
playbook_dirs = [{_s(site.playbooks)}]     # the demo's playbooks only
allowed_roots = [{_s(site.workload)}]      # the agent's config file and the temp directory
approval_timeout = "10m"
approve_from = "medium"
trash_retention = "1d"

[agents]
patterns = [{_s(IDLE_AGENT_GLOB)}]   # the agent {IDLE_AGENT}

[monitor]
interval = "5m"
sample = "1s"

[monitor.thresholds]
cpu = {{ raise = {cpu.raise_at}, clear = {cpu.clear_at} }}
disk = {{ raise = 100, clear = 99 }}     # set from the measured use before the disk fills

[orchestration]
remediation_timeout = "120s"
approval_poll = "1s"

[lessons]
min_count = 3
"""
    if "dashboard" in AIOSConfig.model_fields:
        text += f"""
[dashboard]
port = {dashboard_port}   # 0: a free port (its usual one was taken)
"""
    write_atomic(site.paths.config, text.encode())
    load_config(site.paths)


def set_disk_threshold(site: DemoSite, raise_at: float, clear_at: float) -> None:
    """Set ``[monitor.thresholds] disk`` in config.toml (comments kept); raises ConfigError
    if the result is not accepted."""
    document = tomlkit.parse(site.paths.config.read_text(encoding="utf-8"))
    thresholds = document["monitor"]["thresholds"]
    table = tomlkit.inline_table()
    table.update({"raise": raise_at, "clear": clear_at})
    thresholds["disk"] = table
    write_atomic(site.paths.config, tomlkit.dumps(document).encode())
    load_config(site.paths)
