"""Learned peers (issue 13, finding 6): strangers cannot grow the registry without bound."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from p2p.peers import Peer, PeerRegistry, RegistryFullError
from p2p.peers.store import learned_path
from peers_testing import make_ident


def _reg(tmp_path: Path, **kw: object) -> PeerRegistry:
    return PeerRegistry(tmp_path / "peers.json", save_delay=3600, **kw)  # type: ignore[arg-type]


def test_strangers_are_capped_and_operator_peers_never_evicted(tmp_path: Path) -> None:
    reg = _reg(tmp_path, max_learned=5)
    mine = make_ident("mine")
    reg.add(Peer(id=mine.id, name="mine", public_key=mine.public_key))
    allowed = make_ident("allowed")
    reg.allow_public_key(allowed.public_key)
    reg.peer_connected(allowed, "")
    reg.peer_disconnected(allowed.id)
    for i in range(50):
        s = make_ident(f"s{i}")
        reg.peer_connected(s, "")
        reg.peer_disconnected(s.id)
    assert reg.count == 1 + 1 + 5
    assert mine.id in reg and allowed.id in reg
    assert not reg.is_learned(mine.id) and reg.is_learned(allowed.id)
    assert reg.evictions == 45
    reg.close()
    on_disk = json.loads((tmp_path / "peers.json").read_bytes())
    assert len(on_disk) == 7
    sidecar = set(json.loads(learned_path(tmp_path / "peers.json").read_bytes()))
    # the sidecar may still list ids evicted since the previous write (so a crash between
    # the two files never turns a learned peer into the operator's); load ignores them
    assert sidecar & {d["id"] for d in on_disk} == reg.learned_ids()


def test_eviction_takes_the_lowest_score_then_the_oldest(tmp_path: Path) -> None:
    reg = _reg(tmp_path, max_learned=3)
    a, b, c, d = (make_ident(n) for n in "abcd")
    for x in (a, b, c):
        reg.peer_connected(x, "")
        reg.peer_disconnected(x.id)
    reg.record_success(a.id)  # 51
    reg.record_success(c.id)  # 51, and seen after a
    reg.peer_connected(d, "")  # b (50) goes
    assert b.id not in reg and {a.id, c.id, d.id} <= set(reg.learned_ids())
    reg.peer_disconnected(d.id)
    reg.record_success(d.id)
    reg.record_success(d.id)
    e = make_ident("e")
    reg.peer_connected(e, "")  # a and c tie at 51: a was seen longest ago
    assert a.id not in reg and c.id in reg


def test_connected_learned_peers_are_not_evicted(tmp_path: Path) -> None:
    reg = _reg(tmp_path, max_learned=2)
    a, b, c = (make_ident(n) for n in "abc")
    reg.peer_connected(a, "")
    reg.peer_connected(b, "")
    reg.peer_connected(c, "")  # no room: a and b are live; c connects but is not stored
    assert c.id not in reg and a.id in reg and b.id in reg
    with pytest.raises(RegistryFullError):
        reg.add(Peer(id=c.id, name="c", public_key=c.public_key), learned=True)
    reg.add(Peer(id=c.id, name="c", public_key=c.public_key))  # the operator's: always


def test_adopted_peer_leaves_the_learned_set_and_survives_floods(tmp_path: Path) -> None:
    reg = _reg(tmp_path, max_learned=1)
    a = make_ident("a")
    reg.peer_connected(a, "")
    reg.peer_disconnected(a.id)
    assert reg.adopt(a.id) and not reg.adopt(a.id)
    for i in range(10):
        reg.peer_connected(make_ident(f"x{i}"), "")
    assert a.id in reg and not reg.is_learned(a.id)


def test_learned_state_survives_a_restart_and_a_lowered_cap(tmp_path: Path) -> None:
    reg = _reg(tmp_path, max_learned=10)
    mine = make_ident("mine")
    reg.add(Peer(id=mine.id, name="mine", public_key=mine.public_key))
    ids = []
    for i in range(10):
        s = make_ident(f"s{i}")
        reg.peer_connected(s, "")
        reg.peer_disconnected(s.id)
        ids.append(s.id)
    reg.close()
    again = _reg(tmp_path, max_learned=10)
    assert again.learned_ids() == frozenset(ids) and not again.is_learned(mine.id)
    again.close()
    smaller = _reg(tmp_path, max_learned=3)
    assert len(smaller.learned_ids()) == 3 and mine.id in smaller
    smaller.close()
    assert len(json.loads((tmp_path / "peers.json").read_bytes())) == 4


def test_peers_json_keeps_gos_format(tmp_path: Path) -> None:
    reg = _reg(tmp_path)
    s = make_ident("s")
    reg.peer_connected(s, "127.0.0.1:1")
    reg.close()
    doc = json.loads((tmp_path / "peers.json").read_bytes())
    assert list(doc[0]) == [
        "id",
        "name",
        "publicKey",
        "address",
        "role",
        "addedAt",
        "lastSeen",
        "pingMs",
        "hops",
        "geoKm",
        "score",
    ]


def test_a_damaged_sidecar_makes_nobody_evictable(tmp_path: Path) -> None:
    reg = _reg(tmp_path, max_learned=2)
    for i in range(2):
        s = make_ident(f"s{i}")
        reg.peer_connected(s, "")
        reg.peer_disconnected(s.id)
    reg.close()
    learned_path(tmp_path / "peers.json").write_text("{not json")
    again = _reg(tmp_path, max_learned=2)
    assert again.learned_ids() == frozenset() and again.count == 2
    again.close()


def test_no_sidecar_without_learned_peers(tmp_path: Path) -> None:
    reg = _reg(tmp_path)
    reg.add(Peer(id="a"))
    reg.close()
    assert not learned_path(tmp_path / "peers.json").exists()


def test_is_peer_known_means_allowlisted_or_added_by_the_operator(tmp_path: Path) -> None:
    """The transport's known-peer reserve asks `is_peer_known`: a stranger the registry
    learned is not known, whatever it claims; an operator-added peer is, with its stored key."""
    reg = _reg(tmp_path)
    mine = make_ident("mine")
    reg.add(Peer(id=mine.id, name="mine", public_key=mine.public_key))
    allowed = make_ident("allowed")
    reg.allow_public_key(allowed.public_key)
    stranger = make_ident("stranger")
    reg.peer_connected(stranger, "")
    assert reg.is_learned(stranger.id)
    other = make_ident("other")

    assert reg.is_peer_known(mine.id, mine.public_key)
    assert reg.is_peer_known(allowed.id, allowed.public_key)  # allowlisted, not registered
    assert not reg.is_peer_known(stranger.id, stranger.public_key)  # learned: a stranger
    assert not reg.is_peer_known(other.id, other.public_key)  # never seen
    # an operator-added id with another key, or a key under another id, is not known
    assert not reg.is_peer_known(mine.id, other.public_key)
    assert not reg.is_peer_known(other.id, mine.public_key)
    assert not reg.is_peer_known(mine.id, "")
    assert not reg.is_peer_known(mine.id, "not base64!")
    # allowlisting or adopting a learned peer makes it known; removing the peer forgets it
    assert reg.adopt(stranger.id)
    assert reg.is_peer_known(stranger.id, stranger.public_key)
    reg.remove(mine.id)
    assert not reg.is_peer_known(mine.id, mine.public_key)
    reg.revoke_public_key(allowed.public_key)
    assert not reg.is_peer_known(allowed.id, allowed.public_key)
    reg.close()
