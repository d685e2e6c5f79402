"""Throw-away peers for the issue-13 "hold the line" suites: an in-memory identity that
does a real handshake (from any 127.x source address) and proves its key with one
encrypted ping, without touching the disk."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

from p2p.identity import KeyPair, NodeIdentity, NodeRole
from p2p.transport import envelope, smsg
from p2p.transport.handshake import HandshakeInitiator
from pytest_p2p.transport_fixtures import body
from websockets.asyncio.client import ClientConnection, connect


def loopback(i: int) -> str:
    """The ``i``-th address of 127.0.0.0/8 past 127.0.0.1 (rotating source addresses)."""
    i += 2
    return f"127.{(i >> 16) & 0xFF}.{(i >> 8) & 0xFF}.{i & 0xFF or 1}"


@dataclass
class Stranger:
    ws: ClientConnection
    id: str
    server_id: str
    password: str

    def frame(self, type_: str, payload: Any) -> bytes:
        return smsg.encrypt(body(type_, self.id, self.server_id, payload), self.password)

    async def ping(self, timeout: float = 10.0) -> dict[str, Any]:
        """Send a ping (a fresh message under the shared secret) and wait for the pong."""
        await self.ws.send(self.frame("ping", {"sentAt": 1}))
        while True:
            data = await asyncio.wait_for(self.ws.recv(), timeout)
            if isinstance(data, str) or not data.startswith(b"SMSG"):
                continue  # e.g. the node's UEPS setup frame
            msg: dict[str, Any] = json.loads(smsg.decrypt(data, self.password).body)
            if msg["type"] == "pong":
                return msg


async def stranger(
    uri: str,
    *,
    name: str = "",
    source: str = "127.0.0.1",
    features: tuple[str, ...] = (),
    version: str = "1.0",
) -> Stranger:
    """A fresh identity connected to ``uri`` from ``source`` (handshake done)."""
    keys = KeyPair.generate()
    ident = NodeIdentity.create(keys, name or f"s-{uuid.uuid4().hex[:8]}", NodeRole.WORKER)
    ws = await connect(
        uri,
        compression=None,
        ping_interval=None,
        proxy=None,
        open_timeout=10,
        max_size=None,
        local_addr=(source, 0),
    )
    initiator = HandshakeInitiator(
        ident, keys.derive_shared_secret, features=features, version=version
    )
    await ws.send(envelope.to_text(initiator.hello()))
    result = initiator.receive_ack(await asyncio.wait_for(ws.recv(), 10))
    return Stranger(ws, ident.id, result.peer.id, smsg.password_for_secret(result.secret))
