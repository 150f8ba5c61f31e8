"""The demo's temporary directory filling up: writes log-like ``*.tmp`` files until the
filesystem holding the directory reaches a given use, or a byte cap.

Exits 0 when the use was reached, 3 at the cap. The files compress well, as logs do, so the
cleanup's compressed trash gives the space back."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import psutil

from aios.demo import lifeline

FILE_BYTES = 16 * 2**20
LINE = b"2026-01-01T00:00:00Z INFO scratch: intermediate result of the research agent, kept\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", required=True, type=Path, help="The directory to fill.")
    parser.add_argument("--until-percent", required=True, type=float, help="Stop at this use.")
    parser.add_argument("--max-bytes", required=True, type=int, help="Never write more.")
    args = parser.parse_args(argv)
    lifeline.hold()
    chunk = LINE * (2**20 // len(LINE))
    written = 0
    number = 0
    while psutil.disk_usage(str(args.dir)).percent < args.until_percent:
        if written + FILE_BYTES > args.max_bytes:
            print(f"cap reached: {written} bytes written", file=sys.stderr)
            return 3
        path = args.dir / f"chunk-{number:04d}.tmp"
        with open(path, "wb") as handle:
            for _ in range(FILE_BYTES // len(chunk)):
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())  # counted in the filesystem's use now, not later
        written += os.path.getsize(path)
        number += 1
    print(f"{written} bytes in {number} files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
