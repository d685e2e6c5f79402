"""Controller <-> Worker over real transports on 127.0.0.1."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from p2p.controller import bundles
from p2p.controller.authz import Policy
from p2p.controller.controller import (
    ConnectionLostError,
    Controller,
    ControllerConfig,
    MinerCommandError,
    PeerNotFoundError,
    RequestError,
    RequestTimeout,
    UnauthorizedError,
    UnexpectedResponseError,
)
from p2p.controller.errors import ControllerError
from p2p.controller.miners import JsonFileStats, MinerSpec, ProcessMinerManager
from p2p.controller.payloads import StatsPayload
from p2p.controller.profiles import DirectoryProfileManager
from p2p.controller.worker import Worker
from p2p.identity import NodeManager
from p2p.peers import Peer, PeerRegistry
from p2p.transport import PeerConnection, Transport
from p2p.transport.errors import ProtocolError
from p2p.transport.messages import Message, MessageType
from pytest_p2p.transport_fixtures import eventually

MINER_SCRIPT = """
import json, os, sys, time
print("miner up, pool=" + str(json.load(open(os.environ["P2P_MINER_CONFIG"])).get("pool")),
      flush=True)
with open(os.environ["P2P_MINER_STATS"] + ".tmp", "w") as fh:
    json.dump({"hashrate": 321.5, "shares": 4, "pool": "p:1", "algorithm": "rx/0"}, fh)
os.replace(os.environ["P2P_MINER_STATS"] + ".tmp", os.environ["P2P_MINER_STATS"])
print("hashing", flush=True)
time.sleep(60)
"""

STUBBORN_SCRIPT = """
import signal, time
signal.signal(signal.SIGTERM, lambda *a: print("TERM ignored", flush=True))
print("running", flush=True)
while True:
    time.sleep(0.05)
"""


@dataclass
class Node:
    transport: Transport
    worker: Worker | None
    miners: ProcessMinerManager | None = None
    profiles: DirectoryProfileManager | None = None

    @property
    def id(self) -> str:
        identity = self.transport.node_manager.identity
        assert identity is not None
        return identity.id


@dataclass
class Mesh:
    controller: Controller
    registry: PeerRegistry
    transport: Transport
    workers: list[Node] = field(default_factory=list)


MakeMesh = Callable[..., Awaitable[Mesh]]


def logged(node: Node, miner: str) -> int:
    """How many output lines the worker has captured from `miner`."""
    assert node.miners is not None
    return len(node.miners.get_miner(miner).log_entries())


@pytest.fixture
async def mesh(
    make_transport: Callable[..., Awaitable[Transport]],
    make_node_manager: Callable[[str], NodeManager],
    tmp_path: Path,
) -> Any:
    """``await mesh(n_workers, connect=True, serve=True, config=None, **transport_changes)``."""
    made: list[Mesh] = []

    async def build(
        n: int = 1,
        *,
        connect: bool = True,
        serve: bool = True,
        config: ControllerConfig | None = None,
        **changes: Any,
    ) -> Mesh:
        registry = PeerRegistry(tmp_path / f"peers-{len(made)}.json", persist=False)
        ctl_transport = await make_transport("controller", registry, **changes)
        controller = Controller(ctl_transport.node_manager, registry, ctl_transport, config)
        m = Mesh(controller, registry, ctl_transport)
        made.append(m)
        script = tmp_path / "miner.py"
        script.write_text(MINER_SCRIPT)
        stubborn = tmp_path / "stubborn.py"
        stubborn.write_text(STUBBORN_SCRIPT)
        for i in range(n):
            t = await make_transport(f"worker-{i}", **changes)
            node = Node(t, None)
            if serve:
                base = tmp_path / f"w{len(made)}-{i}"
                spec = MinerSpec(
                    [sys.executable, "-u", str(script)], stats=JsonFileStats(), stop_grace=2
                )
                slow = MinerSpec([sys.executable, "-u", str(stubborn)], stop_grace=3)
                node.miners = ProcessMinerManager({"sim": spec, "stubborn": slow}, base / "run")
                node.profiles = DirectoryProfileManager(base / "profiles")
                # the worker grants control to this mesh's controller (by its key)
                ctl_key = ctl_transport.node_manager.require_identity().public_key
                node.worker = Worker(
                    t.node_manager,
                    t,
                    node.miners,
                    node.profiles,
                    data_dir=base / "data",
                    policy=Policy([ctl_key]),
                )
            identity = t.node_manager.identity
            assert identity is not None
            registry.add(
                Peer(
                    id=identity.id,
                    name=identity.name,
                    public_key=identity.public_key,
                    address=t.address,
                )
            )
            if connect:
                await controller.connect_to_peer(node.id)
            m.workers.append(node)
        return m

    yield build
    for m in made:
        await m.controller.close()
        for node in m.workers:
            if node.miners is not None:
                await node.miners.close()


async def test_every_operation(mesh: MakeMesh) -> None:
    m = await mesh(1)
    ctl, w = m.controller, m.workers[0]

    rtt = await ctl.ping_peer(w.id)
    assert rtt > 0
    peer = m.registry.get(w.id)
    assert peer is not None and peer.ping_ms == rtt

    stats = await ctl.get_remote_stats(w.id)
    assert isinstance(stats, StatsPayload)
    assert stats.node_id == w.id and stats.node_name == "worker-0" and stats.miners == []

    name = await ctl.start_remote_miner(w.id, "sim", config={"pool": "cfg-pool"})
    assert name == "sim"
    await eventually(
        lambda: w.miners is not None and len(w.miners.get_miner("sim").log_entries()) >= 2
    )
    stats = await ctl.get_remote_stats(w.id)
    assert stats.miners is not None
    (item,) = stats.miners
    assert (item.name, item.type, item.hashrate, item.shares) == ("sim", "sim", 321.5, 4)
    assert (item.pool, item.algorithm) == ("p:1", "rx/0")

    lines = await ctl.get_remote_logs(w.id, "sim", 10)
    assert lines == ["miner up, pool=cfg-pool", "hashing"]
    assert await ctl.get_remote_logs(w.id, "sim", 1) == ["hashing"]
    future = datetime.now(timezone.utc).replace(year=datetime.now().year + 1)
    assert await ctl.get_remote_logs(w.id, "sim", 10, since=future) == []

    await ctl.stop_remote_miner(w.id, "sim")
    assert w.miners is not None and w.miners.list_miners() == []
    assert ctl.pending_count == 0


async def test_error_paths(mesh: MakeMesh) -> None:
    m = await mesh(1)
    ctl, w = m.controller, m.workers[0]
    with pytest.raises(MinerCommandError, match="miner start failed: unknown miner type: nope"):
        await ctl.start_remote_miner(w.id, "nope", config={})
    with pytest.raises(MinerCommandError, match="miner stop failed: miner not found: ghost"):
        await ctl.stop_remote_miner(w.id, "ghost")
    with pytest.raises(ProtocolError) as info:
        await ctl.get_remote_logs(w.id, "ghost", 10)
    assert info.value.code == 1004
    assert info.value.message == "Worker.handleGetLogs: miner not found: ghost"
    with pytest.raises(ProtocolError, match="profile not found: missing"):
        await ctl.start_remote_miner(w.id, "sim", profile_id="missing")
    with pytest.raises(ControllerError, match="miner type is required"):
        await ctl.start_remote_miner(w.id, "")
    with pytest.raises(PeerNotFoundError, match="peer not found: 00ff"):
        await ctl.get_remote_stats("00ff")


async def test_profile_by_id(mesh: MakeMesh) -> None:
    m = await mesh(1)
    ctl, w = m.controller, m.workers[0]
    assert w.profiles is not None
    w.profiles.save_profile({"id": "main", "pool": "profile-pool"})
    assert await ctl.start_remote_miner(w.id, "sim", profile_id="main") == "sim"
    await eventually(
        lambda: w.miners is not None and len(w.miners.get_miner("sim").log_entries()) >= 2
    )
    logs = await ctl.get_remote_logs(w.id, "sim", 10, since=1)
    assert logs == ["miner up, pool=profile-pool", "hashing"]


async def test_auto_connect(mesh: MakeMesh) -> None:
    m = await mesh(2, connect=False)
    assert m.transport.connected_peers == []
    results = await asyncio.gather(*(m.controller.get_remote_stats(w.id) for w in m.workers * 5))
    assert [r.node_id for r in results] == [w.id for w in m.workers * 5]
    assert sorted(m.transport.connected_peers) == sorted(w.id for w in m.workers)
    await eventually(lambda: len(m.registry.connected_peers()) == 2)


async def test_timeout_records_and_late_reply_is_dropped(mesh: MakeMesh) -> None:
    m = await mesh(1, serve=False, config=ControllerConfig(stats_timeout=0.3))
    w = m.workers[0]
    requests: list[tuple[PeerConnection, Message]] = []
    w.transport.on_message(lambda conn, msg: requests.append((conn, msg)))
    before = m.registry.get(w.id)
    assert before is not None
    with pytest.raises(RequestTimeout) as info:
        await m.controller.get_remote_stats(w.id)
    assert isinstance(info.value, TimeoutError)
    after = m.registry.get(w.id)
    assert after is not None and after.score == before.score - 3
    assert m.controller.pending_count == 0
    # The reply arrives after the waiter gave up: dropped, nothing breaks.
    conn, req = requests[0]
    await conn.send(req.reply(MessageType.STATS, StatsPayload(w.id, "late", [], 1)))
    await asyncio.sleep(0.1)
    assert m.controller.pending_count == 0
    assert m.transport.connection(w.id) is not None


async def test_reply_only_from_addressed_peer(mesh: MakeMesh) -> None:
    m = await mesh(2, serve=False, config=ControllerConfig(stats_timeout=1.0))
    a, b = m.workers
    seen: list[Message] = []
    a.transport.on_message(lambda conn, msg: seen.append(msg))
    task = asyncio.create_task(m.controller.get_remote_stats(a.id))
    await eventually(lambda: bool(seen))
    # b forges a's answer: same replyTo, sent on b's own connection.
    conn_b = b.transport.connection(m.transport.node_manager.identity.id)  # type: ignore[union-attr]
    assert conn_b is not None
    await conn_b.send(seen[0].reply(MessageType.STATS, StatsPayload(a.id, "forged", [], 0)))
    with pytest.raises(RequestTimeout):
        await task
    # a itself answering in time is accepted.
    seen.clear()
    task = asyncio.create_task(m.controller.get_remote_stats(a.id))
    await eventually(lambda: bool(seen))
    conn_a = a.transport.connection(m.transport.node_manager.identity.id)  # type: ignore[union-attr]
    assert conn_a is not None
    await conn_a.send(seen[0].reply(MessageType.STATS, StatsPayload(a.id, "real", [], 0)))
    assert (await task).node_name == "real"


async def test_thousand_concurrent_requests_correlated(mesh: MakeMesh) -> None:
    # 100 requests per connection: within the reference's burst of 100 frames, but the
    # extra headroom keeps a keepalive ping from tipping a connection over it.
    m = await mesh(10, rate_burst=400)
    ctl = m.controller

    async def logs(w: Node, i: int) -> str:
        try:
            await ctl.get_remote_logs(w.id, f"miner-{w.id[:6]}-{i}", 1)
        except ProtocolError as exc:
            return exc.message
        raise AssertionError("unknown miner answered")

    jobs: list[Awaitable[Any]] = []
    expected: list[Any] = []
    for w in m.workers:
        for i in range(100):
            if i % 2:
                jobs.append(logs(w, i))
                expected.append(f"Worker.handleGetLogs: miner not found: miner-{w.id[:6]}-{i}")
            else:
                jobs.append(ctl.get_remote_stats(w.id))
                expected.append(w.id)
    results = await asyncio.gather(*jobs)
    got = [r.node_id if isinstance(r, StatsPayload) else r for r in results]
    assert len(got) == 1000
    assert got == expected
    assert ctl.pending_count == 0


async def test_worker_dying_mid_request_fails_fast(mesh: MakeMesh) -> None:
    m = await mesh(1, serve=False)  # default 30 s miner timeout
    w = m.workers[0]
    received = asyncio.Event()
    w.transport.on_message(lambda conn, msg: received.set())
    task = asyncio.create_task(m.controller.start_remote_miner(w.id, "sim", config={}))
    await asyncio.wait_for(received.wait(), 5)
    for conn in w.transport.connections():
        conn.abort()  # the worker's TCP connection drops, no goodbye
    with pytest.raises(ConnectionLostError):
        await asyncio.wait_for(task, 10)  # well inside the 30 s request timeout
    assert m.controller.pending_count == 0


async def test_disconnect_fails_pending_and_reconnects(mesh: MakeMesh) -> None:
    m = await mesh(1, serve=False)
    w = m.workers[0]
    got = asyncio.Event()
    w.transport.on_message(lambda conn, msg: got.set())
    task = asyncio.create_task(m.controller.get_remote_logs(w.id, "x", 1))
    await asyncio.wait_for(got.wait(), 5)
    await m.controller.disconnect_from_peer(w.id)
    with pytest.raises(ConnectionLostError):
        await asyncio.wait_for(task, 5)
    await eventually(lambda: m.transport.connection(w.id) is None)
    conn = await m.controller.connect_to_peer(w.id)
    assert conn.peer_id == w.id and not conn.closed


async def test_get_all_stats_reports_failures(mesh: MakeMesh) -> None:
    m = await mesh(2, config=ControllerConfig(stats_timeout=0.5))
    good, bad = m.workers
    assert bad.worker is not None
    bad.worker.detach()  # connected but silent
    await eventually(lambda: len(m.registry.connected_peers()) == 2)
    result = await m.controller.get_all_stats()
    assert list(result) == [good.id]
    assert result[good.id].node_id == good.id
    assert list(result.errors) == [bad.id]
    assert isinstance(result.errors[bad.id], RequestTimeout)


async def test_deploy_profile_and_miner(mesh: MakeMesh, tmp_path: Path) -> None:
    m = await mesh(1)
    ctl, w = m.controller, m.workers[0]
    assert w.profiles is not None
    password = await ctl.bundle_password(w.id)

    profile = bundles.create_profile_bundle(b'{"pool": "deployed-pool"}', "prof", password)
    assert await ctl.deploy(w.id, profile) == "prof"
    assert w.profiles.get_profile("prof") == {"pool": "deployed-pool", "id": "prof"}

    exe = tmp_path / "deployed-miner"
    exe.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            """
            import json, os, time
            cfg = json.load(open(os.environ["P2P_MINER_CONFIG"]))
            print("deployed miner on " + cfg["pool"], flush=True)
            time.sleep(60)
            """
        )
    )
    miner = bundles.create_miner_bundle(exe, None, "dm", password)
    assert await ctl.deploy(w.id, miner) == "dm"
    assert w.profiles.list_profiles() == ["prof"]

    assert await ctl.start_remote_miner(w.id, "dm", profile_id="prof") == "dm"
    await eventually(lambda: logged(w, "dm") >= 1)
    stats = await ctl.get_remote_stats(w.id)
    assert stats.miners is not None and [(i.name, i.type) for i in stats.miners] == [("dm", "dm")]
    assert await ctl.get_remote_logs(w.id, "dm", 5) == ["deployed miner on deployed-pool"]
    await ctl.stop_remote_miner(w.id, "dm")

    wrong = bundles.create_profile_bundle(b"{}", "wrong", "not-the-secret")
    with pytest.raises(ProtocolError, match="failed to extract profile bundle"):
        await ctl.deploy(w.id, wrong)


async def test_slow_request_does_not_block_the_next(mesh: MakeMesh) -> None:
    m = await mesh(1)
    ctl, w = m.controller, m.workers[0]
    assert await ctl.start_remote_miner(w.id, "stubborn", config={}) == "stubborn"
    await eventually(lambda: logged(w, "stubborn") >= 1)
    stopping = asyncio.create_task(ctl.stop_remote_miner(w.id, "stubborn"))
    await eventually(lambda: logged(w, "stubborn") >= 2)  # got SIGTERM, ignores it
    # The worker answers while the stop (SIGKILL after a 3 s grace) is still running.
    stats = await ctl.get_remote_stats(w.id)
    assert not stopping.done()
    assert stats.miners is not None and [i.name for i in stats.miners] == ["stubborn"]
    await stopping
    assert w.miners is not None and w.miners.list_miners() == []


async def test_deploy_too_large_is_refused_locally(mesh: MakeMesh, tmp_path: Path) -> None:
    m = await mesh(1)
    ctl, w = m.controller, m.workers[0]
    password = await ctl.bundle_password(w.id)
    big = tmp_path / "big-miner"
    big.write_bytes(b"\x7fELF" + bytes(900_000))
    bundle = bundles.create_miner_bundle(big, None, "big", password)
    with pytest.raises(RequestError, match="bundle too large for one message"):
        await ctl.deploy(w.id, bundle)
    # The connection is intact, and a bundle that fits (~800 KB as base64) goes through.
    fits = tmp_path / "fits-miner"
    fits.write_bytes(b"\x7fELF" + bytes(600_000))
    fitting = bundles.create_miner_bundle(fits, None, "fits", password)
    assert await ctl.deploy(w.id, fitting) == "fits"


# --- get_all_stats rounds: per-peer outcomes, the concurrency bound, cleanup ---------------

#: How each scripted worker answers a get_stats (serve=False workers, no Worker).
BEHAVIOURS = ("ok", "silent", "error", "unauthorized", "wrong_type", "bad_payload", "drop")


def script(node: Node, behaviour: str) -> list[Message]:
    """Make `node` answer every request as `behaviour` says; returns what it received."""
    got: list[Message] = []
    me = node.id

    def on_message(conn: PeerConnection, msg: Message) -> Awaitable[None] | None:
        if msg.type != MessageType.GET_STATS:
            return None  # e.g. the pong to the transport's probe ping
        got.append(msg)
        if behaviour == "silent":
            return None
        if behaviour == "drop":
            conn.abort()  # gone mid-round, no goodbye
            return None
        if behaviour == "ok":
            reply = msg.reply(MessageType.STATS, StatsPayload(me, f"n-{me[:4]}", [], len(got)))
        elif behaviour == "error":
            reply = msg.error_reply(me, 1004, "stats unavailable")
        elif behaviour == "unauthorized":
            reply = msg.error_reply(me, 1002, "not your worker")
        elif behaviour == "wrong_type":
            reply = msg.reply(MessageType.PONG, None)
        else:  # bad_payload: uptime must be an int
            reply = msg.reply(MessageType.STATS, {"nodeId": me, "uptime": "soon"})
        return conn.send(reply)

    node.transport.on_message(on_message)
    return got


def described(exc: BaseException) -> tuple[type[BaseException], str]:
    return type(exc), str(exc)


async def test_get_all_stats_mixed_round_matches_single_requests(mesh: MakeMesh) -> None:
    # two peers of each behaviour, shuffled by connection order; 3 requests in flight
    config = ControllerConfig(stats_timeout=1.0, max_concurrent_stats=3)
    m = await mesh(2 * len(BEHAVIOURS), serve=False, config=config)
    ctl = m.controller
    role = {}
    for i, node in enumerate(m.workers):
        role[node.id] = BEHAVIOURS[i % len(BEHAVIOURS)]
        script(node, role[node.id])
    await eventually(lambda: len(m.registry.connected_peers()) == len(m.workers))
    scores = {w.id: m.registry.get(w.id).score for w in m.workers}  # type: ignore[union-attr]

    result = await ctl.get_all_stats()

    ok = {pid for pid, b in role.items() if b == "ok"}
    assert set(result) == ok and set(result.stats) == ok
    assert set(result.errors) == set(role) - ok
    for pid in ok:
        assert result[pid].node_id == pid and result[pid].uptime == 1
    expected_types = {
        "silent": RequestTimeout,
        "error": ProtocolError,
        "unauthorized": UnauthorizedError,
        "wrong_type": UnexpectedResponseError,
        "bad_payload": UnexpectedResponseError,
        "drop": ConnectionLostError,
    }
    for pid, exc in result.errors.items():
        assert type(exc) is expected_types[role[pid]], (role[pid], exc)
    assert ctl.pending_count == 0
    for pid, b in role.items():  # a timeout costs 3 points, nothing else touches the score
        after = m.registry.get(pid)
        assert after is not None
        assert after.score == scores[pid] - (3 if b == "silent" else 0), b

    # every peer still connected answers a single request exactly as in the round
    for pid, exc in result.errors.items():
        if role[pid] == "drop":
            continue
        with pytest.raises(type(exc)) as info:
            await ctl.get_remote_stats(pid)
        assert described(info.value) == described(exc)
        if isinstance(exc, ProtocolError):
            assert (info.value.code, info.value.message) == (exc.code, exc.message)  # type: ignore[attr-defined]
    for pid in ok:
        assert (await ctl.get_remote_stats(pid)).node_id == pid
    assert ctl.pending_count == 0


async def test_get_all_stats_honours_the_concurrency_bound(mesh: MakeMesh) -> None:
    m = await mesh(7, serve=False, config=ControllerConfig(max_concurrent_stats=2))
    outstanding: list[tuple[PeerConnection, Message]] = []
    most = 0
    for node in m.workers:

        def on_message(conn: PeerConnection, msg: Message, me: str = node.id) -> None:
            nonlocal most
            if msg.type != MessageType.GET_STATS:
                return  # e.g. the pong to the transport's probe ping
            outstanding.append((conn, msg))
            most = max(most, len(outstanding))

        node.transport.on_message(on_message)
    await eventually(lambda: len(m.registry.connected_peers()) == 7)
    task = asyncio.create_task(m.controller.get_all_stats())
    answered = 0
    while answered < 7:
        await eventually(lambda: bool(outstanding))
        if answered < 5:  # the bound is reached while peers are left
            await eventually(lambda: len(outstanding) == 2)
        conn, msg = outstanding.pop(0)
        # replied after it left `outstanding`: the next request may only follow the reply
        await conn.send(msg.reply(MessageType.STATS, StatsPayload(msg.to, "x", [], 0)))
        answered += 1
    result = await task
    assert most == 2
    assert sorted(result) == sorted(w.id for w in m.workers) and not result.errors
    assert m.controller.pending_count == 0


async def test_get_all_stats_reconnects_a_peer_the_registry_calls_connected(
    mesh: MakeMesh,
) -> None:
    # the registry still flags a peer connected whose connection is gone: the round
    # auto-connects to it, as get_remote_stats does
    m = await mesh(2)
    a, b = m.workers
    await eventually(lambda: len(m.registry.connected_peers()) == 2)
    await m.controller.disconnect_from_peer(b.id)
    await eventually(lambda: m.transport.connection(b.id) is None)
    m.registry.set_connected(b.id, True)
    result = await m.controller.get_all_stats()
    assert sorted(result) == sorted([a.id, b.id]) and not result.errors
    assert m.transport.connection(b.id) is not None


async def test_get_all_stats_cancelled_mid_round_leaves_nothing_pending(mesh: MakeMesh) -> None:
    m = await mesh(3, serve=False, config=ControllerConfig(stats_timeout=60.0))
    seen = [script(node, "silent") for node in m.workers]
    await eventually(lambda: len(m.registry.connected_peers()) == 3)
    task = asyncio.create_task(m.controller.get_all_stats())
    await eventually(lambda: all(seen))
    assert m.controller.pending_count == 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert m.controller.pending_count == 0


async def test_get_all_stats_with_no_peers() -> None:
    registry = PeerRegistry(persist=False)

    class NoTransport:
        def on_message(self, handler: Any) -> Callable[[], None]:
            return lambda: None

    ctl = Controller(None, registry, NoTransport())  # type: ignore[arg-type]
    result = await ctl.get_all_stats()
    assert dict(result) == {} and result.errors == {}


class FakeClock:
    """A stand-in for the loop's clock and timers (no sleeping): `call_at` records."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[tuple[float, Callable[[], None], asyncio.TimerHandle]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, (), asyncio.get_running_loop())
        self.timers.append((when, callback, handle))
        return handle

    def fire(self) -> None:
        """Advance to the earliest live timer and run it."""
        live = [t for t in self.timers if not t[2].cancelled()]
        when, callback, handle = min(live, key=lambda t: t[0])
        self.timers.remove((when, callback, handle))
        self.now = max(self.now, when)
        callback()


async def test_one_timer_expires_a_round_in_send_order() -> None:
    from p2p.controller.controller import _Deadlines

    clock = FakeClock()
    loop = asyncio.get_running_loop()
    deadlines = _Deadlines(clock, 10.0)  # type: ignore[arg-type]
    futures = []
    for i in range(5):  # sent at t = 100, 101, ... 104
        clock.now = 100.0 + i
        f: asyncio.Future[Message] = loop.create_future()
        deadlines.add(f)
        futures.append(f)
    assert len(clock.timers) == 1 and clock.timers[0][0] == 110.0  # one timer, not five
    futures[0].set_result(Message.new(MessageType.PONG, "a", "b"))  # answered in time
    futures[2].cancel()  # its request gave up (e.g. the round was cancelled)
    clock.now = 109.0
    deadlines.add(loop.create_future())  # passes the done front: it is dropped
    assert len(deadlines) == 5
    clock.fire()  # t = 110: futures[0] was answered; the next deadline is 111
    assert not futures[1].done()
    assert [w for w, _, h in clock.timers if not h.cancelled()] == [111.0]
    clock.fire()  # t = 111: futures[1] expires
    assert isinstance(futures[1].exception(), TimeoutError)
    assert not futures[3].done()
    clock.fire()  # t = 113 (futures[2] is skipped, no timer at 112)
    assert clock.now == 113.0
    assert isinstance(futures[3].exception(), TimeoutError) and not futures[4].done()
    deadlines.close()
    assert all(h.cancelled() for _, _, h in clock.timers) and len(deadlines) == 0
    assert not futures[4].done()  # its owner cleans it up


async def test_get_all_stats_unexpected_error_ends_the_round_cleanly(mesh: MakeMesh) -> None:
    # a fault injected into the reply check (an error type the round does not collect):
    # the round raises it, and the requests still waiting are withdrawn, not left
    # pending without a timer
    m = await mesh(3, serve=False, config=ControllerConfig(stats_timeout=60.0))
    broken, silent, other = m.workers
    script(broken, "ok")
    script(silent, "silent")
    script(other, "silent")

    class Broken(Controller):
        def _check_reply(self, reply: Message, *args: Any) -> None:
            if reply.from_ == broken.id:
                raise RuntimeError("injected fault")
            super()._check_reply(reply, *args)

    ctl = Broken(m.transport.node_manager, m.registry, m.transport)
    await eventually(lambda: len(m.registry.connected_peers()) == 3)
    with pytest.raises(RuntimeError, match="injected fault"):
        await ctl.get_all_stats()
    await eventually(lambda: ctl.pending_count == 0)
    await ctl.close()
