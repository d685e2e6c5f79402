"""Per-connection memory bounds on real sockets: the in-flight handler budget (reads
pause, nothing is lost) and the write-buffer cap before the handshake."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from p2p.transport import envelope
from pytest_p2p.transport_fixtures import eventually
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


async def test_inflight_budget_pauses_reads_and_loses_nothing(make_transport: Any) -> None:
    budget = 1 << 20
    a = await make_transport("a")
    b = await make_transport("b", max_inflight_bytes=budget, rate_burst=1000)
    gate = asyncio.Event()
    seen: list[str] = []
    peak = {"inflight": 0, "running": 0}

    async def slow(conn: Any, message: Any) -> None:
        if message.type != "stats":
            return
        peak["inflight"] = max(peak["inflight"], conn.counters["inflight_bytes"])
        await gate.wait()
        seen.append(message.id)

    b.on_message(slow)
    ab = await a.connect(b.address)
    big = {"nodeId": "x" * 250_000}  # ~250 KB per message on the wire
    sent = []
    for _ in range(12):
        msg = envelope.new_message(
            "stats", a.node_manager.identity.id, b.node_manager.identity.id, big
        )
        sent.append(msg.id)
        await ab.send(msg)
    a_id = a.node_manager.identity.id
    await eventually(lambda: b.connection(a_id) is not None)  # proven by its pong / frames
    ba = b.connection(a_id)
    assert ba is not None
    await eventually(lambda: ba.read_pauses >= 1)
    frame = len(ab.session.seal_unsent(msg))
    assert ba.counters["inflight_bytes"] <= budget + frame
    assert ba.session.messages_in < 12  # the rest wait in websockets' queue / TCP
    gate.set()
    await eventually(lambda: len(seen) == 12, timeout=10)
    assert sorted(seen) == sorted(sent)
    assert peak["inflight"] <= budget + frame
    assert ba.counters["inflight_bytes"] == 0


async def test_pongs_to_a_client_that_never_reads_close_it_before_the_handshake(
    make_transport: Any,
) -> None:
    server = await make_transport("server", handshake_timeout=60.0)
    ws = await connect(
        f"ws://{server.address}/ws", compression=None, ping_interval=None, proxy=None
    )
    await eventually(lambda: server.pending_handshakes == 1)
    ws.transport.pause_reading()  # never read a pong
    sent = 0
    try:
        for _ in range(400_000):
            await ws.ping(os.urandom(125))
            sent += 1
    except ConnectionClosed:
        pass
    assert sent < 400_000, "the server kept buffering pongs"
    # the abort frees the admission slot at once (the sweep sees a closing socket); the
    # handshake task counts the overflow when it wakes up, a moment later
    await eventually(lambda: server.rejected["outbound_overflow"] == 1, timeout=10)
    await eventually(lambda: server.pending_handshakes == 0, timeout=10)
    ws.transport.abort()


async def test_a_connection_paused_on_stuck_handlers_still_closes(make_transport: Any) -> None:
    """Handlers that never finish keep the read loop paused; closing the connection (here:
    the idle timeout's path, ``close()``) must still end it and free its admission slot."""
    a = await make_transport("a")
    b = await make_transport("b", max_inflight_bytes=1 << 20, rate_burst=1000)
    never = asyncio.Event()

    async def stuck(conn: Any, message: Any) -> None:
        if message.type == "stats":
            await never.wait()

    b.on_message(stuck)
    ab = await a.connect(b.address)
    me, them = a.node_manager.identity.id, b.node_manager.identity.id
    for _ in range(8):
        await ab.send(envelope.new_message("stats", me, them, {"nodeId": "y" * 250_000}))
    await eventually(lambda: b.connection(me) is not None)  # proven by its pong / frames
    ba = b.connection(me)
    assert ba is not None
    await eventually(lambda: ba.read_pauses >= 1)
    assert b.admission.established == 1
    await asyncio.wait_for(ba.close("idle timeout"), 10)
    await asyncio.wait_for(ba.wait_closed(), 10)
    await eventually(lambda: b.admission.established == 0, timeout=10)
    assert ba.counters["inflight_bytes"] == 0
