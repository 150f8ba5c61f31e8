"""The processes ``aios demo`` starts (``aios up`` and the workload), and stopping every one of
them on any way out.

Each runs in its own session, so a Ctrl-C at the terminal reaches the demo alone, which then
stops them in order; each also dies with the demo if the demo is killed (``lifeline``). Exited
children are reaped at once: a killed agent must not linger as a zombie that still looks like
an agent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from aios.demo import lifeline

PROGRAMS = Path(__file__).resolve().parent


def clean_environment(home: Path) -> dict[str, str]:
    """The environment for the demo's children: this one without any AIOS_* or PREFECT_*
    setting (the demo runs its own server on its own home), plus ``AIOS_HOME``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIOS_", "PREFECT_"))}
    env["AIOS_HOME"] = str(home)
    env[lifeline.PARENT_ENV] = str(os.getpid())
    return env


def program(name: str, *args: str) -> list[str]:
    """The command line of one of the demo's programs (``idle_agent``, ...), run by its file
    path: AIOS never acts on processes that run ``python -m aios``."""
    return [sys.executable, "-P", str(PROGRAMS / f"{name}.py"), *args]


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None


class Children:
    """Every child the demo started; ``stop_all`` ends those still running, newest first."""

    def __init__(self) -> None:
        self._children: list[Child] = []
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="aios-demo-reaper", daemon=True)
        self._reaper.start()

    def start(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        log: Path,
    ) -> Child:
        """Start ``argv`` with its output in ``log``; raises OSError if it cannot start."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            process = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child = Child(name, process, log)
        with self._guard:
            self._children.append(child)
        return child

    def _reap(self) -> None:
        while not self._stop.wait(0.2):
            with self._guard:
                children = list(self._children)
            for child in children:
                child.process.poll()

    def stop(self, child: Child, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        """``sig`` to the child's process group, SIGKILL after ``timeout_s``; waits for it."""
        if child.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        try:
            child.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
            child.process.wait(10)

    def named(self, prefix: str) -> list[Child]:
        with self._guard:
            return [c for c in self._children if c.name.startswith(prefix)]

    def stop_all(self, last: Child | None = None, last_timeout_s: float = 90.0) -> None:
        """Stop every child, newest first; ``last`` (``aios up``) after the others, with
        SIGINT (its Ctrl-C) and ``last_timeout_s`` to stop its runner and servers."""
        with self._guard:
            children = list(reversed(self._children))
        for child in children:
            if child is not last:
                self.stop(child)
        if last is not None:
            self.stop(last, signal.SIGINT, last_timeout_s)
        self._stop.set()
