"""Node id ↔ public key binding (IDENTITY.md §2): id = hex(SHA-256(raw key)[:16])."""

from __future__ import annotations

import base64
import binascii
import hashlib


def node_id_for(public_key: str) -> str | None:
    """The node id a base64 X25519 public key derives to, or None if the key is malformed."""
    if not isinstance(public_key, str) or len(public_key) != 44:
        return None
    try:
        raw = base64.b64decode(public_key, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 32:
        return None
    return hashlib.sha256(raw).digest()[:16].hex()
