"""TRIX container: Go-identical header bytes, bounds checked before slicing."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from p2p.transport import TransportError, trix
from p2p.transport.trix import TrixError

SMSG_HEADER = b'{"algorithm":"chacha20poly1305","version":"1.0"}'


def test_smsg_header_bytes_match_go(golden: dict[str, Any]) -> None:
    out = trix.encode(b"SMSG", {"version": "1.0", "algorithm": "chacha20poly1305"}, b"P")
    assert golden["smsg"]["header_json"].encode() == SMSG_HEADER
    assert out == b"SMSG\x02\x00\x00\x00\x30" + SMSG_HEADER + b"P"


def test_header_is_go_marshal_of_a_map() -> None:
    hdr = {"tim": True, "b": "<&>\u2028", "a": 1, "c": 1.5, "n": None, "m": {"z": 1, "y": [1]}}
    out = trix.encode(b"STIM", hdr, b"")
    assert out[9:] == (
        b'{"a":1,"b":"\\u003c\\u0026\\u003e\\u2028","c":1.5,"m":{"y":[1],"z":1},"n":null,"tim":true}'
    )


def test_raw_header_bytes_are_kept() -> None:
    out = trix.encode(b"SMSG", b"null", b"xyz")
    c = trix.decode(out, b"SMSG")
    assert c.header == {} and c.payload == b"xyz"


def test_roundtrip_and_empty_payload() -> None:
    out = trix.encode(b"STIM", {"config_size": 3}, b"")
    c = trix.decode(out, b"STIM")
    assert c == trix.TrixContainer({"config_size": 3}, b"")


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "no magic"),
        (b"SMS", "no magic"),
        (b"XMSG\x02\x00\x00\x00\x02{}", "magic"),
        (b"SMSG", "version or header length"),
        (b"SMSG\x02\x00\x00", "version or header length"),
        (b"SMSG\x01\x00\x00\x00\x02{}", "version"),
        (b"SMSG\x03\x00\x00\x00\x02{}", "version"),
        (b"SMSG\x02\xff\xff\xff\xff{}", "exceeds"),
        (b"SMSG\x02\x00\x00\x00\x05{}", "past the end"),
        (b"SMSG\x02\x00\x00\x00\x02[]", "not an object"),
        (b"SMSG\x02\x00\x00\x00\x02{x", "not valid JSON"),
        (b"SMSG\x02\x00\x00\x00\x03NaN", "not valid JSON"),
    ],
)
def test_rejects(data: bytes, why: str) -> None:
    with pytest.raises(TrixError, match=why):
        trix.decode(data, b"SMSG")


def test_max_header_is_checked_before_reading() -> None:
    data = b"SMSG\x02" + struct.pack(">I", 100) + b"{" + b" " * 98 + b"}"
    assert trix.decode(data, b"SMSG").header == {}
    with pytest.raises(TrixError, match="exceeds maximum 99"):
        trix.decode(data, b"SMSG", max_header=99)


def test_encode_rejects_bad_magic() -> None:
    with pytest.raises(TrixError):
        trix.encode(b"SMSGX", {}, b"")


def test_error_is_a_transport_error() -> None:
    assert issubclass(TrixError, TransportError)


@given(st.binary(max_size=64))
def test_random_bytes_raise_only_trix_error(data: bytes) -> None:
    for blob in (data, b"SMSG\x02" + data):
        with contextlib.suppress(TrixError):
            trix.decode(blob, b"SMSG")
