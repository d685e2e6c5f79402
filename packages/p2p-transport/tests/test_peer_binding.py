"""Messages and connections are bound to the authenticated peer (TRANSPORT.md §10 #3, #5).

- A message whose ``from`` is not the connection's peer, or whose ``to`` is another node, is
  dropped (one key serves both directions, so our own frames could be reflected at us).
- An inbound connection claiming an already-connected peer stays on probation until it
  decrypts a frame: the protocol-1.0 initiator proves nothing in the handshake, so a bare
  claim of a public identity must not displace the live session.
"""

from __future__ import annotations

import os
from typing import Any

from p2p.identity import KeyPair, NodeIdentity
from p2p.transport import TransportConfig, envelope, smsg
from p2p.transport.handshake import HandshakeInitiator
from p2p.transport.limits import ReplayGuard
from p2p.transport.session import Delivery, Session
from pytest_p2p.transport_fixtures import body, eventually
from websockets.asyncio.client import connect

SECRET = os.urandom(32)


def _session(peer: NodeIdentity, own_id: str) -> Session:
    return Session(
        peer,
        SECRET,
        TransportConfig(),
        ReplayGuard.from_config(TransportConfig()),
        0.0,
        own_id=own_id,
    )


def _frame(frm: str, to: str) -> bytes:
    return smsg.encrypt(body("get_stats", frm, to, None), smsg.password_for_secret(SECRET))


def test_session_drops_misaddressed_messages() -> None:
    peer = NodeIdentity.create(KeyPair.generate(), "peer")
    me = NodeIdentity.create(KeyPair.generate(), "me")
    s = _session(peer, me.id)
    assert isinstance(s.receive(_frame(peer.id, me.id), 1.0, _now()), Delivery)
    assert isinstance(s.receive(_frame(peer.id, ""), 1.0, _now()), Delivery)  # unaddressed
    assert s.receive(_frame(me.id, peer.id), 1.0, _now()) is None  # our own frame reflected
    assert s.receive(_frame(peer.id, "someone-else"), 1.0, _now()) is None
    assert s.receive(_frame("", me.id), 1.0, _now()) is None
    assert s.drops["misaddressed"] == 3


def _now() -> float:
    import time

    return time.time()


async def _claim(server: Any, identity: NodeIdentity) -> Any:
    """Open a connection that completes the responder's side of the handshake while claiming
    ``identity`` without its private key (the ack cannot be checked: it does not matter)."""
    ws = await connect(
        f"ws://{server.address}/ws", compression=None, ping_interval=None, proxy=None
    )
    initiator = HandshakeInitiator(identity, lambda _key: os.urandom(32))
    await ws.send(envelope.to_text(initiator.hello()))
    await ws.recv()  # the ack: accepted, because nothing in it needs the claimed key
    return ws


async def test_keyless_claim_does_not_displace_the_live_connection(transport_pair: Any) -> None:
    a, b = transport_pair.a, transport_pair.b
    a_id = a.node_manager.identity.id
    live = b.connection(a_id)
    ws = await _claim(b, a.node_manager.identity)
    try:
        await eventually(lambda: len(b._probation) == 1)
        for _ in range(3):  # frames it cannot encrypt properly change nothing
            await ws.send(os.urandom(200))
        await ws.send(b"SMSG" + os.urandom(120))
        assert b.connection(a_id) is live and not live.closed
        assert b.connected_peers == [a_id]
        got: list[str] = []
        b.on_message(lambda conn, m: got.append(m.type))
        await a.send(
            b.node_manager.identity.id,
            envelope.new_message("get_stats", a_id, b.node_manager.identity.id, None),
        )
        await eventually(lambda: got == ["get_stats"])
    finally:
        await ws.close()
    await eventually(lambda: not b._probation)
    assert b.connection(a_id) is live and not live.closed


async def test_second_connection_that_proves_its_key_takes_over(transport_pair: Any) -> None:
    a, b = transport_pair.a, transport_pair.b
    a_id, b_id = a.node_manager.identity.id, b.node_manager.identity.id
    live = b.connection(a_id)
    manager = a.node_manager
    ws = await connect(f"ws://{b.address}/ws", compression=None, ping_interval=None, proxy=None)
    try:
        initiator = HandshakeInitiator(manager.identity, manager.derive_shared_secret)
        await ws.send(envelope.to_text(initiator.hello()))
        result = initiator.receive_ack(await ws.recv())
        await eventually(lambda: len(b._probation) == 1)
        assert b.connection(a_id) is live
        password = smsg.password_for_secret(result.secret)
        await ws.send(smsg.encrypt(body("ping", a_id, b_id, {"sentAt": 1}), password))
        await eventually(lambda: b.connection(a_id) is not live and live.closed)
        assert not b._probation and b.connected_peers == [a_id]
    finally:
        await ws.close()
