"""A writer for the crash test: appends numbered batches until it is killed.

Writes go out in pieces of at most 4 KiB, slowly, as from a slow disk (the writer loops over
short writes), so a SIGKILL lands in the middle of a batch most of the time. After each append
returns, the batch number is printed: those batches were acknowledged and must survive.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

from aios.event import Event
from aios.log import EventLog
from aios.log import writer as writer_module

_real_write = os.write


def short_write(fd: int, data: bytes | memoryview) -> int:
    time.sleep(0.0003)  # a slow disk: most of the writer's time is spent inside a batch write
    return _real_write(fd, bytes(data[:4096]))


class _OsWithShortWrites:
    def __getattr__(self, name: str) -> object:
        return short_write if name == "write" else getattr(os, name)


def main() -> None:
    directory, seed, first_batch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    writer_module.os = _OsWithShortWrites()  # type: ignore[assignment,attr-defined]
    rng = random.Random(seed)
    log = EventLog(directory, segment_max_bytes=512 * 1024)
    batch = first_batch
    while True:
        size = rng.choice([1, 2, 50, 400, 1500])
        log.append(
            [
                Event(type="crash.test", payload={"batch": batch, "i": i, "size": size})
                for i in range(size)
            ]
        )
        print(batch, flush=True)
        batch += 1


if __name__ == "__main__":
    main()
