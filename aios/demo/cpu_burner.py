"""Load for the demo: keeps one CPU busy, at the lowest priority, until it is terminated.

``aios demo`` runs one per CPU (at most eight) while the CPU stage lasts."""

from __future__ import annotations

import argparse
import os

from aios.demo import lifeline


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--home", required=True, help="The demo home it belongs to.")
    parser.parse_args(argv)
    lifeline.hold()
    os.nice(19)  # busy, but every other process goes first
    spin = 0
    while True:
        spin = (spin + 1) % 1_000_003


if __name__ == "__main__":
    main()
