"""Hold the line (issue 13, findings 3 and 4): peers that write and never read must not grow
a node's memory, before or after the handshake.

Each test runs a real ``p2p-node serve`` subprocess with its default limits and attacks it
from this process over raw TCP on 127.0.0.x, with a WebSocket client that speaks the
protocol byte for byte (websockets' sans-I/O client) but stops reading once it is in. The
node's resident memory is sampled from /proc while the attack runs; the bounds separate a
node that buffers for such peers (hundreds of MiB to GiBs) from one that closes them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_p2p.transport_fixtures import body, go_now
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from .conftest import report, until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MIB = 1 << 20
ATTACK_DEADLINE = 60.0
"""Generous: the node must have closed every stubborn socket well before this."""


def rss_of(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class RssPeak:
    """Samples a process's RSS every 20 ms until stopped; ``growth`` = peak - baseline."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = rss_of(pid)
        self.peak = self.baseline
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RssPeak:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._sample()

    def _sample(self) -> None:
        self.peak = max(self.peak, rss_of(self.pid))

    async def _run(self) -> None:
        while True:
            self._sample()
            await asyncio.sleep(0.02)

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / MIB


class StubbornClient:
    """A WebSocket client on a raw stream that, once in, writes and never reads.

    (After the last read the stream's reader still buffers up to 128 KiB, then stops
    reading the socket: from there on every byte the node sends stays on the node.)
    """

    def __init__(
        self, proto: ClientProtocol, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.proto = proto
        self.reader = reader
        self.writer = writer
        self.closed_by_node = False

    @classmethod
    async def open(
        cls, uri: str, local_host: str = "127.0.0.1", *, rcvbuf: int | None = None
    ) -> StubbornClient:
        """Connect and upgrade; ``rcvbuf``: the socket's SO_RCVBUF (set before connecting,
        so the window it advertises stays small)."""
        parsed = parse_uri(uri)
        if rcvbuf is None:
            reader, writer = await asyncio.open_connection(
                parsed.host, parsed.port, local_addr=(local_host, 0)
            )
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.bind((local_host, 0))
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (parsed.host, parsed.port))
            reader, writer = await asyncio.open_connection(sock=sock)
        proto = ClientProtocol(parsed, max_size=None)
        proto.send_request(proto.connect())
        client = cls(proto, reader, writer)
        client._flush()
        await client._read_until(lambda e: isinstance(e, Response))
        if proto.state is not State.OPEN:
            raise AssertionError(f"upgrade refused: {proto.handshake_exc!r}")
        return client

    async def handshake(self, manager: Any) -> dict[str, Any]:
        """Send a hello for ``manager``'s identity and return the node's ack."""
        identity = json.loads(manager.identity.to_json(indent=False))
        hello = {
            "id": str(uuid.uuid4()),
            "type": "handshake",
            "from": identity["id"],
            "to": "",
            "ts": go_now(),
            "payload": {
                "identity": identity,
                "challenge": base64.b64encode(os.urandom(32)).decode(),
                "version": "1.0",
            },
        }
        self.proto.send_text(json.dumps(hello).encode())
        self._flush()
        frame = await self._read_until(lambda e: isinstance(e, Frame) and e.opcode is Opcode.TEXT)
        assert isinstance(frame, Frame)
        ack: dict[str, Any] = json.loads(frame.data)
        return ack

    def ping_chunk(self, count: int = 512) -> bytes:
        """``count`` masked PING frames with the largest control payload (125 bytes)."""
        for _ in range(count):
            self.proto.send_ping(os.urandom(125))
        return b"".join(self.proto.data_to_send())

    def binary_frame(self, data: bytes) -> bytes:
        self.proto.send_binary(data)
        return b"".join(self.proto.data_to_send())

    async def write(self, data: bytes) -> bool:
        """Write ``data``; ``False`` once the node has dropped the connection."""
        if self.closed_by_node:
            return False
        try:
            self.writer.write(data)
            await self.writer.drain()
        except (ConnectionError, OSError):
            self.closed_by_node = True
            return False
        if self.writer.transport.is_closing():
            self.closed_by_node = True
            return False
        return True

    def abort(self) -> None:
        self.writer.transport.abort()

    def _flush(self) -> None:
        self.writer.write(b"".join(self.proto.data_to_send()))

    async def _read_until(self, wanted: Callable[[object], bool]) -> object:
        while True:
            for event in self.proto.events_received():
                if wanted(event):
                    return event
            if self.proto.state is State.CLOSED or (
                self.proto.handshake_exc is not None and self.proto.state is not State.OPEN
            ):
                return None
            chunk = await asyncio.wait_for(self.reader.read(65536), 10)
            if not chunk:
                self.proto.receive_eof()
            else:
                self.proto.receive_data(chunk)


async def flood_until_closed(clients: list[StubbornClient], chunk_for: Any) -> float:
    """Each client writes its chunk in a loop until the node drops it (or the deadline)."""
    start = time.monotonic()

    async def one(client: StubbornClient) -> None:
        chunk = chunk_for(client)
        while time.monotonic() - start < ATTACK_DEADLINE:
            if not await client.write(chunk):
                return

    await asyncio.gather(*(one(c) for c in clients))
    return time.monotonic() - start


def password_for(manager: Any, server_public_key: str) -> str:
    from p2p.transport import smsg

    return smsg.password_for_secret(manager.derive_shared_secret(server_public_key))


@pytest.fixture
def serve_node(p2p_serve: Any, tmp_path: Path) -> Callable[..., Any]:
    def start(**transport: Any) -> Any:
        data_dir = tmp_path / "node"
        data_dir.mkdir()
        extra: list[str] = ["--name", "held"]
        if transport:
            lines = ["[transport]", *(f"{k} = {json.dumps(v)}" for k, v in transport.items())]
            (data_dir / "config.toml").write_text("\n".join(lines) + "\n")
            extra += ["--config", str(data_dir / "config.toml")]
        return p2p_serve(data_dir, *extra)

    return start


async def test_ws_ping_flood_before_the_handshake_is_cut(serve_node: Any) -> None:
    """4 sockets upgrade, never send a hello, and send WebSocket PINGs without reading the
    pongs (websockets writes them without back-pressure: +210 MiB in 9 s before the fix).
    Each is closed once ``max_handshake_outbound_bytes`` wait for it."""
    node = serve_node()
    clients = [await StubbornClient.open(node.address, f"127.0.0.{10 + i}") for i in range(4)]
    async with RssPeak(node.proc.pid) as rss:
        seconds = await flood_until_closed(clients, lambda c: c.ping_chunk())
    closed = sum(c.closed_by_node for c in clients)
    for c in clients:
        c.abort()
    report(
        "hold.ping_flood_before_handshake",
        sockets=len(clients),
        closed_by_node=closed,
        seconds=round(seconds, 2),
        rss_growth_mib=round(rss.growth_mib, 1),
    )
    assert closed == len(clients), "the node kept buffering pongs for peers that never read"
    assert rss.growth_mib < 64


async def test_ws_ping_flood_after_the_handshake_is_cut(
    serve_node: Any, make_node_manager: Any
) -> None:
    """The same flood from 2 sockets that completed a handshake (+661 MiB in 40 s before
    the fix): cut at ``max_outbound_bytes``."""
    node = serve_node()
    clients = []
    for i in range(2):
        client = await StubbornClient.open(node.address, f"127.0.0.{20 + i}")
        ack = await client.handshake(make_node_manager(f"pinger-{i}"))
        assert ack["payload"]["accepted"] is True
        clients.append(client)
    async with RssPeak(node.proc.pid) as rss:
        seconds = await flood_until_closed(clients, lambda c: c.ping_chunk())
    closed = sum(c.closed_by_node for c in clients)
    for c in clients:
        c.abort()
    report(
        "hold.ping_flood_after_handshake",
        sockets=len(clients),
        closed_by_node=closed,
        seconds=round(seconds, 2),
        rss_growth_mib=round(rss.growth_mib, 1),
    )
    assert closed == len(clients), "the node kept buffering pongs for peers that never read"
    assert rss.growth_mib < 64


async def test_requests_from_peers_that_never_read_replies(
    serve_node: Any, make_node_manager: Any
) -> None:
    """30 peers each send 40 requests carrying a 700 KB ``minerName`` and never read a reply
    (reported: 2.6 GiB of RSS before the fix). Reads pause while a connection's handlers
    pin ``max_inflight_bytes``, websockets queues at most ``recv_queue_frames``, replies
    past ``max_outbound_bytes`` close the connection, stalled ones close after
    ``send_timeout``: the node must not reach GiBs. (On the 2-core project machine the
    node's intake is CPU-bound, so the unfixed node "only" reached ~390 MiB here; the next
    test checks the per-connection mechanism itself and fails without the fix.)
    ``HOLD_KNOBS`` (JSON) overrides transport knobs, to measure other settings."""
    knobs = json.loads(os.environ.get("HOLD_KNOBS", "{}"))
    node = serve_node(**knobs)
    big = "m" * 700_000
    clients: list[StubbornClient] = []
    frames: dict[int, bytes] = {}
    from p2p.transport import smsg

    for i in range(30):
        manager = make_node_manager(f"greedy-{i}")
        client = await StubbornClient.open(node.address, f"127.0.1.{10 + i}")
        ack = await client.handshake(manager)
        assert ack["payload"]["accepted"] is True
        password = password_for(manager, node.info["publicKey"])
        me = manager.identity.id
        chunk = []
        for k in range(40):
            kind = "get_logs" if k % 2 else "stop_miner"
            payload = {"minerName": big, "lines": 10} if kind == "get_logs" else {"minerName": big}
            text = body(kind, me, node.info["id"], payload)
            chunk.append(client.binary_frame(smsg.encrypt(text, password)))
        frames[id(client)] = b"".join(chunk)
        clients.append(client)

    async with RssPeak(node.proc.pid) as rss:
        await asyncio.gather(*(c.write(frames[id(c)]) for c in clients))
        await asyncio.sleep(0)
        # give the node time to work through what it accepted (it stops reading when full)
        await _settle(node.proc.pid)
    for c in clients:
        c.abort()
    report(
        "hold.requests_never_read",
        peers=len(clients),
        requests_each=40,
        field_bytes=len(big),
        rss_growth_mib=round(rss.growth_mib, 1),
    )
    assert rss.growth_mib < 1024


async def _settle(pid: int, quiet: float = 3.0, limit: float = 60.0) -> None:
    """Wait until the node's CPU time stops moving for ``quiet`` seconds (work is done or
    blocked), at most ``limit`` seconds."""

    def cpu() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])

    start = time.monotonic()
    last, since = cpu(), time.monotonic()
    while time.monotonic() - start < limit:
        await asyncio.sleep(0.25)
        now_cpu = cpu()
        if now_cpu != last:
            last, since = now_cpu, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


async def test_handlers_and_replies_of_a_peer_that_never_reads_are_bounded(
    make_node: Any, make_node_manager: Any
) -> None:
    """The mechanism behind the previous test, watched from inside an in-process node:
    10 peers that never read send 40 requests with a 700 KB ``minerName`` each. No
    connection ever buffers more than ``max_outbound_bytes`` for its peer (before the fix:
    every running handler's reply), and its handlers never hold more than
    ``max_inflight_bytes`` of requests plus one (before the fix: all 40 were queued)."""
    from p2p.transport import smsg

    node = await make_node("held", transport={"send_timeout": 10.0})
    cfg = node.transport.config
    big = "m" * 700_000
    peers: list[tuple[StubbornClient, Any]] = []
    for i in range(10):
        manager = make_node_manager(f"greedy-{i}")
        client = await StubbornClient.open(node.address, f"127.0.5.{10 + i}")
        ack = await client.handshake(manager)
        assert ack["payload"]["accepted"] is True
        peers.append((client, manager))
    # a client that never reads cannot answer the probe ping: each connection proves its key
    # with its first request below; until then it is unproven (the same object either way)

    def all_conns() -> list[Any]:
        return [*node.transport.connections(), *node.transport.unproven_connections()]

    await until(lambda: len(all_conns()) == 10, 10, "all connected")
    conns = {c.peer_id: c for c in all_conns()}
    max_buffered = 0
    max_held = 0
    max_running = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal max_buffered, max_held, max_running
        while not done.is_set():
            for conn in conns.values():
                max_buffered = max(max_buffered, conn._ws.write_buffer_size())
                max_held = max(max_held, conn._running + len(conn._pending))
                max_running = max(max_running, conn._running)
            await asyncio.sleep(0.005)

    async def attack(client: StubbornClient, manager: Any) -> None:
        password = password_for(manager, node.identity.public_key)
        me = manager.identity.id
        for k in range(40):
            kind = "get_logs" if k % 2 else "stop_miner"
            payload = {"minerName": big, "lines": 10} if kind == "get_logs" else {"minerName": big}
            frame = client.binary_frame(smsg.encrypt(body(kind, me, node.id, payload), password))
            if not await client.write(frame):
                return

    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait_for(asyncio.gather(*(attack(c, m) for c, m in peers)), 120)

        def settled() -> bool:
            return all(
                c.closed or (c.session.messages_in >= 40 and c._running == 0)
                for c in conns.values()
            )

        await until(settled, 120, "every stubborn connection processed or closed")
    finally:
        done.set()
        await watcher
        for client, _ in peers:
            client.abort()
    per_request = len(big)
    report(
        "hold.never_read_in_process",
        peers=len(peers),
        max_buffered_bytes=max_buffered,
        max_handlers_held=max_held,
        max_handlers_running=max_running,
        closed={c.close_reason for c in conns.values() if c.closed},
    )
    # (defaults written out so the test reads the same against a node without the knobs)
    assert max_buffered <= getattr(cfg, "max_outbound_bytes", 4 * MIB)
    assert max_held <= getattr(cfg, "max_inflight_bytes", 2 * MIB) // per_request + 2


async def test_message_pings_from_a_peer_that_never_reads_are_cut(
    make_node: Any, make_node_manager: Any
) -> None:
    """A peer past the handshake floods ``ping`` messages (the transport answers each with
    a ``pong`` from the read callback, without waiting for the socket) and never reads.
    The pongs pile up in the write buffer until the next one would pass
    ``max_outbound_bytes``: the connection is closed (``outbound overflow``), its buffer
    never over the bound, and the node goes on serving others."""
    from p2p.transport import smsg

    knobs = {
        "rate_burst": 1_000_000,
        "rate_refill_per_s": 1_000_000.0,
        "write_limit": 16 * 1024,
        "max_message_size": 64 * 1024,
        "max_outbound_bytes": 96 * 1024,
    }
    node = await make_node("held", transport=knobs)
    cfg = node.transport.config
    assert cfg.answer_pings
    manager = make_node_manager("pinger")
    # a small receive window: the node's pongs stop fitting in the kernel's buffers soon
    client = await StubbornClient.open(node.address, "127.0.6.10", rcvbuf=4096)
    ack = await client.handshake(manager)
    assert ack["payload"]["accepted"] is True
    await until(lambda: len(node.transport.unproven_connections()) == 1, 10, "connected")
    conn = node.transport.unproven_connections()[0]
    password = password_for(manager, node.identity.public_key)
    me = manager.identity.id
    max_buffered = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal max_buffered
        while not done.is_set():
            max_buffered = max(max_buffered, conn._ws.write_buffer_size())
            await asyncio.sleep(0.002)

    def pings(count: int) -> bytes:
        now_ms = int(time.time() * 1000)
        texts = (body("ping", me, node.id, {"sentAt": now_ms}) for _ in range(count))
        return b"".join(client.binary_frame(smsg.encrypt(t, password)) for t in texts)

    watcher = asyncio.ensure_future(watch())
    sent = 0
    try:
        start = time.monotonic()
        while not conn.closed and time.monotonic() - start < ATTACK_DEADLINE:
            if not await client.write(pings(200)):
                break
            sent += 200
            await asyncio.sleep(0)
        await until(lambda: conn.closed, 10, "the flooding connection closed")
    finally:
        done.set()
        await watcher
        client.abort()
    report(
        "hold.message_ping_flood",
        pings_sent=sent,
        pongs_answered=conn.session.messages_in,
        max_buffered_bytes=max_buffered,
        close_reason=conn.close_reason,
    )
    assert conn.close_reason == "outbound overflow"
    assert max_buffered <= cfg.max_outbound_bytes
    # cut by the pong's own check, before writing it: the buffer never passed the bound
    # (the socket layer's check, which closes once it has, did not have to act)
    assert not conn._ws.outbound_overflowed
    # the node still serves: a well-behaved peer connects and gets its pong
    other = await make_node("other")
    await other.add_peer(node.address)
    assert await other.controller.ping_peer(node.id) > 0
