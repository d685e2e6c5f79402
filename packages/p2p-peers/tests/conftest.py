"""Fixtures for p2p.peers tests: real key pairs, registries in tmp dirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from p2p.peers import PeerRegistry
from peers_testing import Ident, make_ident


@pytest.fixture
def ident() -> Ident:
    return make_ident()


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[PeerRegistry]:
    r = PeerRegistry(tmp_path / "peers.json", save_delay=3600)
    yield r
    r.close()
