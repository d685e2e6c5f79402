"""Frames delivered from the read callback (WebSocket.deliver_to) on real sockets: order
across the recv() -> sink switch on both receive paths, back-pressure from the in-flight
handler budget, a failing handler or frame, and closes in the middle of a delivery."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from p2p.transport.aio import ServerWebSocket, connect, serve
from p2p.transport.aio import connection as aio_connection
from p2p.transport.connection import PeerConnection
from p2p.transport.protocol import PeerProtocol
from pytest_p2p.transport_fixtures import eventually


def _batch(ws: Any, payloads: list[bytes]) -> None:
    """Write every payload as one BINARY frame, all in one socket write."""
    for payload in payloads:
        ws.protocol.send_binary(payload)
    ws.transport.write(b"".join(ws.protocol.data_to_send()))


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "websockets-path"])
async def test_order_is_kept_across_the_switch_from_recv_to_the_sink(
    fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if fast and aio_connection._codec is None:
        pytest.skip("the p2p.ueps extension is not built")
    if not fast:
        monkeypatch.setattr(aio_connection, "_codec", None)
    accepted: asyncio.Queue[ServerWebSocket] = asyncio.Queue()

    async def park(ws: ServerWebSocket) -> None:
        await accepted.put(ws)
        await ws.wait_closed()

    srv = await serve(park, "127.0.0.1", 0, max_size=4096, max_queue=4, close_timeout=0.5)
    port = srv.sockets[0].getsockname()[1]
    client = await connect(f"ws://127.0.0.1:{port}/ws", max_size=4096)
    try:
        ws = await asyncio.wait_for(accepted.get(), 5)
        _batch(client, [b"m%d" % i for i in range(30)])
        assert await ws.recv() == b"m0"
        assert await ws.recv() == b"m1"
        # more than the queue's bound waits (the socket stopped being read past it)
        await eventually(lambda: len(ws._queue) > 4, timeout=10)
        got: list[bytes | str] = []
        ws.deliver_to(got.append)
        assert got[:3] == [b"m2", b"m3", b"m4"]  # the queue went first, at once
        _batch(client, [b"n%d" % i for i in range(10)])
        await client.send("text after")
        await eventually(lambda: len(got) == 39, timeout=10)
        assert got == [b"m%d" % i for i in range(2, 30)] + [b"n%d" % i for i in range(10)] + [
            "text after"
        ]
        assert not ws._queue
        assert ws.transport.is_reading()
    finally:
        await client.close()
        srv.close()
        await srv.wait_closed()


async def test_the_inflight_budget_pauses_reading_and_resumes_in_order(
    make_transport: Any, raw_peer: Any
) -> None:
    budget = 64 * 1024
    server = await make_transport("server", max_inflight_bytes=budget, rate_burst=1000)
    gate = asyncio.Event()
    started: list[str] = []
    done: list[str] = []

    async def handler(conn: PeerConnection, message: Any) -> None:
        if message.type != "get_stats":
            return
        started.append(message.id)
        await gate.wait()
        done.append(message.id)

    server.on_message(handler)
    peer = await raw_peer(server)
    conn = server.connection(peer.id)
    assert conn is not None
    ids = [f"m-{i}" for i in range(20)]
    for msg_id in ids:  # ~20 KB each on the wire: the budget holds about three
        await peer.ws.send(peer.frame("get_stats", {"pad": "x" * 20_000}, msg_id=msg_id))
    await eventually(lambda: conn.read_pauses >= 1, timeout=10)
    assert not conn._ws.transport.is_reading()
    assert conn.counters["inflight_bytes"] > budget
    held = len(started)
    assert held < len(ids)
    gate.set()
    await eventually(lambda: len(done) == len(ids), timeout=20)
    assert started == ids  # nothing lost, nothing reordered by the pauses
    assert conn._ws.transport.is_reading()
    assert conn.counters["inflight_bytes"] == 0
    assert not conn.closed
    await peer.ws.send(peer.frame("ping", {"sentAt": 1}, msg_id="after"))
    assert (await peer.recv_type("pong"))["replyTo"] == "after"


async def test_a_failing_handler_or_frame_leaves_the_connection_working(
    make_transport: Any, raw_peer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = await make_transport("server")
    seen: list[str] = []

    def handler(conn: PeerConnection, message: Any) -> None:
        if message.type == "get_stats":
            seen.append(message.id)
            if message.id == "bad":
                raise RuntimeError("handler bug")

    server.on_message(handler)
    peer = await raw_peer(server)
    conn = server.connection(peer.id)
    assert conn is not None
    await peer.ws.send(peer.frame("get_stats", None, msg_id="bad"))
    await eventually(lambda: conn.handler_errors == 1)
    # a failure past the handlers (here: in the protocol itself) is caught the same way
    real = PeerProtocol.receive_frame
    calls = [0]

    def broken_once(self: PeerProtocol, *args: Any) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("protocol bug")
        return real(self, *args)

    monkeypatch.setattr(PeerProtocol, "receive_frame", broken_once)
    await peer.ws.send(peer.frame("get_stats", None, msg_id="lost"))
    await eventually(lambda: conn.handler_errors == 2)
    await peer.ws.send(peer.frame("get_stats", None, msg_id="good"))
    await peer.ws.send(peer.frame("ping", {"sentAt": 1}, msg_id="after"))
    assert (await peer.recv_type("pong"))["replyTo"] == "after"
    assert seen == ["bad", "good"]
    assert not conn.closed


async def test_nothing_is_dispatched_after_a_drop_in_the_middle_of_a_read(
    make_transport: Any, raw_peer: Any
) -> None:
    server = await make_transport("server", rate_burst=1000)
    seen: list[str] = []

    def handler(conn: PeerConnection, message: Any) -> None:
        if message.type == "get_stats":
            seen.append(message.id)
            if message.id == "m-3":
                conn.drop("test drop")

    server.on_message(handler)
    peer = await raw_peer(server)
    conn = server.connection(peer.id)
    assert conn is not None
    _batch(peer.ws, [peer.frame("get_stats", None, msg_id=f"m-{i}") for i in range(10)])
    await asyncio.wait_for(conn.wait_closed(), 10)
    assert seen == ["m-0", "m-1", "m-2", "m-3"]
    assert conn.close_reason == "test drop"


async def test_a_close_the_protocol_asks_for_mid_read_runs_in_its_own_task(
    make_transport: Any, raw_peer: Any
) -> None:
    """Frames that do not decrypt, in the middle of one read: the protocol asks for the
    close, which runs as a task of its own; nothing after it is dispatched."""
    server = await make_transport("server", rate_burst=1000, max_undecryptable_in_a_row=2)
    seen: list[str] = []

    def handler(conn: PeerConnection, message: Any) -> None:
        if message.type == "get_stats":
            seen.append(message.id)

    server.on_message(handler)
    peer = await raw_peer(server)
    conn = server.connection(peer.id)
    assert conn is not None
    frames = [peer.frame("get_stats", None, msg_id=f"m-{i}") for i in range(3)]
    frames += [b"\x00" * 64, b"\x01" * 64]  # not SMSG: undecryptable, twice in a row
    frames += [peer.frame("get_stats", None, msg_id=f"late-{i}") for i in range(3)]
    _batch(peer.ws, frames)
    await asyncio.wait_for(conn.wait_closed(), 10)
    assert seen == ["m-0", "m-1", "m-2"]
    assert conn.close_reason == "too many undecryptable frames"
    assert conn._close_task is not None
    await asyncio.wait_for(conn._close_task, 10)
    await eventually(lambda: server.connection(peer.id) is None)
