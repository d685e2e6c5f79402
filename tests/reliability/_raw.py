"""Hand-made wire traffic for the attack suites: a raw WebSocket client that says exactly
what a hostile peer would, built without our encoder where the encoder would refuse."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from dataclasses import dataclass
from typing import Any

from pytest_p2p.transport_fixtures import body, go_now
from websockets.asyncio.client import ClientConnection, connect


def identity_doc(manager: Any, **override: str) -> dict[str, Any]:
    """The NodeIdentity JSON object of ``manager`` with fields replaced."""
    doc: dict[str, Any] = json.loads(manager.identity.to_json(indent=False))
    doc.update(override)
    return doc


def hello_doc(
    identity: dict[str, Any], *, challenge: bytes | None = None, version: str = "1.0", to: str = ""
) -> dict[str, Any]:
    """A ``handshake`` envelope as a dict (mutate it freely, then ``json.dumps``)."""
    return {
        "id": str(uuid.uuid4()),
        "type": "handshake",
        "from": identity.get("id", ""),
        "to": to,
        "ts": go_now(),
        "payload": {
            "identity": identity,
            "challenge": base64.b64encode(challenge or os.urandom(32)).decode(),
            "version": version,
        },
    }


def ws_uri(address: str) -> str:
    """``host:port`` or a full ``ws://`` URI (what ``Node.address`` gives)."""
    return address if "://" in address else f"ws://{address}/ws"


async def open_ws(address: str, **kw: Any) -> ClientConnection:
    return await connect(
        ws_uri(address),
        compression=None,
        ping_interval=None,
        proxy=None,
        open_timeout=5,
        max_size=None,
        **kw,
    )


@dataclass
class RawSession:
    """A connection whose handshake we wrote by hand; ``ack`` is the responder's reply
    (``None`` if it closed without one)."""

    ws: ClientConnection
    ack: dict[str, Any] | None

    @property
    def accepted(self) -> bool:
        return bool(self.ack and self.ack["payload"].get("accepted"))

    @property
    def reason(self) -> str:
        return str(self.ack["payload"].get("reason", "")) if self.ack else ""

    async def closed(self, timeout: float = 3.0) -> bool:
        """True once the server has closed the connection."""
        try:
            await asyncio.wait_for(self.ws.wait_closed(), timeout)
        except (TimeoutError, asyncio.TimeoutError):  # distinct classes on 3.10
            return False
        return True


async def raw_handshake(
    address: str, hello: dict[str, Any] | str | bytes, **connect_kw: Any
) -> RawSession:
    ws = await open_ws(address, **connect_kw)
    text = hello if isinstance(hello, str | bytes) else json.dumps(hello)
    await ws.send(text)
    try:
        reply = await asyncio.wait_for(ws.recv(), 3.0)
    except Exception:
        return RawSession(ws, None)
    return RawSession(ws, json.loads(reply))


def sealed(
    password: str,
    type_: str,
    frm: str,
    to: str,
    payload: Any,
    *,
    ts: str | None = None,
    msg_id: str | None = None,
) -> bytes:
    """One SMSG frame around a hand-built message."""
    from p2p.transport import smsg

    return smsg.encrypt(body(type_, frm, to, payload, ts=ts, msg_id=msg_id), password)


async def recv_json(ws: ClientConnection, password: str, timeout: float = 2.0) -> dict[str, Any]:
    """The next decryptable message (skipping keepalive pings)."""
    from p2p.transport import smsg

    while True:
        data = await asyncio.wait_for(ws.recv(), timeout)
        if isinstance(data, str):
            continue
        msg: dict[str, Any] = json.loads(smsg.decrypt(data, password).body)
        if msg["type"] != "ping":
            return msg
