"""The per-connection handler pool: coroutine handlers, eagerly started on Python 3.12+.

Real transports on 127.0.0.1; a raw websockets peer sends hand-built frames. What must hold
with and without eager start: handlers start in message order, each runs as its own task
(never in the read callback that delivers frames), exceptions are counted, waiting
handlers are cancelled on close, the concurrency bound holds, context changes stay inside
the handler.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from typing import Any

import pytest
from p2p.transport import PeerConnection
from p2p.transport.connection import with_timeout
from pytest_p2p.transport_fixtures import eventually

EAGER = sys.version_info >= (3, 12)
_var: contextvars.ContextVar[str] = contextvars.ContextVar("handler_pool_test", default="-")


async def test_handlers_start_in_message_order(make_transport: Any, raw_peer: Any) -> None:
    server = await make_transport("server")
    started: list[str] = []
    finished: list[str] = []

    async def handler(conn: PeerConnection, message: Any) -> None:
        if message.type != "get_stats":
            return
        started.append(message.id)
        if int(message.id.rpartition("-")[2]) % 2:
            await asyncio.sleep(0)  # every other one waits once
        finished.append(message.id)

    server.on_message(handler)
    peer = await raw_peer(server)
    ids = [f"m-{i}" for i in range(12)]
    for msg_id in ids:
        await peer.ws.send(peer.frame("get_stats", None, msg_id=msg_id))
    await eventually(lambda: len(finished) == len(ids))
    assert started == ids
    assert sorted(finished) == sorted(ids)


async def test_a_handler_runs_as_its_own_task(make_transport: Any, raw_peer: Any) -> None:
    """Never as the task that delivers frames (since frames come from the read callback
    that is no task at all; a plain handler runs there): a deadline inside a handler that
    waits must cancel the handler alone (the connection goes on answering pings)."""
    server = await make_transport("server")
    read_loop_tasks: list[asyncio.Task[Any] | None] = []
    handler_tasks: list[asyncio.Task[Any] | None] = []
    timed_out: list[str] = []
    never = asyncio.Event()

    def sync_handler(conn: PeerConnection, message: Any) -> None:
        if message.type == "get_stats":
            read_loop_tasks.append(asyncio.current_task())

    async def waiting_handler(conn: PeerConnection, message: Any) -> None:
        if message.type != "get_stats":
            return
        handler_tasks.append(asyncio.current_task())
        try:
            await with_timeout(never.wait(), 0.05)
        except TimeoutError:
            timed_out.append(message.id)

    server.on_message(sync_handler)
    server.on_message(waiting_handler)
    peer = await raw_peer(server)
    await peer.ws.send(peer.frame("get_stats", None, msg_id="one"))
    await eventually(lambda: timed_out == ["one"])
    assert read_loop_tasks == [None]  # plain handlers run in the read callback
    assert handler_tasks[0] is not None
    await peer.ws.send(peer.frame("ping", {"sentAt": 1}, msg_id="after"))
    pong = await peer.recv_type("pong")
    assert pong["replyTo"] == "after"
    conn = server.connection(peer.id)
    assert conn is not None and not conn.closed


async def test_handler_context_changes_stay_in_the_handler(
    make_transport: Any, raw_peer: Any
) -> None:
    server = await make_transport("server")
    seen: list[str] = []

    async def setter(conn: PeerConnection, message: Any) -> None:
        if message.type == "get_stats":
            _var.set("set by a handler")

    def reader(conn: PeerConnection, message: Any) -> None:
        if message.type == "get_stats":
            seen.append(_var.get())  # runs in the read callback, after the setter started

    server.on_message(setter)
    server.on_message(reader)
    peer = await raw_peer(server)
    for _ in range(3):
        await peer.ws.send(peer.frame("get_stats", None))
    await eventually(lambda: len(seen) == 3)
    assert seen == ["-", "-", "-"]


@pytest.mark.parametrize("when", ["before_waiting", "after_waiting"])
async def test_handler_exceptions_are_counted(
    make_transport: Any, raw_peer: Any, when: str
) -> None:
    server = await make_transport("server")
    handled: list[str] = []

    async def handler(conn: PeerConnection, message: Any) -> None:
        if message.type != "get_stats":
            return
        if message.id.startswith("bad"):
            if when == "after_waiting":
                await asyncio.sleep(0)
            raise RuntimeError("handler bug")
        handled.append(message.id)

    server.on_message(handler)
    peer = await raw_peer(server)
    for msg_id in ("bad-1", "good-1", "bad-2", "good-2"):
        await peer.ws.send(peer.frame("get_stats", None, msg_id=msg_id))
    await eventually(lambda: handled == ["good-1", "good-2"])
    conn = server.connection(peer.id)
    assert conn is not None
    await eventually(lambda: conn.handler_errors == 2)
    assert not conn.closed
    await eventually(lambda: conn.counters["inflight_bytes"] == 0)


async def test_waiting_handlers_are_cancelled_on_close(make_transport: Any, raw_peer: Any) -> None:
    server = await make_transport("server", handler_concurrency=2, handler_queue_size=2)
    started: list[str] = []
    cancelled: list[str] = []
    never = asyncio.Event()

    async def handler(conn: PeerConnection, message: Any) -> None:
        if message.type != "get_stats":
            return
        started.append(message.id)
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.append(message.id)
            raise

    server.on_message(handler)
    peer = await raw_peer(server)
    for i in range(4):
        await peer.ws.send(peer.frame("get_stats", None, msg_id=f"m-{i}"))
    conn = server.connection(peer.id)
    assert conn is not None
    await eventually(lambda: conn.counters["inflight_bytes"] > 0 and len(started) == 2)
    await eventually(lambda: len(conn._pending) == 2)
    await conn.close()
    assert sorted(cancelled) == ["m-0", "m-1"]  # the queued two never started
    assert started == ["m-0", "m-1"]
    assert conn.counters["inflight_bytes"] == 0


async def test_concurrency_bound_holds_for_waiting_handlers(
    make_transport: Any, raw_peer: Any
) -> None:
    server = await make_transport("server", handler_concurrency=2, handler_queue_size=3)
    release = asyncio.Event()
    running: list[int] = [0]
    most: list[int] = [0]
    done: list[str] = []

    async def handler(conn: PeerConnection, message: Any) -> None:
        if message.type != "get_stats":
            return
        running[0] += 1
        most[0] = max(most[0], running[0])
        try:
            await release.wait()
        finally:
            running[0] -= 1
        done.append(message.id)

    server.on_message(handler)
    peer = await raw_peer(server)
    for i in range(8):
        await peer.ws.send(peer.frame("get_stats", None, msg_id=f"m-{i}"))
    await eventually(lambda: server.drops["overload"] == 3)
    assert running[0] == 2
    release.set()
    await eventually(lambda: len(done) == 5)
    assert most[0] == 2


@pytest.mark.skipif(not EAGER, reason="eager handler start needs Python 3.12")
async def test_handlers_that_never_wait_take_no_pool_slot(
    make_transport: Any, raw_peer: Any
) -> None:
    """Started eagerly, a handler that finishes without waiting is done before the next
    message is read: a burst far past the bounds is handled, none dropped, no task left."""
    server = await make_transport("server", handler_concurrency=1, handler_queue_size=1)
    handled: list[str] = []

    async def handler(conn: PeerConnection, message: Any) -> None:
        if message.type == "get_stats":
            handled.append(message.id)

    server.on_message(handler)
    peer = await raw_peer(server)
    for i in range(20):
        await peer.ws.send(peer.frame("get_stats", None, msg_id=f"m-{i}"))
    await eventually(lambda: len(handled) == 20)
    assert server.drops.get("overload", 0) == 0
    conn = server.connection(peer.id)
    assert conn is not None and not conn._workers
