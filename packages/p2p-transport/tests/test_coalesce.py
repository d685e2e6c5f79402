"""Writes of one loop turn leave together (p2p.transport.aio.connection._Coalescer), over
real sockets on 127.0.0.1: the first frame of a turn at once, the rest joined at the end
of the turn or at ``coalesce_limit``; order kept against the protocol's own writes (the
close frame) and on abort; waiting bytes counted in ``write_buffer_size``.

The client's transport ``write`` is wrapped to count calls: it still writes (observation
of a real transport, not a fake)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from p2p.transport.aio import (
    DEFAULT_COALESCE_LIMIT,
    ClientWebSocket,
    Server,
    ServerWebSocket,
    WebSocket,
    connect,
)
from p2p.transport.aio import connection as aio_connection
from pytest_p2p.transport_fixtures import parked_server
from websockets.exceptions import ConnectionClosed

Accepted = asyncio.Queue[ServerWebSocket]

pytestmark = pytest.mark.skipif(
    aio_connection._codec is None, reason="frames are joined on the fast path only"
)


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, Accepted, str]]:
    async with parked_server(close_timeout=0.5, max_queue=4096) as parked:
        yield parked


def count_writes(ws: WebSocket) -> list[int]:
    """Sizes of the writes handed to ``ws``'s transport from now on."""
    sizes: list[int] = []
    transport: Any = ws.transport
    real = transport.write

    def write(data: bytes) -> None:
        sizes.append(len(data))
        real(data)

    transport.write = write
    return sizes


async def _pair(server: Any, **kwargs: Any) -> tuple[ClientWebSocket, ServerWebSocket]:
    _, accepted, uri = server
    client = await connect(uri, close_timeout=0.5, **kwargs)
    return client, await asyncio.wait_for(accepted.get(), 5)


async def test_the_first_frame_of_a_turn_is_written_at_once(server: Any) -> None:
    client, ws = await _pair(server)
    writes = count_writes(client)
    client.send_nowait(b"lone")
    assert len(writes) == 1  # on the socket before the turn ends: no added latency
    assert client.write_buffer_size() == 0
    assert await ws.recv() == b"lone"
    await asyncio.sleep(0)  # a new turn: the next frame is the first again
    client.send_nowait(b"again")
    assert len(writes) == 2
    assert await ws.recv() == b"again"
    await client.close()


async def test_the_rest_of_a_turn_leaves_in_one_write_and_counts_as_buffered(
    server: Any,
) -> None:
    client, ws = await _pair(server)
    writes = count_writes(client)
    messages = [bytes([i]) * 100 for i in range(10)]
    for message in messages:
        client.send_nowait(message)
    assert len(writes) == 1
    waiting = client.write_buffer_size()
    assert waiting == 9 * (100 + 6)  # masked client frames: 2 header + 4 mask bytes
    await asyncio.sleep(0)  # the turn ends
    assert len(writes) == 2 and writes[1] == waiting
    assert [await ws.recv() for _ in messages] == messages
    await client.close()


async def test_a_burst_is_cut_at_the_limit_and_arrives_whole_and_in_order(server: Any) -> None:
    client, ws = await _pair(server)
    writes = count_writes(client)
    messages = [i.to_bytes(4, "big") * 100 for i in range(2000)]  # 400-byte payloads
    for message in messages:
        client.send_nowait(message)
    total = sum(writes) + client.write_buffer_size()
    assert total == 2000 * (400 + 8)  # 2-byte length: 126 + 2 bytes, then the mask
    assert len(writes) <= 1 + total // DEFAULT_COALESCE_LIMIT
    assert all(size <= DEFAULT_COALESCE_LIMIT + 408 for size in writes)
    got = [await ws.recv() for _ in messages]
    assert got == messages
    await client.close()


async def test_a_limit_of_zero_writes_every_frame_at_once(server: Any) -> None:
    client, ws = await _pair(server, coalesce_limit=0)
    writes = count_writes(client)
    for i in range(5):
        client.send_nowait(bytes([i]))
    assert len(writes) == 5 and client.write_buffer_size() == 0
    assert [await ws.recv() for _ in range(5)] == [bytes([i]) for i in range(5)]
    await client.close()


async def test_a_close_in_the_same_turn_goes_after_the_waiting_frames(server: Any) -> None:
    client, ws = await _pair(server)
    messages = [bytes([i]) * 50 for i in range(20)]
    for message in messages:
        client.send_nowait(message)
    await client.close()
    assert [await ws.recv() for _ in messages] == messages
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1000


async def test_an_abort_offers_the_waiting_frames_to_the_socket_first(server: Any) -> None:
    client, ws = await _pair(server)
    writes = count_writes(client)
    messages = [bytes([i]) * 50 for i in range(20)]
    for message in messages:
        client.send_nowait(message)
    client.abort()
    assert sum(writes) == 20 * (50 + 6)  # nothing was left behind unwritten
    assert [await ws.recv() for _ in messages] == messages  # loopback took them at once
    with pytest.raises(ConnectionClosed):
        await ws.recv()


async def test_frames_waiting_when_the_connection_dies_are_dropped_quietly(
    server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client, _ = await _pair(server)
    client.send_nowait(b"first")
    client.send_nowait(b"waits")
    assert client.write_buffer_size() > 0
    client.transport.abort()  # the socket goes without our abort(): nothing is flushed
    await client.wait_closed()
    assert client.write_buffer_size() == 0
    await asyncio.sleep(0.01)  # the scheduled end of turn finds nothing to write
    assert not [r for r in caplog.records if "socket.send()" in r.getMessage()]


async def test_replies_to_a_read_of_many_frames_leave_together_a_lone_reply_at_once(
    server: Any,
) -> None:
    client, ws = await _pair(server)
    writes = count_writes(ws)
    at_once: list[bool] = []

    def echo(message: bytes | str) -> None:
        before = len(writes)
        ws.send_nowait(message)
        at_once.append(len(writes) > before)

    ws.deliver_to(echo)
    client.send_nowait(b"lone")
    assert await client.recv() == b"lone"
    assert at_once == [True]  # a round trip's reply is not held back
    messages = [bytes([i]) * 20 for i in range(10)]
    for message in messages:  # one turn: one write, so (on loopback) one read
        client.send_nowait(message)
    assert [await client.recv() for _ in messages] == messages
    assert len(writes) < 1 + len(messages)  # the echoes did not go one write each
    await client.close()


async def test_one_connection_whose_write_fails_does_not_hold_back_the_others(
    server: Any,
) -> None:
    """The end of a turn serves every connection of the loop: a socket that raises on
    write is aborted and the next connection's frames still leave."""
    (bad, _), (good, ws) = await _pair(server), await _pair(server)
    transport: Any = bad.transport

    def broken(data: bytes) -> None:
        raise RuntimeError("Cannot call write() after write_eof()")

    bad.send_nowait(b"first")  # written at once: the turn is armed for both
    good.send_nowait(b"one")
    bad.send_nowait(b"waits")
    good.send_nowait(b"two")
    transport.write = broken
    await asyncio.sleep(0)  # the turn ends
    assert [await ws.recv(), await ws.recv()] == [b"one", b"two"]
    await asyncio.wait_for(bad.wait_closed(), 5)
    await good.close()


def test_event_loops_in_two_threads_each_end_their_own_turns() -> None:
    """Each loop has its own end-of-turn callback (and context): two threads writing
    bursts at once both deliver everything."""
    import threading

    results: list[bool] = []

    async def burst() -> None:
        async with parked_server(max_queue=4096) as parked:
            client, ws = await _pair(parked)
            messages = [i.to_bytes(2, "big") * 50 for i in range(300)]
            for _ in range(5):
                for message in messages:
                    client.send_nowait(message)
                got = [await asyncio.wait_for(ws.recv(), 5) for _ in messages]
                results.append(got == messages)
            await client.close()

    threads = [threading.Thread(target=asyncio.run, args=(burst(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [True] * 10


async def test_a_closed_connection_is_freed_without_the_garbage_collector(server: Any) -> None:
    """The coalescer holds the transport, not the WebSocket: no reference cycle keeps a
    closed connection (and its buffers) alive until a full collection."""
    import gc
    import weakref

    client, ws = await _pair(server)
    for i in range(5):
        client.send_nowait(bytes([i]))
    assert [await ws.recv() for _ in range(5)] == [bytes([i]) for i in range(5)]
    gc.disable()
    try:
        ref = weakref.ref(client)
        await client.close()
        del client
        await asyncio.sleep(0.05)  # connection_lost and the last turn have run
        assert ref() is None
    finally:
        gc.enable()


def test_a_finished_event_loop_is_not_kept_alive_by_its_turn() -> None:
    """The per-thread end-of-turn record lets go of its loop once the loop's connections
    are gone: ``asyncio.run`` after ``asyncio.run`` in one thread frees each loop."""
    import gc
    import weakref

    refs: list[weakref.ref[asyncio.AbstractEventLoop]] = []

    async def exchange() -> None:
        refs.append(weakref.ref(asyncio.get_running_loop()))
        async with parked_server(close_timeout=0.5) as (_, accepted, uri):
            client = await connect(uri, close_timeout=0.5)
            peer = await asyncio.wait_for(accepted.get(), 5)
            await client.send(b"one")
            await client.send(b"two")  # the second of the turn waits for its end
            assert await peer.recv() == b"one"
            assert await peer.recv() == b"two"
            await client.close()

    for _ in range(2):
        asyncio.run(exchange())
    gc.collect()
    assert [r() for r in refs] == [None, None]
