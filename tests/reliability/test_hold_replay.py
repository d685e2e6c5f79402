"""Issue 13 "Hold the line", finding 2: replay of a recorded message by a keyless impostor,
on live nodes over real sockets on 127.0.0.1.

Replay protection is per peer (keyed by its public key), cannot be evicted by other peers'
traffic, remembers an id until its own ``ts`` plus the window has passed, and a replay is
never the "proof of key" that makes an inbound connection somebody's session.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pytest_p2p.transport_fixtures import go_now

from ._raw import hello_doc, identity_doc, raw_handshake, recv_json, sealed
from .conftest import until


def _password(manager: Any, public_key: str) -> str:
    from p2p.transport import smsg

    return smsg.password_for_secret(manager.derive_shared_secret(public_key))


async def _no_reply(ws: Any, pw: str) -> bool:
    try:
        await recv_json(ws, pw, timeout=0.5)
    except (TimeoutError, asyncio.TimeoutError):
        return True
    return False


async def test_other_peers_fresh_ids_cannot_evict_a_recorded_id(
    make_node, make_node_manager
) -> None:
    """2(a): one table for all peers, oldest evicted first: a flood of fresh ids from the
    attacker's own identity pushed the recorded id out and the replay ran (and, 2(c),
    promoted the impostor)."""
    target = await make_node("target", transport={"dedup_max_entries": 50})
    sender = make_node_manager("sender")
    pw = _password(sender, target.identity.public_key)
    first = await raw_handshake(target.address, hello_doc(identity_doc(sender)))
    recorded = sealed(pw, "get_stats", sender.identity.id, target.id, None)
    await first.ws.send(recorded)
    assert (await recv_json(first.ws, pw))["type"] == "stats"

    attacker = make_node_manager("attacker")
    apw = _password(attacker, target.identity.public_key)
    flood = await raw_handshake(target.address, hello_doc(identity_doc(attacker)))
    for _ in range(80):  # fresh ids, all valid: more than the table holds
        await flood.ws.send(sealed(apw, "pong", attacker.identity.id, target.id, {}))
    await until(lambda: target.transport.connection(attacker.identity.id) is not None)
    await asyncio.sleep(0.3)

    replayer = await raw_handshake(target.address, hello_doc(identity_doc(sender)))
    assert replayer.accepted
    before = target.transport.drops["dedup"]
    await replayer.ws.send(recorded)
    await until(lambda: target.transport.drops["dedup"] > before, what="replay dropped")
    assert await _no_reply(replayer.ws, pw)
    live = target.transport.connection(sender.identity.id)
    assert live is not None and not live.closed and live.proven
    assert all(c.on_probation for c in target.transport.unproven_connections())
    await first.ws.send(sealed(pw, "get_stats", sender.identity.id, target.id, None))
    assert (await recv_json(first.ws, pw))["type"] == "stats"  # the real one is still served
    for s in (first, flood, replayer):
        await s.ws.close()


@pytest.mark.parametrize("offset", [250.0, -250.0])
async def test_an_id_is_remembered_for_its_whole_ts_window(
    make_node, make_node_manager, offset: float
) -> None:
    """2(b): the id was forgotten ``dedup_ttl`` after *arrival*, so a frame stamped in the
    future (or any in-window frame, with a short TTL) could be replayed once it expired.
    Here the TTL is 1 s: the frame must still be refused until its ts leaves the window."""
    target = await make_node("target", transport={"dedup_ttl": 1.0})
    sender = make_node_manager("sender")
    pw = _password(sender, target.identity.public_key)
    first = await raw_handshake(target.address, hello_doc(identity_doc(sender)))
    stamped = sealed(pw, "get_stats", sender.identity.id, target.id, None, ts=go_now(offset))
    await first.ws.send(stamped)
    assert (await recv_json(first.ws, pw))["type"] == "stats"
    await first.ws.close()
    await asyncio.sleep(2.0)  # well past the arrival-based TTL
    replayer = await raw_handshake(target.address, hello_doc(identity_doc(sender)))
    assert replayer.accepted
    before = target.transport.drops["dedup"]
    await replayer.ws.send(stamped)
    await until(lambda: target.transport.drops["dedup"] > before, what="replay dropped")
    assert await _no_reply(replayer.ws, pw)
    assert target.transport.connection(sender.identity.id) is None  # no proof of key
    await replayer.ws.close()
