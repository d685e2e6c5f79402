"""A reference WebSocket frame encoder for tests (no websockets needed)."""

from __future__ import annotations

import struct

__all__ = ["rfc6455_frame"]


def rfc6455_frame(
    opcode: int,
    payload: bytes,
    mask: bytes | None = None,
    *,
    fin: bool = True,
    rsv: int = 0,
) -> bytes:
    """One frame as RFC 6455 section 5.2 spells it, byte by byte (masked when ``mask``)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if mask is None:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
