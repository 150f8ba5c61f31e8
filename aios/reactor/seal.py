"""Sealed approval decisions: only a decision the reactor itself recorded is believed.

An approval in the log lets a retried run go ahead without asking again, so a forged
``approval.granted`` must not count. The reactor seals each decision with an HMAC over the
remediation id, the verdict, the approver and the digest of the plan that was shown, keyed by
``$AIOS_HOME/approval.key`` (owner-only, made on first use); a decision whose seal does not
check is ignored.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any

from aios.home import HomePaths

KEY_FILE = "approval.key"


def key_path(paths: HomePaths) -> Path:
    return paths.root / KEY_FILE


@lru_cache(maxsize=16)
def _load_key(path: Path) -> bytes:
    try:
        data = path.read_bytes().strip()
    except FileNotFoundError:
        data = b""
    if len(data) >= 32:
        return data
    path.parent.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_hex(32).encode()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, fresh + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # the first process to make one wins; the others read it
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes().strip()


def _message(rid: str, verdict: str, approver: str, digest: str) -> bytes:
    return f"{rid}\n{verdict}\n{approver}\n{digest}".encode()


def seal(paths: HomePaths, rid: str, verdict: str, approver: str, digest: str = "") -> str:
    """The seal of ``verdict`` (granted, denied, expired) on remediation ``rid``, for the plan
    whose digest is ``digest``."""
    key = _load_key(key_path(paths))
    return hmac.new(key, _message(rid, verdict, approver, digest), hashlib.sha256).hexdigest()


def sealed(paths: HomePaths, verdict: str, payload: dict[str, Any]) -> bool:
    """Whether an approval event's payload carries a valid seal for ``verdict``."""
    rid, approver, given = (payload.get(k) for k in ("remediation_id", "approver", "seal"))
    if not (isinstance(rid, str) and isinstance(given, str)):
        return False
    expected = seal(paths, rid, verdict, str(approver), str(payload.get("digest") or ""))
    return hmac.compare_digest(expected, given)
