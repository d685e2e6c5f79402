"""The I/O shell (p2p.transport.aio) over real sockets on 127.0.0.1: upgrade, admission
hook, messages both ways, bounds (queue, message size, outbound cap), closing, timeouts."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from p2p.transport.aio import Server, ServerWebSocket, WebSocket, connect, serve
from pytest_p2p.transport_fixtures import eventually, open_fds, parked_server
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Opcode
from websockets.http11 import Request, Response
from websockets.protocol import OPEN
from websockets.uri import parse_uri

Accepted = asyncio.Queue[ServerWebSocket]


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, Accepted, str]]:
    async with parked_server(
        open_timeout=2.0, close_timeout=0.5, max_size=4096, max_queue=4
    ) as parked:
        yield parked


async def test_messages_both_ways_and_close_handshake(server: Any) -> None:
    _, accepted, uri = server
    client = await connect(uri, close_timeout=0.5)
    ws = await asyncio.wait_for(accepted.get(), 5)
    await client.send("hello")
    await client.send(b"\x00\x01binary")
    assert await ws.recv() == "hello"
    assert await ws.recv() == b"\x00\x01binary"
    await ws.send(b"back")
    assert await client.recv() == b"back"
    assert client.remote_address[0] == "127.0.0.1"
    await client.close()
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1000
    with pytest.raises(ConnectionClosed):
        await client.send(b"late")


async def test_admission_hook_refuses_with_status_and_body() -> None:
    seen: list[str] = []

    def admit(ws: ServerWebSocket, request: Request) -> Response | None:
        seen.append(request.path)
        return ws.respond(503, "Too busy\n") if request.path != "/ok" else None

    async def handler(ws: ServerWebSocket) -> None:
        await ws.send("welcome")

    srv = await serve(handler, "127.0.0.1", 0, process_request=admit)
    port = srv.sockets[0].getsockname()[1]
    try:
        with pytest.raises(InvalidStatus) as info:
            await connect(f"ws://127.0.0.1:{port}/busy")
        assert info.value.response.status_code == 503
        assert info.value.response.body == b"Too busy\n"
        client = await connect(f"ws://127.0.0.1:{port}/ok")
        assert await client.recv() == "welcome"
        with pytest.raises(ConnectionClosed):  # the handler returned: the server closes
            await client.recv()
        assert seen == ["/busy", "/ok"]
    finally:
        srv.close()
        await srv.wait_closed()


async def test_oversize_message_closes_with_1009_then_the_cap_can_be_lifted(server: Any) -> None:
    _, accepted, uri = server
    client = await connect(uri)
    ws = await asyncio.wait_for(accepted.get(), 5)
    ws.protocol.max_message_size = 10_000  # lifted (as after our handshake)
    await client.send(b"x" * 8000)
    assert await ws.recv() == b"x" * 8000
    await client.send(b"y" * 10_001)
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.sent is not None and info.value.sent.code == 1009


async def test_fragments_are_reassembled_and_bad_utf8_fails_1007(server: Any) -> None:
    _, accepted, uri = server
    client = await connect(uri)
    ws = await asyncio.wait_for(accepted.get(), 5)
    client.protocol.send_text(b"fra", fin=False)
    client.protocol.send_continuation("gmenté".encode(), fin=True)
    client.protocol.send_binary(b"\xff\xfe")
    client.protocol.send_text(b"\xff")
    client._send_data()
    assert await ws.recv() == "fragmenté"
    assert await ws.recv() == b"\xff\xfe"
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.sent is not None and info.value.sent.code == 1007


async def test_a_peer_that_is_not_read_is_paused_not_buffered(server: Any) -> None:
    """Nobody calls recv(): the queue stops at max_queue (+ one read's frames), the socket
    stops being read, the sender blocks; then every message arrives, in order."""
    _, accepted, uri = server
    client = await connect(uri, write_limit=16 * 1024)
    ws = await asyncio.wait_for(accepted.get(), 5)
    count = 3000
    sender = asyncio.ensure_future(
        asyncio.gather(*(client.send(i.to_bytes(4, "big") * 256) for i in range(count)))
    )
    await eventually(lambda: ws._reading_paused, timeout=10)
    one_read = 64 * 1024 // 1024 + 1
    assert len(ws._queue) <= ws.max_queue + one_read
    got = [await ws.recv() for _ in range(count)]
    assert got == [i.to_bytes(4, "big") * 256 for i in range(count)]
    await sender
    assert not ws._reading_paused


async def test_pongs_a_peer_never_reads_hit_the_outbound_cap(server: Any) -> None:
    """Pings answered by the protocol itself, never read by the peer: past outbound_limit
    the server aborts and says so (outbound_overflowed)."""
    _, accepted, uri = server
    _, writer = await raw_upgrade(uri)
    ws = await asyncio.wait_for(accepted.get(), 5)
    ws.outbound_limit = 32 * 1024
    ping = _masked_ping(b"p" * 125)
    sent = 0
    while not ws.outbound_overflowed and sent < 512 * 1024 * 1024:
        writer.write(ping * 512)
        sent += len(ping) * 512
        await writer.drain()
        await asyncio.sleep(0)
    assert ws.outbound_overflowed
    await asyncio.wait_for(ws.wait_closed(), 5)
    writer.close()


async def test_pings_are_answered_with_pongs(server: Any) -> None:
    _, accepted, uri = server
    reader, writer = await raw_upgrade(uri)
    await asyncio.wait_for(accepted.get(), 5)
    writer.write(_masked_ping(b"are you there"))
    await writer.drain()
    head = await asyncio.wait_for(reader.readexactly(2), 5)
    assert head == bytes([0x80 | Opcode.PONG, len(b"are you there")])
    assert await reader.readexactly(len(b"are you there")) == b"are you there"
    writer.close()


async def test_close_gives_up_after_close_timeout(server: Any) -> None:
    """The peer never answers the close frame: close() aborts after close_timeout."""
    _, accepted, uri = server
    client = await connect(uri)
    ws = await asyncio.wait_for(accepted.get(), 5)
    client.transport.pause_reading()  # deaf: the close frame is never read
    await asyncio.wait_for(ws.close(), 10)
    assert ws._lost.done()
    client.transport.resume_reading()
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(client.recv(), 10)


async def test_silent_socket_is_dropped_after_open_timeout(server: Any) -> None:
    srv, _, uri = server
    port = parse_uri(uri).port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await asyncio.wait_for(reader.read(), 10) == b""  # server gave up on us
    writer.close()
    await eventually(lambda: not srv._connections, timeout=5)


async def test_connect_times_out_against_a_server_that_never_answers() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    tcp = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = tcp.sockets[0].getsockname()[1]
    try:
        with pytest.raises(TimeoutError):
            await connect(f"ws://127.0.0.1:{port}/ws", open_timeout=0.3)
    finally:
        tcp.close()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts fds in /proc")
async def test_a_tcp_connect_that_never_completes_times_out_and_closes_its_socket() -> None:
    """A listener whose accept queue is full drops our SYN: the connect stays in progress
    (the path that waits for the socket to become writable) until ``open_timeout``, and
    the socket is closed then, not leaked."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # never accepted: one queued connection fills it
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):  # the kernel queues backlog + 1; more SYNs are dropped
            f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", port))
            fillers.append(f)
        await asyncio.sleep(0.05)
        before = open_fds()
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await connect(f"ws://127.0.0.1:{port}/ws", open_timeout=0.3)
        assert asyncio.get_running_loop().time() - t0 >= 0.25
        assert open_fds() <= before  # others may close meanwhile (GC); ours must not stay
    finally:
        for f in fillers:
            f.close()
        listener.close()


async def test_a_refused_connect_is_the_oserror_asyncio_gives() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    before = open_fds() if os.path.isdir("/proc/self/fd") else 0
    with pytest.raises(ConnectionRefusedError, match="Connect call failed"):
        await connect(f"ws://127.0.0.1:{port}/ws", open_timeout=2.0)
    if before:
        assert open_fds() <= before


async def test_closing_server_refuses_upgrades_and_stops_listening(server: Any) -> None:
    srv, _, uri = server
    client = await connect(uri)
    srv.close()
    with pytest.raises(OSError):
        await connect(uri)
    assert client.state is OPEN  # upgraded connections belong to their handler
    client.abort()


async def test_abort_is_seen_as_1006(server: Any) -> None:
    _, accepted, uri = server
    client: WebSocket = await connect(uri)
    ws = await asyncio.wait_for(accepted.get(), 5)
    client.abort()
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd is None and info.value.sent is None
    assert ws.protocol.close_code == 1006


# --- helpers --------------------------------------------------------------------------------


async def raw_upgrade(uri: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that does the upgrade with websockets' sans-I/O protocol, then speaks raw
    bytes (it reads only when the test says so)."""
    reader, writer = await raw_upgrade_request(uri)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


def _masked_ping(payload: bytes) -> bytes:
    # mask key 0: the payload goes as is (a client must mask; any key is valid)
    return bytes([0x80 | Opcode.PING, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


async def test_refused_client_that_never_hangs_up_is_dropped_after_close_timeout() -> None:
    """A refused upgrade half-closes; a client that keeps its end open is aborted once
    ``close_timeout`` passes (not only after the longer opening deadline)."""

    def refuse(ws: ServerWebSocket, request: Request) -> Response | None:
        return ws.respond(404, "404 page not found\n")

    async def never(ws: ServerWebSocket) -> None:  # pragma: no cover - nobody is upgraded
        raise AssertionError("upgraded")

    srv = await serve(
        never, "127.0.0.1", 0, process_request=refuse, open_timeout=60.0, close_timeout=0.2
    )
    port = srv.sockets[0].getsockname()[1]
    try:
        reader, writer = await raw_upgrade_request(f"ws://127.0.0.1:{port}/nope")
        response = await asyncio.wait_for(reader.read(), 10)  # until the server's EOF
        assert response.startswith(b"HTTP/1.1 404 Not Found\r\n")
        assert response.endswith(b"\r\n\r\n404 page not found\n")
        # it waits for our FIN for close_timeout (0.2 s), not the opening deadline (60 s)
        await eventually(lambda: not srv._connections, timeout=10)
        writer.close()
    finally:
        srv.close()
        await srv.wait_closed()


async def raw_upgrade_request(uri: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Send the upgrade request of websockets' sans-I/O client; read nothing yet."""
    ws_uri = parse_uri(uri)
    reader, writer = await asyncio.open_connection(ws_uri.host, ws_uri.port)
    protocol = ClientProtocol(ws_uri)
    protocol.send_request(protocol.connect())
    for data in protocol.data_to_send():
        writer.write(data)
    return reader, writer


async def test_upgrade_headers_are_the_bare_protocol_ones() -> None:
    """No User-Agent from our client, no Server header from our server, no extensions
    (the bytes Go peers saw before the shell)."""
    seen: list[Request] = []

    def admit(ws: ServerWebSocket, request: Request) -> Response | None:
        seen.append(request)
        return None

    async def handler(ws: ServerWebSocket) -> None:
        await ws.wait_closed()

    srv = await serve(handler, "127.0.0.1", 0, process_request=admit)
    port = srv.sockets[0].getsockname()[1]
    try:
        client = await connect(f"ws://127.0.0.1:{port}/ws")
        assert client.response is not None
        assert client.response.status_code == 101
        assert sorted(k.lower() for k in client.response.headers) == [
            "connection",
            "date",
            "sec-websocket-accept",
            "upgrade",
        ]
        assert sorted(k.lower() for k in seen[0].headers) == [
            "connection",
            "host",
            "sec-websocket-key",
            "sec-websocket-version",
            "upgrade",
        ]
        await client.close()
    finally:
        srv.close()
        await srv.wait_closed()


class _LateProtocol(asyncio.BufferedProtocol):
    """Stands between the loop and a WebSocket the way uvloop behaves: the transport it
    hands on is not an ``asyncio.Transport`` subclass, and ``connection_made`` comes
    after ``create_connection`` has returned."""

    def __init__(self, inner: WebSocket) -> None:
        self.inner = inner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # two turns on: after the dialling coroutine has resumed from create_connection
        loop = asyncio.get_running_loop()
        loop.call_soon(loop.call_soon, self.inner.connection_made, _Duck(transport))

    def get_buffer(self, sizehint: int) -> Any:
        return self.inner.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.inner.buffer_updated(nbytes)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class _Duck:
    """A stream transport by its methods only (as uvloop's TCPTransport is)."""

    def __init__(self, real: asyncio.BaseTransport) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


async def test_a_loop_that_makes_the_connection_a_turn_late(
    server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, accepted, uri = server
    loop = asyncio.get_running_loop()
    real = loop.create_connection

    async def late_create_connection(factory: Any, *args: Any, **kwargs: Any) -> Any:
        return await real(lambda: _LateProtocol(factory()), *args, **kwargs)

    monkeypatch.setattr(loop, "create_connection", late_create_connection)
    client = await connect(uri, close_timeout=0.5)
    monkeypatch.undo()
    ws = await asyncio.wait_for(accepted.get(), 5)
    assert isinstance(client.transport, _Duck)
    await client.send("hello")
    assert await ws.recv() == "hello"
    await ws.send(b"back")
    assert await client.recv() == b"back"
    await client.close()


async def test_a_server_that_gives_up_while_the_dialler_waits_its_turn() -> None:
    """``before_request`` (the handshake pacer) holds the request back; meanwhile the
    server's upgrade deadline closes the socket. The dial fails with a connection error
    that says so, not with an error from writing to a closed socket."""

    async def never(ws: ServerWebSocket) -> None:
        await ws.wait_closed()

    srv = await serve(never, "127.0.0.1", 0, open_timeout=0.1, close_timeout=0.1)
    port = srv.sockets[0].getsockname()[1]

    async def slow_turn() -> None:
        await asyncio.sleep(0.5)

    try:
        with pytest.raises(ConnectionResetError, match="before the upgrade request"):
            await connect(f"ws://127.0.0.1:{port}/ws", before_request=slow_turn)
    finally:
        srv.close()
        await srv.wait_closed()
