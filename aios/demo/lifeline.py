"""A child of ``aios demo`` ends when the demo does, even when the demo is killed outright.

On Linux the child asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``): the
demo's own programs call ``hold`` first thing, and other commands (``aios up``) are started
through this file, which holds and then becomes the command (the request survives ``exec``).
Other systems rely on the demo's own shutdown.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from pathlib import Path

PARENT_ENV = "AIOS_DEMO_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def hold() -> None:
    """Die with the demo (SIGTERM), and exit at once if the demo is already gone (it died
    before this process could ask)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    expected = os.environ.get(PARENT_ENV, "")
    if expected.isdigit() and os.getppid() != int(expected):
        os._exit(0)


def wrap(argv: list[str]) -> list[str]:
    """``argv`` started through this file, so that it dies with the demo."""
    return [sys.executable, "-P", str(Path(__file__).resolve()), *argv]


def main() -> None:
    hold()
    os.execv(sys.argv[1], sys.argv[1:])


if __name__ == "__main__":
    main()
