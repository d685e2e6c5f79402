"""Registry behaviour: CRUD, copies, score bookkeeping, selection freshness, the allowlist
and the transport's PeerGate hooks."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from p2p.peers import (
    AuthMode,
    InvalidPeerError,
    Peer,
    PeerExistsError,
    PeerNotFoundError,
    PeerRegistry,
    RegistryFullError,
)
from peers_testing import Ident, make_ident


def test_add_get_update_remove(reg: PeerRegistry) -> None:
    reg.add(Peer(id="a", name="alpha", ping_ms=5.0))
    got = reg.get("a")
    assert got is not None and got.name == "alpha" and got.score == 50
    assert not got.added_at.is_zero()  # stamped on add
    assert reg.count == 1 and len(reg) == 1 and "a" in reg
    with pytest.raises(PeerExistsError):
        reg.add(Peer(id="a"))
    got.name = "renamed"
    got.score = 7.0
    reg.update(got)
    after = reg.get("a")
    assert after is not None and after.name == "renamed" and after.score == 7.0
    with pytest.raises(PeerNotFoundError):
        reg.update(Peer(id="zz"))
    reg.remove("a")
    assert reg.get("a") is None and reg.count == 0
    with pytest.raises(PeerNotFoundError):
        reg.remove("a")


def test_getters_return_copies(reg: PeerRegistry) -> None:
    reg.add(Peer(id="a", score=60.0))
    for view in (reg.get("a"), reg.peers()[0], reg.by_score()[0], reg.select_optimal()):
        assert view is not None
        view.score = 1.0
        view.name = "mutated"
    got = reg.get("a")
    assert got is not None and got.score == 60.0 and got.name == ""


def test_add_keeps_no_reference_to_the_callers_object(reg: PeerRegistry) -> None:
    p = Peer(id="a", ping_ms=1.0)
    reg.add(p)
    p.ping_ms = 999.0
    assert reg.get("a").ping_ms == 1.0  # type: ignore[union-attr]


def test_add_validates_fields(reg: PeerRegistry) -> None:
    with pytest.raises(InvalidPeerError):
        reg.add(Peer(id="a", ping_ms=float("nan")))
    with pytest.raises(InvalidPeerError, match="too long"):
        reg.add(Peer(id="a", name="x" * 65))
    assert reg.count == 0


def test_update_skips_the_name_rule_like_the_reference(reg: PeerRegistry) -> None:
    reg.add(Peer(id="a"))
    reg.update(Peer(id="a", name="odd.name"))
    assert reg.get("a").name == "odd.name"  # type: ignore[union-attr]


def test_score_deltas_and_clamping(reg: PeerRegistry) -> None:
    reg.add(Peer(id="a", score=99.5))
    before = reg.get("a").last_seen  # type: ignore[union-attr]
    assert reg.record_success("a")
    a = reg.get("a")
    assert a is not None and a.score == 100.0 and a.last_seen > before
    reg.update_score("a", 6.0)
    reg.record_failure("a")
    assert reg.get("a").score == 1.0  # type: ignore[union-attr]
    reg.record_timeout("a")
    assert reg.get("a").score == 0.0  # type: ignore[union-attr]
    reg.record_failure("a")
    assert reg.get("a").score == 0.0  # type: ignore[union-attr]
    reg.update_score("a", 1e9)
    assert reg.get("a").score == 100.0  # type: ignore[union-attr]
    reg.update_score("a", -1e9)
    assert reg.get("a").score == 0.0  # type: ignore[union-attr]
    with pytest.raises(InvalidPeerError):
        reg.update_score("a", float("nan"))
    with pytest.raises(PeerNotFoundError):
        reg.update_score("nobody", 5.0)
    # the reference silently ignores score events for unknown peers
    assert not reg.record_success("nobody")
    assert not reg.record_failure("nobody")
    assert not reg.record_timeout("nobody")


def test_score_events_reach_selection_immediately(reg: PeerRegistry) -> None:
    """The reference does not rebuild its tree on score events, so it keeps selecting on
    stale scores; here the very next selection sees them."""
    reg.add(Peer(id="a", ping_ms=10.0, score=100.0))
    reg.add(Peer(id="b", ping_ms=10.5, score=100.0))
    assert reg.select_optimal().id == "a"  # type: ignore[union-attr]
    reg.record_failure("a")
    assert reg.select_optimal().id == "b"  # type: ignore[union-attr]
    assert [p.id for p in reg.select_nearest(2)] == ["b", "a"]
    for _ in range(5):
        reg.record_success("a")
    assert reg.select_optimal().id == "a"  # type: ignore[union-attr]
    reg.record_timeout("a")
    assert reg.select_optimal().id == "b"  # type: ignore[union-attr]


def test_metrics_update(reg: PeerRegistry) -> None:
    reg.add(Peer(id="a", ping_ms=100.0))
    reg.add(Peer(id="b", ping_ms=50.0))
    assert reg.select_optimal().id == "b"  # type: ignore[union-attr]
    reg.update_metrics("a", 1.0, 2.0, 3)
    a = reg.get("a")
    assert a is not None and (a.ping_ms, a.geo_km, a.hops) == (1.0, 2.0, 3)
    assert not a.last_seen.is_zero()
    assert reg.select_optimal().id == "a"  # type: ignore[union-attr]
    with pytest.raises(InvalidPeerError):
        reg.update_metrics("a", float("inf"), 0.0, 0)
    with pytest.raises(PeerNotFoundError):
        reg.update_metrics("zz", 1.0, 1.0, 1)


def test_selection_basics_and_ties(reg: PeerRegistry) -> None:
    assert reg.select_optimal() is None and reg.select_nearest(3) == []
    for pid in ("c", "a", "b"):
        reg.add(Peer(id=pid, ping_ms=5.0, score=90.0))
    reg.add(Peer(id="far", ping_ms=500.0))
    assert [p.id for p in reg.select_nearest(10)] == ["a", "b", "c", "far"]  # ties by id
    assert reg.select_nearest(0) == [] and reg.select_nearest(-1) == []
    assert [p.id for p in reg.by_score()] == ["a", "b", "c", "far"]
    near = reg.select_nearest(1, target=(500.0, 0.0, 0.0, 60.0))
    assert [p.id for p in near] == ["far"]
    with pytest.raises(InvalidPeerError):
        reg.select_nearest(1, target=(1.0, 2.0))
    with pytest.raises(TypeError):
        reg.select_nearest(1.5)  # type: ignore[arg-type]


def test_connected_flags(reg: PeerRegistry) -> None:
    reg.add(Peer(id="a"))
    reg.add(Peer(id="b"))
    assert reg.connected_peers() == []
    assert reg.set_connected("a", True)
    assert [p.id for p in reg.connected_peers()] == ["a"]
    assert not reg.get("a").last_seen.is_zero()  # type: ignore[union-attr]
    assert reg.set_connected("a", False)
    assert reg.connected_peers() == []
    assert not reg.set_connected("nobody", True)
    reg.set_connected("b", True)
    reg.remove("b")
    assert reg.connected_peers() == []
    assert reg.connected_ids() == []


def test_connected_ids_follow_connected_peers(reg: PeerRegistry) -> None:
    for i in range(50):
        reg.add(Peer(id=f"p{i:02d}"))
    for i in range(0, 50, 3):
        reg.set_connected(f"p{i:02d}", True)
    reg.set_connected("p03", False)
    reg.remove("p06")
    ids = reg.connected_ids()
    assert ids == [p.id for p in reg.connected_peers()]  # same peers, same order
    assert sorted(ids) == [f"p{i:02d}" for i in range(0, 50, 3) if i not in (3, 6)]


def test_max_peers_bound(tmp_path: Path) -> None:
    reg = PeerRegistry(tmp_path / "p.json", max_peers=2, save_delay=3600)
    reg.add(Peer(id="a"))
    reg.add(Peer(id="b"))
    with pytest.raises(RegistryFullError):
        reg.add(Peer(id="c"))
    reg.close()


# -- allowlist and auth --------------------------------------------------------------------


def test_open_mode_allows_everyone(reg: PeerRegistry, ident: Ident) -> None:
    assert reg.auth_mode is AuthMode.OPEN
    assert reg.is_peer_allowed(ident.id, ident.public_key)


def test_allowlist_mode(reg: PeerRegistry, ident: Ident) -> None:
    reg.set_auth_mode(AuthMode.ALLOWLIST)
    assert not reg.is_peer_allowed(ident.id, ident.public_key)
    reg.allow_public_key(ident.public_key)
    assert reg.is_public_key_allowed(ident.public_key)
    assert reg.allowed_public_keys() == [ident.public_key]
    assert reg.is_peer_allowed(ident.id, ident.public_key)
    reg.revoke_public_key(ident.public_key)
    reg.revoke_public_key(ident.public_key)  # idempotent
    assert not reg.is_peer_allowed(ident.id, ident.public_key)
    with pytest.raises(InvalidPeerError):
        reg.allow_public_key("")


def test_allowlist_binds_registered_id_to_its_key(reg: PeerRegistry) -> None:
    """The reference admits any registered id in allowlist mode whatever key it presents
    (TRANSPORT.md §10 #1). Here the presented key must be the registered one."""
    known = make_ident("known")
    attacker = make_ident("attacker")
    reg.add(Peer(id=known.id, name="known", public_key=known.public_key))
    reg.set_auth_mode(AuthMode.ALLOWLIST)
    assert reg.is_peer_allowed(known.id, known.public_key)
    # the registered id presented with another key: refused
    assert not reg.is_peer_allowed(known.id, attacker.public_key)
    # even an allowlisted key cannot claim an id it does not derive to
    reg.allow_public_key(attacker.public_key)
    assert not reg.is_peer_allowed(known.id, attacker.public_key)
    assert reg.is_peer_allowed(attacker.id, attacker.public_key)
    assert not reg.is_peer_allowed(known.id, "not base64!")


# -- the transport's PeerGate ----------------------------------------------------------------


def test_gate_auto_registers_a_new_peer(reg: PeerRegistry, ident: Ident) -> None:
    reg.peer_connected(ident, "127.0.0.1:9091")
    p = reg.get(ident.id)
    assert p is not None
    assert (p.name, p.public_key, p.role, p.address) == (
        ident.name,
        ident.public_key,
        "worker",
        "127.0.0.1:9091",
    )
    assert p.score == 50 and p.connected and not p.added_at.is_zero()
    assert [c.id for c in reg.connected_peers()] == [ident.id]
    reg.peer_disconnected(ident.id)
    assert reg.connected_peers() == [] and reg.get(ident.id) is not None
    reg.peer_disconnected("unknown")  # harmless


def test_gate_reconnect_keeps_the_record(reg: PeerRegistry, ident: Ident) -> None:
    reg.add(Peer(id=ident.id, name="mine", public_key=ident.public_key, score=80.0))
    reg.peer_connected(ident, "10.1.1.1:1")
    p = reg.get(ident.id)
    assert p is not None and p.name == "mine" and p.score == 80.0 and p.connected
    assert p.address == "10.1.1.1:1"  # filled in because it was empty
    reg.peer_connected(ident, "10.9.9.9:9")
    assert reg.get(ident.id).address == "10.1.1.1:1"  # type: ignore[union-attr]


def test_gate_does_not_register_malformed_identities(
    reg: PeerRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    bad_name = make_ident("bad.name")
    other = make_ident()
    wrong_id = Ident(other.id, "ok", make_ident().public_key)
    with caplog.at_level(logging.INFO, logger="p2p.peers.registry"):
        reg.peer_connected(bad_name, "")  # the connection goes on; just not registered
        reg.peer_connected(wrong_id, "")
    assert reg.count == 0
    assert "not registered" in caplog.text


def test_registry_satisfies_the_transport_gate_protocol(reg: PeerRegistry) -> None:
    gate = pytest.importorskip("p2p.transport.gate")
    assert isinstance(reg, gate.PeerGate)


def test_background_rebuilds_keep_answers_exact(tmp_path: Path) -> None:
    import random

    from p2p.peers.index import distance, point

    reg = PeerRegistry(tmp_path / "peers.json", save_delay=3600, rebuild_fraction=0.02)
    reg._index.background_min = 500  # exercise the worker-thread path at a small size
    reg._index.min_rebuild = 20
    rng = random.Random(11)
    for i in range(3000):
        reg.add(Peer(id=f"{i:05d}", ping_ms=rng.uniform(0, 300), hops=rng.randint(0, 9)))
    for step in range(3000):
        pid = f"{rng.randrange(3000):05d}"
        reg.update_metrics(pid, rng.uniform(0, 300), rng.uniform(0, 900), rng.randint(0, 9))
        if step % 50 == 0:
            got = [p.id for p in reg.select_nearest(15)]
            want = sorted(
                (distance(point(p.ping_ms, p.hops, p.geo_km, p.score)), p.id) for p in reg.peers()
            )
            assert got == [pid for _, pid in want[:15]]
    assert reg._index.rebuilds > 1
    reg.close()


def test_first_selection_above_512_peers_builds_nothing_on_the_caller() -> None:
    """Issue 14: from 512 peers on the KD-tree is built in a worker thread, and scipy is
    imported ahead of need (from 256 peers): a selection on the event loop never pays."""
    from p2p.peers.index import distance, point
    from p2p.peers.registry import BACKGROUND_REBUILD_MIN, PRELOAD_TREE_AT

    reg = PeerRegistry(persist=False)
    for i in range(PRELOAD_TREE_AT - 1):
        reg.add(Peer(id=f"{i:05d}", ping_ms=float(i % 97), hops=i % 5))
    assert reg._preloading is None
    for i in range(PRELOAD_TREE_AT - 1, BACKGROUND_REBUILD_MIN + 100):
        reg.add(Peer(id=f"{i:05d}", ping_ms=float(i % 97), hops=i % 5))
    assert reg._preloading is not None
    reg._preloading.join(60)
    assert not reg._preloading.is_alive()
    got = [p.id for p in reg.select_nearest(10)]
    assert reg._index.rebuilds == 0  # answered by the exact buffer scan, no inline build
    want = sorted(
        (distance(point(p.ping_ms, p.hops, p.geo_km, p.score)), p.id) for p in reg.peers()
    )
    assert got == [pid for _, pid in want[:10]]
    wait_until = time.monotonic() + 60
    while reg._index.rebuilds == 0 and time.monotonic() < wait_until:
        time.sleep(0.01)
    assert reg._index.rebuilds == 1  # the worker thread installed it
    assert [p.id for p in reg.select_nearest(10)] == got
    reg.close()


OPEN_AND_REPORT = """
import asyncio, json, sys
from p2p.peers import PeerRegistry

async def main():
    reg = await PeerRegistry.open(sys.argv[1])
    return {"count": reg.count, "scipy": "scipy.spatial" in sys.modules,
            "done": reg.wait_preloaded(0)}

print(json.dumps(asyncio.run(main())))
"""


@pytest.mark.parametrize("peers", [10, 300])
def test_open_returns_once_the_kd_tree_library_is_imported(tmp_path: Path, peers: int) -> None:
    """A registry loaded with PRELOAD_TREE_AT peers or more imports scipy before open()
    returns (a node then serves without sharing the GIL with that import); a small one
    never imports it. A fresh interpreter, so nothing has imported scipy yet."""
    import json
    import subprocess
    import sys

    from p2p.peers.registry import PRELOAD_TREE_AT

    path = tmp_path / "peers.json"
    reg = PeerRegistry(path)
    for i in range(peers):
        reg.add(Peer(id=f"{i:05d}", ping_ms=float(i % 97), hops=i % 5, address=f"127.0.0.1:{i}"))
    reg.close()
    out = subprocess.run(
        [sys.executable, "-c", OPEN_AND_REPORT, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(out.stdout)
    assert got == {"count": peers, "scipy": peers >= PRELOAD_TREE_AT, "done": True}
