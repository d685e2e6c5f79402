"""The live transport over real sockets on 127.0.0.1 (port 0, short timeouts)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from typing import Any

import pytest
from p2p.transport import (
    AllowlistGate,
    ConnectError,
    NotConnectedError,
    OpenGate,
    PeerConnection,
    SendTimeoutError,
    Transport,
    envelope,
    smsg,
)
from p2p.transport.handshake import REASON_NOT_AUTHORIZED
from pytest_p2p.transport_fixtures import body, eventually, go_now
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


def collector(transport: Transport, types: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """Subscribe a handler that records (peer id, message) of the given types (all if ())."""
    seen: list[tuple[str, Any]] = []

    def handler(conn: PeerConnection, message: Any) -> None:
        if not types or str(message.type) in types or message.type in types:
            seen.append((conn.peer_id, message))

    transport.on_message(handler)
    return seen


async def raw_ws(t: Transport, **kw: Any) -> Any:
    return await connect(
        f"ws://{t.address}/ws", compression=None, ping_interval=None, proxy=None, **kw
    )


def hello_text(manager: Any, **payload_changes: Any) -> str:
    ident = manager.identity
    payload = {
        "identity": ident.to_dict(),
        "challenge": base64.b64encode(os.urandom(32)).decode(),
        "version": "1.0",
    }
    payload.update(payload_changes)
    return body("handshake", ident.id, "", payload)


# --- happy path ----------------------------------------------------------------------------


async def test_pair_exchanges_messages_both_ways(transport_pair: Any) -> None:
    a, b = transport_pair.a, transport_pair.b
    got_a, got_b = collector(a, ("get_stats",)), collector(b, ("get_stats",))
    a_id, b_id = a.node_manager.identity.id, b.node_manager.identity.id
    assert a.connected_peers == [b_id] and b.connected_peers == [a_id]
    assert transport_pair.ab.identity.public_key == b.node_manager.identity.public_key
    await a.send(b_id, envelope.new_message("get_stats", a_id, b_id, None))
    await b.send(a_id, envelope.new_message("get_stats", b_id, a_id, None))
    await eventually(lambda: len(got_a) == 1 and len(got_b) == 1)
    assert got_b[0][0] == a_id and got_a[0][0] == b_id
    assert transport_pair.ab.counters["messages_out"] >= 1
    assert transport_pair.ba.counters["messages_in"] >= 1


async def test_async_handlers_and_several_subscribers(transport_pair: Any) -> None:
    a, b = transport_pair.a, transport_pair.b
    results: list[str] = []

    async def slow(conn: PeerConnection, message: Any) -> None:
        await asyncio.sleep(0.01)
        results.append("async")

    b.on_message(slow)
    unsubscribe = b.on_message(lambda conn, m: results.append("sync"))
    a_id, b_id = a.node_manager.identity.id, b.node_manager.identity.id
    await a.send(b_id, envelope.new_message("get_stats", a_id, b_id, None))
    await eventually(lambda: sorted(results) == ["async", "sync"])
    unsubscribe()
    await a.send(b_id, envelope.new_message("get_stats", a_id, b_id, None))
    await eventually(lambda: results.count("async") == 2)
    assert results.count("sync") == 1


async def test_send_to_unknown_peer_raises(make_transport: Any) -> None:
    a = await make_transport("a")
    with pytest.raises(NotConnectedError, match="not connected"):
        await a.send("00" * 16, envelope.new_message("get_stats", "x", "y", None))


async def test_ping_answered_with_pong_regardless_of_role(
    make_transport: Any, raw_peer: Any
) -> None:
    server = await make_transport("server")
    peer = await raw_peer(server)
    await peer.ws.send(peer.frame("ping", {"sentAt": 1234}, msg_id="p-1"))
    pong = await peer.recv_type("pong")
    assert pong["replyTo"] == "p-1"
    assert pong["payload"]["sentAt"] == 1234 and pong["payload"]["receivedAt"] > 0
    assert pong["from"] == server.node_manager.identity.id


async def test_auto_pong_can_be_turned_off(make_transport: Any, raw_peer: Any) -> None:
    server = await make_transport("server", answer_pings=False)
    pings = collector(server, ("ping",))
    peer = await raw_peer(server)
    await peer.ws.send(peer.frame("ping", {"sentAt": 1}, msg_id="p-2"))
    await eventually(lambda: len(pings) == 1)  # still delivered to handlers
    with pytest.raises((TimeoutError, asyncio.TimeoutError)):
        await peer.recv_type("pong", timeout=0.3)


async def test_keepalive_pings_and_drops_silent_peer(make_transport: Any, raw_peer: Any) -> None:
    server = await make_transport("server", ping_interval=0.2, pong_timeout=0.2)
    peer = await raw_peer(server)
    ping = await peer.recv_type("ping", timeout=2.0)
    assert isinstance(ping["payload"]["sentAt"], int)
    # stay silent: dropped after ping_interval + pong_timeout without data
    await eventually(lambda: not server.connected_peers, timeout=3.0)


async def test_broadcast_concurrent_with_per_peer_result(transport_mesh: Any) -> None:
    nodes = await transport_mesh(3)
    hub = nodes[0]
    seen = [collector(n, ("get_stats",)) for n in nodes[1:]]
    hub_id = hub.node_manager.identity.id
    result = await hub.broadcast(envelope.new_message("get_stats", hub_id, "", None))
    assert result.ok and len(result.sent) == 2
    await eventually(lambda: all(len(s) == 1 for s in seen))
    # a peer that vanished is reported, the others still get it
    victim = hub.connection(nodes[1].node_manager.identity.id)
    victim.abort()
    await victim.wait_closed()
    result = await hub.broadcast(envelope.new_message("get_stats", hub_id, "", None))
    assert nodes[2].node_manager.identity.id in result.sent


async def test_broadcast_skips_sender(transport_pair: Any) -> None:
    a, b = transport_pair.a, transport_pair.b
    b_id = b.node_manager.identity.id
    result = await a.broadcast(envelope.new_message("get_stats", b_id, "", None))
    assert result.sent == () and result.ok


# --- handshake rejections over sockets -------------------------------------------------------


async def test_wrong_version_gets_reference_reject_ack(
    make_transport: Any, make_node_manager: Any
) -> None:
    server = await make_transport("server")
    ws = await raw_ws(server)
    await ws.send(hello_text(make_node_manager("c"), version="2.0"))
    ack = json.loads(await ws.recv())
    assert ack["type"] == "handshake_ack"
    assert ack["payload"]["accepted"] is False
    assert ack["payload"]["reason"] == "incompatible protocol version 2.0, supported: [1.0]"
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 2)
    assert not server.connected_peers


async def test_not_allowed_rejected(make_transport: Any) -> None:
    server = await make_transport("server", gate=AllowlistGate())
    client = await make_transport("client")
    with pytest.raises(ConnectError, match=REASON_NOT_AUTHORIZED):
        await client.connect(server.address)
    assert not server.connected_peers and not client.connected_peers
    server.gate.allow(client.node_manager.identity.public_key)
    await client.connect(server.address)
    await eventually(lambda: server.connected_peers == [client.node_manager.identity.id])


@pytest.mark.parametrize(
    "first",
    [
        "{not json",
        body("ping", "a", "", {"sentAt": 1}),
        body("handshake", "a", "", {"identity": {"id": "a", "publicKey": "!!!"}, "version": "1.0"}),
    ],
    ids=["malformed-json", "not-handshake", "bad-public-key"],
)
async def test_bad_first_message_closed_without_reply(make_transport: Any, first: str) -> None:
    server = await make_transport("server")
    ws = await raw_ws(server)
    await ws.send(first)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 2)
    assert not server.connected_peers
    assert server.rejected["handshake"] == 1


async def test_id_key_mismatch_rejected(make_transport: Any, make_node_manager: Any) -> None:
    server = await make_transport("server")
    victim = make_node_manager("victim").identity
    attacker = make_node_manager("attacker")
    ident = attacker.identity.to_dict()
    ident["id"] = victim.id  # claim someone else's id with our own key
    ws = await raw_ws(server)
    await ws.send(hello_text(attacker, identity=ident))
    ack = json.loads(await ws.recv())
    assert ack["payload"]["accepted"] is False
    assert "does not match" in ack["payload"]["reason"]
    assert not server.connected_peers


async def test_pinned_key_mismatch_refused(make_transport: Any) -> None:
    server = await make_transport("server")
    other = await make_transport("other")
    client = await make_transport("client")
    wrong_key = other.node_manager.identity.public_key
    with pytest.raises(ConnectError, match="pinned"):
        await client.connect(server.address, expected_public_key=wrong_key)
    assert not client.connected_peers
    conn = await client.connect(
        server.address, expected_public_key=server.node_manager.identity.public_key
    )
    assert conn.peer_id == server.node_manager.identity.id


async def test_stalled_handshake_times_out(make_transport: Any) -> None:
    server = await make_transport("server", handshake_timeout=0.3)
    ws = await raw_ws(server)
    await eventually(lambda: server.pending_handshakes == 1)
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 3)
    await eventually(lambda: server.pending_handshakes == 0)


async def test_oversize_handshake_message_closed_1009(make_transport: Any) -> None:
    server = await make_transport("server", max_handshake_message_size=4096)
    ws = await raw_ws(server)
    await ws.send("x" * 10_000)
    with pytest.raises(ConnectionClosed) as info:
        await asyncio.wait_for(ws.recv(), 2)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    await eventually(lambda: server.pending_handshakes == 0)
    assert not server.connected_peers


async def test_client_handshake_timeout_against_silent_server(make_transport: Any) -> None:
    async def silent(ws: Any) -> None:
        await asyncio.sleep(5)

    from websockets.asyncio.server import serve

    async with serve(silent, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1]
        client = await make_transport("client", handshake_timeout=0.3)
        with pytest.raises(ConnectError, match="handshake failed"):
            await client.connect(f"127.0.0.1:{port}")
        assert not client.connected_peers


# --- admission -------------------------------------------------------------------------------


async def test_503_at_max_conns_counts_established_not_pending(
    make_transport: Any, make_node_manager: Any
) -> None:
    """``max_conns`` counts established connections; pending handshakes have their own
    budget, and one that completes when the node is full gets a reject ack."""
    server = await make_transport("server", max_conns=2)
    c1 = await make_transport("c1")
    await c1.connect(server.address)
    stalled = await raw_ws(server)  # in handshake: does not take an established slot
    await eventually(lambda: server.pending_handshakes == 1)
    c2 = await make_transport("c2")
    await c2.connect(server.address)
    with pytest.raises(InvalidStatus) as info:
        await raw_ws(server)
    assert info.value.response.status_code == 503
    assert info.value.response.body == b"Too many connections\n"
    c3 = await make_transport("c3")
    with pytest.raises(ConnectError, match="503") as refused:
        await c3.connect(server.address)
    # the reason carries the status and Go's body, not just the exception's class
    assert refused.value.reason == "HTTP 503 Too many connections"
    assert server.rejected["max_conns"] == 2
    # the pending one finishes its hello now that the node is full: refused with a reason
    await stalled.send(hello_text(make_node_manager("late")))
    ack = json.loads(await asyncio.wait_for(stalled.recv(), 5))
    assert ack["type"] == "handshake_ack"
    assert ack["payload"]["accepted"] is False
    assert ack["payload"]["reason"] == "too many connections"
    await eventually(lambda: server.pending_handshakes == 0)
    await c1.disconnect(c1.connected_peers[0])
    await eventually(lambda: len(server.connected_peers) == 1)
    await c3.connect(server.address)


async def test_outbound_and_inbound_connections_have_separate_budgets(
    make_transport: Any,
) -> None:
    """Our own dials never fill ``max_conns`` (issue 14); they have ``max_outbound_conns``."""
    hub = await make_transport("hub", max_conns=1, max_outbound_conns=2)
    w1, w2, w3 = [await make_transport(f"w{i}") for i in range(3)]
    await hub.connect(w1.address)
    await hub.connect(w2.address)
    with pytest.raises(ConnectError, match="outbound budget full") as full:
        await hub.connect(w3.address)
    assert full.value.reason == "outbound budget full"
    assert hub.rejected["outbound_full"] == 1
    # two outbound connections held, and the single inbound slot is still free
    dialler = await make_transport("dialler")
    await dialler.connect(hub.address)
    await eventually(lambda: len(hub.connected_peers) == 3)
    # a dial that ends gives its slot back
    await hub.disconnect(w1.node_manager.identity.id)
    await eventually(lambda: hub.admission.outbound == 1)
    await hub.connect(w3.address)
    assert hub.admission.outbound == 2


async def test_connect_failure_says_why(make_transport: Any) -> None:
    """A refused TCP connect names its errno, not just "OSError"."""
    server = await make_transport("gone")
    address = server.address
    await server.stop()
    client = await make_transport("client")
    with pytest.raises(ConnectError) as info:
        await client.connect(address)
    assert info.value.reason == "ECONNREFUSED (Connection refused)"
    assert isinstance(info.value.__cause__, OSError)
    assert client.admission.outbound == 0  # the failed dial gave its slot back


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1:99999", "not a usable address"),  # urllib: "Port out of range"
        ("127.0.0.1:port", "not a usable address"),
        ("ws://[::1/ws", "not a usable address"),  # unclosed bracket
        ("http://127.0.0.1:1", "unsupported scheme 'http'"),
    ],
)
async def test_connect_to_an_unusable_address_is_a_connect_error(
    make_transport: Any, address: str, why: str
) -> None:
    """A malformed address (a peer can hand us one) is a ConnectError, never urllib's
    ValueError, and no dial slot is taken."""
    client = await make_transport("client")
    with pytest.raises(ConnectError) as info:
        await client.connect(address)
    assert info.value.reason.startswith(why)
    assert client.admission.outbound == 0


def test_connect_failure_reason_names_errno_and_escapes_bodies() -> None:
    import errno as errno_mod

    from p2p.transport.transport import connect_failure_reason
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    emfile = OSError(errno_mod.EMFILE, "Too many open files")
    assert connect_failure_reason(emfile) == "EMFILE (Too many open files)"
    import socket

    # a resolver failure's errno is an EAI_* code: never "-2 (Unknown error -2)"
    unknown = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert connect_failure_reason(unknown) == (
        "cannot resolve the host name: Name or service not known"
    )
    assert connect_failure_reason(TimeoutError(), timeout=2.0) == "timed out after 2 s"
    hostile = Response(429, "Too Many Requests", Headers(), b"slow\x1b[2J" + b"x" * 500)
    reason = connect_failure_reason(InvalidStatus(hostile))
    assert reason.startswith("HTTP 429 slow") and "\x1b" not in reason and len(reason) < 200


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("http://localhost:3000", True),
        ("https://127.0.0.1", True),
        ("http://[::1]:8080", True),
        ("http://evil.example", False),
        ("http://localhost.evil.example", False),
        ("::not a url", False),
    ],
)
async def test_origin_rules(make_transport: Any, origin: str, allowed: bool) -> None:
    server = await make_transport("server")
    if allowed:
        ws = await raw_ws(server, origin=origin)
        await ws.close()
    else:
        with pytest.raises(InvalidStatus) as info:
            await raw_ws(server, origin=origin)
        assert info.value.response.status_code == 403


async def test_wrong_path_404(make_transport: Any) -> None:
    server = await make_transport("server")
    with pytest.raises(InvalidStatus) as info:
        await connect(f"ws://{server.address}/other", proxy=None)
    assert info.value.response.status_code == 404


async def test_half_open_flood_from_one_ip_cannot_lock_out_others(
    make_transport: Any, raw_peer: Any
) -> None:
    server = await make_transport(
        "server", max_conns=8, max_handshakes_per_ip=3, handshake_timeout=5.0
    )
    stalled = []
    refused = 0
    for _ in range(10):
        try:
            stalled.append(await raw_ws(server))
        except InvalidStatus as exc:
            assert exc.response.status_code == 429
            refused += 1
    assert len(stalled) == 3 and refused == 7
    # a peer from another loopback address still gets in
    peer = await raw_peer(server, local_addr=("127.0.0.2", 0))
    await eventually(lambda: server.connected_peers == [peer.id])
    for ws in stalled:
        ws.transport.abort()


async def test_new_handshake_rate_per_ip(make_transport: Any) -> None:
    server = await make_transport(
        "server", handshake_burst_per_ip=3, handshake_refill_per_ip_s=0.01
    )
    codes = []
    for _ in range(5):
        try:
            ws = await raw_ws(server)
            codes.append(101)
            ws.transport.abort()
        except InvalidStatus as exc:
            codes.append(exc.response.status_code)
    assert codes == [101, 101, 101, 429, 429]
    assert server.rejected["ip_rate"] == 2


# --- after the handshake -------------------------------------------------------------------


async def test_oversize_frame_closes_1009(make_transport: Any, raw_peer: Any) -> None:
    server = await make_transport("server", max_message_size=4096)
    peer = await raw_peer(server)
    await peer.ws.send(b"x" * 5000)
    with pytest.raises(ConnectionClosed) as info:
        while True:  # the server's probe ping may come first
            await asyncio.wait_for(peer.ws.recv(), 2)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    await eventually(lambda: server.drops["oversize"] == 1)
    assert not server.connected_peers


async def test_undecryptable_frames_counted_then_disconnected(
    make_transport: Any, raw_peer: Any
) -> None:
    server = await make_transport("server", max_undecryptable_in_a_row=5)
    got = collector(server, ("get_stats",))
    peer = await raw_peer(server)
    bad = smsg.encrypt(body("get_stats", peer.id, "", None), "wrong password")
    for _ in range(3):
        await peer.ws.send(bad)
    await peer.ws.send(peer.frame("get_stats", None))  # a good one resets the run
    await eventually(lambda: len(got) == 1)
    assert server.drops["decrypt"] == 3
    assert server.connected_peers == [peer.id]
    for _ in range(5):
        await peer.ws.send(bad)
    disconnect = await peer.recv_type("disconnect")
    assert disconnect["payload"]["code"] == 1002
    await eventually(lambda: not server.connected_peers)
    assert server.drops["decrypt"] == 8


async def test_replayed_frame_dropped(make_transport: Any, raw_peer: Any) -> None:
    server = await make_transport("server")
    got = collector(server, ("get_stats",))
    peer = await raw_peer(server)
    frame = peer.frame("get_stats", None)
    await peer.ws.send(frame)
    await peer.ws.send(frame)
    # same message id in a fresh container (new nonce) is a replay too
    await peer.ws.send(smsg.encrypt(smsg.decrypt(frame, peer.password).body, peer.password))
    await peer.ws.send(peer.frame("get_stats", None))
    await eventually(lambda: len(got) == 2)
    await eventually(lambda: server.drops["dedup"] == 2)


@pytest.mark.parametrize("offset", [-400.0, 400.0])
async def test_stale_ts_dropped(make_transport: Any, raw_peer: Any, offset: float) -> None:
    server = await make_transport("server")
    got = collector(server, ("get_stats",))
    peer = await raw_peer(server)
    await peer.ws.send(peer.frame("get_stats", None, ts=go_now(offset)))
    await peer.ws.send(peer.frame("get_stats", None, ts=go_now(-200)))  # inside ±5 min
    await eventually(lambda: len(got) == 1)
    assert server.drops["stale_ts"] == 1


async def test_flood_past_bucket_dropped(make_transport: Any, raw_peer: Any) -> None:
    server = await make_transport("server", rate_burst=10, rate_refill_per_s=0.5)
    got = collector(server, ("get_stats",))
    peer = await raw_peer(server)
    for _ in range(30):
        await peer.ws.send(peer.frame("get_stats", None))
    await eventually(lambda: len(got) + server.drops["rate"] == 30)
    assert len(got) in (9, 10)  # the proof frame took one token
    assert server.connection(peer.id).drops["rate"] == 30 - len(got)


async def test_slow_handler_does_not_stall_reads_or_pongs(
    make_transport: Any, raw_peer: Any
) -> None:
    server = await make_transport("server", handler_concurrency=2, handler_queue_size=3)
    release = asyncio.Event()
    started: list[str] = []

    async def slow(conn: PeerConnection, message: Any) -> None:
        if message.type == "get_stats":
            started.append(message.id)
            await release.wait()

    server.on_message(slow)
    peer = await raw_peer(server)
    for _ in range(8):
        await peer.ws.send(peer.frame("get_stats", None))
    await peer.ws.send(peer.frame("ping", {"sentAt": 1}, msg_id="live"))
    pong = await peer.recv_type("pong")
    assert pong["replyTo"] == "live"
    await eventually(lambda: server.drops["overload"] == 4)  # 3 get_stats + the ping
    assert len(started) == 2  # bounded: 2 running, 3 queued, the rest dropped
    release.set()
    await eventually(lambda: len(started) == 5)


async def test_non_smsg_binary_goes_to_ueps_only_when_negotiated(
    make_transport: Any, raw_peer: Any
) -> None:
    """Both sides advertised ueps/1: a non-SMSG frame is the UEPS side's to judge (here an
    unbound one, counted there) and not an undecryptable SMSG frame; without ueps/1 it is
    tried as SMSG, as Go does."""
    from p2p.transport import with_ueps

    server = await make_transport("server", features=with_ueps())
    got = collector(server, ("get_stats",))
    peer = await raw_peer(server, features=with_ueps())
    await peer.ws.send(b"\x09\x01\x01\x05UEPS-ish")
    await peer.ws.send(peer.frame("get_stats", None))
    await eventually(lambda: server.ueps.counters.rejected == 1 and len(got) == 1)
    assert server.drops["decrypt"] == 0
    plain = await raw_peer(server)
    await plain.ws.send(b"\x09\x01\x01\x05UEPS-ish")
    await eventually(lambda: server.drops["decrypt"] == 1)
    assert server.ueps.counters.rejected == 1


# --- lifecycle -----------------------------------------------------------------------------


async def test_duplicate_connection_replaces_old_cleanly(transport_pair: Any) -> None:
    a, b = transport_pair.a, transport_pair.b
    b_id = b.node_manager.identity.id
    a_id = a.node_manager.identity.id
    old_ab, old_ba = transport_pair.ab, transport_pair.ba
    new_ab = await a.connect(b.address)
    await eventually(lambda: b.connection(a_id) is not old_ba and b.connection(a_id) is not None)
    await eventually(lambda: old_ab.closed and old_ba.closed)
    assert a.connection(b_id) is new_ab and not new_ab.closed
    assert a.connected_peers == [b_id] and b.connected_peers == [a_id]
    assert a_id in b.gate.connected and b_id in a.gate.connected
    got = collector(b, ("get_stats",))
    await a.send(b_id, envelope.new_message("get_stats", a_id, b_id, None))
    await eventually(lambda: len(got) == 1)


async def test_graceful_close_sends_disconnect(transport_pair: Any) -> None:
    a, b = transport_pair.a, transport_pair.b
    got = collector(b, ("disconnect",))
    await transport_pair.ab.graceful_close("bye", 1000)
    await eventually(lambda: len(got) == 1)
    payload = envelope.payload_object(got[0][1], ValueError)
    assert payload == {"reason": "bye", "code": 1000}
    await eventually(lambda: not a.connected_peers and not b.connected_peers)
    assert not a.gate.connected and not b.gate.connected


async def test_stop_with_peers_connected(make_transport: Any, raw_peer: Any) -> None:
    server = await make_transport("server")
    client = await make_transport("client")
    await client.connect(server.address)
    peer = await raw_peer(server)
    await eventually(lambda: len(server.connected_peers) == 2)
    port = server.port
    await server.stop()
    disconnect = await peer.recv_type("disconnect")
    assert disconnect["payload"] == {"reason": "server shutdown", "code": 1004}
    await eventually(lambda: not client.connected_peers)
    assert not server.connected_peers and server.pending_handshakes == 0
    await server.stop()  # idempotent
    assert not server._tasks
    assert server._keepalive is not None and server._keepalive.done()
    with pytest.raises(OSError):
        await connect(f"ws://127.0.0.1:{port}/ws", proxy=None)


async def test_connected_gate_callbacks(make_transport: Any) -> None:
    gate = OpenGate()
    server = await make_transport("server", gate=gate)
    client = await make_transport("client")
    conn = await client.connect(server.address)
    client_id = client.node_manager.identity.id
    await eventually(lambda: client_id in gate.connected)
    assert gate.addresses[client_id] == ""  # inbound: listening address unknown
    assert client.gate.addresses[server.node_manager.identity.id] == server.address
    await conn.graceful_close()
    await eventually(lambda: client_id not in gate.connected)


async def test_send_timeout_drops_stuck_peer(make_transport: Any, raw_peer: Any) -> None:
    server = await make_transport("server", send_timeout=0.3)
    peer = await raw_peer(server)
    peer.ws.transport.pause_reading()  # a peer that stops reading: our writes back up
    conn = server.connection(peer.id)
    server_id = server.node_manager.identity.id
    big = envelope.new_message("get_stats", server_id, peer.id, {"blob": "x" * 200_000})
    with pytest.raises(SendTimeoutError):
        for _ in range(1000):
            await conn.send(big)
    assert conn.closed and conn.close_reason == "send timeout"
    assert peer.id not in server.connected_peers
