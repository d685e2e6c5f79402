"""The few Message operations the transport needs, in one place.

A thin adapter over :mod:`p2p.transport.messages` so the handshake, session and shell
read as protocol steps (``ping``, ``pong``, ``disconnect``, "payload as a JSON object")
rather than payload plumbing.
"""

from __future__ import annotations

import json
from typing import Any

from p2p.transport.errors import TransportError
from p2p.transport.messages import (
    DisconnectPayload,
    Message,
    MessageError,
    MessageType,
    PingPayload,
    PongPayload,
)

__all__ = [
    "DISCONNECT",
    "HANDSHAKE",
    "HANDSHAKE_ACK",
    "PING",
    "PONG",
    "as_message",
    "disconnect",
    "new_message",
    "payload_object",
    "ping",
    "pong",
    "sender",
    "to_text",
    "ts_seconds",
]

HANDSHAKE = MessageType.HANDSHAKE
HANDSHAKE_ACK = MessageType.HANDSHAKE_ACK
PING = MessageType.PING
PONG = MessageType.PONG
DISCONNECT = MessageType.DISCONNECT


def new_message(type: MessageType | str, from_: str, to: str, payload: Any) -> Message:
    """A fresh message (new UUID, ts now); ``payload`` is a Payload, plain JSON or None."""
    return Message.new(type, from_, to, payload)


def to_text(message: Message) -> str:
    """The message's JSON as the text of a WebSocket TEXT frame."""
    return message.to_json().decode("utf-8")


def as_message(data: str | bytes | Message, error: type[TransportError]) -> Message:
    """Parse a plain (unencrypted) message; ``error(reason)`` if it is not one."""
    if isinstance(data, Message):
        return data
    try:
        return Message.from_json(data)
    except MessageError as exc:
        raise error(f"not a message: {exc}") from None


def payload_object(message: Message, error: type[Exception]) -> dict[str, Any]:
    """The payload as a JSON object (``error(reason)`` if it is missing or not an object)."""
    text = message.payload
    if text is None:
        raise error(f"{message.type} without a payload")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise error(f"{message.type} payload is not JSON") from None
    if not isinstance(value, dict):
        raise error(f"{message.type} payload is not an object")
    return value


def sender(message: Message) -> str:
    return message.from_


def ping(own_id: str, peer_id: str, now_ms: int) -> Message:
    """The keepalive ``ping`` ``{"sentAt": now_ms}``."""
    return Message.new(PING, own_id, peer_id, PingPayload(now_ms))


def pong(ping_message: Message, own_id: str, now_ms: int) -> Message:
    """The answer to a ``ping``: ``sentAt`` echoed, ``receivedAt`` ours, ``replyTo`` its id."""
    try:
        sent_at = PingPayload.from_json(ping_message.payload).sent_at
    except MessageError:
        sent_at = 0
    return Message.new(
        PONG, own_id, ping_message.from_, PongPayload(sent_at, now_ms), reply_to=ping_message.id
    )


def disconnect(own_id: str, peer_id: str, reason: str, code: int) -> Message:
    """The ``disconnect`` notice sent before a graceful close."""
    return Message.new(DISCONNECT, own_id, peer_id, DisconnectPayload(reason, code))


def ts_seconds(message: Message) -> float | None:
    """The message's ``ts`` as Unix seconds, ``None`` for the zero time (no ``ts``)."""
    ns = message.ts_unix_ns()  # no GoTime built: this runs for every received message
    return None if ns is None else ns / 1e9
