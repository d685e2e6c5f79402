"""Two Nodes speak protocol 1.1; the registry pins it and a later 1.0 is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from p2p.controller import Node, NodeConfig
from p2p.transport import ConnectError, SecureSession, Transport, TransportConfig
from pytest_p2p.transport_fixtures import eventually

LOOPBACK = NodeConfig(listen="127.0.0.1:0")


async def test_nodes_negotiate_1_1_and_pin_it(tmp_path: Path) -> None:
    async with (
        Node(tmp_path / "a", config=LOOPBACK, name="alpha") as a,
        Node(tmp_path / "b", config=LOOPBACK, name="beta") as b,
    ):
        await a.add_peer(b.address, name="bee")
        conn = a.transport.connection(b.id)
        assert conn is not None and isinstance(conn.session, SecureSession)
        assert a.transport.protocols[b.id] == "1.1"
        stats = await a.controller.get_remote_stats(b.id)
        assert stats.node_name == "beta"
        await eventually(lambda: b.transport.connection(a.id) is not None)
        assert (await b.controller.get_remote_stats(a.id)).node_name == "alpha"
        rec = a.registry.get(b.id)
        assert rec is not None and rec.protocol == "1.1"
        await eventually(lambda: (p := b.registry.get(a.id)) is not None and p.protocol == "1.1")
        # B's key comes back speaking 1.0 only: A refuses it (the pin is in A's registry)
        b_key = b.identity.public_key
        a.transport.reset_protocol_pin(b_key)  # forget the run's pin: the registry must hold
        plain = Transport(
            b.node_manager, None, TransportConfig(listen_host="127.0.0.1", listen_port=0)
        )
        await plain.start()
        try:
            with pytest.raises(ConnectError, match=r"pinned to protocol 1\.1"):
                await a.transport.connect(plain.address)
        finally:
            await plain.stop()
