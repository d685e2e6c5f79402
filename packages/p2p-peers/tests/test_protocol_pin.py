"""The protocol 1.1 pin stored with a peer (issue 16): set, kept, reset, persisted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from p2p.peers import InvalidPeerError, Peer, PeerNotFoundError, PeerRegistry
from peers_testing import Ident, make_ident


def test_pin_is_set_kept_and_reset(reg: PeerRegistry, ident: Ident) -> None:
    reg.peer_connected(ident, "127.0.0.1:9091")
    assert reg.peer_protocol(ident.public_key) == ""
    reg.peer_protocol_seen(ident.public_key, "1.0")
    assert reg.peer_protocol(ident.public_key) == "1.0"
    reg.peer_protocol_seen(ident.public_key, "1.1")
    assert reg.peer_protocol(ident.public_key) == "1.1"
    reg.peer_protocol_seen(ident.public_key, "1.0")  # a 1.0 handshake never lowers a pin
    assert reg.peer_protocol(ident.public_key) == "1.1"
    assert reg.reset_protocol(ident.id) == "1.1"
    assert reg.peer_protocol(ident.public_key) == ""
    with pytest.raises(PeerNotFoundError):
        reg.reset_protocol("0" * 32)


def test_pin_is_per_key_not_per_claimed_id(reg: PeerRegistry, ident: Ident) -> None:
    reg.peer_connected(ident, "")
    reg.peer_protocol_seen(ident.public_key, "1.1")
    other = make_ident("other")
    assert reg.peer_protocol(other.public_key) == ""
    reg.peer_protocol_seen(other.public_key, "1.1")  # not registered: nothing stored
    assert reg.get(other.id) is None
    assert reg.peer_protocol("not a key") == ""


def test_pin_persists_and_go_files_stay_unchanged(tmp_path: Path, ident: Ident) -> None:
    path = tmp_path / "peers.json"
    reg = PeerRegistry(path, save_delay=3600)
    reg.peer_connected(ident, "")
    reg.save()
    assert "protocol" not in json.loads(path.read_text())[0]  # unset: the Go shape
    reg.peer_protocol_seen(ident.public_key, "1.1")
    reg.close()
    assert json.loads(path.read_text())[0]["protocol"] == "1.1"
    again = PeerRegistry(path, save_delay=3600)
    try:
        assert again.peer_protocol(ident.public_key) == "1.1"
    finally:
        again.close()


def test_protocol_field_is_validated() -> None:
    assert Peer.from_dict({"id": "x", "protocol": "1.1"}).protocol == "1.1"
    assert Peer.from_dict({"id": "x"}).protocol == ""
    with pytest.raises(InvalidPeerError):
        Peer.from_dict({"id": "x", "protocol": "2.0"})
    with pytest.raises(InvalidPeerError):
        Peer(id="x", protocol="x" * 100).validated()
