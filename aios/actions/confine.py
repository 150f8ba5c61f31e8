"""Paths confined to the allowed roots, opened without ever following a symlink.

A path is accepted only if, written out (``..`` collapsed), it lies under one of
``[reactor] allowed_roots``. It is then opened one component at a time from the root's
directory with ``O_NOFOLLOW``, so a symlink anywhere below the root (placed there before or
swapped in during the action) stops the action instead of leading it elsewhere. A directory
held open can still be moved out of the root while the action works in it: ``ensure_still_there``
walks again from the root just before anything is created, renamed or removed in it. Only
regular files are read or written (a FIFO would block the action; a device is never opened).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from aios.actions.base import ActionError, ConfinementError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def _lexical(path: str | Path) -> Path:
    text = os.fspath(path)
    if "\0" in text:
        # The kernel would cut the path there; refuse rather than guess which part was meant.
        raise ConfinementError(f"{text!r}: path contains a NUL byte")
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
        written, real = _lexical(root), Path(os.path.realpath(root))
        if real == Path("/"):
            # Everything is under /: such a root would confine nothing.
            raise ConfinementError(
                f"allowed root {root} resolves to /, which cannot be an allowed root"
            )
        for candidate in {written, real}:
            if lexical == candidate or candidate in lexical.parents:
                return real, lexical.relative_to(candidate).parts
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


def ensure_still_there(dir_fd: int, path: str | Path, roots: tuple[Path, ...]) -> None:
    """Raise ConfinementError unless ``dir_fd`` is still the directory of ``path`` in its root.

    A descriptor keeps pointing at its directory wherever that directory is moved; one moved
    out of the roots (a symlink left in its place or not) is no longer a place the action may
    create, rename or remove anything in. Walked again from the root, without symlinks.
    """
    with open_parent(path, roots) as (fresh, _name):
        here, there = os.fstat(dir_fd), os.fstat(fresh)
    if (here.st_dev, here.st_ino) != (there.st_dev, there.st_ino):
        raise ConfinementError(
            f"{path}: its directory was moved or replaced while AIOS worked in it; "
            "nothing more is done there"
        )


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


def open_file(
    dir_fd: int,
    name: str,
    flags: int = os.O_RDONLY,
    mode: int = 0o644,
    *,
    path: str | Path | None = None,
) -> int:
    """Open ``name`` in ``dir_fd``: never a symlink (ConfinementError), and with ``O_DIRECTORY``
    a directory, else only a regular file (ActionError). ``path`` is the name shown in errors.
    """
    shown = path or name
    if not flags & (os.O_CREAT | os.O_DIRECTORY):
        # Refuse before opening: opening a FIFO blocks, opening a device can act on it.
        _refuse_unless_regular(os.stat(name, dir_fd=dir_fd, follow_symlinks=False), shown)
    try:
        # O_NONBLOCK: a FIFO swapped in after the check above must not block the open.
        fd = os.open(
            name, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode, dir_fd=dir_fd
        )
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfinementError(f"{shown} is a symlink; symlinks are never followed") from None
        raise
    if not flags & os.O_DIRECTORY:
        try:
            _refuse_unless_regular(os.fstat(fd), shown)
        except ActionError:
            os.close(fd)
            raise
    return fd


def _refuse_unless_regular(info: os.stat_result, shown: str | Path) -> None:
    kind = stat.S_IFMT(info.st_mode)
    if kind == stat.S_IFLNK:
        raise ConfinementError(f"{shown} is a symlink; symlinks are never followed")
    if kind != stat.S_IFREG:
        what = _KINDS.get(kind, "not a regular file")
        raise ActionError(f"{shown} is {what}; only regular files are read or written")


def read_all(fd: int, limit: int | None = None, *, path: str | Path | None = None) -> bytes:
    """Everything left to read in ``fd``.

    With ``limit``, at most that many bytes: a longer file raises ActionError naming ``path``
    (and the limit) once ``limit + 1`` bytes were read, so a huge file costs no more than that.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        want = 1 << 20 if limit is None else min(1 << 20, limit + 1 - size)
        chunk = os.read(fd, want)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if limit is not None and size > limit:
            raise ActionError(f"{path or 'the file'}: larger than {limit} bytes; not read")


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def temporary_name(purpose: str) -> str:
    """A name nobody can plant beforehand (a predictable one could be taken to block AIOS)."""
    return f".aios-{purpose}-{secrets.token_hex(8)}"


def give(fd: int, mode: int, owner: tuple[int, int] | None) -> None:
    """Set the open file's owner (when AIOS may) and then its mode.

    A file AIOS replaces keeps the owner of the one it replaces, so the agent that owns it can
    still read and write it. Where the owner cannot be kept, set-user and set-group bits are
    dropped: they are never handed to a file under another owner.
    """
    if owner is not None:
        with suppress(PermissionError):
            os.fchown(fd, *owner)
        info = os.fstat(fd)
        if (info.st_uid, info.st_gid) != owner:
            mode &= ~(stat.S_ISUID | stat.S_ISGID)
    os.fchmod(fd, mode)  # after chown, which clears those bits


def still_named(dir_fd: int, name: str, fd: int) -> bool:
    """Whether ``name`` in ``dir_fd`` is still the file open as ``fd`` (symlinks not followed)."""
    try:
        mine, there = os.fstat(fd), os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def remove_own(dir_fd: int, name: str, fd: int) -> None:
    """Unlink ``name`` from ``dir_fd`` only if it is still the file open as ``fd``.

    A temporary file of AIOS's that someone replaced is theirs now, and is left alone.
    """
    with suppress(OSError):
        if still_named(dir_fd, name, fd):
            os.unlink(name, dir_fd=dir_fd)


def write_atomic_at(
    dir_fd: int,
    name: str,
    data: bytes,
    mode: int,
    *,
    owner: tuple[int, int] | None = None,
    check: Callable[[], None] | None = None,
) -> None:
    """Replace ``name`` in ``dir_fd`` atomically (temporary file, fsync, rename, fsync dir).

    ``check`` runs before the temporary file is created and again just before the rename; it
    raises to stop the write (the temporary file is then removed). The rename replaces the
    directory entry, never writing through a symlink or a hard link that ``name`` may be.
    """
    if check is not None:
        check()
    tmp = temporary_name("write")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
    try:
        write_all(fd, data)
        give(fd, mode, owner)
        os.fsync(fd)
        if check is not None:
            check()
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        remove_own(dir_fd, tmp, fd)
        raise
    finally:
        os.close(fd)
    os.fsync(dir_fd)
