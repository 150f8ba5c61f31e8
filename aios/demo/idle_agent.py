"""The demo's idle agent: a process that matches the configured agent pattern and waits for
work that never comes, until it is terminated.

``aios demo`` runs it as ``python <...>/aios/demo/idle_agent.py --home HOME --agent NAME``:
the agent pattern matches the name on its command line (and not ``-m``: AIOS never acts on
processes running ``python -m aios``)."""

from __future__ import annotations

import argparse
import time

from aios.demo import lifeline


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True, help="The demo home it belongs to.")
    parser.add_argument("--agent", required=True, help="Its name, matched by the pattern.")
    parser.parse_args(argv)
    lifeline.hold()
    while True:  # SIGTERM ends it (the default action)
        time.sleep(3600)


if __name__ == "__main__":
    main()
