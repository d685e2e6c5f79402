"""Test helpers shared by the p2p.peers tests (a unique module name, so every package's
tests collect in one pytest run)."""

from __future__ import annotations

from dataclasses import dataclass

from p2p.identity import KeyPair, node_id_from_public_key


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
