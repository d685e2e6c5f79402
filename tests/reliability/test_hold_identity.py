"""Issue 13 "Hold the line", findings 1 and 8 (and 9: closing a rate-limit abuser), on live
nodes over real sockets on 127.0.0.1.

Protocol 1.0 never makes an inbound initiator prove its key, so a hello carrying someone
else's public identity is accepted. Such a connection is *unproven* until a fresh frame
decrypts under the pair's secret: it is nobody's session, is not registered, gets no UEPS
channel and everything it does is charged to that connection alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import Any

from ._raw import hello_doc, identity_doc, raw_handshake, recv_json, sealed
from .conftest import until


def _password(manager: Any, public_key: str) -> str:
    from p2p.transport import smsg

    return smsg.password_for_secret(manager.derive_shared_secret(public_key))


async def test_keyless_junk_cannot_ban_or_close_the_real_peer(make_node) -> None:
    """Finding 1: ~11 junk binary frames on a hello claiming B (with ``ueps/1``) used to
    close B's live session, refuse B for 300 s and drop B's score to 0."""
    # protocol 1.0 between the nodes (with 1.1 the impostor is refused outright: below)
    target = await make_node(
        "target", transport={"max_undecryptable_in_a_row": 64, "protocol_1_1": False}
    )
    real = await make_node("real")
    await real.add_peer(target.address)
    await until(lambda: target.transport.connection(real.id) is not None, what="B proven")
    live = target.transport.connection(real.id)
    score = target.registry.get(real.id).score
    doc = identity_doc(real.node_manager)
    hello = hello_doc(doc)
    hello["payload"]["features"] = ["ueps/1"]
    impostor = await raw_handshake(target.address, hello)
    assert impostor.accepted  # nothing in protocol 1.0 can tell the difference here
    for _ in range(20):
        await impostor.ws.send(b"\x09\x01\x05" + os.urandom(40))
    # all judged (the first is held, 19 counted against the impostor's own connection),
    # or, as before the fix, the real peer's session was cut
    await until(
        lambda: target.transport.drops.get("unproven", 0) >= 19 or live.closed, what="judged"
    )
    service = target.ueps
    assert not service.threats.refused(real.id) and service.threats.score(real.id) == 0
    assert target.transport.connection(real.id) is live and not live.closed
    assert target.registry.get(real.id).score == score
    # the real peer is served as before
    stats = await real.controller.get_remote_stats(target.id)
    assert stats.node_id == target.id
    await impostor.ws.close()


async def test_1_1_peer_cannot_be_impersonated_over_1_0(make_node) -> None:
    """Issue 16: once the real peer spoke protocol 1.1 with the target, a 1.0 hello claiming
    its identity is refused in the handshake (the key is pinned), before any frame."""
    target = await make_node("target")
    real = await make_node("real")
    await real.add_peer(target.address)
    await until(lambda: target.transport.connection(real.id) is not None, what="B connected")
    assert target.transport.protocols[real.id] == "1.1"
    live = target.transport.connection(real.id)
    impostor = await raw_handshake(target.address, hello_doc(identity_doc(real.node_manager)))
    assert not impostor.accepted and impostor.reason == "peer is pinned to protocol 1.1"
    assert target.transport.unproven_connections() == []
    assert target.transport.connection(real.id) is live and not live.closed


async def test_impostor_never_inherits_the_identity(make_node, make_node_manager) -> None:
    """Finding 1: when the real peer's connection ended, the unproven one waiting on
    probation used to be promoted and registered as the peer."""
    target = await make_node("target")
    real = make_node_manager("real")
    pw = _password(real, target.identity.public_key)
    first = await raw_handshake(target.address, hello_doc(identity_doc(real)))
    await first.ws.send(sealed(pw, "get_stats", real.identity.id, target.id, None))
    assert (await recv_json(first.ws, pw))["type"] == "stats"
    assert target.transport.connection(real.identity.id) is not None
    impostor = await raw_handshake(target.address, hello_doc(identity_doc(real)))
    assert impostor.accepted
    await until(lambda: target.transport.pending_handshakes == 0)  # it is established
    await first.ws.close()
    await until(lambda: target.transport.connection(real.identity.id) is None, what="gone")
    await asyncio.sleep(0.3)
    assert target.transport.connection(real.identity.id) is None
    stored = target.registry.get(real.identity.id)
    assert stored is None or not stored.connected
    await impostor.ws.close()


async def test_unproven_connections_are_not_registered(make_node, make_node_manager) -> None:
    """Finding 1 / 6: a stranger is reported to the registry only once it showed its key."""
    target = await make_node("target")
    stranger = make_node_manager("stranger")
    session = await raw_handshake(target.address, hello_doc(identity_doc(stranger)))
    assert session.accepted
    await asyncio.sleep(0.3)
    assert target.transport.connection(stranger.identity.id) is None
    assert target.registry.get(stranger.identity.id) is None
    pw = _password(stranger, target.identity.public_key)
    await session.ws.send(sealed(pw, "get_stats", stranger.identity.id, target.id, None))
    assert (await recv_json(session.ws, pw))["type"] == "stats"
    assert target.transport.connection(stranger.identity.id) is not None
    await session.ws.close()


async def test_a_peer_claiming_the_nodes_own_identity_is_refused(make_node) -> None:
    from p2p.transport.handshake import REASON_SELF

    target = await make_node("target")
    session = await raw_handshake(target.address, hello_doc(identity_doc(target.node_manager)))
    assert not session.accepted and session.reason == REASON_SELF
    assert await session.closed()
    assert target.registry.get(target.id) is None
    assert target.transport.connection(target.id) is None


async def test_a_connection_that_keeps_exceeding_its_rate_limit_is_closed(
    make_node, make_node_manager
) -> None:
    """Finding 9: rate-limited frames used to be dropped (one WARNING each) forever."""
    target = await make_node(
        "target",
        transport={"rate_burst": 10, "rate_refill_per_s": 1.0, "max_rate_limited": 50},
    )
    noisy = make_node_manager("noisy")
    pw = _password(noisy, target.identity.public_key)
    session = await raw_handshake(target.address, hello_doc(identity_doc(noisy)))
    await session.ws.send(sealed(pw, "get_stats", noisy.identity.id, target.id, None))
    try:
        for _ in range(200):
            await session.ws.send(b"1234567")
    except Exception:  # closed under our feet: what we want
        pass
    assert await session.closed(5.0), "the flooding connection was kept"
    assert target.transport.closed_for["rate_limit"] == 1
    assert target.transport.drops["rate"] >= 50


async def test_identity_churn_cannot_lift_a_ban(make_transport, make_node_manager) -> None:
    """Finding 8: a banned peer came back by cycling throw-away identities that pushed its
    entry out of the breaker's LRU table."""
    from p2p.transport import ConnectError, Transport, UepsConfig, with_ueps
    from p2p.ueps import INTENT_COMPUTE
    from pytest_p2p.transport_fixtures import fast_transport_config

    config = UepsConfig(breaker_threshold=250, max_tracked_peers=8, cooldown=300)
    target = Transport(
        make_node_manager("target"),
        None,
        fast_transport_config(features=with_ueps()),
        ueps_config=config,
    )
    await target.start()
    guard = target.ueps
    target.on_ueps(INTENT_COMPUTE, lambda conn, packet: None)

    async def misbehave(name: str, violations: int) -> tuple[Any, str]:
        t = await make_transport(name, features=with_ueps())
        await t.connect(target.address)
        session = await t.ueps.wait_ready(target.node_manager.identity.id, timeout=5.0)
        conn = t.connection(target.node_manager.identity.id)
        for i in range(violations):
            bad = bytearray(session.seal(INTENT_COMPUTE, b"x%d" % i))
            bad[30] ^= 1
            try:
                await conn.send_raw(bytes(bad))
            except Exception:
                break
        return t, t.node_manager.identity.id

    banned, banned_id = await misbehave("banned", 3)
    await until(lambda: guard.threats.refused(banned_id), what="ban")
    for i in range(12):  # more throw-away identities than the table holds
        # refused once the source prefix tripped: that is the point
        with contextlib.suppress(Exception):
            await misbehave(f"churn-{i}", 1)
    assert guard.threats.refused(banned_id), "identity churn lifted the ban"
    try:
        with contextlib.suppress(ConnectError):
            await banned.connect(target.address)
        await asyncio.sleep(0.3)
        assert target.connection(banned_id) is None
    finally:
        await target.stop()
