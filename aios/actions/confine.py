"""Paths confined to the allowed roots, opened without ever following a symlink.

A path is accepted only if, written out (``..`` collapsed), it lies under one of
``[reactor] allowed_roots``. It is then opened one component at a time from the root's
directory with ``O_NOFOLLOW``, so a symlink anywhere below the root (placed there before or
swapped in during the action) stops the action instead of leading it elsewhere.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aios.actions.base import ConfinementError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _lexical(path: str | Path) -> Path:
    text = os.fspath(path)
    if not os.path.isabs(text):
        raise ConfinementError(f"{text}: path must be absolute")
    return Path(os.path.normpath(text))


def find_root(path: str | Path, roots: tuple[Path, ...]) -> tuple[Path, tuple[str, ...]]:
    """The allowed root holding ``path`` and the components below it; ConfinementError if none."""
    if not roots:
        raise ConfinementError(
            f"{path}: no allowed roots are configured ([reactor] allowed_roots is empty)"
        )
    lexical = _lexical(path)
    for root in roots:
        for candidate in {_lexical(root), Path(os.path.realpath(root))}:
            if lexical == candidate or candidate in lexical.parents:
                return Path(os.path.realpath(root)), lexical.relative_to(candidate).parts
    raise ConfinementError(
        f"{lexical} is outside the allowed roots ({', '.join(str(r) for r in roots)})"
    )


@contextmanager
def open_parent(path: str | Path, roots: tuple[Path, ...]) -> Iterator[tuple[int, str]]:
    """A descriptor of ``path``'s directory, reached without following symlinks, and its name."""
    root, parts = find_root(path, roots)
    if not parts:
        raise ConfinementError(f"{path} is an allowed root itself, not a file under it")
    fd = _walk(root, parts[:-1], path)
    try:
        yield fd, parts[-1]
    finally:
        os.close(fd)


@contextmanager
def open_dir(path: str | Path, roots: tuple[Path, ...]) -> Iterator[int]:
    """A descriptor of the directory ``path`` (may be a root), reached without symlinks."""
    root, parts = find_root(path, roots)
    fd = _walk(root, parts, path)
    try:
        yield fd
    finally:
        os.close(fd)


def _walk(root: Path, parts: tuple[str, ...], original: str | Path) -> int:
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfinementError(f"allowed root {root}: {exc.strerror}") from None
    for part in parts:
        try:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise ConfinementError(
                    f"{original}: {part} is a symlink or not a directory; symlinks are never "
                    "followed"
                ) from None
            raise ConfinementError(f"{original}: {part}: {exc.strerror}") from None
        os.close(fd)
        fd = child
    return fd


def open_file(dir_fd: int, name: str, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
    """Open ``name`` in ``dir_fd`` refusing a symlink (ConfinementError)."""
    try:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfinementError(f"{name} is a symlink; symlinks are never followed") from None
        raise


def read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def write_atomic_at(dir_fd: int, name: str, data: bytes, mode: int) -> None:
    """Replace ``name`` in ``dir_fd`` atomically (temporary file, fsync, rename, fsync dir)."""
    tmp = f".{name}.aios-{os.getpid()}.tmp"
    fd = os.open(
        tmp,
        os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
        mode,
        dir_fd=dir_fd,
    )
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, mode)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.close(fd)
    os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    os.fsync(dir_fd)
