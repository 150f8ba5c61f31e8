"""One of the writers of the concurrency test: 5,000 events, mixed with store syncs."""

from __future__ import annotations

import sys

import aios
from aios.store import open_store


def main() -> None:
    worker, count = int(sys.argv[1]), int(sys.argv[2])
    n = 0
    while n < count:
        if n % 7 == 0:  # a batch of up to 40
            size = min(40, count - n)
            aios.emit_many(
                [
                    {
                        "type": "load.event",
                        "source": f"w{worker}",
                        "payload": {"w": worker, "n": n + i},
                    }
                    for i in range(size)
                ]
            )
            n += size
        else:
            aios.emit("load.event", {"w": worker, "n": n}, source=f"w{worker}")
            n += 1
        if n % 500 < 2:
            with open_store() as con:
                con.execute("SELECT count(*) FROM events").fetchall()


if __name__ == "__main__":
    main()
