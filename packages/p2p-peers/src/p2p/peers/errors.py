"""Typed errors of p2p.peers: one base class, subclasses say what went wrong.

The hierarchy::

    PeerError
    ├── CorruptPeersFileError
    ├── InvalidPeerError
    ├── PeerExistsError
    ├── PeerNotFoundError
    ├── PeerStoreError
    └── RegistryFullError
"""

from __future__ import annotations

from pathlib import Path


class PeerError(Exception):
    """Base class of every error raised by p2p.peers."""


class InvalidPeerError(PeerError):
    """A peer record (or one of its fields) breaks a rule: id, name, type or range."""


class PeerExistsError(PeerError):
    """``add`` of an id the registry already holds."""

    def __init__(self, peer_id: str) -> None:
        super().__init__(f"peer {peer_id} already exists")
        self.peer_id = peer_id


class PeerNotFoundError(PeerError):
    """An operation named an id the registry does not hold."""

    def __init__(self, peer_id: str) -> None:
        super().__init__(f"peer {peer_id} not found")
        self.peer_id = peer_id


class RegistryFullError(PeerError):
    """The registry already holds ``max_peers`` peers."""


class PeerStoreError(PeerError):
    """peers.json (or its allowlist sidecar) could not be written."""


class CorruptPeersFileError(PeerError):
    """A peers.json (or allowlist) file on disk could not be read as written by a node.

    ``backup_path`` is where a byte-exact copy of the bad file was kept (None if even
    that failed); ``skipped`` counts the entries that were dropped from the load.
    """

    def __init__(self, path: Path, reason: str, backup_path: Path | None, skipped: int = 0) -> None:
        kept = f"; copy kept at {backup_path}" if backup_path else "; no copy could be kept"
        super().__init__(f"{path}: {reason}{kept}")
        self.path = path
        self.reason = reason
        self.backup_path = backup_path
        self.skipped = skipped
