"""``files.cleanup``: remove old files matching globs from directories under the allowed roots.

Directories are walked through descriptors without following any symlink, down to
``MAX_WALK_DEPTH`` levels (deeper ones are skipped, and the notes say so); symlinks and
hard-linked files are left alone. The oldest files go first, up to ``max_bytes`` and
``max_files``. With ``trash: true`` (the default) each file is gzip-compressed into
``$AIOS_HOME/trash/<remediation>/`` before it is unlinked (logs shrink about tenfold, so space
is freed at once), and a rollback puts every file back with its mode and times; the trash is
kept until ``[reactor] trash_retention`` passes. ``trash: false`` deletes for good: it cannot be
undone and carries at least medium risk. Just before a file is unlinked or put back, its
directory is checked to be still in its root and the name still the file AIOS checked: a swap
in the meantime skips that file (said in the notes or the rollback's error), never another.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import os
import shutil
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from aios.actions.base import (
    ActionContext,
    ActionError,
    ActionPlan,
    ActionSpec,
    ConfinementError,
    IrreversibleError,
    Risk,
    render,
)
from aios.actions.confine import (
    ensure_still_there,
    give,
    open_dir,
    open_file,
    open_parent,
    remove_own,
    still_named,
    temporary_name,
    write_all,
)
from aios.durations import Duration

# Directories deeper than this below a cleaned path are not walked (and the result says so):
# log trees are shallow, and each level walked holds a descriptor open.
MAX_WALK_DEPTH = 64


@dataclass(frozen=True)
class Candidate:
    path: str
    size: int
    mtime: float
    inode: int
    device: int


class FilesCleanup(ActionSpec):
    """Remove files matching ``patterns`` under ``paths`` older than ``older_than``."""

    type: Literal["files.cleanup"] = "files.cleanup"
    paths: list[str] = Field(
        default_factory=list,
        description="Directories under allowed_roots (default: every allowed root).",
    )
    patterns: list[str] = Field(default=["*"], description="File-name globs, e.g. *.log.")
    older_than: Duration | None = Field(default=None, description="Only files older than this.")
    recursive: bool = Field(default=True, description="Walk subdirectories too.")
    max_bytes: int | None = Field(default=None, ge=1, description="Stop after this many bytes.")
    max_files: int = Field(default=10_000, ge=1, description="Stop after this many files.")
    trash: bool = Field(
        default=True, description="Keep compressed copies so a rollback can restore them."
    )

    @field_validator("patterns")
    @classmethod
    def _file_names(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if "/" in pattern or "\0" in pattern or pattern in (".", ".."):
                # Globs are matched against one name at a time: such a pattern could never
                # match, and reads as if it reached into another directory.
                raise ValueError(
                    f"pattern {pattern!r}: patterns match file names, not paths (no '/', "
                    "NUL, '.' or '..'); choose the directories with paths"
                )
        return patterns

    def floor(self) -> Risk:
        return Risk.LOW if self.trash else Risk.MEDIUM

    def is_reversible(self) -> bool:
        return self.trash

    def choose(self, ctx: ActionContext) -> tuple[list[Candidate], list[str]]:
        """Files to remove (oldest first, within the caps) and notes on what was passed over."""
        cutoff = time.time() - self.older_than.total_seconds() if self.older_than else None
        found: list[Candidate] = []
        notes: list[str] = []
        directories = [str(render(raw, ctx.event)) for raw in self.paths] or [
            str(root) for root in ctx.allowed_roots
        ]
        if not directories:
            raise ActionError("files.cleanup: no paths given and no allowed roots configured")
        for directory in directories:
            with open_dir(directory, ctx.allowed_roots) as fd:
                self._walk(fd, Path(os.path.normpath(directory)), cutoff, found, notes)
        unique = {(c.device, c.inode): c for c in found}  # overlapping paths: count once
        found = sorted(unique.values(), key=lambda c: c.mtime)
        chosen: list[Candidate] = []
        total = 0
        for candidate in found:
            if len(chosen) >= self.max_files:
                break
            if self.max_bytes is not None and total + candidate.size > self.max_bytes and chosen:
                break
            chosen.append(candidate)
            total += candidate.size
        return chosen, notes

    def _walk(
        self,
        top_fd: int,
        top: Path,
        cutoff: float | None,
        found: list[Candidate],
        notes: list[str],
    ) -> None:
        """Add the candidates under the directory open as ``top_fd`` to ``found``.

        Depth first, without recursion: one descriptor is open per level, and directories more
        than MAX_WALK_DEPTH levels below ``top`` are skipped (said in ``notes``), so a deep
        tree neither exhausts the stack nor the descriptors and the rest is still cleaned.
        """
        # Each level: its descriptor, its path, and the subdirectories still to visit.
        levels = [(top_fd, top, self._scan(top_fd, top, cutoff, found, notes))]
        try:
            while levels:
                dir_fd, where, pending = levels[-1]
                if not pending:
                    levels.pop()
                    if dir_fd != top_fd:
                        os.close(dir_fd)
                    continue
                name = pending.pop()
                path = where / name
                if len(levels) > MAX_WALK_DEPTH:
                    notes.append(
                        f"skipped {path}: more than {MAX_WALK_DEPTH} directories deep "
                        "(files.cleanup goes no deeper)"
                    )
                    continue
                try:
                    child = open_file(dir_fd, name, os.O_RDONLY | os.O_DIRECTORY)
                except (ConfinementError, OSError) as exc:
                    notes.append(f"skipped {path}: {exc}")
                    continue
                try:
                    levels.append((child, path, self._scan(child, path, cutoff, found, notes)))
                except OSError as exc:  # unreadable: said, and the rest is still cleaned
                    os.close(child)
                    notes.append(f"skipped {path}: {exc.strerror or exc}")
                except BaseException:
                    os.close(child)
                    raise
        finally:
            for dir_fd, _, _ in levels:
                if dir_fd != top_fd:
                    os.close(dir_fd)

    def _scan(
        self,
        dir_fd: int,
        where: Path,
        cutoff: float | None,
        found: list[Candidate],
        notes: list[str],
    ) -> list[str]:
        """Add the candidates directly in ``dir_fd`` to ``found``; the subdirectories to visit
        (last first, so they are visited in the order listed)."""
        with os.scandir(dir_fd) as entries:
            items = list(entries)
        subdirectories: list[str] = []
        for entry in items:
            path = where / entry.name
            try:
                kind = _kind_of(entry)
                if kind == "file" and any(
                    fnmatch.fnmatchcase(entry.name, p) for p in self.patterns
                ):
                    info = entry.stat(follow_symlinks=False)
                else:
                    info = None
            except OSError as exc:  # gone since listed (a rotated log), or not ours to read
                notes.append(f"skipped {path}: {exc.strerror or exc}")
                continue
            if kind == "symlink":
                notes.append(f"skipped symlink {path}")
                continue
            if kind == "directory":
                if self.recursive:
                    subdirectories.append(entry.name)
                continue
            if info is None:
                continue
            if cutoff is not None and info.st_mtime >= cutoff:
                continue
            if info.st_nlink > 1:
                notes.append(f"skipped hard-linked {path}")
                continue
            found.append(
                Candidate(str(path), info.st_size, info.st_mtime, info.st_ino, info.st_dev)
            )
        subdirectories.reverse()
        return subdirectories

    def plan(self, ctx: ActionContext) -> ActionPlan:
        chosen, notes = self.choose(ctx)
        total = sum(c.size for c in chosen)
        how = "move to the trash (compressed)" if self.trash else "delete for good"
        return ActionPlan(
            self.type,
            f"{how} {len(chosen)} file(s), {total} bytes",
            targets=[c.path for c in chosen],
            reversible=self.trash,
            risk=self.floor(),
            details={"files": [c.path for c in chosen], "bytes": total, "notes": notes[:50]},
        )

    def execute(self, ctx: ActionContext) -> dict[str, Any]:
        chosen, notes = self.choose(ctx)
        trash_dir = ctx.paths.root / "trash" / ctx.remediation_id / str(ctx.index)
        removed: list[dict[str, Any]] = []
        for number, candidate in enumerate(chosen):
            record = self._remove(candidate, ctx, trash_dir, number)
            if record is None:
                notes.append(f"skipped {candidate.path}: changed or gone since it was chosen")
                continue
            removed.append(record)
        return {
            "trash": self.trash,
            "irreversible": not self.trash,
            "removed": removed,
            "bytes": sum(r["size"] for r in removed),
            "notes": notes[:50],
        }

    def _remove(
        self, candidate: Candidate, ctx: ActionContext, trash_dir: Path, number: int
    ) -> dict[str, Any] | None:
        try:
            with open_parent(candidate.path, ctx.allowed_roots) as (dir_fd, name):
                return self._remove_in(candidate, ctx, dir_fd, name, trash_dir, number)
        except (ActionError, OSError):
            return None  # its directory vanished or was swapped since it was chosen

    def _remove_in(
        self,
        candidate: Candidate,
        ctx: ActionContext,
        dir_fd: int,
        name: str,
        trash_dir: Path,
        number: int,
    ) -> dict[str, Any] | None:
        try:
            fd = open_file(dir_fd, name, path=candidate.path)
        except (ActionError, FileNotFoundError):
            return None
        kept = None
        try:
            info = os.fstat(fd)
            if not _is_candidate(info, candidate):
                return None  # not the file that was chosen
            digest = hashlib.sha256()
            if self.trash:
                kept = trash_dir / f"{number}-{name}.gz"
                _keep_compressed(fd, kept, digest)
            # Between the check above and the unlink, the directory may have been moved out of
            # the root or the name given to another file: unlink removes a name, whatever file
            # it is then, so look again right before it.
            ensure_still_there(dir_fd, candidate.path, ctx.allowed_roots)
            if not _is_candidate(os.stat(name, dir_fd=dir_fd, follow_symlinks=False), candidate):
                raise ActionError(f"{candidate.path} was replaced after it was chosen")
            os.unlink(name, dir_fd=dir_fd)
            os.fsync(dir_fd)
        except (ActionError, OSError):
            if kept is not None:
                kept.unlink(missing_ok=True)
            return None
        finally:
            os.close(fd)
        return {
            "path": candidate.path,
            "size": info.st_size,
            "mode": stat.S_IMODE(info.st_mode),
            "uid": info.st_uid,
            "gid": info.st_gid,
            "atime": info.st_atime,
            "mtime": info.st_mtime,
            "sha256": digest.hexdigest() if self.trash else None,
            "kept": str(kept) if kept else None,
        }

    def rollback(self, undo: dict[str, Any], ctx: ActionContext) -> str:
        if not undo.get("trash"):
            raise IrreversibleError(
                f"{len(undo.get('removed', []))} file(s) were deleted for good (trash: false)"
            )
        restored: list[str] = []
        conflicts: list[str] = []
        refused: list[str] = []
        for record in undo.get("removed", []):
            try:
                put_back = _restore(record, ctx.allowed_roots)
            except ConfinementError as exc:
                refused.append(str(exc))
                continue
            (restored if put_back else conflicts).append(record["path"])
        problems = []
        if conflicts:
            problems.append(
                f"{len(conflicts)} name(s) are taken by new files and were left alone: "
                f"{conflicts[:5]}"
            )
        if refused:
            problems.append(
                f"{len(refused)} refused because the path no longer leads to where the file "
                f"was: {refused[:5]}"
            )
        if problems:
            raise ActionError(
                f"restored {len(restored)} file(s); "
                + "; ".join(problems)
                + " (copies stay in the trash)"
            )
        return f"restored {len(restored)} file(s) from the trash with their modes and times"


def _is_candidate(info: os.stat_result, candidate: Candidate) -> bool:
    """Whether ``info`` is the chosen file, still a regular file with no other name."""
    return (
        (info.st_ino, info.st_dev) == (candidate.inode, candidate.device)
        and stat.S_ISREG(info.st_mode)
        and info.st_nlink == 1
    )


def _restore(record: dict[str, Any], roots: tuple[Path, ...]) -> bool:
    """Put one file back from the trash; False if its name is taken (left alone).

    The copy is written to a temporary file beside the name and hard-linked to it, which never
    replaces what is there. ConfinementError if the path now leads out of the roots, or the
    directory or the temporary file was swapped while the copy was written.
    """
    path = record["path"]
    with open_parent(path, roots) as (dir_fd, name):
        tmp = temporary_name("restore")
        fd = open_file(dir_fd, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, path=path)
        try:
            if _copy_from_trash(record["kept"], fd) != record["sha256"]:
                raise ActionError(f"the trash copy of {path} is damaged")
            owner = (record["uid"], record["gid"]) if "uid" in record else None
            give(fd, record["mode"], owner)  # exactly, whatever the umask
            os.utime(fd, (record["atime"], record["mtime"]))
            os.fsync(fd)
            ensure_still_there(dir_fd, path, roots)
            if not still_named(dir_fd, tmp, fd):
                # Linking it now would give the name to whatever was put there instead.
                raise ConfinementError(f"{path}: the file being restored was swapped; left alone")
            try:
                os.link(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            except FileExistsError:
                return False
            os.fsync(dir_fd)
            return True
        finally:
            remove_own(dir_fd, tmp, fd)
            os.close(fd)


def _copy_from_trash(kept: str, fd: int) -> str:
    """Decompress the trash copy ``kept`` into open file ``fd``; the SHA-256 of what was written."""
    digest = hashlib.sha256()
    with gzip.open(kept, "rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
            write_all(fd, chunk)
    return digest.hexdigest()


def _keep_compressed(fd: int, kept: Path, digest: Any) -> None:
    """Write a gzip copy of open file ``fd`` to ``kept`` (owner-only), fsync'd."""
    _private_dirs(kept.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.dup(fd), "rb") as source, os.fdopen(os.open(kept, flags, 0o600), "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as out:
            while chunk := source.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        raw.flush()
        os.fsync(raw.fileno())


def _private_dirs(path: Path) -> None:
    """Create ``path`` and make it and its trash parents readable by the owner only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    for directory in (path, path.parent, path.parent.parent):
        directory.chmod(0o700)


def purge_trash(trash_root: Path, older_than_s: float) -> int:
    """Remove remediation trash directories older than ``older_than_s``; returns how many."""
    if not trash_root.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    purged = 0
    for entry in trash_root.iterdir():
        if entry.is_dir() and not entry.is_symlink() and entry.stat().st_mtime < cutoff:
            shutil.rmtree(entry)
            purged += 1
    return purged


def _kind_of(entry: os.DirEntry[str]) -> str:
    """symlink, directory, file, or other (FIFOs, sockets, devices), never following links."""
    if entry.is_symlink():
        return "symlink"
    if entry.is_dir(follow_symlinks=False):
        return "directory"
    return "file" if entry.is_file(follow_symlinks=False) else "other"
