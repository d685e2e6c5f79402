"""What the transport asks of whoever decides who may connect (``p2p.peers`` implements it).

The transport never imports ``p2p.peers``: it talks to any object with these three methods,
so it runs standalone with :class:`OpenGate` or :class:`AllowlistGate`. Nobody wraps the
gate: the transport's own refusals (the UEPS threat breaker, ``transport.ueps``) are
consulted by the transport before it asks the gate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from p2p.identity import LimitedLogger, safe_text

if TYPE_CHECKING:
    from p2p.identity import NodeIdentity

__all__ = ["AllowlistGate", "OpenGate", "PeerGate"]

log = logging.getLogger(__name__)
#: repetitive lines: a few per kind and minute, then one summary (issue 13)
_flood = LimitedLogger(log)


@runtime_checkable
class PeerGate(Protocol):
    """Admission and presence hooks called by the transport (all synchronous, must be fast)."""

    def is_peer_allowed(self, peer_id: str, public_key: str) -> bool:
        """May this (already id/key-consistent) identity complete a handshake?"""
        ...

    def peer_connected(self, identity: NodeIdentity, address: str) -> None:
        """A handshake with ``identity`` completed.

        ``address`` is the address we dialled (outbound: where the peer listens) or ``""``
        for an inbound connection, whose listening address is unknown (as in Go).
        """
        ...

    def peer_disconnected(self, peer_id: str) -> None:
        """The connection for ``peer_id`` is gone (not called when a newer one replaced it)."""
        ...

    # Optional, looked up with getattr (not part of the protocol, so older gates still fit):
    # ``is_peer_known(peer_id, public_key) -> bool``: an identity the operator knows, which
    # may use the established slots reserved for known peers.
    # ``record_failure(peer_id) -> object``: a *proven* peer broke the UEPS channel's rules
    # (bad HMAC, replay, ...); ``PeerRegistry.record_failure`` lowers its score. Called once
    # per violation, never for an unproven connection.
    # ``peer_protocol(public_key) -> str``: "1.1" if the key is pinned to protocol 1.1
    # (1.0 from or to it is refused); ``peer_protocol_seen(public_key, protocol)``: a
    # handshake with the key used "1.0" or "1.1" (p2p.peers stores it with the peer).


class OpenGate:
    """Allows everyone; remembers who is connected (handy in tests and tools)."""

    def __init__(self) -> None:
        self.connected: dict[str, NodeIdentity] = {}
        self.addresses: dict[str, str] = {}

    def is_peer_allowed(self, peer_id: str, public_key: str) -> bool:
        return True

    def peer_connected(self, identity: NodeIdentity, address: str) -> None:
        self.connected[identity.id] = identity
        self.addresses[identity.id] = address

    def peer_disconnected(self, peer_id: str) -> None:
        self.connected.pop(peer_id, None)
        self.addresses.pop(peer_id, None)


class AllowlistGate(OpenGate):
    """Allows only listed public keys (base64, as in the handshake).

    Keys, not ids, are the unit of trust: an id is derived from its key and the transport
    checks that derivation before asking the gate.
    """

    def __init__(self, public_keys: Iterable[str] = ()) -> None:
        super().__init__()
        self.public_keys: set[str] = set(public_keys)

    def allow(self, public_key: str) -> None:
        self.public_keys.add(public_key)

    def revoke(self, public_key: str) -> None:
        self.public_keys.discard(public_key)

    def is_peer_known(self, peer_id: str, public_key: str) -> bool:
        """Optional gate method: listed keys may use the established slots the transport
        reserves for known peers (``TransportConfig.known_reserve_fraction``)."""
        return public_key in self.public_keys

    def is_peer_allowed(self, peer_id: str, public_key: str) -> bool:
        allowed = public_key in self.public_keys
        if not allowed:
            _flood.info("not allowlisted", "peer %s not on the allowlist", safe_text(peer_id, 64))
        return allowed
