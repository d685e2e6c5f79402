"""The WebSocket data-frame codec of the extension (``ws_scan`` / ``ws_frame``), checked
against a plain RFC 6455 reference (`pytest_p2p.wsframes`; the package does not depend on
websockets; the transport's tests check it against websockets' own parser)."""

from __future__ import annotations

import importlib
import os
import struct
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytest_p2p.wsframes import rfc6455_frame as ref_frame


def _codec() -> ModuleType:
    if os.environ.get("P2P_NO_EXTENSIONS", "") not in ("", "0"):
        pytest.skip("extensions disabled")
    try:
        return importlib.import_module("p2p.ueps._speedups")
    except ImportError:
        if os.environ.get("P2P_EXPECT_CYTHON") == "1":
            raise
        pytest.skip("Cython extension not built")


@pytest.fixture
def ws() -> ModuleType:
    return _codec()


SIZES = [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 125, 126, 127, 1000, 65535, 65536, 70001]


@pytest.mark.parametrize("n", SIZES)
def test_frame_matches_the_reference_both_sides(ws: ModuleType, n: int) -> None:
    payload = os.urandom(n)
    mask = os.urandom(4)
    assert ws.ws_frame(2, payload) == ref_frame(2, payload)
    assert ws.ws_frame(2, payload, mask) == ref_frame(2, payload, mask)
    assert ws.ws_frame(1, payload, mask) == ref_frame(1, payload, mask)
    assert ws.ws_frame(2, memoryview(bytearray(payload)), mask) == ref_frame(2, payload, mask)


@pytest.mark.parametrize("n", SIZES)
def test_scan_unmasks_simple_frames_and_waits_for_the_rest(ws: ModuleType, n: int) -> None:
    payload = os.urandom(n)
    frame = ref_frame(2, payload, os.urandom(4))
    assert ws.ws_scan(frame, 0, True, 1 << 20, True) == ([payload], len(frame), 0, 0)
    assert ws.ws_scan(b"", 0, True, 1 << 20, True) == (None, 0, ws.WS_SCAN_END, 0)
    for cut in {1, 2, len(frame) // 2, len(frame) - 1}:
        payloads, pos, why, need = ws.ws_scan(frame[:cut], 0, True, 1 << 20, True)
        assert (payloads, pos, why) == (None, 0, ws.WS_SCAN_MORE)
        assert cut < need <= len(frame)  # never asks for more than the frame


def test_scan_stops_at_what_is_not_simple(ws: ModuleType) -> None:
    m = b"\x01\x02\x03\x04"
    a = ref_frame(2, b"one", m)
    others = [
        ref_frame(9, b"ping", m),
        ref_frame(10, b"", m),
        ref_frame(8, b"\x03\xe8", m),
        ref_frame(1, b"text", m),
        ref_frame(2, b"frag", m, fin=False),
        ref_frame(0, b"cont", m),
        ref_frame(2, b"rsv", m, rsv=4),
        ref_frame(9, b"x" * 126, m),  # too long for a control frame: websockets' to say
    ]
    for other in others:
        data = a + other + a
        assert ws.ws_scan(data, 0, True, 1000, True) == (
            [b"one"],
            len(a),
            ws.WS_SCAN_OTHER,
            len(other),
        )
        # resumed after it, the last frame is simple again
        assert ws.ws_scan(data, len(a) + len(other), True, 1000, True) == (
            [b"one"],
            len(data),
            ws.WS_SCAN_END,
            0,
        )
    # while a fragmented message is open nothing is simple
    assert ws.ws_scan(a, 0, True, 1000, False) == (None, 0, ws.WS_SCAN_OTHER, len(a))


def test_scan_rejects_from_the_header_alone(ws: ModuleType) -> None:
    m = b"\x01\x02\x03\x04"
    a = ref_frame(2, b"one", m)
    unmasked = ref_frame(2, b"one")
    unknown = ref_frame(3, b"", m)
    big = ref_frame(2, b"z" * 300, m)
    for bad, cut in [(unmasked, 2), (unknown, 2), (big, 4)]:
        assert ws.ws_scan(a + bad[:cut], 0, True, 200, True) == (
            [b"one"],
            len(a),
            ws.WS_SCAN_REJECT,
            0,
        )
    # the client side: frames must not be masked
    assert ws.ws_scan(a, 0, False, 200, True) == (None, 0, ws.WS_SCAN_REJECT, 0)
    assert ws.ws_scan(unmasked, 0, False, 200, True) == ([b"one"], len(unmasked), 0, 0)
    # a 64-bit length above any limit is refused, not waited for
    huge = b"\x82\xff" + struct.pack("!Q", 1 << 63) + m
    assert ws.ws_scan(huge, 0, True, 1 << 30, True)[2] == ws.WS_SCAN_REJECT
    # the limit is inclusive
    assert ws.ws_scan(big, 0, True, 300, True)[2] == ws.WS_SCAN_END


def test_bad_arguments(ws: ModuleType) -> None:
    with pytest.raises(ValueError):
        ws.ws_frame(2, b"x", b"abc")
    with pytest.raises(ValueError):
        ws.ws_frame(16, b"x")
    with pytest.raises(ValueError):
        ws.ws_scan(b"\x82\x00", 3, False, 10, True)
    with pytest.raises(TypeError):
        ws.ws_scan("text", 0, False, 10, True)


@settings(max_examples=300, deadline=None)
@given(
    payloads=st.lists(st.binary(max_size=300), max_size=8),
    masked=st.booleans(),
    cut=st.integers(0, 4000),
    data=st.data(),
)
def test_scan_walks_any_run_of_frames(
    payloads: list[bytes], masked: bool, cut: int, data: st.DataObject
) -> None:
    ws = _codec()
    stream = b"".join(
        ref_frame(2, p, data.draw(st.binary(min_size=4, max_size=4)) if masked else None)
        for p in payloads
    )
    cut = min(cut, len(stream))
    got, pos, _why, _ = ws.ws_scan(stream[:cut], 0, masked, 300, True)
    got = got or []
    assert got == payloads[: len(got)]
    rest, end, why2, _ = ws.ws_scan(stream, pos, masked, 300, True)
    assert got + (rest or []) == payloads
    assert (end, why2) == (len(stream), ws.WS_SCAN_END)
