"""The p2p.transport exception hierarchy: one base, one class per thing that can go wrong.

Messages say what was wrong with the input (sizes, field names), never key material.
"""

from __future__ import annotations

__all__ = [
    "MessageError",
    "ProtocolError",
    "ResponseError",
    "SigilError",
    "SmsgDecryptError",
    "SmsgError",
    "SmsgFormatError",
    "SmsgHeaderError",
    "SmsgValueError",
    "TransportError",
    "TrixError",
]


class TransportError(Exception):
    """Base class for every error raised by ``p2p.transport``."""


class TrixError(TransportError):
    """A TRIX container is malformed: magic, version, header length or header JSON."""


class SigilError(TransportError):
    """The ChaChaPoly sigil could not seal or open: bad key/nonce size, short input,
    or authentication failure (wrong key or tampered bytes)."""


class SmsgError(TransportError):
    """Base class for SMSG frame errors; a receiver drops the frame and keeps the link."""


class SmsgHeaderError(SmsgError):
    """The container around the ciphertext is wrong: not SMSG, wrong version, header too
    long, header not a JSON object, frame too large, or a checksum mismatch."""


class SmsgDecryptError(SmsgError):
    """Authentication failed (wrong password or tampered frame) or the payload is shorter
    than nonce + tag."""


class SmsgFormatError(SmsgError):
    """The decrypted plaintext is not an SMSG message: bad JSON, bad v2 framing, unknown or
    oversized compression, missing body."""


class SmsgValueError(SmsgError, ValueError):
    """An argument is unusable: empty body or password, wrong nonce size, oversized body."""


class MessageError(TransportError, ValueError):
    """A message envelope or payload could not be decoded or encoded the way Go does."""


class ProtocolError(TransportError):
    """The remote peer answered with an ``error`` message (Go ``ProtocolError``)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"remote error ({code}): {message}")
        self.code = code
        self.message = message


class ResponseError(MessageError):
    """A response is not the one expected (nil, or of the wrong type); Go's
    ``ValidateResponse`` errors other than a remote ``error`` message."""
