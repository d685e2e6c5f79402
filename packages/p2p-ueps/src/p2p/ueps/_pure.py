"""Pure-Python UEPS codec and native-primitive fallbacks.

Always importable; ``p2p.ueps`` picks the Cython extension (``_speedups``) instead when it is
built and ``P2P_NO_EXTENSIONS`` is not set. Both modules expose exactly the same names and
behaviour, and the package's test suite runs against both.

Frame layout and reader algorithm: ../shared/spec/UEPS.md (Go reference ``ueps/``).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from p2p.ueps.errors import (
    IntegrityError,
    MalformedFrameError,
    MissingSignatureError,
    TruncatedFrameError,
    ValueTooLargeError,
)

TAG_VERSION = 0x01
TAG_CURRENT_LAYER = 0x02
TAG_TARGET_LAYER = 0x03
TAG_INTENT = 0x04
TAG_THREAT_SCORE = 0x05
TAG_HMAC = 0x06
TAG_PAYLOAD = 0xFF

MAX_VALUE_LEN = 0xFFFF
#: At most this many TLVs may precede the payload TLV (the canonical frame has 6).
MAX_TLVS_BEFORE_PAYLOAD = 32
#: At most this many bytes (tags, lengths and values) may precede the payload TLV
#: (the canonical frame has 56). Bounds the work and memory spent before the HMAC check.
MAX_BYTES_BEFORE_PAYLOAD = 4096
#: The largest frame a reader can accept: everything before the payload plus a full payload.
MAX_FRAME_SIZE = MAX_BYTES_BEFORE_PAYLOAD + 3 + MAX_VALUE_LEN

_HEADER_TAGS = (TAG_VERSION, TAG_CURRENT_LAYER, TAG_TARGET_LAYER, TAG_INTENT)


@dataclass(slots=True)
class Header:
    """The five authenticated header fields of a UEPS frame (Go ``ueps.UEPSHeader``)."""

    version: int = 0x09
    current_layer: int = 5
    target_layer: int = 5
    intent_id: int = 0
    threat_score: int = 0


@dataclass(slots=True, frozen=True)
class ParsedPacket:
    """A verified frame: its header and its payload bytes."""

    header: Header
    payload: bytes


def _check_byte(name: str, value: int) -> int:
    if not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise ValueTooLargeError(f"header field {name} must be 0..255, got {value!r}")
    return value


def _header_bytes(h: Header) -> bytes:
    """Bytes 0..20 of a canonical frame: the signed header TLVs."""
    ts = h.threat_score
    if not isinstance(ts, int) or not 0 <= ts <= 0xFFFF:
        raise ValueTooLargeError(f"header field threat_score must be 0..65535, got {ts!r}")
    return bytes(
        (
            TAG_VERSION,
            0,
            1,
            _check_byte("version", h.version),
            TAG_CURRENT_LAYER,
            0,
            1,
            _check_byte("current_layer", h.current_layer),
            TAG_TARGET_LAYER,
            0,
            1,
            _check_byte("target_layer", h.target_layer),
            TAG_INTENT,
            0,
            1,
            _check_byte("intent_id", h.intent_id),
            TAG_THREAT_SCORE,
            0,
            2,
            ts >> 8,
            ts & 0xFF,
        )
    )


class HmacKey:
    """HMAC-SHA256 under one key, kept ready for many messages (the native version caches
    the keyed inner/outer SHA-256 states; this fallback uses ``hmac.digest``)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = bytes(key)

    def digest(self, data: bytes) -> bytes:
        """HMAC-SHA256(key, data)."""
        return hmac.digest(self._key, data, "sha256")

    def digest2(self, a: bytes, b: bytes) -> bytes:
        """HMAC-SHA256(key, a ‖ b) without concatenating in the caller."""
        m = hmac.new(self._key, a, hashlib.sha256)
        m.update(b)
        return m.digest()

    def verify(self, data: bytes, mac: bytes) -> bool:
        """Constant-time check that ``mac`` is HMAC-SHA256(key, data)."""
        return hmac.compare_digest(self.digest(data), mac)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    """One-shot HMAC-SHA256."""
    return hmac.digest(key, data, "sha256")


def keystream_xor(nonce: bytes, data: bytes) -> bytes:
    """``data XOR (SHA-256(nonce ‖ uint64_be(i)) for i = 0, 1, …)`` — the SMSG/STIM
    pre-obfuscation (Enchantrix ``XORObfuscator``). Its own inverse."""
    n = len(data)
    if n == 0:
        return b""
    nonce = bytes(nonce)
    sha = hashlib.sha256
    blocks = (n + 31) // 32
    stream = b"".join(sha(nonce + i.to_bytes(8, "big")).digest() for i in range(blocks))
    x = int.from_bytes(data, "big") ^ int.from_bytes(stream[:n], "big")
    return x.to_bytes(n, "big")


class PacketBuilder:
    """Builds one canonical frame (Go ``ueps.NewBuilder`` + ``MarshalAndSign``)."""

    __slots__ = ("header", "payload")

    def __init__(self, intent_id: int, payload: bytes = b"") -> None:
        self.header = Header(intent_id=intent_id)
        self.payload = bytes(payload)

    def marshal_and_sign(self, secret: bytes) -> bytes:
        """Serialise the frame and sign it with HMAC-SHA256 under ``secret``."""
        payload = self.payload
        n = len(payload)
        if n > MAX_VALUE_LEN:
            raise ValueTooLargeError("TLV value too large for 2-byte length header")
        head = _header_bytes(self.header)
        mac = hmac.new(secret, head, hashlib.sha256)
        mac.update(payload)
        return b"".join(
            (head, b"\x06\x00\x20", mac.digest(), bytes((TAG_PAYLOAD, n >> 8, n & 0xFF)), payload)
        )


def build(
    intent_id: int,
    payload: bytes,
    secret: bytes,
    *,
    version: int = 0x09,
    current_layer: int = 5,
    target_layer: int = 5,
    threat_score: int = 0,
) -> bytes:
    """Build and sign one frame in one call."""
    b = PacketBuilder(intent_id, payload)
    b.header = Header(version, current_layer, target_layer, intent_id, threat_score)
    return b.marshal_and_sign(secret)


_NEED_MORE = -1


def _parse(
    data: bytes | bytearray | memoryview, pos: int, end: int, secret: bytes, final: bool
) -> tuple[ParsedPacket, int] | None:
    """Parse one frame starting at ``pos``. Returns (packet, next_pos); ``None`` when the
    frame is incomplete and ``final`` is false; raises ``UEPSError`` otherwise."""
    signed = bytearray()
    fields = [0, 0, 0, 0]
    threat = 0
    sig: bytes | None = None
    count = 0
    start = pos
    while True:
        if pos + 3 > end:
            if final:
                raise TruncatedFrameError(f"frame truncated at byte {pos - start}")
            return None
        tag = data[pos]
        length = (data[pos + 1] << 8) | data[pos + 2]
        vstart = pos + 3
        vend = vstart + length
        if tag != TAG_PAYLOAD:
            count += 1
            if count > MAX_TLVS_BEFORE_PAYLOAD:
                raise MalformedFrameError(
                    f"more than {MAX_TLVS_BEFORE_PAYLOAD} TLVs before the payload"
                )
            if vend - start > MAX_BYTES_BEFORE_PAYLOAD:
                raise MalformedFrameError(
                    f"more than {MAX_BYTES_BEFORE_PAYLOAD} bytes before the payload"
                )
        if vend > end:
            if final:
                raise TruncatedFrameError(f"frame truncated inside tag 0x{tag:02x}")
            return None
        if tag == TAG_PAYLOAD:
            payload = bytes(data[vstart:vend])
            if not sig:
                raise MissingSignatureError("UEPS packet missing HMAC signature")
            want = hmac.new(secret, signed, hashlib.sha256)
            want.update(payload)
            if not hmac.compare_digest(want.digest(), sig):
                raise IntegrityError("integrity violation: HMAC mismatch (ThreatScore +100)")
            hdr = Header(fields[0], fields[1], fields[2], fields[3], threat)
            return ParsedPacket(hdr, payload), vend
        if tag == TAG_HMAC:
            sig = bytes(data[vstart:vend])
        else:
            if TAG_VERSION <= tag <= TAG_INTENT:
                if length < 1:
                    raise MalformedFrameError(f"tag 0x{tag:02x}: expected >= 1 byte, got 0")
                fields[tag - 1] = data[vstart]
            elif tag == TAG_THREAT_SCORE:
                if length < 2:
                    raise MalformedFrameError(
                        f"tag 0x05 (threat score): expected >= 2 bytes, got {length}"
                    )
                threat = (data[vstart] << 8) | data[vstart + 1]
            signed += data[pos:vend]
        pos = vend


def read_and_verify(data: bytes, secret: bytes) -> ParsedPacket:
    """Read and verify one frame from the start of ``data`` (trailing bytes are ignored)."""
    mv = memoryview(data)
    result = _parse(mv, 0, len(mv), bytes(secret), True)
    assert result is not None
    return result[0]


class FrameReader:
    """Sans-I/O stream parser: ``feed`` bytes, get verified packets.

    Frames may be split at any byte and several may arrive in one chunk. The buffer holds at
    most one incomplete frame (bounded by ``MAX_FRAME_SIZE``). A frame that fails its HMAC
    check is consumed and reported by raising; packets verified before it in the same chunk
    are returned by the next ``feed`` call. A structurally malformed frame breaks the stream:
    the reader then raises ``MalformedFrameError`` on every call.
    """

    __slots__ = ("_broken", "_buf", "_pending", "_secret")

    def __init__(self, secret: bytes) -> None:
        self._secret = bytes(secret)
        self._buf = bytearray()
        self._pending: list[ParsedPacket] = []
        self._broken: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[ParsedPacket]:
        """Add bytes from the stream; return every frame they complete."""
        if self._broken is not None:
            raise MalformedFrameError(f"stream is broken: {self._broken}")
        self._buf += data
        out = self._pending
        self._pending = []
        buf = self._buf
        pos = 0
        end = len(buf)
        try:
            while pos < end:
                r = _parse(buf, pos, end, self._secret, False)
                if r is None:
                    break
                out.append(r[0])
                pos = r[1]
        except (IntegrityError, MissingSignatureError):
            # The frame's extent is known: drop it, keep the stream.
            pos = _frame_end(buf, pos, end)
            del buf[:pos]
            self._pending = out
            raise
        except MalformedFrameError as e:
            self._broken = str(e)
            self._pending = out
            buf.clear()
            raise
        del buf[:pos]
        return out

    def close(self) -> None:
        """Declare the end of the stream: raise if an incomplete frame is left."""
        if self._buf:
            n = len(self._buf)
            self._buf.clear()
            raise TruncatedFrameError(f"stream ended inside a frame ({n} bytes buffered)")


def _frame_end(buf: bytearray, pos: int, end: int) -> int:
    """End offset of the (complete) frame starting at ``pos``."""
    while pos + 3 <= end:
        tag = buf[pos]
        pos += 3 + ((buf[pos + 1] << 8) | buf[pos + 2])
        if tag == TAG_PAYLOAD:
            return pos
    return end
