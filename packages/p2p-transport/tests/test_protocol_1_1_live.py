"""Protocol 1.1 over real sockets on 127.0.0.1: negotiation, no probation, no downgrade."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from p2p.transport import ConnectError, PeerConnection, SecureSession, Transport, envelope
from p2p.transport.handshake import FEATURE_1_1
from pytest_p2p.transport_fixtures import eventually, fast_transport_config

MakeTransport = Callable[..., Awaitable[Transport]]
V11 = {"features": ("ueps/1", FEATURE_1_1)}


def _ident(t: Transport) -> Any:
    ident = t.node_manager.identity
    assert ident is not None
    return ident


def collector(transport: Transport) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []

    def handler(conn: PeerConnection, message: Any) -> None:
        if message.type == "get_stats":
            seen.append((conn.peer_id, message))

    transport.on_message(handler)
    return seen


async def test_python_pair_negotiates_1_1_and_talks_both_ways(
    make_transport: MakeTransport,
) -> None:
    a = await make_transport("a", **V11)
    b = await make_transport("b", **V11)
    got_a, got_b = collector(a), collector(b)
    a_id, b_id = _ident(a).id, _ident(b).id
    ab = await a.connect(b.address)
    assert a.protocols[b_id] == "1.1"
    # no probation for 1.1: the responder made it the peer's connection at message 3
    await eventually(lambda: b.connection(a_id) is not None)
    assert b.unproven_connections() == []
    assert b.protocols[a_id] == "1.1"
    assert ab.features == ("ueps/1", FEATURE_1_1)
    for _ in range(3):
        await a.send(b_id, envelope.new_message("get_stats", a_id, b_id, None))
        await b.send(a_id, envelope.new_message("get_stats", b_id, a_id, None))
    await eventually(lambda: len(got_a) == 3 and len(got_b) == 3)
    assert _ident(b).public_key in a.pinned_1_1 and _ident(a).public_key in b.pinned_1_1


@pytest.mark.parametrize("who_offers", ["dialler", "listener", "nobody"])
async def test_one_side_without_1_1_gets_1_0(
    make_transport: MakeTransport, who_offers: str
) -> None:
    a = await make_transport("a", **(V11 if who_offers == "dialler" else {}))
    b = await make_transport("b", **(V11 if who_offers == "listener" else {}))
    await a.connect(b.address)
    a_id, b_id = _ident(a).id, _ident(b).id
    assert a.protocols[b_id] == "1.0"
    await eventually(lambda: b.connection(a_id) is not None)
    assert b.protocols[a_id] == "1.0"
    got = collector(b)
    await a.send(b_id, envelope.new_message("get_stats", a_id, b_id, None))
    await eventually(lambda: len(got) == 1)
    assert a.pinned_1_1 == set() and b.pinned_1_1 == set()


async def test_pinned_peer_falling_back_to_1_0_is_refused(make_transport: MakeTransport) -> None:
    a = await make_transport("a", **V11)
    b = await make_transport("b", **V11)
    await a.connect(b.address)
    await a.disconnect(_ident(b).id)
    # the same key comes back without 1.1 (or an attacker strips it): refused both ways
    b10 = Transport(b.node_manager, None, fast_transport_config())
    await b10.start()
    try:
        with pytest.raises(ConnectError, match=r"pinned to protocol 1\.1"):
            await a.connect(b10.address)
        with pytest.raises(ConnectError, match=r"pinned to protocol 1\.1"):
            await b10.connect(a.address)
        assert a.rejected["handshake"] >= 1
        # after the operator resets the pin, 1.0 works again
        a.reset_protocol_pin(_ident(b).public_key)
        await a.connect(b10.address)
        assert a.protocols[_ident(b).id] == "1.0"
    finally:
        await b10.stop()


async def test_require_1_1_refuses_a_1_0_peer(make_transport: MakeTransport) -> None:
    strict = await make_transport("strict", require_1_1=True)
    assert FEATURE_1_1 in strict.config.features
    plain = await make_transport("plain")
    with pytest.raises(ConnectError, match=r"1\.1 required"):
        await plain.connect(strict.address)
    with pytest.raises(ConnectError, match="require"):
        await strict.connect(plain.address)
    both = await make_transport("other", **V11)
    await both.connect(strict.address)
    assert both.protocols[_ident(strict).id] == "1.1"


async def test_1_1_sessions_rekey_under_load(make_transport: MakeTransport) -> None:
    """Frames flow both ways concurrently across many rekey boundaries (every 16 frames)."""
    cfg = {**V11, "rekey_after_messages": 16, "rate_burst": 100_000, "rate_refill_per_s": 1e6}
    a = await make_transport("a", **cfg)
    b = await make_transport("b", **cfg)
    got_a, got_b = collector(a), collector(b)
    a_id, b_id = _ident(a).id, _ident(b).id
    ab = await a.connect(b.address)
    await eventually(lambda: b.connection(a_id) is not None)
    ba = b.connection(a_id)
    assert isinstance(ab.session, SecureSession) and isinstance(ba.session, SecureSession)
    n = 300
    sends = [
        a.send(b_id, envelope.new_message("get_stats", a_id, b_id, {"i": i})) for i in range(n)
    ]
    sends += [
        b.send(a_id, envelope.new_message("get_stats", b_id, a_id, {"i": i})) for i in range(n)
    ]
    await asyncio.gather(*sends)
    await eventually(lambda: len(got_a) == n and len(got_b) == n, timeout=20.0)
    assert ab.drops.get("decrypt", 0) == 0 and ba.drops.get("decrypt", 0) == 0
    assert ab.session.frames_sealed >= n and ba.session.frames_opened >= n


async def test_a_1_1_burst_past_the_rate_limit_leaves_the_stream_open(
    make_transport: MakeTransport,
) -> None:
    """The frames the rate limit drops were sealed with the next nonces: once the bucket
    refills, the peer's next messages still decrypt (none counted as undecryptable)."""
    cfg = {**V11, "rate_burst": 5, "rate_refill_per_s": 20.0}
    a = await make_transport("a", **V11)
    b = await make_transport("b", **cfg)
    got = collector(b)
    a_id, b_id = _ident(a).id, _ident(b).id
    await a.connect(b.address)
    await eventually(lambda: b.connection(a_id) is not None)
    ba = b.connection(a_id)
    assert ba is not None and isinstance(ba.session, SecureSession)
    for i in range(20):  # far past the burst of 5, in one go
        await a.send(b_id, envelope.new_message("get_stats", a_id, b_id, {"i": i}))
    await eventually(lambda: ba.drops.get("rate", 0) > 0)
    await asyncio.sleep(0.3)  # the bucket refills
    before = len(got)
    last = envelope.new_message("get_stats", a_id, b_id, {"i": "last"})
    await a.send(b_id, last)
    await eventually(lambda: len(got) == before + 1)
    assert got[-1][1].id == last.id
    assert ba.drops.get("decrypt", 0) == 0 and b.connection(a_id) is ba


async def test_ueps_between_1_1_peers_both_ways(make_transport: MakeTransport) -> None:
    from p2p.ueps import INTENT_COMPUTE

    a = await make_transport("a", **V11)
    b = await make_transport("b", **V11)
    a_id, b_id = _ident(a).id, _ident(b).id
    await a.connect(b.address)
    assert a.protocols[b_id] == "1.1"
    await a.ueps.wait_ready(b_id)
    await eventually(lambda: b.connection(a_id) is not None)
    await b.ueps.wait_ready(a_id)
    got_a: list[bytes] = []
    got_b: list[bytes] = []
    a.on_ueps(INTENT_COMPUTE, lambda conn, pk: got_a.append(pk.payload))
    b.on_ueps(INTENT_COMPUTE, lambda conn, pk: got_b.append(pk.payload))
    for i in range(5):
        await a.send_ueps(b_id, INTENT_COMPUTE, b"a->b %d" % i)
        await b.send_ueps(a_id, INTENT_COMPUTE, b"b->a %d" % i)
    await eventually(lambda: len(got_a) == 5 and len(got_b) == 5)
    assert got_b == [b"a->b %d" % i for i in range(5)]
    assert got_a == [b"b->a %d" % i for i in range(5)]
    # keyed by the 1.1 session's own key, not the static secret
    ab = a.connection(b_id)
    assert ab is not None and isinstance(ab.session, SecureSession)
    channel = a.ueps.session(b_id)
    assert channel is not None
    assert ab.session.ueps_key and channel._secret == ab.session.ueps_key
    assert ab.session.ueps_key != a.node_manager.derive_shared_secret(_ident(b).public_key)


def test_protocol_knobs() -> None:
    from p2p.transport import TransportConfig
    from p2p.transport.config import ConfigError

    assert FEATURE_1_1 not in TransportConfig().features  # a bare transport: off
    assert TransportConfig(protocol_1_1=True).features == (FEATURE_1_1,)
    assert TransportConfig(features=("ueps/1", FEATURE_1_1), protocol_1_1=False).features == (
        "ueps/1",
    )
    assert FEATURE_1_1 in TransportConfig(require_1_1=True).features
    with pytest.raises(ConfigError):
        TransportConfig(require_1_1=True, protocol_1_1=False)
    with pytest.raises(ConfigError):
        TransportConfig(rekey_after_messages=0)
    with pytest.raises(ConfigError):
        TransportConfig(protocol_1_1="yes")  # type: ignore[arg-type]
