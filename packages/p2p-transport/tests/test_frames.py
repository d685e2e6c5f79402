"""Message <-> frame in one call, proven on a real Go session (the ``wire_capture``)."""

from __future__ import annotations

import json
import os
import struct
from typing import Any

import pytest
from p2p.transport import sigil, smsg
from p2p.transport.errors import MessageError, SmsgDecryptError, TransportError
from p2p.transport.frames import FrameCodec, open_message, seal_message
from p2p.transport.messages import HandshakePayload, Message, MessageType, PingPayload


def _ws_payload(raw: bytes) -> tuple[int, bool, bytes]:
    """(opcode, fin, unmasked payload) of one RFC 6455 frame."""
    fin, opcode = bool(raw[0] & 0x80), raw[0] & 0x0F
    masked, n = bool(raw[1] & 0x80), raw[1] & 0x7F
    pos = 2
    if n == 126:
        (n,) = struct.unpack_from(">H", raw, pos)
        pos += 2
    elif n == 127:
        (n,) = struct.unpack_from(">Q", raw, pos)
        pos += 8
    mask = raw[pos : pos + 4] if masked else b"\x00\x00\x00\x00"
    pos += 4 if masked else 0
    body = raw[pos : pos + n]
    assert len(body) == n
    return opcode, fin, bytes(b ^ mask[i % 4] for i, b in enumerate(body))


def test_wire_capture_frames(golden: dict[str, Any]) -> None:
    w = golden["wire_capture"]
    secret = bytes.fromhex(w["shared_secret_hex"])
    assert smsg.password_for_secret(secret) == w["smsg_password"]
    codec = FrameCodec(secret)
    frames = w["capture"]["frames"]
    seen = {"text": 0, "binary": 0}
    for f in frames:
        opcode, fin, payload = _ws_payload(bytes.fromhex(f["raw_frame_hex"]))
        assert fin and opcode == f["opcode"] and len(payload) == f["payload_len"]
        if f["opcode_name"] == "text":  # handshake / ack: plain JSON, round-trips exactly
            assert payload.decode() == f["payload_text"]
            msg = Message.from_json(payload)
            assert msg.to_json() == payload
            assert msg.type in (MessageType.HANDSHAKE, MessageType.HANDSHAKE_ACK)
            assert msg.decode_payload() is not None
            seen["text"] += 1
            continue
        assert payload.hex() == f["payload_hex"]
        dec = f["decrypted"]
        msg = codec.open(payload)
        assert msg.to_json().decode() == dec["body"]
        assert open_message(payload, secret) == msg
        m = smsg.decrypt(payload, w["smsg_password"])
        assert (m.body, m.timestamp) == (dec["body"], dec["smsg_timestamp"])
        # and we produce the very same bytes given Go's nonce and timestamp
        nonce = bytes.fromhex(dec["container"]["nonce_hex"])
        assert codec.seal(msg, nonce=nonce, timestamp=dec["smsg_timestamp"]) == payload
        seen["binary"] += 1
    assert seen == {"text": 2, "binary": 7}


def test_wire_capture_handshake_identities(golden: dict[str, Any]) -> None:
    w = golden["wire_capture"]
    first = next(f for f in w["capture"]["frames"] if f["opcode_name"] == "text")
    hs = Message.from_json(first["payload_text"]).parse_payload(HandshakePayload)
    assert hs.identity.id == w["client_identity"]["id"]
    assert hs.identity.public_key == w["client_identity"]["publicKey"]
    assert len(hs.challenge) == 32 and hs.version == "1.0"


def test_seal_open_roundtrip_and_wrong_secret() -> None:
    secret = os.urandom(32)
    msg = Message.new(MessageType.PING, "a", "b", PingPayload(sent_at=1))
    frame = seal_message(msg, secret)
    ts = smsg.decrypt(frame, smsg.password_for_secret(secret)).timestamp
    plain = f'{{"body":{json.dumps(msg.to_json_text())},"timestamp":{ts}}}'
    assert len(frame) == 97 + len(plain)  # SMSG.md §4: frame = 97 + len(P)
    assert open_message(frame, secret) == msg
    with pytest.raises(SmsgDecryptError):
        open_message(frame, os.urandom(32))


def test_non_message_body_is_a_message_error() -> None:
    secret = os.urandom(32)
    frame = smsg.encrypt("not json", smsg.password_for_secret(secret))
    with pytest.raises(MessageError):
        open_message(frame, secret)


def test_codec_limits_and_repr() -> None:
    secret = os.urandom(32)
    codec = FrameCodec(secret, max_frame=2000, max_message=500)
    big = Message.new("logs", "a", "b", {"lines": ["x" * 600]})
    with pytest.raises(TransportError):
        codec.seal(Message.new("logs", "a", "b", {"lines": ["x" * 3000]}))
    frame = FrameCodec(secret).seal(big)
    with pytest.raises(TransportError):
        codec.open(frame)
    assert smsg.password_for_secret(secret) not in repr(codec)
    with pytest.raises(ValueError):
        FrameCodec(b"")


def test_a_codec_derives_its_key_once_whatever_the_number_of_links(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A controller holds thousands of links, more than SMSG's per-password key cache:
    sealing and opening (fast path and fallback) use the codec's own key."""
    codecs = [FrameCodec(os.urandom(32)) for _ in range(300)]
    msg = Message.new(MessageType.PING, "a", "b", PingPayload(1))

    def derive(_password: str) -> bytes:
        raise AssertionError("key derived per message")

    monkeypatch.setattr(smsg, "_key", derive)
    monkeypatch.setattr(sigil, "derive_key", derive)
    for codec in codecs:
        frame = codec.seal(msg)
        assert codec.open(frame).id == msg.id
        # a frame not in Go's shape takes the fallback: the same key, no derivation
        assert codec.open(bytearray(frame)).id == msg.id  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="per message"):
        smsg.encrypt("body", "password")  # the password API still derives (and caches)


def test_seal_with_key_and_open_with_key_match_the_password_api() -> None:
    password = smsg.password_for_secret(os.urandom(32))
    key = sigil.derive_key(password)
    nonce = os.urandom(24)
    a = smsg.encrypt("hello", password, nonce=nonce, timestamp=7)
    assert smsg.seal_with_key("hello", key, nonce=nonce, timestamp=7) == a
    assert smsg.open_with_key(a, key).body == smsg.decrypt(a, password).body == "hello"
