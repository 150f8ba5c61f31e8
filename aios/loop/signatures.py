"""Error signatures: the same failure, whatever ids, numbers, paths and quotes it carried.

``signature("TimeoutError", "tool search timed out after 30.5s (req 8f3a...)")`` and the same
error with other numbers give one signature, so repeats can be counted across runs.
"""

from __future__ import annotations

import re

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.I), "<id>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ][\d:.]+(?:Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b[0-9a-f]{12,}\b", re.I), "<hex>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<addr>"),
    (re.compile(r"https?://\S+"), "<url>"),
    (re.compile(r"(?<![\w])(?:~|\.{1,2})?/(?:[\w.@+-]+/)*[\w.@+-]+"), "<path>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
    (re.compile(r"(?<![A-Za-z_<])-?\d+(?:\.\d+)?(?:e[+-]?\d+)?", re.I), "<n>"),
    (re.compile(r"\s+"), " "),
)
MAX_LENGTH = 200


def normalise(message: str) -> str:
    """``message`` with the parts that vary between occurrences replaced by placeholders."""
    text = message.strip()
    for pattern, placeholder in _RULES:
        text = pattern.sub(placeholder, text)
    return text.strip()[:MAX_LENGTH]


def signature(error_type: str | None, message: str | None) -> str:
    """``ErrorType: normalised message`` (either part may be missing)."""
    kind = (error_type or "").strip()
    text = normalise(message or "")
    if kind and text:
        return f"{kind}: {text}"
    return kind or text or "unknown error"
