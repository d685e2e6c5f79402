"""Sans-I/O UEPS channel: bound frames byte-exactly, session binding, threat breaker."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p2p import ueps
from p2p.identity import KeyPair, NodeIdentity
from p2p.transport import envelope
from p2p.transport.handshake import HandshakeInitiator, HandshakeResponder
from p2p.transport.ueps_channel import (
    FEATURE_UEPS,
    Accept,
    ReasonCounters,
    Reject,
    RejectReason,
    SessionReady,
    ThreatTracker,
    UepsConfig,
    UepsSession,
    UepsSessionError,
    advertises_ueps,
    derive_session_ids,
    with_ueps,
)
from p2p.transport.ueps_frames import (
    BOUND_OVERHEAD,
    TAG_COUNTER,
    TAG_NONCE,
    TAG_SESSION,
    decode_bound,
    encode_bound,
    encode_setup,
)
from p2p.ueps import _pure

SECRET = b"0123456789abcdef0123456789abcdef"
SID = bytes(range(16))


def _reference_verify(frame: bytes, secret: bytes) -> tuple[dict[int, bytes], bytes]:
    """UEPS.md §3 written out independently: returns (tlvs before payload, payload)."""
    signed, sig, pos, tlvs = b"", None, 0, {}
    while True:
        tag, n = frame[pos], int.from_bytes(frame[pos + 1 : pos + 3], "big")
        val = frame[pos + 3 : pos + 3 + n]
        if tag == 0xFF:
            assert sig is not None
            want = hmac.new(secret, signed + val, hashlib.sha256).digest()
            assert hmac.compare_digest(want, sig)
            return tlvs, val
        if tag == 0x06:
            sig = val
        else:
            signed += frame[pos : pos + 3 + n]
            tlvs[tag] = val
        pos += 3 + n


# --- frames -------------------------------------------------------------------------------


def test_bound_frame_layout_is_valid_ueps() -> None:
    key = ueps.HmacKey(SECRET)
    frame = encode_bound(key, 0x20, b"hello", session_id=SID, counter=7, threat_score=0x1234)
    assert len(frame) == BOUND_OVERHEAD + 5
    # the canonical header, then our TLVs, then HMAC, then the payload TLV
    assert frame[:21].hex() == "010001090200010503000105040001200500021234"
    assert frame[21:24] == bytes((TAG_SESSION, 0, 16)) and frame[24:40] == SID
    assert frame[40:43] == bytes((TAG_COUNTER, 0, 8)) and frame[43:51] == (7).to_bytes(8, "big")
    assert frame[51:54] == b"\x06\x00\x20"
    assert frame[86:] == b"\xff\x00\x05hello"
    mac = hmac.new(SECRET, frame[:51] + b"hello", hashlib.sha256).digest()
    assert frame[54:86] == mac
    tlvs, payload = _reference_verify(frame, SECRET)
    assert payload == b"hello" and tlvs[TAG_SESSION] == SID
    # both codecs of p2p.ueps accept it as a plain UEPS frame (unknown tags authenticated)
    for read in (ueps.read_and_verify, _pure.read_and_verify):
        packet = read(frame, SECRET)
        assert packet.payload == b"hello"
        assert (packet.header.intent_id, packet.header.threat_score) == (0x20, 0x1234)


def test_setup_frame_layout() -> None:
    nonce = os.urandom(32)
    frame = encode_setup(ueps.HmacKey(SECRET), nonce)
    assert frame[15] == ueps.INTENT_HANDSHAKE
    assert frame[21:24] == bytes((TAG_NONCE, 0, 32)) and frame[24:56] == nonce
    assert frame[-3:] == b"\xff\x00\x00"
    _reference_verify(frame, SECRET)
    packet = decode_bound(frame, SECRET)
    assert packet.nonce == nonce and packet.session_id is None and packet.counter is None


@pytest.mark.parametrize("size", [0, 1, 64, 1024, 65535])
def test_decode_round_trip(size: int) -> None:
    payload = os.urandom(size)
    frame = encode_bound(ueps.HmacKey(SECRET), 0xFF, payload, session_id=SID, counter=2**64 - 1)
    packet = decode_bound(frame, SECRET)
    assert (packet.payload, packet.session_id, packet.counter) == (payload, SID, 2**64 - 1)
    assert packet.intent_id == 0xFF and packet.threat_score == 0


def test_encode_bounds() -> None:
    key = ueps.HmacKey(SECRET)
    with pytest.raises(ueps.ValueTooLargeError):
        encode_bound(key, 0x20, bytes(65536), session_id=SID, counter=1)
    with pytest.raises(ValueError):
        encode_bound(key, 0x20, b"", session_id=SID, counter=0)
    with pytest.raises(ValueError):
        encode_bound(key, 0x20, b"", session_id=SID[:15], counter=1)
    with pytest.raises(ueps.ValueTooLargeError):
        encode_bound(key, 0x100, b"", session_id=SID, counter=1)
    with pytest.raises(ueps.ValueTooLargeError):
        encode_bound(key, 0x20, b"", session_id=SID, counter=1, threat_score=65536)
    with pytest.raises(ValueError):
        encode_setup(key, b"short")


def test_every_single_byte_tamper_is_refused() -> None:
    frame = encode_bound(ueps.HmacKey(SECRET), 0x20, b"payload!", session_id=SID, counter=3)
    for i in range(len(frame)):
        bad = bytearray(frame)
        bad[i] ^= 0x01
        with pytest.raises(ueps.UEPSError):
            decode_bound(bytes(bad), SECRET)


def test_wrong_key_is_an_integrity_error() -> None:
    frame = encode_bound(ueps.HmacKey(SECRET), 0x20, b"x", session_id=SID, counter=1)
    with pytest.raises(ueps.IntegrityError):
        decode_bound(frame, os.urandom(32))


def _sign(parts: list[tuple[int, bytes]], payload: bytes, secret: bytes = SECRET) -> bytes:
    """A frame with arbitrary TLVs before the HMAC (a hostile but key-holding sender)."""
    signed = b"".join(bytes((t, len(v) >> 8, len(v) & 0xFF)) + v for t, v in parts)
    mac = hmac.new(secret, signed + payload, hashlib.sha256).digest()
    n = len(payload)
    return signed + b"\x06\x00\x20" + mac + bytes((0xFF, n >> 8, n & 0xFF)) + payload


def test_binding_tags_must_be_exact_and_unique() -> None:
    head = [(0x04, b"\x20")]
    with pytest.raises(ueps.MalformedFrameError, match="twice"):
        decode_bound(_sign([*head, (TAG_SESSION, SID), (TAG_SESSION, SID)], b""), SECRET)
    with pytest.raises(ueps.MalformedFrameError, match="expected 8 bytes"):
        decode_bound(_sign([*head, (TAG_COUNTER, b"\x01")], b""), SECRET)
    with pytest.raises(ueps.MalformedFrameError, match="after the payload"):
        decode_bound(_sign([*head], b"") + b"junk", SECRET)
    # other unknown tags are authenticated and ignored, as the reference does
    packet = decode_bound(
        _sign([(0x13, b"future"), *head, (TAG_COUNTER, (5).to_bytes(8, "big"))], b"p"), SECRET
    )
    assert packet.counter == 5 and packet.session_id is None and packet.payload == b"p"


# --- negotiation ----------------------------------------------------------------------------


def test_feature_helpers() -> None:
    assert with_ueps() == (FEATURE_UEPS,)
    assert with_ueps(("x",)) == ("x", FEATURE_UEPS)
    assert with_ueps(with_ueps()) == (FEATURE_UEPS,)
    assert (
        advertises_ueps(["a", "ueps/1"])
        and not advertises_ueps(())
        and not advertises_ueps(["ueps/2"])
    )


def _allow(peer_id: str, public_key: str) -> bool:
    return True


def test_go_capture_advertises_nothing_and_is_all_smsg(golden: dict[str, Any]) -> None:
    """A UEPS-enabled responder accepts the captured Go hello; Go offers no features, and
    every binary frame Go sends starts with b"SMSG" (so none would be routed as UEPS)."""
    wc = golden["wire_capture"]
    frames = wc["capture"]["frames"]
    server_kp = KeyPair.from_private_bytes(bytes.fromhex(wc["server_identity"]["private_key_hex"]))
    server = NodeIdentity.from_dict(json.loads(frames[1]["payload_text"])["payload"]["identity"])
    responder = HandshakeResponder(
        server, server_kp.derive_shared_secret, _allow, features=with_ueps()
    )
    decision = responder.receive_hello(frames[0]["payload_text"])
    assert decision.result is not None
    assert not advertises_ueps(decision.result.features)
    ack = json.loads(envelope.to_text(decision.reply)) if decision.reply else {}
    assert ack["payload"]["features"] == [FEATURE_UEPS]  # extra key, ignored by Go
    assert "features" not in json.loads(frames[1]["payload_text"])["payload"]
    binary = [bytes.fromhex(f["payload_hex"]) for f in frames[2:]]
    assert binary and all(frame.startswith(b"SMSG") for frame in binary)


def test_hello_carries_features_only_when_enabled(golden: dict[str, Any]) -> None:
    wc = golden["wire_capture"]
    kp = KeyPair.from_private_bytes(bytes.fromhex(wc["client_identity"]["private_key_hex"]))
    me = NodeIdentity.from_dict(
        json.loads(wc["capture"]["frames"][0]["payload_text"])["payload"]["identity"]
    )
    plain = HandshakeInitiator(me, kp.derive_shared_secret, challenge=bytes(32))
    assert "features" not in json.loads(envelope.to_text(plain.hello()))["payload"]
    offered = HandshakeInitiator(
        me, kp.derive_shared_secret, challenge=bytes(32), features=with_ueps()
    )
    body = json.loads(envelope.to_text(offered.hello()))["payload"]
    assert body["features"] == ["ueps/1"]
    assert base64.b64decode(body["challenge"]) == bytes(32)


# --- sessions -------------------------------------------------------------------------------


def _pair(secret: bytes = SECRET) -> tuple[UepsSession, UepsSession]:
    """Initiator and responder sessions after exchanging setup frames."""
    a = UepsSession(secret, outbound=True)
    b = UepsSession(secret, outbound=False)
    assert isinstance(b.receive(a.setup_frame()), SessionReady)
    assert isinstance(a.receive(b.setup_frame()), SessionReady)
    assert a.ready and b.ready
    return a, b


def test_session_ids_per_direction() -> None:
    a, b = _pair()
    assert a.send_session_id == b.recv_session_id and b.send_session_id == a.recv_session_id
    assert a.send_session_id != a.recv_session_id
    i2r, r2i = derive_session_ids(SECRET, a.local_nonce, b.local_nonce)
    assert (i2r, r2i) == (a.send_session_id, b.send_session_id)
    assert derive_session_ids(os.urandom(32), a.local_nonce, b.local_nonce)[0] != i2r
    with pytest.raises(ValueError):
        derive_session_ids(SECRET, b"x", b.local_nonce)


def test_frames_flow_both_ways_in_order() -> None:
    a, b = _pair()
    for i in range(1, 50):
        v = b.receive(a.seal(0x20, b"a%d" % i))
        assert isinstance(v, Accept) and v.packet.counter == i and v.packet.payload == b"a%d" % i
        w = a.receive(b.seal(0x30, b"b%d" % i, threat_score=i))
        assert isinstance(w, Accept) and w.packet.threat_score == i


def test_replay_and_reorder_rejected() -> None:
    a, b = _pair()
    f1, f2, f3 = (a.seal(0x20, b"%d" % i) for i in range(3))
    assert isinstance(b.receive(f1), Accept)
    assert isinstance(b.receive(f3), Accept)  # gaps are fine (rate-limited frames vanish)
    late = b.receive(f2)
    assert isinstance(late, Reject) and late.reason is RejectReason.REPLAY and late.violation
    again = b.receive(f3)
    assert isinstance(again, Reject) and again.reason is RejectReason.REPLAY


def test_frame_from_another_session_rejected() -> None:
    old_a, old_b = _pair()
    recorded = old_a.seal(0x20, b"transfer 10")
    assert isinstance(old_b.receive(recorded), Accept)
    # a new session under the same static key: the recorded frame no longer fits
    _new_a, new_b = _pair()
    v = new_b.receive(recorded)
    assert isinstance(v, Reject) and v.reason is RejectReason.WRONG_SESSION
    # even replaying the old initiator's setup frame into a fresh responder does not help:
    fresh_b = UepsSession(SECRET, outbound=False)
    old_setup = encode_setup(ueps.HmacKey(SECRET), old_a.local_nonce)
    assert isinstance(fresh_b.receive(old_setup), SessionReady)
    v2 = fresh_b.receive(recorded)
    assert isinstance(v2, Reject) and v2.reason is RejectReason.WRONG_SESSION


def test_reflected_frame_rejected() -> None:
    a, _b = _pair()
    v = a.receive(a.seal(0x20, b"mine"))
    assert isinstance(v, Reject) and v.reason is RejectReason.WRONG_SESSION
    a2 = UepsSession(SECRET, outbound=True)
    v2 = a2.receive(a2.setup_frame())
    assert isinstance(v2, Reject) and v2.reason is RejectReason.SETUP


def test_unbound_and_setup_violations() -> None:
    a = UepsSession(SECRET, outbound=True)
    b = UepsSession(SECRET, outbound=False)
    with pytest.raises(UepsSessionError):
        a.seal(0x20, b"too early")
    # a canonical (unbound) UEPS frame is refused
    plain = ueps.build(0x20, b"x", SECRET)
    v = b.receive(plain)
    assert isinstance(v, Reject) and v.reason is RejectReason.UNBOUND
    # a bound data frame before the setup frame is refused
    early = encode_bound(ueps.HmacKey(SECRET), 0x20, b"x", session_id=SID, counter=1)
    v = b.receive(early)
    assert isinstance(v, Reject) and v.reason is RejectReason.UNBOUND
    setup = a.setup_frame()
    with pytest.raises(UepsSessionError):
        a.setup_frame()
    assert isinstance(b.receive(setup), SessionReady)
    v = b.receive(setup)
    assert isinstance(v, Reject) and v.reason is RejectReason.SETUP
    # the setup intent is reserved
    a.receive(b.setup_frame())
    with pytest.raises(ValueError):
        a.seal(ueps.INTENT_HANDSHAKE, b"")


def test_integrity_and_malformed_verdicts() -> None:
    a, b = _pair()
    frame = bytearray(a.seal(0x20, b"abc"))
    frame[-1] ^= 1
    v = b.receive(bytes(frame))
    assert isinstance(v, Reject) and v.reason is RejectReason.INTEGRITY
    v = b.receive(b"\x01\x00")
    assert isinstance(v, Reject) and v.reason is RejectReason.MALFORMED
    # the rejected frames did not advance the counter
    assert isinstance(b.receive(a.seal(0x20, b"ok")), Accept)
    assert "secret" not in repr(a) and SECRET.hex() not in repr(a)


# --- threat tracker ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_threat_score_rises_and_decays() -> None:
    clock = Clock()
    tracker = ThreatTracker(clock=clock, threshold=1000, decay_per_s=10, cooldown=60)
    assert tracker.score("p") == 0
    assert tracker.record("p") is False
    assert tracker.score("p") == 100
    clock.t += 5
    assert tracker.score("p") == 50
    clock.t += 100
    assert tracker.score("p") == 0
    assert not tracker.refused("p")


def test_breaker_trips_above_threshold_and_cools_down() -> None:
    clock = Clock()
    tracker = ThreatTracker(clock=clock, threshold=1000, decay_per_s=10, cooldown=60)
    results = [tracker.record("p") for _ in range(11)]
    assert results == [False] * 10 + [True]  # 1000 is not above the threshold; 1100 is
    assert tracker.refused("p") and tracker.refused_for("p") == 60
    assert tracker.trips("p") == 1 and tracker.score("p") == 0
    assert not tracker.refused("q")
    clock.t += 59.5
    assert tracker.refused("p")
    clock.t += 1
    assert not tracker.refused("p")
    tracker.forgive("p")
    assert tracker.trips("p") == 0


def test_slow_violations_never_trip() -> None:
    clock = Clock()
    tracker = ThreatTracker(clock=clock, threshold=1000, decay_per_s=10, cooldown=60)
    for _ in range(100):
        assert tracker.record("p") is False
        clock.t += 10  # decays the 100 points before the next one
    assert not tracker.refused("p")


def test_tracker_is_bounded() -> None:
    tracker = ThreatTracker(clock=Clock(), max_peers=3)
    for i in range(10):
        tracker.record(f"p{i}")
    assert len(tracker) == 3
    assert tracker.score("p0") == 0 and tracker.score("p9") == 100


def test_config_validation() -> None:
    UepsConfig()
    for bad in (
        {"threat_increment": 0},
        {"breaker_threshold": -1},
        {"cooldown": float("inf")},
        {"threat_decay_per_s": -1},
        {"max_tracked_peers": 0},
        {"dispatch_threshold": 70000},
        {"setup_timeout": 0},
    ):
        with pytest.raises(ValueError):
            UepsConfig(**bad)
    tracker = ThreatTracker.from_config(UepsConfig(breaker_threshold=150), Clock())
    assert tracker.record("p") is False and tracker.record("p") is True


def test_reason_counters_roll_up() -> None:
    total = ReasonCounters()
    peer = ReasonCounters(total)
    peer.add(RejectReason.REPLAY)
    peer.add("accepted", 3)
    assert peer["replay"] == 1 and total[RejectReason.REPLAY] == 1
    assert total["accepted"] == 3 and total.rejected == 1
    assert set(total.as_dict()) == {"accepted", "sent", *(r.value for r in RejectReason)}


def test_fixed_offset_and_walked_layouts_agree() -> None:
    canonical = encode_bound(ueps.HmacKey(SECRET), 0x20, b"job", session_id=SID, counter=9)
    head = [(1, b"\x09"), (2, b"\x05"), (3, b"\x05"), (4, b"\x20"), (5, b"\x00\x00")]
    moved = _sign([(TAG_COUNTER, (9).to_bytes(8, "big")), *head, (TAG_SESSION, SID)], b"job")
    assert moved != canonical
    a, b = decode_bound(canonical, SECRET), decode_bound(moved, SECRET)
    assert (a.session_id, a.counter, a.payload, a.intent_id) == (SID, 9, b"job", 0x20)
    assert (b.session_id, b.counter, b.payload, b.intent_id) == (SID, 9, b"job", 0x20)
    # a canonical frame with one extra byte is not read at fixed offsets
    with pytest.raises(ueps.MalformedFrameError):
        decode_bound(canonical + b"\x00", SECRET)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["new", "replay", "tamper", "plain"]), st.integers(0, 20)),
        max_size=40,
    )
)
def test_only_fresh_genuine_frames_are_accepted(ops: list[tuple[str, int]]) -> None:
    """Whatever a key-holding sender or the network mixes in, the receiver accepts exactly
    the genuine frames whose counter is above every counter accepted before."""
    a, b = _pair()
    sent: list[bytes] = []
    highest = 0
    for op, k in ops:
        if op == "new" or not sent:
            frame = a.seal(0x20, b"%d" % len(sent))
            sent.append(frame)
        elif op == "replay":
            frame = sent[k % len(sent)]
        elif op == "tamper":
            bad = bytearray(sent[k % len(sent)])
            bad[k % len(bad)] ^= 1 << (k % 8)
            frame = bytes(bad)
        else:
            frame = ueps.build(0x20, b"unbound", SECRET)
        verdict = b.receive(frame)
        counter = sent.index(frame) + 1 if frame in sent else None
        if counter is not None and counter > highest:
            assert isinstance(verdict, Accept) and verdict.packet.counter == counter
            highest = counter
        else:
            assert isinstance(verdict, Reject) and verdict.violation
    assert b.recv_counter == highest
