"""Node id ↔ public key binding (IDENTITY.md §2): id = hex(SHA-256(raw key)[:16])."""

from __future__ import annotations

from p2p.identity import IdentityError, node_id_from_public_key


def node_id_for(public_key: str) -> str | None:
    """The node id a base64 X25519 public key derives to, or None if the key is malformed."""
    try:
        return node_id_from_public_key(public_key)
    except (IdentityError, ValueError, TypeError):
        return None
