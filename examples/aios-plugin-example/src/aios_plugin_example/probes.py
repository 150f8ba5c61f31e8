"""``example.file_count``: how many files in a directory (under the allowed roots) match."""

from __future__ import annotations

import fnmatch
import os

from pydantic import BaseModel, ConfigDict, Field

from aios.actions.base import ActionError
from aios.actions.confine import open_dir
from aios.plugins import ProbePlugin
from aios.probes import ProbeContext, ProbeError


class FileCountParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory: str = Field(description="Absolute directory, under the allowed roots.")
    pattern: str = Field(default="*", description="Glob the file names must match.")


def count_files(params: FileCountParams, ctx: ProbeContext) -> int:
    try:
        with open_dir(params.directory, ctx.allowed_roots) as fd:
            names = os.listdir(fd)
    except (ActionError, OSError) as exc:
        raise ProbeError(f"example.file_count {params.directory}: {exc}") from None
    return sum(1 for name in names if fnmatch.fnmatchcase(name, params.pattern))


file_count = ProbePlugin(
    "example.file_count",
    FileCountParams,
    count_files,
    unit=" files",
    description="files in directory matching pattern",
)
