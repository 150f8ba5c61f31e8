"""An inter-process lock on a file (``flock``), re-entrant within one thread.

Waiters block in the kernel rather than polling, so a queue of writers is served in
turn without sleeping between tries.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from types import TracebackType

from aios.home import make_private_dir


class FileLock:
    """Exclusive lock on ``path`` shared by every process that opens the same path.

    Re-entrant: the thread holding it may enter again; other threads of the process wait.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether the calling thread holds the lock."""
        if not self._thread_lock.acquire(blocking=False):
            return False
        try:
            return self._depth > 0
        finally:
            self._thread_lock.release()

    def acquire(self) -> None:
        self._thread_lock.acquire()
        if self._depth == 0:
            try:
                make_private_dir(self.path.parent)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
            except BaseException:
                self._thread_lock.release()
                raise
            self._fd = fd
        self._depth += 1

    def try_acquire(self) -> bool:
        """Take the lock if no other thread or process holds it; never waits."""
        if not self._thread_lock.acquire(blocking=False):
            return False
        if self._depth == 0:
            try:
                make_private_dir(self.path.parent)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except BaseException:
                self._thread_lock.release()
                raise
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._thread_lock.release()
                return False
            self._fd = fd
        self._depth += 1
        return True

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        self._thread_lock.release()

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


_locks: dict[Path, FileLock] = {}
_locks_guard = threading.Lock()


def _after_fork_in_child() -> None:
    """A forked child holds none of its parent's locks: start every lock afresh.

    The inherited descriptors still refer to the parent's open lock files; closing them in the
    child leaves the parent's locks in place.
    """
    global _locks_guard
    _locks_guard = threading.Lock()
    for lock in _locks.values():
        if lock._fd is not None:
            os.close(lock._fd)
        lock._fd = None
        lock._depth = 0
        lock._thread_lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def file_lock(path: Path) -> FileLock:
    """The one FileLock object of this process for ``path`` (so re-entry is recognised)."""
    key = path.resolve()
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = _locks[key] = FileLock(key)
        return lock


def forget_lock(path: Path) -> None:
    """Drop this process's lock object for ``path`` (after removing a one-off lock file)."""
    with _locks_guard:
        _locks.pop(path.resolve(), None)
