"""Notifications through Prefect's notification blocks (webhook, Slack, email, ...).

``notify`` loads each configured block by its slug and name (``custom-webhook/ops``) and sends;
a block that cannot be loaded or fails to send is recorded as ``notification.failed`` and the
others still send: telling people never fails a remediation.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import Any

from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.utilities.asyncutils import run_coro_as_sync

from aios.bus import EventBus
from aios.event import Severity

SOURCE = "aios.notify"
logger = logging.getLogger("aios.notify")


def notify(bus: EventBus, names: Sequence[str], subject: str, body: str) -> list[str]:
    """Send ``subject`` / ``body`` through each block in ``names``; returns those that sent."""
    sent = []
    for name in names:
        try:
            block = Block.load(name)
            if not isinstance(block, NotificationBlock):
                raise TypeError(f"{name} is a {type(block).__name__}, not a notification block")
            result: Any = block.notify(body=body, subject=subject)
            if inspect.iscoroutine(result):  # a block with only the async form
                run_coro_as_sync(result)
        except Exception as exc:  # recorded; the other blocks still send
            logger.warning("notification through %s failed: %s", name, exc)
            bus.emit(
                "notification.failed",
                {"block": name, "subject": subject, "error": f"{type(exc).__name__}: {exc}"},
                source=SOURCE,
                severity=Severity.LOW,
            )
            continue
        sent.append(name)
    if sent:
        bus.emit("notification.sent", {"blocks": sent, "subject": subject}, source=SOURCE)
    return sent
