"""p2p.peers: the scored peer registry of a Lethean P2P node.

Who a node knows (``Peer``), who may connect (``AuthMode`` + allowlist), which peers to use
next (KD-tree selection in the reference's weighted space), persisted to peers.json exactly
where and how the Go node keeps it.
"""

from p2p.peers._version import __version__
from p2p.peers.errors import (
    CorruptPeersFileError,
    InvalidPeerError,
    PeerError,
    PeerExistsError,
    PeerNotFoundError,
    PeerStoreError,
    RegistryFullError,
)
from p2p.peers.index import WEIGHTS, SelectionIndex
from p2p.peers.peer import (
    SCORE_DEFAULT,
    SCORE_MAX,
    SCORE_MIN,
    ZERO_TIME,
    Peer,
    format_time,
    parse_time,
    validate_peer_name,
)
from p2p.peers.registry import AuthMode, PeerIdentity, PeerRegistry
from p2p.peers.store import allowlist_path, default_peers_path

__all__ = [
    "SCORE_DEFAULT",
    "SCORE_MAX",
    "SCORE_MIN",
    "WEIGHTS",
    "ZERO_TIME",
    "AuthMode",
    "CorruptPeersFileError",
    "InvalidPeerError",
    "Peer",
    "PeerError",
    "PeerExistsError",
    "PeerIdentity",
    "PeerNotFoundError",
    "PeerRegistry",
    "PeerStoreError",
    "RegistryFullError",
    "SelectionIndex",
    "__version__",
    "allowlist_path",
    "default_peers_path",
    "format_time",
    "parse_time",
    "validate_peer_name",
]
