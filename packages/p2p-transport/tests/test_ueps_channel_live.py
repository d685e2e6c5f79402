"""The UEPS channel on real sockets: two transports on 127.0.0.1, and a Go-like raw peer.

Everything goes through the front door: ``transport.on_ueps`` / ``conn.send_ueps``, the
transport's own ``transport.ueps`` for counters and the threat breaker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from p2p.transport import (
    ConnectError,
    ConnectionClosedError,
    OpenGate,
    PeerConnection,
    PeerRefusedError,
    Transport,
    UepsConfig,
    UepsNotEnabledError,
    UepsNotNegotiatedError,
    UepsSession,
    UepsSessionError,
    envelope,
    with_ueps,
)
from p2p.transport.ueps_frames import BoundPacket
from p2p.ueps import INTENT_COMPUTE, INTENT_REHAB
from pytest_p2p.transport_fixtures import RawPeer, eventually, fast_transport_config

MakeTransport = Callable[..., Awaitable[Transport]]
FAST = {"features": with_ueps(), "rate_burst": 100_000, "rate_refill_per_s": 1e6}


class FailureGate(OpenGate):
    """An open gate that notes the transport's ``record_failure`` reports (as the registry)."""

    def __init__(self) -> None:
        super().__init__()
        self.failures: list[str] = []

    def record_failure(self, peer_id: str) -> None:
        self.failures.append(peer_id)


@pytest.fixture
async def make_custom(
    make_node_manager: Callable[[str], Any],
) -> AsyncIterator[Callable[..., Awaitable[Transport]]]:
    """Like ``make_transport``, with the transport's own ``clock``/``ueps_config``."""
    made: list[Transport] = []

    async def make(
        name: str,
        *,
        gate: Any = None,
        clock: Callable[[], float] | None = None,
        ueps_config: UepsConfig | None = None,
        **changes: Any,
    ) -> Transport:
        extra: dict[str, Any] = {} if clock is None else {"clock": clock}
        t = Transport(
            make_node_manager(name),
            gate,
            fast_transport_config(**changes),
            ueps_config=ueps_config,
            **extra,
        )
        await t.start()
        made.append(t)
        return t

    yield make
    for t in made:
        await t.stop()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Pair:
    a: Transport
    b: Transport
    ab: PeerConnection

    @property
    def a_id(self) -> str:
        identity = self.a.node_manager.identity
        assert identity is not None
        return identity.id

    @property
    def b_id(self) -> str:
        return self.ab.peer_id


async def _pair(make: MakeTransport, b_kwargs: dict[str, Any] | None = None, **cfg: Any) -> Pair:
    """``a`` dialled ``b``; ``b_kwargs`` go to ``b``'s maker (``make_custom`` takes a gate,
    clock and ueps_config)."""
    changes = {**FAST, **cfg}
    a = await make("ueps-a", **changes)
    b = await make("ueps-b", **(b_kwargs or {}), **changes)
    ab = await a.connect(b.address)
    pair = Pair(a, b, ab)
    await a.ueps.wait_ready(pair.b_id)
    await eventually(lambda: b.connection(pair.a_id) is not None)
    await b.ueps.wait_ready(pair.a_id)
    return pair


def _collector() -> tuple[list[tuple[str, BoundPacket]], Callable[..., Awaitable[None]]]:
    got: list[tuple[str, BoundPacket]] = []

    async def handler(conn: PeerConnection, packet: BoundPacket) -> None:
        await asyncio.sleep(0)
        got.append((conn.peer_id, packet))

    return got, handler


async def test_many_frames_in_flight_both_directions(make_transport: MakeTransport) -> None:
    p = await _pair(make_transport)
    got_b, handler_b = _collector()
    got_a, handler_a = _collector()
    p.b.on_ueps(INTENT_COMPUTE, handler_b)
    p.a.on_ueps(INTENT_COMPUTE, handler_a)
    n = 400
    sends = [p.a.send_ueps(p.b_id, INTENT_COMPUTE, b"a->b %d" % i) for i in range(n)]
    sends += [p.b.send_ueps(p.a_id, INTENT_COMPUTE, b"b->a %d" % i) for i in range(n)]
    await asyncio.gather(*sends)
    await eventually(lambda: len(got_a) == n and len(got_b) == n)
    assert {pk.payload for _, pk in got_b} == {b"a->b %d" % i for i in range(n)}
    assert {pk.payload for _, pk in got_a} == {b"b->a %d" % i for i in range(n)}
    assert {peer for peer, _ in got_b} == {p.a_id} and {peer for peer, _ in got_a} == {p.b_id}
    assert sorted(pk.counter or 0 for _, pk in got_b) == list(range(1, n + 1))
    for t in (p.a, p.b):
        assert t.ueps.counters["accepted"] == n and t.ueps.counters["sent"] == n
        assert t.ueps.counters.rejected == 0
    assert p.b.ueps.peer_counters(p.a_id)["accepted"] == n


async def test_sync_handler_and_unknown_intent(make_transport: MakeTransport) -> None:
    p = await _pair(make_transport)
    seen: list[bytes] = []
    p.b.on_ueps(INTENT_REHAB, lambda conn, pk: seen.append(pk.payload))
    await p.a.send_ueps(p.b_id, INTENT_REHAB, b"pause")
    await p.a.send_ueps(p.b_id, 0x42, b"nobody listens")
    await p.a.send_ueps(p.b_id, INTENT_REHAB, b"resume")
    await eventually(lambda: len(seen) == 2)
    assert seen == [b"pause", b"resume"]
    assert p.b.ueps.peer_counters(p.a_id)["unknown_intent"] == 1
    assert p.b.ueps.threats.score(p.a_id) == 0  # not a violation


async def test_high_threat_frames_dropped_before_routing(make_transport: MakeTransport) -> None:
    p = await _pair(make_transport)
    got, handler = _collector()
    p.b.on_ueps(INTENT_COMPUTE, handler)
    await p.a.send_ueps(p.b_id, INTENT_COMPUTE, b"too hot", threat_score=50_001)
    await p.a.send_ueps(p.b_id, 0x77, b"hot, unknown intent", threat_score=65_535)
    await p.a.send_ueps(p.b_id, INTENT_COMPUTE, b"at the limit", threat_score=50_000)
    await eventually(lambda: len(got) == 1)
    assert got[0][1].payload == b"at the limit" and got[0][1].threat_score == 50_000
    counters = p.b.ueps.peer_counters(p.a_id)
    assert counters["threat"] == 2 and counters["unknown_intent"] == 0
    assert p.b.connection(p.a_id) is not None


async def test_tampered_replayed_reordered_frames_rejected(make_custom: MakeTransport) -> None:
    gate = FailureGate()
    failures = gate.failures
    p = await _pair(make_custom, {"gate": gate})
    got, handler = _collector()
    p.b.on_ueps(INTENT_COMPUTE, handler)
    session = p.a.ueps.session(p.b_id)
    assert session is not None
    good = session.seal(INTENT_COMPUTE, b"one")
    tampered = bytearray(session.seal(INTENT_COMPUTE, b"two"))
    tampered[-1] ^= 0x20
    f3 = session.seal(INTENT_COMPUTE, b"three")
    f4 = session.seal(INTENT_COMPUTE, b"four")
    for frame in (good, bytes(tampered), good, f4, f3):
        await p.ab.send_raw(frame)
    await p.a.send_ueps(p.b_id, INTENT_COMPUTE, b"five")
    await eventually(lambda: len(got) == 3)
    assert [pk.payload for _, pk in got] == [b"one", b"four", b"five"]
    c = p.b.ueps.peer_counters(p.a_id)
    assert (c["integrity"], c["replay"], c["accepted"]) == (1, 2, 3)
    assert failures == [p.a_id] * 3
    assert p.b.ueps.threats.score(p.a_id) > 0
    assert p.b.connection(p.a_id) is not None  # below the breaker threshold


async def test_frame_replayed_into_a_new_session(make_transport: MakeTransport) -> None:
    p = await _pair(make_transport)
    got, handler = _collector()
    p.b.on_ueps(INTENT_COMPUTE, handler)
    session = p.a.ueps.session(p.b_id)
    assert session is not None
    recorded = session.seal(INTENT_COMPUTE, b"pay 10")
    await p.ab.send_raw(recorded)
    await eventually(lambda: len(got) == 1)
    await p.ab.graceful_close()
    await eventually(lambda: p.b.connection(p.a_id) is None)
    ab2 = await p.a.connect(p.b.address)
    await p.a.ueps.wait_ready(p.b_id)
    await ab2.send_raw(recorded)  # same static key, same bytes, new session
    await p.a.send_ueps(p.b_id, INTENT_COMPUTE, b"fresh")
    await eventually(lambda: len(got) == 2)
    assert [pk.payload for _, pk in got] == [b"pay 10", b"fresh"]
    assert p.b.ueps.peer_counters(p.a_id)["wrong_session"] == 1


async def test_threat_escalation_disconnects_and_refuses(make_custom: MakeTransport) -> None:
    clock = Clock()  # b's transport clock: the breaker's cool-down runs on it
    config = UepsConfig(breaker_threshold=250, cooldown=60)
    gate = FailureGate()
    failures = gate.failures
    p = await _pair(make_custom, {"ueps_config": config, "clock": clock, "gate": gate})
    session = p.a.ueps.session(p.b_id)
    assert session is not None
    for i in range(3):
        bad = bytearray(session.seal(INTENT_COMPUTE, b"x%d" % i))
        bad[30] ^= 1  # inside the session id: the HMAC no longer matches
        await p.ab.send_raw(bytes(bad))
    await eventually(lambda: p.b.connection(p.a_id) is None and p.a.connection(p.b_id) is None)
    assert p.b.ueps.trips == 1 and p.b.ueps.threats.refused(p.a_id) and len(failures) == 3
    # refused inbound: the handshake is rejected while the cool-down lasts
    with pytest.raises(ConnectError, match="peer not authorized"):
        await p.a.connect(p.b.address)
    # refused outbound too: b's own dial to a is dropped at once
    await p.b.connect(p.a.address)
    await eventually(lambda: p.b.connection(p.a_id) is None)
    with pytest.raises(PeerRefusedError):
        await p.b.send_ueps(p.a_id, INTENT_COMPUTE, b"no")
    assert p.b.ueps.refuses(p.a_id) and not p.a.ueps.refuses(p.b_id)
    # after the cool-down a is welcome again, with a fresh session
    clock.t += 61
    await p.a.connect(p.b.address)
    await p.a.ueps.wait_ready(p.b_id)
    got, handler = _collector()
    p.b.on_ueps(INTENT_COMPUTE, handler)
    await p.a.send_ueps(p.b_id, INTENT_COMPUTE, b"back")
    await eventually(lambda: len(got) == 1)


async def test_go_like_peer_never_receives_ueps(
    make_transport: MakeTransport, raw_peer: Callable[..., Awaitable[RawPeer]]
) -> None:
    a = await make_transport("ueps-a", **FAST)
    raw = await raw_peer(a)  # completes the Go handshake by hand: no features
    await eventually(lambda: a.connection(raw.id) is not None)
    assert not a.ueps.speaks_ueps(raw.id) and a.ueps.session(raw.id) is None
    with pytest.raises(UepsNotNegotiatedError):
        await a.send_ueps(raw.id, INTENT_COMPUTE, b"not for Go")
    identity = a.node_manager.identity
    assert identity is not None
    await a.send(raw.id, envelope.ping(identity.id, raw.id, 0))
    first = await raw.recv_message()  # the first frame it ever got after the ack is SMSG
    assert first["type"] == "ping"
    # a stray non-SMSG binary frame from a non-UEPS peer is handled as Go does: tried as
    # SMSG and counted undecryptable (a run of them closes the connection), never routed
    await raw.ws.send(b"\x01\x00\x01\x09not ueps")
    await eventually(lambda: a.drops["decrypt"] == 1)
    assert a.ueps.counters.rejected == 0 and a.ueps.counters["accepted"] == 0
    assert a.connection(raw.id) is not None


async def test_plain_python_peer_gets_no_ueps(make_transport: MakeTransport) -> None:
    a = await make_transport("ueps-a", **FAST)
    plain = await make_transport("plain")
    conn = await a.connect(plain.address)
    assert conn.features == ()
    with pytest.raises(UepsNotNegotiatedError):
        await conn.send_ueps(INTENT_COMPUTE, b"x")
    with pytest.raises(UepsNotEnabledError):
        plain.on_ueps(INTENT_COMPUTE, lambda conn, packet: None)
    a_id = a.node_manager.identity.id
    await eventually(lambda: plain.connection(a_id) is not None)
    back = plain.connection(a_id)
    assert back is not None
    with pytest.raises(UepsNotNegotiatedError):  # it never offered ueps/1
        await back.send_ueps(INTENT_COMPUTE, b"x")
    assert plain.drops["decrypt"] == 0 and plain.drops["unroutable"] == 0


async def test_ueps_frames_share_the_rate_limit(make_transport: MakeTransport) -> None:
    p = await _pair(make_transport, rate_burst=20, rate_refill_per_s=0.001)
    got, handler = _collector()
    p.b.on_ueps(INTENT_COMPUTE, handler)
    for i in range(40):
        await p.a.send_ueps(p.b_id, INTENT_COMPUTE, b"%d" % i)
    await eventually(lambda: p.b.drops["rate"] + len(got) >= 40)
    assert p.b.drops["rate"] > 0 and 0 < len(got) < 40
    # gaps left by the rate limit do not break the session: counters still increase
    counters = [pk.counter or 0 for _, pk in got]
    assert counters == sorted(counters)
    assert p.b.ueps.counters.rejected == 0


async def test_send_errors(make_transport: MakeTransport) -> None:
    p = await _pair(make_transport)
    from p2p.transport import NotConnectedError

    with pytest.raises(NotConnectedError):
        await p.a.send_ueps("0" * 32, INTENT_COMPUTE, b"")
    with pytest.raises(ValueError):
        await p.a.send_ueps(p.b_id, 0x01, b"setup intent is reserved")
    assert type(p.a.gate) is OpenGate  # nothing wraps the gate
    ab = p.ab
    await ab.close()
    with pytest.raises(ConnectionClosedError):
        await ab.send_ueps(INTENT_COMPUTE, b"closed")
    with pytest.raises(ConnectionClosedError):  # its session ended with it
        await p.a.ueps.send(ab, INTENT_COMPUTE, b"closed: no session")
    assert p.a.ueps.session(p.b_id) is None
    with pytest.raises(UepsSessionError):  # the unit: no data before the setup exchange
        UepsSession(b"k" * 32, outbound=True).seal(INTENT_COMPUTE, b"early")


async def test_async_handlers_are_bounded_like_message_handlers(
    make_transport: MakeTransport,
) -> None:
    p = await _pair(make_transport, handler_concurrency=1, handler_queue_size=2)
    release = asyncio.Event()
    started: list[bytes] = []
    done: list[bytes] = []

    async def slow(conn: PeerConnection, packet: BoundPacket) -> None:
        started.append(packet.payload)
        await release.wait()
        done.append(packet.payload)

    p.b.on_ueps(INTENT_COMPUTE, slow)
    for i in range(10):
        await p.a.send_ueps(p.b_id, INTENT_COMPUTE, b"%d" % i)
    ba = p.b.connection(p.a_id)
    assert ba is not None
    await eventually(lambda: ba.drops["overload"] == 7)  # 1 running + 2 queued, 7 dropped
    assert started == [b"0"]
    release.set()
    await eventually(lambda: len(done) == 3)
    assert done == [b"0", b"1", b"2"]
    assert p.b.ueps.counters["accepted"] == 10  # routed; the pool then shed the excess


def test_compute_example_runs() -> None:
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).parent.parent / "examples" / "ueps_compute.py"
    out = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert out.count("answer: job-") == 3 and "'accepted': 3" in out


async def test_frames_are_bound_to_their_peer_in_a_mesh(make_transport: MakeTransport) -> None:
    a = await make_transport("mesh-a", **FAST)
    b = await make_transport("mesh-b", **FAST)
    c = await make_transport("mesh-c", **FAST)
    got_b, handler_b = _collector()
    got_c, handler_c = _collector()
    b.on_ueps(INTENT_COMPUTE, handler_b)
    c.on_ueps(INTENT_COMPUTE, handler_c)
    ab = await a.connect(b.address)
    ac = await a.connect(c.address)
    to_b = await a.ueps.wait_ready(ab.peer_id)
    await a.ueps.wait_ready(ac.peer_id)
    await asyncio.gather(
        *(ab.send_ueps(INTENT_COMPUTE, b"b%d" % i) for i in range(50)),
        *(ac.send_ueps(INTENT_COMPUTE, b"c%d" % i) for i in range(50)),
    )
    await ac.send_raw(to_b.seal(INTENT_COMPUTE, b"meant for b"))  # other peer, other key
    await ac.send_ueps(INTENT_COMPUTE, b"c-last")
    await eventually(lambda: len(got_b) == 50 and len(got_c) == 51)
    assert {pk.payload for _, pk in got_b} == {b"b%d" % i for i in range(50)}
    assert b"meant for b" not in {pk.payload for _, pk in got_c}
    own = a.node_manager.identity
    assert own is not None
    a_id = own.id
    assert c.ueps.peer_counters(a_id)["integrity"] == 1 and b.ueps.counters.rejected == 0


async def test_reconnect_while_the_old_connection_is_alive(make_transport: MakeTransport) -> None:
    """A second connection for the same peer (the transport may keep it on probation until
    it proves its key) carries UEPS at once, and nothing is rejected on the way."""
    p = await _pair(make_transport)
    got, handler = _collector()
    p.b.on_ueps(INTENT_COMPUTE, handler)
    await p.a.send_ueps(p.b_id, INTENT_COMPUTE, b"old")
    await p.a.connect(p.b.address)
    await p.a.ueps.wait_ready(p.b_id, timeout=3.0)
    await p.a.send_ueps(p.b_id, INTENT_COMPUTE, b"new")
    await eventually(lambda: len(got) == 2)
    assert [pk.payload for _, pk in got] == [b"old", b"new"]
    await p.b.send_ueps(p.a_id, INTENT_COMPUTE, b"back")
    assert p.a.ueps.counters.rejected == 0 and p.b.ueps.counters.rejected == 0


async def test_unproven_second_connection_proves_itself_with_ueps(
    make_transport: MakeTransport,
) -> None:
    """While the first connection stays up, a second one for the same identity (here a second
    process of the same node) is on probation at b; once it proved its key (its answer to
    b's probe) it replaces the first, its UEPS session (whose setup frame b held meanwhile)
    works both ways and b's replies follow the connection that proved the key."""
    from pytest_p2p.transport_fixtures import fast_transport_config

    p = await _pair(make_transport)
    first = p.b.connection(p.a_id)
    got, handler = _collector()
    p.b.on_ueps(INTENT_COMPUTE, handler)
    twin = Transport(p.a.node_manager, None, fast_transport_config(**FAST))
    await twin.start()
    try:
        back, back_handler = _collector()
        twin.on_ueps(INTENT_COMPUTE, back_handler)
        await twin.connect(p.b.address)
        await twin.ueps.wait_ready(p.b_id, timeout=3.0)
        await twin.send_ueps(p.b_id, INTENT_COMPUTE, b"from the twin")
        await eventually(lambda: len(got) == 1)
        await p.b.send_ueps(p.a_id, INTENT_COMPUTE, b"reply")
        await eventually(lambda: len(back) == 1)
        assert back[0][1].payload == b"reply"
        # the twin proved the key: b promoted its connection
        await eventually(lambda: p.b.connection(p.a_id) is not first and first.closed)
        assert not p.b.connection(p.a_id).on_probation
        assert p.b.ueps.counters.rejected == 0 and twin.ueps.counters.rejected == 0
    finally:
        await twin.stop()


async def test_the_handshake_secret_is_carried_forward(
    make_node_manager: Callable[[str], Any],
) -> None:
    """One X25519 per side per connection: the UEPS session and ``conn.shared_secret`` reuse
    the handshake's secret; nothing derives it again."""
    calls: list[str] = []
    transports = []
    for name in ("fwd-a", "fwd-b"):
        manager = make_node_manager(name)
        real = manager.derive_shared_secret

        def counting(public_key: str, real: Callable[[str], bytes] = real) -> bytes:
            calls.append(public_key)
            return real(public_key)

        manager.derive_shared_secret = counting  # type: ignore[method-assign]
        transports.append(Transport(manager, None, fast_transport_config(**FAST)))
    a, b = transports
    await a.start()
    await b.start()
    try:
        got, handler = _collector()
        b.on_ueps(INTENT_COMPUTE, handler)
        ab = await a.connect(b.address)
        a_id = a.node_manager.identity.id
        await a.ueps.wait_ready(ab.peer_id)
        await eventually(lambda: b.connection(a_id) is not None)
        await b.ueps.wait_ready(a_id)
        await ab.send_ueps(INTENT_COMPUTE, b"one secret")
        await eventually(lambda: len(got) == 1)
        ba = b.connection(a_id)
        assert ba is not None
        assert len(calls) == 2  # the handshake's, once on each side
        assert (
            ab.shared_secret
            == ba.shared_secret
            == a.node_manager.derive_shared_secret(b.node_manager.identity.public_key)
        )
        assert "shared_secret" not in repr(ab) and ab.shared_secret.hex() not in repr(ab)
    finally:
        await a.stop()
        await b.stop()


async def test_on_ueps_returns_an_unregister(make_transport: MakeTransport) -> None:
    p = await _pair(make_transport)
    got, handler = _collector()
    unregister = p.b.on_ueps(INTENT_COMPUTE, handler)
    await p.ab.send_ueps(INTENT_COMPUTE, b"routed")
    await eventually(lambda: len(got) == 1)
    unregister()
    assert INTENT_COMPUTE not in p.b.ueps.dispatcher.handlers()
    await p.ab.send_ueps(INTENT_COMPUTE, b"nobody listens now")
    await eventually(lambda: p.b.ueps.peer_counters(p.a_id)["unknown_intent"] == 1)
    _, other_handler = _collector()
    p.b.on_ueps(INTENT_COMPUTE, other_handler)
    unregister()  # an old unregister leaves a newer handler alone
    assert p.b.ueps.dispatcher.handlers()[INTENT_COMPUTE] is other_handler


async def test_a_newcomer_from_a_refused_source_is_dropped_before_dispatch(
    make_custom: MakeTransport,
) -> None:
    """A fresh identity from a source prefix in its UEPS cool-down passes the handshake (the
    breaker knows no such peer) and is dropped the moment it proves its key: the message
    that proved it reaches no handler."""
    p = await _pair(make_custom)
    conn = p.b.connection(p.a_id)
    assert conn is not None
    source = p.b.ueps.source_of(conn)
    while not p.b.ueps.sources.refused(source):
        p.b.ueps.sources.record(source, points=10_000)
    seen: list[str] = []
    p.b.on_message(lambda _conn, message: seen.append(message.type))
    c = await make_custom("ueps-c", **FAST)
    c_id = c.node_manager.identity.id
    cb = await c.connect(p.b.address)
    stats = envelope.new_message("stats", c_id, p.b_id, {"nodeId": c_id})
    await cb.send(stats)
    await eventually(lambda: cb.closed, timeout=10)
    assert p.b.connection(c_id) is None
    assert "stats" not in seen
