"""Hold the line (issue 13, finding 5): strangers cannot take every socket a node has.

Pending handshakes have their own budget (``max_pending_handshakes``), separate from the
established connections ``max_conns`` counts; both are limited per address prefix; a full
pending budget is shared by evicting the heaviest source's oldest socket; established
slots are partly reserved for known peers. Real nodes and sockets on 127.0.0.x.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from ._raw import hello_doc, identity_doc, open_ws, raw_handshake
from .conftest import report, until

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_silent_upgrades_from_many_addresses_do_not_starve_an_allowlisted_peer(
    make_node: Any, make_node_manager: Any
) -> None:
    """13 source addresses x 8 silent WebSocket upgrades, re-opened as soon as they are
    dropped, used to hold all 100 ``max_conns`` slots: an allowlisted peer from another
    address got in 0/25 times. Now it gets in every time."""
    from p2p.peers import AuthMode
    from websockets.exceptions import InvalidStatus

    target = await make_node(
        "target", transport={"handshake_timeout": 10.0, "handshake_burst_per_ip": 10_000}
    )
    target.registry.set_auth_mode(AuthMode.ALLOWLIST)
    honest = make_node_manager("allowlisted")
    target.registry.allow_public_key(honest.identity.public_key)
    transport = target.transport
    stop = asyncio.Event()
    refused: dict[int, int] = {}
    peak_pending = 0

    async def hold(source: int) -> None:
        """Keep 8 silent upgraded sockets open from 127.0.2.<source>, re-opening dropped ones."""
        socks: list[Any] = []
        while not stop.is_set():
            socks = [s for s in socks if s.state.name == "OPEN"]
            while len(socks) < 8 and not stop.is_set():
                try:
                    socks.append(await open_ws(target.address, local_addr=(f"127.0.2.{source}", 0)))
                except (InvalidStatus, OSError):
                    refused[source] = refused.get(source, 0) + 1
                    break
            await asyncio.sleep(0.01)
        for s in socks:
            s.transport.abort()

    holders = [asyncio.ensure_future(hold(i)) for i in range(1, 14)]
    try:
        await until(
            lambda: transport.pending_handshakes >= 64,  # max_pending_handshakes
            20,
            "the strangers filled the pending-handshake budget",
        )
        got_in = 0
        for _ in range(25):
            peak_pending = max(peak_pending, transport.pending_handshakes)
            try:
                session = await raw_handshake(
                    target.address, hello_doc(identity_doc(honest)), local_addr=("127.0.3.1", 0)
                )
            except InvalidStatus:
                continue  # what a node without its own pending budget answered (503)
            got_in += session.accepted
            await session.ws.close()
            await until(lambda: transport.connection(honest.identity.id) is None, 5, "closed")
    finally:
        stop.set()
        await asyncio.gather(*holders, return_exceptions=True)
    report(
        "hold.silent_upgrades_13x8",
        honest_got_in=got_in,
        attempts=25,
        peak_pending=peak_pending,
        rejected=dict(transport.rejected),
    )
    assert got_in == 25
    assert transport.rejected.get("evicted", 0) > 0  # the budget really was full of strangers
    assert transport.connected_peers == []


class _KnowsSomeKeys:
    """A PeerGate that lets everyone in and knows the listed keys (what a registry does
    for peers the operator added)."""

    def __init__(self, known: set[str]) -> None:
        self.known = known

    def is_peer_allowed(self, peer_id: str, public_key: str) -> bool:
        return True

    def is_peer_known(self, peer_id: str, public_key: str) -> bool:
        return public_key in self.known

    def peer_connected(self, identity: Any, address: str) -> None:
        pass

    def peer_disconnected(self, peer_id: str) -> None:
        pass


async def test_established_slots_per_prefix_and_the_known_reserve(
    make_transport: Any, make_node_manager: Any
) -> None:
    """Strangers from one address get at most ``max_conns_per_prefix`` established
    connections, strangers overall at most ``max_conns`` minus the reserve; a known peer
    still gets in, even from the capped address."""
    friend = make_node_manager("friend")
    gate = _KnowsSomeKeys({friend.identity.public_key})
    server = await make_transport(
        "server",
        gate,
        max_conns=10,
        known_reserve_fraction=0.3,
        max_conns_per_prefix=4,
        handshake_burst_per_ip=10_000,
    )
    outcomes: dict[str, list[str]] = {"127.0.4.1": [], "127.0.4.2": []}
    sessions = []
    for host, count in (("127.0.4.1", 6), ("127.0.4.2", 6)):
        for i in range(count):
            stranger = make_node_manager(f"stranger-{host}-{i}")
            session = await raw_handshake(
                server.address, hello_doc(identity_doc(stranger)), local_addr=(host, 0)
            )
            outcomes[host].append("in" if session.accepted else session.reason)
            sessions.append(session)
    assert outcomes["127.0.4.1"] == ["in"] * 4 + ["too many connections from here"] * 2
    # 4 + 3 = 7 strangers = max_conns - reserve (3)
    assert outcomes["127.0.4.2"] == ["in"] * 3 + ["too many connections"] * 3
    # established = proven or still proving its key (raw sessions never prove)
    assert server.admission.established == 7
    known = await raw_handshake(
        server.address, hello_doc(identity_doc(friend)), local_addr=("127.0.4.1", 0)
    )
    assert known.accepted
    await until(lambda: server.admission.established == 8, 5, "friend connected")
    assert server.rejected["prefix_conns"] == 2 and server.rejected["reserved"] == 3
    report("hold.established_limits", outcomes=outcomes, rejected=dict(server.rejected))
    for session in [*sessions, known]:
        with contextlib.suppress(Exception):
            await session.ws.close()


async def test_a_node_reserves_slots_for_peers_its_operator_added(
    make_node: Any, make_node_manager: Any
) -> None:
    """The same reserve on a real Node: its registry is the gate, and a peer the operator
    added (with its key) is known, so it gets a reserved slot when strangers hold every
    other one; a stranger the registry only learned from the network is not known."""
    from p2p.peers import Peer

    target = await make_node(
        "target",
        transport={
            "max_conns": 10,
            "known_reserve_fraction": 0.3,
            "max_conns_per_prefix": 100,
            "handshake_burst_per_ip": 10_000,
        },
    )
    transport = target.transport
    friend = make_node_manager("friend")
    target.registry.add(
        Peer(id=friend.identity.id, name="friend", public_key=friend.identity.public_key)
    )
    learned = make_node_manager("learned")
    target.registry.peer_connected(learned.identity, "")  # what a proven stranger leaves
    target.registry.peer_disconnected(learned.identity.id)
    assert target.registry.is_learned(learned.identity.id)

    outcomes: list[str] = []
    sessions = []
    for i in range(9):
        stranger = make_node_manager(f"stranger-{i}")
        session = await raw_handshake(
            target.address, hello_doc(identity_doc(stranger)), local_addr=(f"127.0.5.{i + 1}", 0)
        )
        outcomes.append("in" if session.accepted else session.reason)
        sessions.append(session)
    assert outcomes == ["in"] * 7 + ["too many connections"] * 2  # 10 - 3 reserved
    again = await raw_handshake(target.address, hello_doc(identity_doc(learned)))
    sessions.append(again)
    assert not again.accepted and again.reason == "too many connections"
    known = await raw_handshake(
        target.address, hello_doc(identity_doc(friend)), local_addr=("127.0.5.200", 0)
    )
    sessions.append(known)
    assert known.accepted
    await until(lambda: transport.admission.established == 8, 5, "friend connected")
    assert transport.rejected["reserved"] == 3
    report("hold.node_known_reserve", outcomes=outcomes, rejected=dict(transport.rejected))
    for session in sessions:
        with contextlib.suppress(Exception):
            await session.ws.close()


async def test_refused_established_slot_sends_a_reject_ack_and_frees_the_socket(
    make_transport: Any, make_node_manager: Any
) -> None:
    """A refusal after the hello is a Go-shaped reject ack, then a bare close; the pending
    slot is released."""
    import json

    from ._raw import RawSession

    server = await make_transport("server", max_conns=1, handshake_burst_per_ip=10_000)
    late = await open_ws(server.address)  # upgraded while a slot was free
    await until(lambda: server.pending_handshakes == 1, 5, "pending")
    first = await raw_handshake(server.address, hello_doc(identity_doc(make_node_manager("a"))))
    assert first.accepted
    await late.send(json.dumps(hello_doc(identity_doc(make_node_manager("b")))))
    second = RawSession(late, json.loads(await asyncio.wait_for(late.recv(), 5)))
    assert second.ack is not None
    assert second.ack["type"] == "handshake_ack"
    assert second.ack["payload"]["accepted"] is False
    assert second.ack["payload"]["reason"] == "too many connections"
    assert second.ack["payload"]["identity"]["id"] == server.node_manager.identity.id
    assert await second.closed()
    await until(lambda: server.pending_handshakes == 0, 5, "pending slot released")
    assert server.rejected["max_conns"] == 1
    await first.ws.close()
