"""Codec behaviour beyond the vectors: robustness fixes, caps, stream reader semantics."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import pytest
from p2p import ueps
from p2p.ueps import errors

SECRET = b"0123456789abcdef0123456789abcdef"


def tlv(tag: int, value: bytes) -> bytes:
    return bytes((tag, len(value) >> 8, len(value) & 0xFF)) + value


def signed_frame(
    impl: ModuleType, *tlvs: bytes, payload: bytes = b"p", secret: bytes = SECRET, hmac_at: int = 0
) -> bytes:
    """A frame of arbitrary TLVs, correctly signed by the reference's rules."""
    mac = impl.hmac_sha256(secret, b"".join(tlvs) + payload)
    parts = list(tlvs)
    parts.insert(hmac_at, tlv(0x06, mac))
    return b"".join(parts) + tlv(0xFF, payload)


def test_spec_example_frame(impl: ModuleType) -> None:
    b = impl.PacketBuilder(0x20, b"hello")
    b.header.threat_score = 0x1234
    assert b.marshal_and_sign(SECRET).hex() == (
        "0100010902000105030001050400012005000212340600203ab0481e2c9c0f25e93dde0e"
        "c2100ce760d75d7b00ac7cb56b64d17333ccfbd4ff000568656c6c6f"
    )


def test_builder_defaults(impl: ModuleType) -> None:
    h = impl.PacketBuilder(0x30, b"").header
    assert (h.version, h.current_layer, h.target_layer, h.intent_id, h.threat_score) == (
        9,
        5,
        5,
        0x30,
        0,
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("version", 256),
        ("intent_id", -1),
        ("threat_score", 65536),
        ("current_layer", "5"),
    ],
)
def test_header_fields_are_bounded(impl: ModuleType, field: str, value: object) -> None:
    b = impl.PacketBuilder(1, b"")
    with pytest.raises(errors.ValueTooLargeError):
        setattr(b.header, field, value)
        b.marshal_and_sign(SECRET)


@pytest.mark.parametrize("tag", [1, 2, 3, 4])
def test_zero_length_header_value_is_malformed_not_a_crash(impl: ModuleType, tag: int) -> None:
    frame = signed_frame(impl, tlv(tag, b""))
    with pytest.raises(errors.MalformedFrameError, match=f"0x{tag:02x}"):
        impl.read_and_verify(frame, SECRET)


@pytest.mark.parametrize("value", [b"", b"\x01"])
def test_short_threat_score_is_malformed(impl: ModuleType, value: bytes) -> None:
    with pytest.raises(errors.MalformedFrameError, match="0x05"):
        impl.read_and_verify(signed_frame(impl, tlv(0x05, value)), SECRET)


def test_unknown_tlvs_are_authenticated_and_ignored(impl: ModuleType) -> None:
    frame = signed_frame(impl, tlv(0x04, b"\x20"), tlv(0x42, b"future"), hmac_at=1)
    p = impl.read_and_verify(frame, SECRET)
    assert p.header.intent_id == 0x20
    tampered = frame.replace(b"future", b"futurE")
    with pytest.raises(errors.IntegrityError):
        impl.read_and_verify(tampered, SECRET)


def test_tlv_count_cap(impl: ModuleType) -> None:
    ok = [tlv(0x42, b"") for _ in range(ueps.MAX_TLVS_BEFORE_PAYLOAD - 1)]
    impl.read_and_verify(signed_frame(impl, *ok), SECRET)
    flood = [tlv(0x42, b"") for _ in range(ueps.MAX_TLVS_BEFORE_PAYLOAD)]
    with pytest.raises(errors.MalformedFrameError, match="TLVs"):
        impl.read_and_verify(signed_frame(impl, *flood), SECRET)


def test_bytes_before_payload_cap(impl: ModuleType) -> None:
    big = tlv(0x42, bytes(ueps.MAX_BYTES_BEFORE_PAYLOAD))
    with pytest.raises(errors.MalformedFrameError, match="bytes"):
        impl.read_and_verify(signed_frame(impl, big), SECRET)
    # Rejected from the TLV header alone: no need to buffer the value first.
    with pytest.raises(errors.MalformedFrameError):
        impl.FrameReader(SECRET).feed(big[:3])


def test_trailing_bytes_are_left_unread(impl: ModuleType) -> None:
    frame = impl.build(0x20, b"abc", SECRET)
    assert impl.read_and_verify(frame + b"junk", SECRET).payload == b"abc"


def test_accepts_any_bytes_like(impl: ModuleType) -> None:
    frame = impl.build(0x20, b"abc", SECRET)
    for data in (bytearray(frame), memoryview(frame)):
        assert impl.read_and_verify(data, bytearray(SECRET)).payload == b"abc"
    assert impl.build(0x20, bytearray(b"abc"), SECRET) == frame


def test_reader_many_frames_one_chunk(impl: ModuleType) -> None:
    frames = [impl.build(i % 256, os.urandom(i * 7 % 300), SECRET) for i in range(200)]
    reader = impl.FrameReader(SECRET)
    got = reader.feed(b"".join(frames))
    assert [impl.read_and_verify(f, SECRET) for f in frames] == got


def test_reader_recovers_after_integrity_error(impl: ModuleType) -> None:
    good1 = impl.build(1, b"one", SECRET)
    bad = bytearray(impl.build(2, b"two", SECRET))
    bad[-1] ^= 1
    good2 = impl.build(3, b"three", SECRET)
    reader = impl.FrameReader(SECRET)
    with pytest.raises(errors.IntegrityError):
        reader.feed(good1 + bytes(bad) + good2[:10])
    # The packet verified before the bad one is delivered next, then the stream goes on.
    got = reader.feed(good2[10:])
    assert [p.payload for p in got] == [b"one", b"three"]


def test_reader_malformed_breaks_stream(impl: ModuleType) -> None:
    reader = impl.FrameReader(SECRET)
    with pytest.raises(errors.MalformedFrameError):
        reader.feed(signed_frame(impl, tlv(0x01, b"")))
    with pytest.raises(errors.MalformedFrameError, match="broken"):
        reader.feed(impl.build(1, b"x", SECRET))


def test_reader_buffer_is_bounded_by_one_frame(impl: ModuleType) -> None:
    reader = impl.FrameReader(SECRET)
    frame = impl.build(1, bytes(65535), SECRET)
    for i in range(0, len(frame) - 1, 4096):
        assert reader.feed(frame[i : min(i + 4096, len(frame) - 1)]) == []
    assert reader.buffered == len(frame) - 1 <= ueps.MAX_FRAME_SIZE
    assert len(reader.feed(frame[-1:])) == 1
    assert reader.buffered == 0


def test_reader_close_reports_partial_frame(impl: ModuleType) -> None:
    reader = impl.FrameReader(SECRET)
    reader.feed(impl.build(1, b"x", SECRET)[:5])
    with pytest.raises(errors.TruncatedFrameError):
        reader.close()


def test_hmac_key_and_keystream_match_stdlib(impl: ModuleType) -> None:
    import hashlib
    import hmac

    for n in (0, 1, 31, 32, 33, 55, 56, 63, 64, 65, 1000, 70_000):
        data = os.urandom(n)
        key = os.urandom(n % 90)
        k = impl.HmacKey(key)
        want = hmac.digest(key, data, "sha256")
        assert k.digest(data) == want == impl.hmac_sha256(key, data)
        assert k.digest2(data[: n // 2], data[n // 2 :]) == want
        assert k.verify(data, want) and not k.verify(data, bytes(32))
        nonce = os.urandom(24)
        stream = b"".join(
            hashlib.sha256(nonce + i.to_bytes(8, "big")).digest() for i in range(n // 32 + 1)
        )
        want_xor = bytes(a ^ b for a, b in zip(data, stream[:n], strict=True))
        assert impl.keystream_xor(nonce, data) == want_xor
        assert impl.keystream_xor(nonce, impl.keystream_xor(nonce, data)) == data


def test_keystream_matches_smsg_vectors(impl: ModuleType, golden: dict[str, Any]) -> None:
    cases = golden["smsg"]["fixed_nonce"]
    assert cases
    for c in cases:
        nonce = bytes.fromhex(c["nonce_hex"])
        plaintext = c["plaintext_json"].encode()
        assert impl.keystream_xor(nonce, plaintext).hex() == c["obfuscated_hex"], c["name"]
