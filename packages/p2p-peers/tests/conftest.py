"""Fixtures for p2p.peers tests: real key pairs, registries in tmp dirs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from p2p.identity import KeyPair, node_id_from_public_key
from p2p.peers import PeerRegistry


@dataclass
class Ident:
    """Shaped like p2p.identity.NodeIdentity, as the transport hands it to the gate."""

    id: str
    name: str
    public_key: str
    role: str = "worker"


def make_ident(name: str = "node-a") -> Ident:
    pub = KeyPair.generate().public_key_b64
    return Ident(node_id_from_public_key(pub), name, pub)


@pytest.fixture
def ident() -> Ident:
    return make_ident()


@pytest.fixture
def reg(tmp_path: Path) -> Iterator[PeerRegistry]:
    r = PeerRegistry(tmp_path / "peers.json", save_delay=3600)
    yield r
    r.close()
