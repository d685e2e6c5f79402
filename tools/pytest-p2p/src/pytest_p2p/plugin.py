"""pytest plugin entry point: fixtures shared by every package's tests.

Fixtures that need a p2p package import it lazily, so each package's test env only needs
that package and its dependencies installed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pytest_p2p.transport_fixtures import *  # noqa: F403
from pytest_p2p.vectors import find_vectors, load_vectors


@pytest.fixture(scope="session")
def golden_path(pytestconfig: pytest.Config) -> Path:
    """Path of the Go reference's golden vectors."""
    return find_vectors(Path(str(pytestconfig.rootpath)))


@pytest.fixture(scope="session")
def golden(golden_path: Path) -> dict[str, Any]:
    """The whole golden-vector document (sections: ueps, identity, smsg, ...)."""
    return load_vectors(golden_path)


@pytest.fixture
def secret() -> bytes:
    """A fresh random 32-byte shared secret."""
    return os.urandom(32)


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = []
    try:
        from p2p import ueps

        lines.append(f"p2p.ueps implementation: {ueps.IMPLEMENTATION}")
    except ImportError:
        pass
    return lines
