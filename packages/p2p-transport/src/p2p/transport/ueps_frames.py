"""Session-bound UEPS frames: the canonical UEPS layout plus three authenticated extra TLVs.

The reference reader signs every TLV it does not know (UEPS.md §3), so extra TLVs placed
before the HMAC TLV keep a frame valid UEPS that any reader verifies; only our nodes look
at them. This module writes those frames byte-exactly and reads them back: the HMAC check
is :func:`p2p.ueps.read_and_verify` (the native codec), and only *after* it passes is the
authenticated prefix walked for the extra tags. Nothing here holds state.

Layout written by :func:`encode_bound` (payload length ``n``)::

    off  bytes
    0    01 00 01 09 | 02 00 01 05 | 03 00 01 05 | 04 00 01 <intent> | 05 00 02 <ts16>
    21   10 00 10 <16-byte session id>
    40   11 00 08 <8-byte counter, big-endian>
    51   06 00 20 <32-byte HMAC>
    86   FF <n16> <payload>                                  total = 89 + n

HMAC-SHA256(secret, bytes[0:51] ‖ payload), exactly the reference's rule. A setup frame
(:func:`encode_setup`) carries ``12 00 20 <32-byte nonce>`` at offset 21 instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from p2p.ueps import (
    INTENT_HANDSHAKE,
    MAX_TLVS_BEFORE_PAYLOAD,
    Header,
    HmacKey,
    MalformedFrameError,
    ParsedPacket,
    TruncatedFrameError,
    ValueTooLargeError,
    read_and_verify,
)

__all__ = [
    "BOUND_OVERHEAD",
    "COUNTER_MAX",
    "NONCE_SIZE",
    "SESSION_ID_SIZE",
    "TAG_COUNTER",
    "TAG_NONCE",
    "TAG_SESSION",
    "BoundPacket",
    "decode_bound",
    "encode_bound",
    "encode_setup",
]

TAG_SESSION = 0x10
"""Session id, 16 bytes: which connection (and direction) the frame belongs to."""
TAG_COUNTER = 0x11
"""Counter, 8 bytes big-endian: strictly increasing per direction, starting at 1."""
TAG_NONCE = 0x12
"""Setup nonce, 32 bytes: a side's fresh contribution to the session id."""

SESSION_ID_SIZE = 16
COUNTER_SIZE = 8
NONCE_SIZE = 32
COUNTER_MAX = (1 << 64) - 1
MAX_PAYLOAD = 0xFFFF
BOUND_OVERHEAD = 89
"""Bytes a bound frame adds to its payload."""

_TAG_HMAC = 0x06
_TAG_PAYLOAD = 0xFF
_SESSION_TLV = bytes((TAG_SESSION, 0, SESSION_ID_SIZE))
_COUNTER_TLV = bytes((TAG_COUNTER, 0, COUNTER_SIZE))
_NONCE_TLV = bytes((TAG_NONCE, 0, NONCE_SIZE))
_HMAC_TLV = bytes((_TAG_HMAC, 0, 32))
_HEAD_TAGS = bytes((1, 2, 3, 4, 5))
_HEAD_LENS_HI = bytes(5)
_HEAD_LENS_LO = bytes((1, 1, 1, 1, 2))
_EXTRA_SIZES = {TAG_SESSION: SESSION_ID_SIZE, TAG_COUNTER: COUNTER_SIZE, TAG_NONCE: NONCE_SIZE}


@dataclass(frozen=True, slots=True)
class BoundPacket:
    """A verified frame with its binding TLVs (``None`` when the frame lacks that tag)."""

    header: Header
    payload: bytes
    session_id: bytes | None = None
    counter: int | None = None
    nonce: bytes | None = None

    @property
    def intent_id(self) -> int:
        return int(self.header.intent_id)

    @property
    def threat_score(self) -> int:
        return int(self.header.threat_score)


def _head(intent_id: int, threat_score: int) -> bytes:
    if not 0 <= intent_id <= 0xFF:
        raise ValueTooLargeError(f"intent_id must be 0..255, got {intent_id}")
    if not 0 <= threat_score <= 0xFFFF:
        raise ValueTooLargeError(f"threat_score must be 0..65535, got {threat_score}")
    ts_hi, ts_lo = threat_score >> 8, threat_score & 0xFF
    return bytes((1, 0, 1, 0x09, 2, 0, 1, 5, 3, 0, 1, 5, 4, 0, 1, intent_id, 5, 0, 2, ts_hi, ts_lo))


def _seal(key: HmacKey, signed: bytes, payload: bytes) -> bytes:
    n = len(payload)
    if n > MAX_PAYLOAD:
        raise ValueTooLargeError("TLV value too large for 2-byte length header")
    mac = key.digest2(signed, payload)
    return b"".join((signed, _HMAC_TLV, mac, bytes((_TAG_PAYLOAD, n >> 8, n & 0xFF)), payload))


def encode_bound(
    key: HmacKey,
    intent_id: int,
    payload: bytes,
    *,
    session_id: bytes,
    counter: int,
    threat_score: int = 0,
) -> bytes:
    """One signed frame bound to ``session_id`` at position ``counter`` (layout above)."""
    if len(session_id) != SESSION_ID_SIZE:
        raise ValueError(f"session_id must be {SESSION_ID_SIZE} bytes")
    if not 0 < counter <= COUNTER_MAX:
        raise ValueError("counter must be in 1..2**64-1")
    signed = b"".join(
        (
            _head(intent_id, threat_score),
            _SESSION_TLV,
            session_id,
            _COUNTER_TLV,
            counter.to_bytes(COUNTER_SIZE, "big"),
        )
    )
    return _seal(key, signed, bytes(payload))


def encode_setup(key: HmacKey, nonce: bytes) -> bytes:
    """The setup frame: intent HANDSHAKE (0x01), the sender's nonce, empty payload."""
    if len(nonce) != NONCE_SIZE:
        raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
    return _seal(key, b"".join((_head(INTENT_HANDSHAKE, 0), _NONCE_TLV, nonce)), b"")


def decode_bound(data: bytes, secret: bytes) -> BoundPacket:
    """Verify one whole frame (one WebSocket message) and extract its binding TLVs.

    Raises the :mod:`p2p.ueps` errors for a bad frame, and ``MalformedFrameError`` when a
    binding tag has the wrong length or appears twice, or bytes follow the payload.
    """
    packet = read_and_verify(data, secret)  # authenticates every TLV before the payload
    n = len(data)
    if (
        n >= BOUND_OVERHEAD
        and data[21:24] == _SESSION_TLV
        and data[40:43] == _COUNTER_TLV
        and data[51:54] == _HMAC_TLV
        and data[86] == _TAG_PAYLOAD
        and BOUND_OVERHEAD + ((data[87] << 8) | data[88]) == n
        and data[:19:4] == _HEAD_TAGS
        and data[1:21:4] == _HEAD_LENS_HI
        and data[2:21:4] == _HEAD_LENS_LO
    ):  # exactly the layout encode_bound writes: read the binding at fixed offsets
        return BoundPacket(
            packet.header, packet.payload, data[24:40], int.from_bytes(data[43:51], "big")
        )
    return _walk(data, packet)


def _walk(data: bytes, packet: ParsedPacket) -> BoundPacket:
    """Any other (still verified) layout: walk the TLVs before the payload."""
    extras: dict[int, bytes] = {}
    pos, end, count = 0, len(data), 0
    while True:
        if pos + 3 > end or count > MAX_TLVS_BEFORE_PAYLOAD:  # cannot happen after verify
            raise TruncatedFrameError("frame ended before its payload")
        tag = data[pos]
        vend = pos + 3 + ((data[pos + 1] << 8) | data[pos + 2])
        if tag == _TAG_PAYLOAD:
            break
        size = _EXTRA_SIZES.get(tag)
        if size is not None:
            if vend - pos - 3 != size:
                raise MalformedFrameError(f"tag 0x{tag:02x}: expected {size} bytes")
            if tag in extras:
                raise MalformedFrameError(f"tag 0x{tag:02x} appears twice")
            extras[tag] = bytes(data[pos + 3 : vend])
        pos = vend
        count += 1
    if vend != end:
        raise MalformedFrameError(f"{end - vend} bytes after the payload")
    counter = extras.get(TAG_COUNTER)
    return BoundPacket(
        packet.header,
        packet.payload,
        extras.get(TAG_SESSION),
        int.from_bytes(counter, "big") if counter is not None else None,
        extras.get(TAG_NONCE),
    )
