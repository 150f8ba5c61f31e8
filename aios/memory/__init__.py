"""What AIOS remembers: ``MemoryPalace`` (store, query by meaning, link, walk), its Chroma and
JSON backends, and the offline embedding.

Imported lazily: registering the links projection must not pull numpy or Chroma in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aios.memory.palace import MemoryPalace
    from aios.memory.records import Memory

__all__ = ["Memory", "MemoryPalace"]


def __getattr__(name: str) -> Any:
    if name == "MemoryPalace":
        from aios.memory.palace import MemoryPalace

        return MemoryPalace
    if name == "Memory":
        from aios.memory.records import Memory

        return Memory
    raise AttributeError(name)
