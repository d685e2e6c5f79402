"""The ``p2p.ueps`` Cython extension, when it is the live codec: the one place that asks.

The transport's native fast paths (fused SMSG sigil, the Go-shape message parser) live in
that extension; each caller keeps a pure-Python path that gives the same results.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from p2p import ueps

__all__ = ["native", "speedups"]


def speedups() -> ModuleType | None:
    """The ``p2p.ueps._speedups`` module when it is the live UEPS codec, else ``None``."""
    if ueps.IMPLEMENTATION != "cython":
        return None
    try:
        return importlib.import_module("p2p.ueps._speedups")
    except ImportError:  # pragma: no cover - IMPLEMENTATION says it imported
        return None


def native(name: str) -> Any:
    """The extension's ``name``, or ``None`` (no extension, or a build without it)."""
    ext = speedups()
    return None if ext is None else getattr(ext, name, None)
