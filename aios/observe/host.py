"""What the machine looks like now: CPU (total and per CPU), memory, swap, disks, load,
network rates, the busiest processes, and GPUs where ``nvidia-smi`` is present.

One sample spans ``sample_s`` seconds: CPU use, per-process CPU and network rates are measured
over that interval (psutil needs two readings for each).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

# Filesystems that are not storage an operator fills up.
_PSEUDO_FS = {
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "tmpfs",
    "cgroup",
    "cgroup2",
    "securityfs",
    "pstore",
    "debugfs",
    "tracefs",
    "mqueue",
    "hugetlbfs",
    "fusectl",
    "configfs",
    "squashfs",
    "autofs",
    "binfmt_misc",
    "nsfs",
    "ramfs",
    "rpc_pipefs",
    "bpf",
    "efivarfs",
    "overlay",
}


@dataclass
class Disk:
    mount: str
    device: str
    fstype: str
    percent: float
    used_gb: float
    total_gb: float


@dataclass
class Gpu:
    index: int
    name: str
    utilization: float
    memory_used_mb: float
    memory_total_mb: float

    @property
    def memory_percent(self) -> float:
        return 100.0 * self.memory_used_mb / self.memory_total_mb if self.memory_total_mb else 0.0


@dataclass
class ProcessInfo:
    pid: int
    name: str
    cmdline: str
    cpu_percent: float
    rss_mb: float
    username: str


@dataclass
class HostSnapshot:
    host: str
    cpu_percent: float
    per_cpu: list[float]
    memory_percent: float
    memory_used_mb: float
    memory_total_mb: float
    swap_percent: float
    load: tuple[float, float, float]
    disks: list[Disk]
    net_recv_per_s: float
    net_sent_per_s: float
    process_count: int
    top_processes: list[ProcessInfo]
    gpus: list[Gpu] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    processes: list[ProcessInfo] = field(default_factory=list, repr=False)

    @property
    def disk_max(self) -> float:
        return max((d.percent for d in self.disks), default=0.0)

    def metrics_payload(self) -> dict[str, Any]:
        """The ``host.metrics`` event payload (the process table is trimmed to the top ten)."""
        data = asdict(self)
        data.pop("processes", None)
        data.pop("host", None)
        data["disk_max"] = round(self.disk_max, 2)
        data["cpu"] = round(self.cpu_percent, 2)
        data["memory"] = round(self.memory_percent, 2)
        data["load"] = list(self.load)
        return data


def _disks() -> list[Disk]:
    disks, seen = [], set()
    for part in psutil.disk_partitions(all=False):
        if part.fstype in _PSEUDO_FS and part.mountpoint != "/":
            continue
        if part.device in seen and part.mountpoint != "/":
            continue
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except (PermissionError, OSError):
            continue
        seen.add(part.device)
        disks.append(
            Disk(
                part.mountpoint,
                part.device,
                part.fstype,
                round(usage.percent, 2),
                round(usage.used / 2**30, 2),
                round(usage.total / 2**30, 2),
            )
        )
    return disks


def gpus() -> tuple[list[Gpu], str | None]:
    """GPUs as ``nvidia-smi`` reports them; no ``nvidia-smi``: none, and no error."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return [], None
    try:
        done = subprocess.run(
            [
                binary,
                "--query-gpu=index,name,utilization.gpu,memory.used,memory.total",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], f"nvidia-smi failed: {exc}"
    if done.returncode != 0:
        return [], f"nvidia-smi exited {done.returncode}: {done.stderr.strip()[:200]}"
    found = []
    for line in done.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) != 5:
            continue
        try:
            found.append(
                Gpu(int(parts[0]), parts[1], float(parts[2]), float(parts[3]), float(parts[4]))
            )
        except ValueError:
            continue
    return found, None


class HostCollector:
    """Takes host snapshots; keep one per process (it remembers nothing between samples)."""

    def __init__(self, sample_s: float = 1.0, top: int = 10) -> None:
        self.sample_s = sample_s
        self.top = top
        self.host = socket.gethostname()

    def collect(self) -> HostSnapshot:
        procs = list(psutil.process_iter(["pid", "name", "cmdline", "username", "memory_info"]))
        for proc in procs:
            try:
                proc.cpu_percent(None)
            except psutil.Error:
                continue
        net_before = psutil.net_io_counters()
        psutil.cpu_percent(percpu=True)  # start the interval
        started = time.monotonic()
        time.sleep(self.sample_s)
        per_cpu = psutil.cpu_percent(percpu=True)
        elapsed = max(time.monotonic() - started, 1e-3)
        net_after = psutil.net_io_counters()
        table: list[ProcessInfo] = []
        for proc in procs:
            try:
                cpu = proc.cpu_percent(None)
                info = proc.info
                memory = info.get("memory_info")
                table.append(
                    ProcessInfo(
                        info["pid"],
                        info.get("name") or "",
                        " ".join(info.get("cmdline") or [])[:300],
                        round(cpu, 2),
                        round(memory.rss / 2**20, 1) if memory else 0.0,
                        info.get("username") or "",
                    )
                )
            except psutil.Error:
                continue
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        found, note = gpus()
        load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
        busiest = sorted(table, key=lambda p: (p.cpu_percent, p.rss_mb), reverse=True)
        return HostSnapshot(
            host=self.host,
            cpu_percent=round(sum(per_cpu) / len(per_cpu), 2) if per_cpu else 0.0,
            per_cpu=[round(v, 2) for v in per_cpu],
            memory_percent=round(memory.percent, 2),
            memory_used_mb=round((memory.total - memory.available) / 2**20, 1),
            memory_total_mb=round(memory.total / 2**20, 1),
            swap_percent=round(swap.percent, 2),
            load=(round(load[0], 2), round(load[1], 2), round(load[2], 2)),
            disks=_disks(),
            net_recv_per_s=round((net_after.bytes_recv - net_before.bytes_recv) / elapsed, 1),
            net_sent_per_s=round((net_after.bytes_sent - net_before.bytes_sent) / elapsed, 1),
            process_count=len(table),
            top_processes=busiest[: self.top],
            gpus=found,
            notes=[note] if note else [],
            processes=table,
        )
