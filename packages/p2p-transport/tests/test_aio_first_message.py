"""``aio.connect(first_message=...)``: the dialler's first message is built while the
server answers the upgrade and written the moment its 101 is read: never before the 101
(Go's gorilla server refuses data sent ahead of its response), never after a refusal.

The server here is a bare socket on 127.0.0.1, so the test sees the bytes as they come.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
from p2p.transport.aio import connect
from websockets.exceptions import InvalidStatus
from websockets.utils import accept_key


@pytest.fixture
async def listener() -> AsyncIterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    sock.setblocking(False)
    yield sock
    sock.close()


async def _read_request(conn: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await loop.sock_recv(conn, 4096)
        assert chunk, "client closed before its request was complete"
        data += chunk
    return data


def _nothing_waiting(conn: socket.socket) -> bool:
    try:
        conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    return False


async def _read_frame(conn: socket.socket) -> tuple[int, bytes]:
    """One masked client frame with a payload under 126 bytes: (opcode, payload)."""
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < 2 or len(data) < 6 + (data[1] & 0x7F):
        chunk = await loop.sock_recv(conn, 4096)
        assert chunk, "client closed before its first message"
        data += chunk
    assert data[0] & 0x80 and data[1] & 0x80  # FIN, masked
    length = data[1] & 0x7F
    mask, payload = data[2:6], data[6 : 6 + length]
    return data[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_first_message_follows_the_101(listener: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    port = listener.getsockname()[1]
    prepared = asyncio.Event()

    def first() -> str:
        prepared.set()
        return "hello after the upgrade"

    dial = asyncio.ensure_future(connect(f"ws://127.0.0.1:{port}/ws", first_message=first))
    conn, _ = await loop.sock_accept(listener)
    with conn:
        request = await _read_request(conn)
        await prepared.wait()  # built while we have not answered ...
        assert request.endswith(b"\r\n\r\n") and _nothing_waiting(conn)  # ... and not sent
        key = next(
            line.split(b":", 1)[1].strip().decode()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        await loop.sock_sendall(
            conn,
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
            ).encode(),
        )
        opcode, payload = await _read_frame(conn)
        ws = await asyncio.wait_for(dial, 5)
        assert (opcode, payload) == (0x1, b"hello after the upgrade")  # TEXT
        assert ws.response is not None and ws.response.status_code == 101
        ws.abort()


async def test_no_first_message_after_a_refused_upgrade(listener: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    port = listener.getsockname()[1]
    calls: list[int] = []

    def first() -> bytes:
        calls.append(1)
        return b"must never be written"

    dial = asyncio.ensure_future(connect(f"ws://127.0.0.1:{port}/ws", first_message=first))
    conn, _ = await loop.sock_accept(listener)
    with conn:
        await _read_request(conn)
        await loop.sock_sendall(
            conn, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        with pytest.raises(InvalidStatus):
            await asyncio.wait_for(dial, 5)
        rest = b""
        while True:  # the dialler aborts: read to the end
            try:
                chunk = await loop.sock_recv(conn, 4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            rest += chunk
    assert calls == [1] and rest == b""
