"""Faults: a worker process killed mid-request and restarted, connections dropped at
random, a data directory that cannot be written at save time, clocks that disagree."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import SOAK_SECONDS, report, until


def _peer_ids(path: Path) -> list[str]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [p["id"] for p in doc or [] if isinstance(p, dict)]


async def test_worker_killed_mid_request_then_restarted(p2p_serve, make_node, tmp_path) -> None:
    """kill -9 of a worker (the real ``p2p-node serve``) while a request waits on it: the
    caller fails at once with ConnectionLostError, not after the 30 s timeout. Restarted on
    the same data dir and port, the worker has the same identity and still knows the
    controller; the controller's next request reconnects by itself (key pinned)."""
    from p2p.controller.controller import ConnectionLostError

    wdir = tmp_path / "worker"
    worker = p2p_serve(wdir)
    wid = worker.info["id"]
    controller = await make_node("controller", controller={"stats_timeout": 30.0})
    await controller.add_peer(worker.address)
    assert (await controller.controller.get_remote_stats(wid)).node_id == wid
    # the worker writes peers.json debounced (5 s, as Go): wait until it is on disk
    await until(lambda: controller.id in _peer_ids(wdir / "peers.json"), 15, "peers saved")

    os.kill(worker.proc.pid, signal.SIGSTOP)  # the request will be in flight, unanswered
    loop = asyncio.get_running_loop()
    start = loop.time()
    request = asyncio.ensure_future(controller.controller.get_remote_stats(wid))
    await asyncio.sleep(0.5)
    assert not request.done()
    os.kill(worker.proc.pid, signal.SIGKILL)
    with pytest.raises(ConnectionLostError):
        await asyncio.wait_for(request, 30)
    failed_after = loop.time() - start
    worker.proc.wait(5)
    assert failed_after < 10.0, f"caller waited {failed_after:.1f} s (timeout is 30 s)"

    port = worker.address.rsplit(":", 1)[1].split("/")[0]
    again = p2p_serve(wdir, "--listen", f"127.0.0.1:{port}")
    assert again.info["id"] == wid
    assert again.info["publicKey"] == worker.info["publicKey"]
    start = loop.time()
    stats = await controller.controller.get_remote_stats(wid)  # auto-reconnect, pinned key
    reconnect_ms = (loop.time() - start) * 1000
    assert stats.node_id == wid
    assert controller.id in _peer_ids(wdir / "peers.json")
    report(
        "fault.kill9_restart",
        failed_after_ms=round(failed_after * 1000 - 500, 1),
        reconnect_and_reply_ms=round(reconnect_ms, 1),
        request_timeout_s=30,
    )


@pytest.mark.soak
async def test_random_connection_drops(make_node) -> None:
    """Continuous requests from a controller to three workers while connections are
    aborted at random on either side: every request either succeeds or fails fast with a
    typed error (no timeouts), and the controller reconnects on the next request."""
    from p2p.controller.controller import RequestError, RequestTimeout

    seconds = min(SOAK_SECONDS, 8.0)
    controller = await make_node("controller", controller={"stats_timeout": 5.0})
    workers = [await make_node(f"worker-{i}") for i in range(3)]
    for w in workers:
        await controller.add_peer(w.address)
    rng = random.Random(7)
    counts = {"ok": 0, "lost": 0, "timeout": 0, "other": 0, "drops": 0}
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def client(w: Any) -> None:
        while loop.time() < end:
            try:
                stats = await controller.controller.get_remote_stats(w.id)
                assert stats.node_id == w.id
                counts["ok"] += 1
                # stay under the receiver's rate limit (50/s per connection, as Go's): over
                # it, frames are dropped silently and requests time out by design
                await asyncio.sleep(0.05)
            except RequestTimeout:
                counts["timeout"] += 1
            except RequestError:
                counts["lost"] += 1
                await asyncio.sleep(0.01)

    async def dropper() -> None:
        while loop.time() < end:
            await asyncio.sleep(rng.uniform(0.05, 0.3))
            w = rng.choice(workers)
            side = rng.choice(
                (controller.transport.connection(w.id), w.transport.connection(controller.id))
            )
            if side is not None:
                side.abort()
                counts["drops"] += 1

    await asyncio.gather(*(client(w) for w in workers for _ in range(2)), dropper())
    for w in workers:  # all reachable again
        assert (await controller.controller.get_remote_stats(w.id)).node_id == w.id
    rate_drops = sum(w.transport.drops["rate"] for w in workers)
    report("fault.random_drops", seconds=seconds, rate_limited=rate_drops, **counts)
    assert counts["timeout"] == 0
    assert counts["drops"] > 5 and counts["ok"] > counts["drops"]


# --- the data directory at save time ---------------------------------------------------------


def test_peers_save_into_unwritable_dir_keeps_state(tmp_path) -> None:
    """The data dir replaced by a file (ENOTDIR: works as root, unlike chmod): save raises
    a clear PeerStoreError, the registry keeps its state, the next save succeeds."""
    from p2p.peers import Peer, PeerRegistry, PeerStoreError

    data = tmp_path / "data"
    reg = PeerRegistry(data / "peers.json", save_delay=3600.0)
    reg.add(Peer(id="a" * 32, name="first"))
    reg.save()
    data.rename(tmp_path / "data.away")
    data.write_text("not a directory")
    reg.add(Peer(id="b" * 32, name="second"))
    with pytest.raises(PeerStoreError, match=r"could not write .*peers\.json"):
        reg.save()
    assert reg.get("b" * 32) is not None and reg.dirty
    data.unlink()
    (tmp_path / "data.away").rename(data)
    reg.save()
    assert sorted(_peer_ids(data / "peers.json")) == ["a" * 32, "b" * 32]
    assert not list(data.glob("*.tmp"))
    reg.close()


def test_identity_write_into_unwritable_dir_keeps_identity(tmp_path) -> None:
    from p2p.identity import IdentityStorageError, NodeManager

    d = tmp_path / "id"
    manager = NodeManager(d / "node" / "private.key", d / "node.json")
    first = manager.generate("first")
    (d / "node").rename(tmp_path / "away")
    (d / "node").write_text("file")
    with pytest.raises(IdentityStorageError):
        manager.generate("second")
    assert manager.identity == first
    (d / "node").unlink()
    (tmp_path / "away").rename(d / "node")
    assert NodeManager(d / "node" / "private.key", d / "node.json").identity == first


FULL_DISK = r"""
import resource, signal, sys, json
from pathlib import Path
from p2p.peers import Peer, PeerRegistry, PeerStoreError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
path = Path(sys.argv[1])
reg = PeerRegistry(path, save_delay=3600.0)
for i in range(20):
    reg.add(Peer(id=f"{i:032x}", name=f"peer-{i}"))
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (512, hard))  # a disk with 512 bytes free
out = {}
try:
    reg.save()
    out["full"] = "saved"
except PeerStoreError as e:
    out["full"] = str(e)
out["kept"] = len(reg.peers())
out["tmp_left"] = sorted(p.name for p in path.parent.glob("*.tmp"))
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
reg.save()
out["after"] = len(json.loads(path.read_text()))
print(json.dumps(out))
"""


def test_peers_save_on_a_full_disk(tmp_path) -> None:
    """A full disk (RLIMIT_FSIZE in a child process: writes fail with EFBIG): clear error,
    no temp file left, nothing lost, the next save writes everything."""
    path = tmp_path / "peers.json"
    proc = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "File too large" in out["full"], out
    assert out["kept"] == 20 and out["tmp_left"] == [] and out["after"] == 20


# --- clocks ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("skew", "answered"),
    [(0.0, True), (120.0, True), (-250.0, True), (400.0, False), (-3600.0, False)],
)
async def test_clock_skew(make_transport, make_node_manager, skew: float, answered: bool) -> None:
    """A receiver whose clock is ``skew`` seconds off: within the 300 s ts window it
    answers; beyond it drops the messages (counted as stale_ts) and the sender sees no
    reply — the honest-Go-peer-with-a-broken-clock case."""
    from p2p.transport import Transport, envelope
    from pytest_p2p.transport_fixtures import fast_transport_config

    sender = await make_transport("sender")
    skewed = Transport(
        make_node_manager("skewed"),
        None,
        fast_transport_config(),
        wall_clock=lambda: time.time() + skew,
    )
    await skewed.start()
    try:
        pongs: list[Any] = []
        sender.on_message(lambda _c, m: pongs.append(m) if m.type == envelope.PONG else None)
        conn = await sender.connect(skewed.address)
        await conn.send(envelope.ping(sender.node_manager.identity.id, conn.peer_id, 1))
        if answered:
            await until(lambda: bool(pongs), 3, "pong")
            assert skewed.drops["stale_ts"] == 0
        else:
            await until(lambda: skewed.drops["stale_ts"] >= 1, 3, "stale_ts drop")
            await asyncio.sleep(0.3)
            assert not pongs
    finally:
        await skewed.stop()
