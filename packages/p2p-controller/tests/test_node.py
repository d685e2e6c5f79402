"""Node: two (or three) real nodes in one process on 127.0.0.1, real files in tmp dirs."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest
from p2p.controller import (
    AmbiguousPeerError,
    Node,
    NodeConfig,
    NodePaths,
    NodeStateError,
    UnknownPeerError,
)
from p2p.controller.bundles import create_profile_bundle
from p2p.controller.config import MinerConfig
from p2p.controller.node import peer_address_of, resolve_peer
from p2p.identity import NodeManager
from p2p.peers import Peer
from p2p.transport import ConnectError
from pytest_p2p.tls import self_signed

LOOPBACK = NodeConfig(listen="127.0.0.1:0")


async def eventually(cond: object, timeout: float = 5.0) -> None:
    assert callable(cond)
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


MINER = textwrap.dedent(
    """\
    import os, signal, sys, time
    print(f"pid {os.getpid()}", flush=True)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    n = 0
    while True:
        n += 1
        print(f"speed {100 + n}.5 H/s accepted {n}", flush=True)
        time.sleep(0.05)
    """
)


async def test_node_files_live_under_the_data_dir(tmp_path: Path) -> None:
    async with Node(tmp_path / "a", config=LOOPBACK, name="alpha") as node:
        assert node.running
        info = node.info()
        assert set(info) == {"id", "publicKey", "address"}
        assert info["address"].startswith("ws://127.0.0.1:") and info["address"].endswith("/ws")
        assert info["id"] == node.identity.id and node.identity.name == "alpha"
        paths = node.paths
    assert not node.running
    assert paths.key is not None and paths.identity is not None
    assert stat.S_IMODE(paths.key.stat().st_mode) == 0o600
    assert json.loads(paths.identity.read_text())["id"] == info["id"]
    assert (tmp_path / "a" / "profiles").is_dir()
    # a restart keeps the identity
    async with Node(tmp_path / "a", config=LOOPBACK) as again:
        assert again.id == info["id"]


async def test_data_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2P_NODE_DIR", str(tmp_path / "env-dir"))
    paths = NodePaths.from_env()
    assert paths.root == tmp_path / "env-dir"
    assert paths.peers == tmp_path / "env-dir" / "peers.json"
    assert paths.allowlist == tmp_path / "env-dir" / "peers.json.allowlist.json"
    monkeypatch.delenv("P2P_NODE_DIR")
    default = NodePaths.from_env()
    assert default.root is None and default.key is None and default.peers is None


async def test_not_started_and_idempotent_close(tmp_path: Path) -> None:
    node = Node(tmp_path / "n", config=LOOPBACK)
    with pytest.raises(NodeStateError):
        _ = node.transport
    await node.start()
    with pytest.raises(NodeStateError):
        await node.start()
    await node.close()
    await node.close()
    assert not node.running


async def test_two_nodes_are_both_controller_and_worker(tmp_path: Path) -> None:
    async with (
        Node(tmp_path / "a", config=LOOPBACK, name="alpha") as a,
        Node(tmp_path / "b", config=LOOPBACK, name="beta") as b,
    ):
        peer = await a.add_peer(b.address, public_key=b.identity.public_key, name="bee")
        assert peer.id == b.id and peer.name == "bee"
        assert peer.address == peer_address_of(b.address)
        assert peer.public_key == b.identity.public_key
        # A asks B (B answers as a worker) ...
        stats = await a.controller.get_remote_stats(b.id)
        assert stats.node_id == b.id and stats.node_name == "beta"
        # ... and over the same connection B asks A (A answers as a worker).
        await eventually(lambda: b.transport.connection(a.id) is not None)
        back = await b.controller.get_remote_stats(a.id)
        assert back.node_name == "alpha"
        rtt = await a.controller.ping_peer(b.id)
        assert rtt > 0
        stored = a.registry.get(b.id)
        assert stored is not None and stored.ping_ms == pytest.approx(rtt)
        assert a.controller.pending_count == 0 and b.controller.pending_count == 0


async def test_add_peer_with_wrong_pinned_key_stores_nothing(tmp_path: Path) -> None:
    other = NodeManager(tmp_path / "x" / "k", tmp_path / "x" / "n.json")
    other.generate("impostor")
    async with (
        Node(tmp_path / "a", config=LOOPBACK) as a,
        Node(tmp_path / "b", config=LOOPBACK) as b,
    ):
        wrong = other.require_identity().public_key
        with pytest.raises(ConnectError):
            await a.add_peer(b.address, public_key=wrong)
        assert a.registry.get(b.id) is None


async def test_close_disconnects_gracefully_and_flushes_registry(tmp_path: Path) -> None:
    async with Node(tmp_path / "b", config=LOOPBACK, name="beta") as b:
        a = Node(tmp_path / "a", config=LOOPBACK, name="alpha")
        await a.start()
        await a.add_peer(b.address, name="bee")
        await eventually(lambda: (p := b.registry.get(a.id)) is not None and p.connected)
        a_id = a.id
        await a.close()
        # B heard the goodbye: A is no longer connected there
        await eventually(lambda: b.transport.connection(a_id) is None)
        rec = b.registry.get(a_id)
        assert rec is not None and not rec.connected
    # A's peers.json holds B with its dialled address and local name
    doc = json.loads((tmp_path / "a" / "peers.json").read_text())
    assert [(p["name"], p["publicKey"] != "") for p in doc] == [("bee", True)]


async def test_allowlist_mode_refuses_unknown_keys(tmp_path: Path) -> None:
    friend_cfg = tmp_path / "friend"
    async with Node(friend_cfg, config=LOOPBACK, name="friend") as friend:
        friend_key = friend.identity.public_key
    guarded_cfg = NodeConfig(listen="127.0.0.1:0", auth_mode="allowlist", allowlist=(friend_key,))
    async with (
        Node(tmp_path / "guarded", config=guarded_cfg) as guarded,
        Node(tmp_path / "stranger", config=LOOPBACK) as stranger,
        Node(friend_cfg, config=LOOPBACK) as friend2,
    ):
        with pytest.raises(ConnectError):
            await stranger.add_peer(guarded.address)
        peer = await friend2.add_peer(guarded.address)
        assert peer.id == guarded.id


async def test_miner_through_the_mesh_and_no_process_left(tmp_path: Path) -> None:
    script = tmp_path / "miner.py"
    script.write_text(MINER, encoding="utf-8")
    worker_cfg = NodeConfig(
        listen="127.0.0.1:0",
        miners={
            "fake": MinerConfig(
                command=(sys.executable, "-u", str(script)),
                stats_regex=r"speed (?P<hashrate>[\d.]+) H/s accepted (?P<shares>\d+)",
            )
        },
    )
    async with Node(tmp_path / "ctl", config=LOOPBACK) as ctl:
        worker = Node(
            tmp_path / "w", config=worker_cfg, name="w", controllers=[ctl.identity.public_key]
        )
        await worker.start()
        try:
            await ctl.add_peer(worker.address)
            name = await ctl.controller.start_remote_miner(worker.id, "fake", config={"x": 1})
            assert name == "fake"

            async def logs() -> list[str]:
                return await ctl.controller.get_remote_logs(worker.id, name, 100)

            lines: list[str] = []
            for _ in range(200):
                lines = await logs()
                if any(line.startswith("speed") for line in lines):
                    break
                await asyncio.sleep(0.02)
            pid = int(lines[0].split()[1])
            assert pid_alive(pid)
            stats = await ctl.controller.get_remote_stats(worker.id)
            assert stats.miners is not None and stats.miners[0].name == "fake"
            assert stats.miners[0].hashrate > 100
            # the deployed config reached the miner's run directory under the data dir
            run_config = tmp_path / "w" / "miners" / "fake" / "config.json"
            assert json.loads(run_config.read_text()) == {"x": 1}
        finally:
            await worker.close()  # closing the worker node stops its miners
        await eventually(lambda: not pid_alive(pid))


async def test_deploy_profile_between_nodes(tmp_path: Path) -> None:
    async with (
        Node(tmp_path / "a", config=LOOPBACK) as a,
        Node(tmp_path / "b", config=LOOPBACK) as b,
    ):
        await a.add_peer(b.address)
        b.policy.grant(a.identity.public_key)  # b lets a control it (by a's key)
        password = await a.controller.bundle_password(b.id)
        bundle = create_profile_bundle(b'{"id":"p1","threads":3}', "p1", password)
        assert await a.controller.deploy(b.id, bundle) == "p1"
        saved = json.loads((tmp_path / "b" / "profiles" / "p1.json").read_text())
        assert saved == {"id": "p1", "threads": 3}


async def test_connect_by_reference_or_address(tmp_path: Path) -> None:
    async with (
        Node(tmp_path / "a", config=LOOPBACK) as a,
        Node(tmp_path / "b", config=LOOPBACK, name="beta") as b,
    ):
        with pytest.raises(UnknownPeerError):
            await a.connect("beta")  # not known yet, and not an address
        peer, conn = await a.connect(b.address)  # an address works without a record
        assert conn.peer_id == b.id
        assert peer is not None and peer.id == b.id  # the gate registered it
        peer2, conn2 = await a.connect(b.id[:6])
        assert peer2 is not None and conn2.peer_id == b.id


def _peer(pid: str, name: str = "", address: str = "") -> Peer:
    return Peer(id=pid, name=name, address=address)


def test_resolve_peer_rules() -> None:
    peers = [
        _peer("aa11" + "0" * 28, "alpha", "10.0.0.1:9091"),
        _peer("aa22" + "0" * 28, "beta", "wss://b.example:443/ws"),
        _peer("bb33" + "0" * 28, "gamma"),
    ]
    assert resolve_peer(peers, "aa11" + "0" * 28).name == "alpha"  # exact id
    assert resolve_peer(peers, "bb").name == "gamma"  # unique prefix
    assert resolve_peer(peers, "BB3").name == "gamma"  # ids are hex: case-insensitive
    assert resolve_peer(peers, "beta").id.startswith("aa22")  # name
    assert resolve_peer(peers, "ws://10.0.0.1:9091/ws").name == "alpha"  # address, URI form
    assert resolve_peer(peers, "10.0.0.1:9091").name == "alpha"  # address, Go form
    assert resolve_peer(peers, "wss://b.example:443/ws").name == "beta"
    with pytest.raises(AmbiguousPeerError) as amb:
        resolve_peer(peers, "aa")
    assert len(amb.value.candidates) == 2
    with pytest.raises(UnknownPeerError):
        resolve_peer(peers, "zz")
    with pytest.raises(UnknownPeerError):
        resolve_peer(peers, "")
    with pytest.raises(UnknownPeerError):
        resolve_peer(peers, "x" * 1000)
    dup = [*peers, _peer("cc44" + "0" * 28, "alpha")]
    with pytest.raises(AmbiguousPeerError):
        resolve_peer(dup, "alpha")


def test_peer_address_forms() -> None:
    assert peer_address_of("ws://127.0.0.1:9091/ws") == "127.0.0.1:9091"
    assert peer_address_of("ws://127.0.0.1:9091") == "127.0.0.1:9091"
    assert peer_address_of("127.0.0.1:9091") == "127.0.0.1:9091"
    assert peer_address_of("wss://h:1/ws") == "wss://h:1/ws"  # Go could not dial it as host:port
    assert peer_address_of("ws://h:1/other") == "ws://h:1/other"


async def test_watch_files_adopts_changes_from_other_processes(tmp_path: Path) -> None:
    from p2p.peers import PeerRegistry

    key = "A" * 43 + "="
    async with (
        Node(tmp_path / "srv", config=LOOPBACK, watch_files=True, watch_interval=0.05) as srv,
        Node(tmp_path / "other", config=LOOPBACK, name="other") as other,
    ):
        # another process (here: a second registry on the same file) adds a peer and a key
        outside = PeerRegistry(tmp_path / "srv" / "peers.json", save_delay=0)
        outside.add(
            Peer(
                id=other.id,
                name="o",
                public_key=other.identity.public_key,
                address=peer_address_of(other.address),
            )
        )
        outside.allow_public_key(key)
        outside.close()
        await eventually(lambda: srv.registry.get(other.id) is not None)
        await eventually(lambda: srv.registry.allowed_public_keys() == [key])
        # the running node can use what was added: auto-connect by id
        assert await srv.controller.ping_peer(other.id) > 0
        # a later save by the node keeps the externally added peer
        await srv.registry.flush()
        on_disk = json.loads((tmp_path / "srv" / "peers.json").read_text())
        assert other.id in {p["id"] for p in on_disk}
        # revoke outside: adopted
        outside = PeerRegistry(tmp_path / "srv" / "peers.json", save_delay=0)
        outside.revoke_public_key(key)
        outside.close()
        await eventually(lambda: srv.registry.allowed_public_keys() == [])
        # removal outside is adopted once the peer is no longer connected
        await srv.transport.disconnect(other.id)
        await eventually(lambda: not (p := srv.registry.get(other.id)) or not p.connected)
        outside = PeerRegistry(tmp_path / "srv" / "peers.json", save_delay=0)
        outside.remove(other.id)
        outside.close()
        await eventually(lambda: srv.registry.get(other.id) is None)


def test_readme_node_example_runs(tmp_path: Path) -> None:
    import re
    import subprocess

    readme = Path(__file__).resolve().parents[1] / "README.md"
    section = readme.read_text(encoding="utf-8").split("## Node and the p2p-node command", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    example = next(b for b in blocks if "# prints: bee bee True" in b)  # the two-node one
    script = tmp_path / "example.py"
    script.write_text(example, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["bee bee True"]


async def test_deployed_miner_runs_and_survives_a_restart(tmp_path: Path) -> None:
    from p2p.controller.bundles import create_miner_bundle

    binary = tmp_path / "tiny-miner"
    binary.write_text("#!/bin/sh\necho deployed miner up\nexec sleep 30\n", encoding="utf-8")
    async with Node(tmp_path / "ctl", config=LOOPBACK) as ctl:
        worker = Node(tmp_path / "w", config=LOOPBACK, controllers=[ctl.identity.public_key])
        await worker.start()
        try:
            await ctl.add_peer(worker.address)
            password = await ctl.controller.bundle_password(worker.id)
            bundle = create_miner_bundle(binary, None, "tiny", password)
            assert await ctl.controller.deploy(worker.id, bundle) == "tiny"
        finally:
            await worker.close()
        # a fresh process on the same data dir still knows the deployed miner type
        worker = Node(tmp_path / "w", config=LOOPBACK, controllers=[ctl.identity.public_key])
        await worker.start()
        try:
            await ctl.add_peer(worker.address)  # it listens on a new ephemeral port
            name = await ctl.controller.start_remote_miner(worker.id, "tiny", config={})
            for _ in range(200):
                lines = await ctl.controller.get_remote_logs(worker.id, name, 10)
                if lines:
                    break
                await asyncio.sleep(0.02)
            assert lines == ["deployed miner up"]
            await ctl.controller.stop_remote_miner(worker.id, name)
        finally:
            await worker.close()


async def test_tls_node(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_cfg = NodeConfig(listen="127.0.0.1:0", tls_cert=cert, tls_key=key)
    client_cfg = NodeConfig(listen="127.0.0.1:0", tls_ca=cert)
    async with (
        Node(tmp_path / "s", config=server_cfg) as server,
        Node(tmp_path / "c", config=client_cfg) as client,
        Node(tmp_path / "u", config=LOOPBACK) as untrusting,
    ):
        assert server.address.startswith("wss://127.0.0.1:")
        peer = await client.add_peer(server.address)
        assert peer.address == server.address  # wss:// is kept whole
        assert await client.controller.ping_peer(peer.id) > 0
        with pytest.raises(ConnectError):
            await untrusting.add_peer(server.address)  # no CA: certificate refused


async def test_metrics_exporter(tmp_path: Path) -> None:
    pytest.importorskip("prometheus_client")
    import urllib.request

    from p2p.controller import _metrics

    async with (
        Node(tmp_path / "a", config=LOOPBACK) as a,
        Node(tmp_path / "b", config=LOOPBACK) as b,
    ):
        server = _metrics.start(a, "127.0.0.1:0")
        try:
            url = f"http://127.0.0.1:{server.port}/metrics"

            def scrape() -> dict[str, float]:
                with urllib.request.urlopen(url, timeout=5) as resp:
                    text = resp.read().decode()
                return {
                    line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                    for line in text.splitlines()
                    if line.startswith("p2p_")
                }

            before = await asyncio.to_thread(scrape)
            assert before["p2p_connections"] == 0 and before["p2p_known_peers"] == 0
            await a.add_peer(b.address)
            await a.controller.ping_peer(b.id)
            after = await asyncio.to_thread(scrape)
            assert after["p2p_connections"] == 1 and after["p2p_known_peers"] == 1
            assert after['p2p_connection_messages{direction="out"}'] >= 1
            assert after["p2p_handshakes_completed_total"] == 1
            assert 'p2p_dropped_frames_total{reason="decrypt"}' in after
        finally:
            server.shutdown()


async def test_trust_on_first_use_keeps_the_first_key(tmp_path: Path) -> None:
    async with Node(tmp_path / "a", config=LOOPBACK) as a:
        async with Node(tmp_path / "b", config=LOOPBACK) as b:
            first = await a.add_peer(b.address)
            address, port = b.address, b.transport.port
        # another node (another key) now answers at the same address
        impostor_cfg = NodeConfig(listen=f"127.0.0.1:{port}")
        async with Node(tmp_path / "impostor", config=impostor_cfg) as impostor:
            assert impostor.address == address
            with pytest.raises(ConnectError):
                await a.add_peer(address)
            assert a.registry.get(impostor.id) is None
            # after removing the old record the new key is accepted
            a.registry.remove(first.id)
            assert (await a.add_peer(address)).id == impostor.id


async def test_running_nodes_tune_the_collector_and_the_last_restores_it(
    tmp_path: Path,
) -> None:
    """Issue 14: a node raises the young-generation threshold (fewer collections with
    thousands of connections) and freezes its start-up heap; closing undoes both."""
    import gc

    from p2p.controller._gc import NODE_GC_THRESHOLD

    before = gc.get_threshold()
    assert before != NODE_GC_THRESHOLD
    a = Node(tmp_path / "a", config=LOOPBACK)
    b = Node(tmp_path / "b", config=LOOPBACK)
    await a.start()
    assert gc.get_threshold() == NODE_GC_THRESHOLD and gc.get_freeze_count() > 0
    await b.start()
    await a.close()
    assert gc.get_threshold() == NODE_GC_THRESHOLD  # b still runs
    await b.close()
    await b.close()  # idempotent: releases once
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    async with Node(tmp_path / "c", config=LOOPBACK, gc_threshold=None):
        assert gc.get_threshold() == before
