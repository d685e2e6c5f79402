"""Locating and loading the Go reference's golden vectors.

The vectors are data produced by the Go reference; the repository keeps a copy under
``tests/vectors/``. ``P2P_VECTORS`` overrides the path (e.g. to test against a newer set).
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

VECTORS_ENV = "P2P_VECTORS"
VECTORS_NAME = "go-p2p-reference.json"


def find_vectors(start: Path | None = None) -> Path:
    """Return the golden-vector file: ``$P2P_VECTORS`` or ``tests/vectors/`` above ``start``."""
    env = os.environ.get(VECTORS_ENV)
    if env:
        return Path(env)
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        candidate = d / "tests" / "vectors" / VECTORS_NAME
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"golden vectors not found above {here}; set {VECTORS_ENV} to the JSON file"
    )


@lru_cache(maxsize=4)
def load_vectors(path: Path) -> dict[str, Any]:
    """Parse the vector file once per session."""
    with open(path, encoding="utf-8") as f:
        data: dict[str, Any] = json.load(f)
    return data


def message_texts(golden: dict[str, Any]) -> list[str]:
    """Every message JSON text of the ``messages`` section (encoded, decoded and live)."""
    sec = golden["messages"]
    texts = [c["json"] for c in sec["messages"]]
    texts += [c["json"] for c in sec.get("timestamp_formats", [])]
    texts += [c["input"] for c in sec["decode_cases"]]
    texts += [sec["reply_example"]["request"], sec["reply_example"]["reply"]]
    texts += [t for t in sec["live_new_message"] if isinstance(t, str)]
    assert texts
    return texts
