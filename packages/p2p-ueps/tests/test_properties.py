"""Property tests: any input gives a packet or a UEPSError, never anything else."""

from __future__ import annotations

import contextlib
from types import ModuleType

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p2p.ueps.errors import UEPSError

SECRET = b"k" * 32
SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(data=st.binary(max_size=400))
def test_read_and_verify_raises_only_ueps_errors(impl: ModuleType, data: bytes) -> None:
    with contextlib.suppress(UEPSError):
        impl.read_and_verify(data, SECRET)


@SETTINGS
@given(chunks=st.lists(st.binary(max_size=80), max_size=12))
def test_frame_reader_raises_only_ueps_errors(impl: ModuleType, chunks: list[bytes]) -> None:
    reader = impl.FrameReader(SECRET)
    for c in chunks:
        with contextlib.suppress(UEPSError):
            reader.feed(c)


@SETTINGS
@given(
    version=st.integers(0, 255),
    cur=st.integers(0, 255),
    tgt=st.integers(0, 255),
    intent=st.integers(0, 255),
    threat=st.integers(0, 65535),
    size=st.one_of(st.integers(0, 300), st.sampled_from([1023, 1024, 65534, 65535])),
    secret=st.binary(max_size=100),
    split=st.integers(1, 70_000),
)
def test_build_read_roundtrip(
    impl: ModuleType,
    version: int,
    cur: int,
    tgt: int,
    intent: int,
    threat: int,
    size: int,
    secret: bytes,
    split: int,
) -> None:
    payload = bytes((i * 31) & 0xFF for i in range(size))
    frame = impl.build(
        intent,
        payload,
        secret,
        version=version,
        current_layer=cur,
        target_layer=tgt,
        threat_score=threat,
    )
    assert len(frame) == 59 + size
    p = impl.read_and_verify(frame, secret)
    h = p.header
    assert (h.version, h.current_layer, h.target_layer, h.intent_id, h.threat_score) == (
        version,
        cur,
        tgt,
        intent,
        threat,
    )
    assert p.payload == payload
    reader = impl.FrameReader(secret)
    got = reader.feed(frame[:split]) + reader.feed(frame[split:])
    assert got == [p]


@SETTINGS
@given(frame_len=st.integers(1, 100), flip=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_single_bit_flip_is_detected(
    impl: ModuleType, frame_len: int, flip: int, bit: int
) -> None:
    frame = bytearray(impl.build(0x20, bytes(frame_len), SECRET))
    frame[flip % len(frame)] ^= 1 << bit
    try:
        p = impl.read_and_verify(bytes(frame), SECRET)
    except UEPSError:
        return
    # Only a flip in the payload TLV's length can still parse, and then never verifies.
    raise AssertionError(f"bit flip accepted: {p!r}")
