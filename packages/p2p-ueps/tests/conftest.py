"""Run every p2p.ueps test against each available implementation (Cython and pure)."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def _implementations() -> list[str]:
    names = ["_pure"]
    if os.environ.get("P2P_NO_EXTENSIONS", "") in ("", "0"):
        names.insert(0, "_speedups")
    return names


@pytest.fixture(params=_implementations())
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """The codec module under test (``p2p.ueps._speedups`` or ``p2p.ueps._pure``)."""
    try:
        return importlib.import_module(f"p2p.ueps.{request.param}")
    except ImportError:
        if os.environ.get("P2P_EXPECT_CYTHON") == "1":
            raise
        pytest.skip("Cython extension not built")
