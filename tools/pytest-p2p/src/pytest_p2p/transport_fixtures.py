"""Shared transport fixtures: identities on disk, a connected pair, an n-node mesh.

Everything here listens on 127.0.0.1 port 0 with short timeouts. p2p packages are imported
inside the fixtures, so environments without p2p-transport still load the plugin.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from p2p.identity import NodeManager
    from p2p.transport import PeerConnection, Transport, TransportConfig
    from p2p.transport.aio import Server, ServerWebSocket
    from websockets.asyncio.client import ClientConnection

__all__ = [
    "RawPeer",
    "TransportPair",
    "body",
    "eventually",
    "fast_transport_config",
    "go_now",
    "make_node_manager",
    "make_transport",
    "open_fds",
    "parked_server",
    "raw_peer",
    "transport_mesh",
    "transport_pair",
]


def fast_transport_config(**changes: Any) -> TransportConfig:
    """A config for tests: 127.0.0.1, port 0, timeouts of a second or less."""
    from p2p.transport import TransportConfig

    base: dict[str, Any] = {
        "listen_host": "127.0.0.1",
        "listen_port": 0,
        "handshake_timeout": 2.0,
        "connect_timeout": 2.0,
        "send_timeout": 2.0,
        "close_timeout": 0.5,
        "broadcast_timeout": 2.0,
    }
    base.update(changes)
    return TransportConfig(**base)


@pytest.fixture
def make_node_manager(tmp_path: Path) -> Callable[[str], NodeManager]:
    """``make(name) -> NodeManager`` with a fresh identity stored under ``tmp_path``."""
    from p2p.identity import NodeManager

    counter = itertools.count()

    def make(name: str = "node") -> NodeManager:
        d = tmp_path / f"identity-{next(counter)}-{name}"
        manager = NodeManager(key_path=d / "private.key", config_path=d / "node.json")
        manager.generate(name)
        return manager

    return make


@pytest.fixture
async def make_transport(
    make_node_manager: Callable[[str], NodeManager],
) -> AsyncIterator[Callable[..., Awaitable[Transport]]]:
    """``await make(name="node", gate=None, **config_changes)`` -> a started Transport.

    Every transport made is stopped at teardown.
    """
    from p2p.transport import Transport

    made: list[Transport] = []

    async def make(name: str = "node", gate: Any = None, **changes: Any) -> Transport:
        transport = Transport(make_node_manager(name), gate, fast_transport_config(**changes))
        await transport.start()
        made.append(transport)
        return transport

    yield make
    for transport in made:
        await transport.stop()


@dataclass
class TransportPair:
    """Two started transports, ``a`` dialled ``b``; ``ab`` is a's connection to b."""

    a: Transport
    b: Transport
    ab: PeerConnection
    ba: PeerConnection


@pytest.fixture
async def transport_pair(make_transport: Callable[..., Awaitable[Transport]]) -> TransportPair:
    """Two connected transports on 127.0.0.1 (a → b), both stopped at teardown."""
    a = await make_transport("node-a")
    b = await make_transport("node-b")
    ab = await a.connect(b.address)
    ba = await _wait_connection(b, a)
    return TransportPair(a, b, ab, ba)


@pytest.fixture
def transport_mesh(
    make_transport: Callable[..., Awaitable[Transport]],
) -> Callable[..., Awaitable[list[Transport]]]:
    """``await mesh(n, **config_changes)`` -> n transports, each connected to every other."""

    async def mesh(n: int, **changes: Any) -> list[Transport]:
        nodes = [await make_transport(f"node-{i}", **changes) for i in range(n)]
        for i, j in itertools.combinations(range(n), 2):
            await nodes[i].connect(nodes[j].address)
            await _wait_connection(nodes[j], nodes[i])
        return nodes

    return mesh


async def _wait_connection(server: Transport, client: Transport) -> PeerConnection:
    """The server's side of a connection that ``client`` has just established."""
    own = client.node_manager.identity
    assert own is not None
    for _ in range(200):
        conn = server.connection(own.id)
        if conn is not None:
            return conn
        await asyncio.sleep(0.01)
    raise AssertionError(f"{own.id} never appeared on the server side")


def go_now(offset: float = 0.0) -> str:
    """An RFC 3339 UTC timestamp as Go writes it (``offset`` seconds from now)."""
    t = datetime.fromtimestamp(datetime.now(timezone.utc).timestamp() + offset, timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def body(
    type_: str, frm: str, to: str, payload: Any, *, ts: str | None = None, msg_id: str | None = None
) -> str:
    """A message envelope as JSON text, built by hand (independent of our encoder)."""
    return json.dumps(
        {
            "id": msg_id or str(uuid.uuid4()),
            "type": type_,
            "from": frm,
            "to": to,
            "ts": ts or go_now(),
            "payload": payload,
        },
        separators=(",", ":"),
    )


class RawPeer:
    """A websockets client that completes the handshake by hand, then sends what we say."""

    def __init__(
        self,
        ws: ClientConnection,
        manager: NodeManager,
        server_id: str,
        password: str,
        secret: bytes = b"",
    ) -> None:
        self.ws = ws
        self.manager = manager
        self.server_id = server_id
        self.password = password
        #: the handshake's shared secret (UEPS HMAC key; ``password`` is its base64)
        self.secret = secret
        identity = manager.identity
        assert identity is not None
        self.id = identity.id

    def frame(self, type_: str, payload: Any, **kw: Any) -> bytes:
        """One SMSG frame carrying a hand-built message of ``type_``."""
        from p2p.transport import smsg

        return smsg.encrypt(body(type_, self.id, self.server_id, payload, **kw), self.password)

    async def prove(self) -> None:
        """Show the server we hold the key: one fresh frame it can decrypt (a ``pong``
        nobody waits for; handlers ignore it). Until then an inbound connection is
        unproven: not connected, no UEPS, nobody's session."""
        await self.ws.send(self.frame("pong", {"sentAt": 0, "receivedAt": 0}))

    async def recv_message(self, timeout: float = 2.0) -> dict[str, Any]:
        from p2p.transport import smsg

        data = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(data, bytes)
        out: dict[str, Any] = json.loads(smsg.decrypt(data, self.password).body)
        return out

    async def recv_type(self, type_: str, timeout: float = 2.0) -> dict[str, Any]:
        while True:
            msg = await self.recv_message(timeout)
            if msg["type"] == type_:
                return msg


@pytest.fixture
def raw_peer(
    make_node_manager: Callable[[str], NodeManager],
) -> Iterator[Callable[..., Awaitable[RawPeer]]]:
    """``await raw_peer(transport, prove=True, features=(), **connect_kwargs) -> RawPeer``
    (handshake done by hand; ``prove`` sends one fresh frame so the server counts the
    connection as proven; ``features`` go in the hello, e.g. ``("ueps/1",)``)."""
    from p2p.transport import envelope, smsg
    from p2p.transport.handshake import HandshakeInitiator
    from websockets.asyncio.client import connect

    opened: list[ClientConnection] = []

    async def make(
        server: Transport, *, prove: bool = True, features: tuple[str, ...] = (), **kw: Any
    ) -> RawPeer:
        manager = make_node_manager("raw")
        identity = manager.identity
        assert identity is not None
        ws = await connect(
            f"ws://{server.address}/ws", compression=None, ping_interval=None, proxy=None, **kw
        )
        opened.append(ws)
        initiator = HandshakeInitiator(identity, manager.derive_shared_secret, features=features)
        await ws.send(envelope.to_text(initiator.hello()))
        result = initiator.receive_ack(await ws.recv())
        password = smsg.password_for_secret(result.secret)
        peer = RawPeer(ws, manager, result.peer.id, password, result.secret)
        if prove:
            await peer.prove()
            await eventually(lambda: server.connection(peer.id) is not None, timeout=5.0)
        return peer

    yield make
    for ws in opened:
        ws.transport.abort()


async def eventually(cond: Callable[[], bool], timeout: float = 3.0) -> None:
    """Wait until ``cond()`` holds (polling; fails the test after ``timeout`` s)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def open_fds() -> int:
    """File descriptors this process holds now (Linux ``/proc``): for leak checks."""
    return len(os.listdir("/proc/self/fd"))


@contextlib.asynccontextmanager
async def parked_server(
    **serve_kwargs: Any,
) -> AsyncIterator[tuple[Server, asyncio.Queue[ServerWebSocket], str]]:
    """A ``p2p.transport.aio`` server on 127.0.0.1 whose handler hands each upgraded
    socket to the test (``accepted``) and keeps it open until it closes: yields
    ``(server, accepted, uri)``; on exit aborts what is left and waits for the handlers."""
    from p2p.transport.aio import serve

    accepted: asyncio.Queue[ServerWebSocket] = asyncio.Queue()

    async def park(ws: ServerWebSocket) -> None:
        await accepted.put(ws)
        await ws.wait_closed()

    srv = await serve(park, "127.0.0.1", 0, **serve_kwargs)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield srv, accepted, f"ws://127.0.0.1:{port}/ws"
    finally:
        srv.close()
        for ws in list(srv._connections):
            ws.abort()
        await srv.wait_closed()
