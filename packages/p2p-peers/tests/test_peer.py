"""Peer records: peers.json keys, Go time and number formats, field validation, name rule."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from p2p.identity import GoTime
from p2p.peers import (
    ZERO_TIME,
    InvalidPeerError,
    Peer,
    parse_time,
    validate_peer_name,
)
from p2p.peers.store import encode_peers

GO_PEERS_JSON = b"""[
  {
    "id": "aaa8fff703b50b2297f4f6e13508f724",
    "name": "alpha",
    "publicKey": "B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9/AsrhtHHw=",
    "address": "10.0.0.1:9091",
    "role": "worker",
    "addedAt": "2026-11-27T14:34:11.458922911+01:00",
    "lastSeen": "0001-01-01T00:00:00Z",
    "pingMs": 12.5,
    "hops": 2,
    "geoKm": 0,
    "score": 50
  },
  {
    "id": "4457134794559182226754e9dd2f1083",
    "name": "",
    "publicKey": "WGmv9FBUlzLLqu1eXfmzCm2jHLDldCutWtShp2jxpns=",
    "address": "",
    "role": "",
    "addedAt": "2026-01-02T03:04:05Z",
    "lastSeen": "2026-01-02T03:04:05.1Z",
    "pingMs": 0.001,
    "hops": 0,
    "geoKm": 1234.5678,
    "score": 32.379999999999995
  }
]"""


def test_go_file_round_trips_byte_for_byte() -> None:
    peers = [Peer.from_dict(d) for d in json.loads(GO_PEERS_JSON)]
    assert peers[0].added_at == GoTime.parse("2026-11-27T14:34:11.458922911+01:00")
    assert peers[0].added_at.nanosecond == 458922911
    assert peers[0].last_seen.is_zero()
    assert peers[1].score == 32.379999999999995
    assert b"".join(encode_peers(peers)) == GO_PEERS_JSON


def test_empty_list_encodes_as_null_like_go() -> None:
    assert b"".join(encode_peers([])) == b"null"


def test_zero_value_matches_the_go_struct(golden: dict[str, Any]) -> None:
    want = golden["messages"]["zero_value_structs"]["Peer"]
    assert json.dumps(Peer(id="").to_dict(), separators=(",", ":")) == want
    assert Peer.from_dict(json.loads(want)) == Peer(id="")


def test_to_dict_keys_in_go_order_and_connected_not_persisted() -> None:
    p = Peer(id="x", connected=True, ping_ms=1.25, score=50.0)
    d = p.to_dict()
    assert list(d) == [
        "id",
        "name",
        "publicKey",
        "address",
        "role",
        "addedAt",
        "lastSeen",
        "pingMs",
        "hops",
        "geoKm",
        "score",
    ]
    assert d["score"] == 50 and isinstance(d["score"], int)  # Go writes 50, not 50.0
    assert d["pingMs"] == 1.25
    assert "connected" not in d
    assert Peer.from_dict({**d, "connected": True}).connected is False


def test_missing_and_null_keys_take_go_zero_values() -> None:
    p = Peer.from_dict({"id": "a", "addedAt": None, "extra": [1, 2]})
    assert p == Peer(id="a")
    assert p.added_at == ZERO_TIME


@pytest.mark.parametrize(
    "bad",
    [
        {"id": 5},
        {"id": "a", "pingMs": "1"},
        {"id": "a", "pingMs": True},
        {"id": "a", "hops": 1.5},
        {"id": "a", "hops": 2**60},
        {"id": "a", "geoKm": float("nan")},
        {"id": "a", "score": float("inf")},
        {"id": "a", "score": 1e300},
        {"id": "a", "addedAt": "yesterday"},
        {"id": "a", "addedAt": "2026-13-01T00:00:00Z"},
        {"id": "a", "lastSeen": 17},
        {"id": "a" * 300},
        {"id": "a", "address": "h" * 2000},
    ],
)
def test_from_dict_rejects_bad_fields(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidPeerError):
        Peer.from_dict(bad)


def test_from_dict_rejects_non_objects() -> None:
    with pytest.raises(InvalidPeerError):
        Peer.from_dict(None)  # type: ignore[arg-type]


def test_copy_is_independent() -> None:
    p = Peer(id="a", ping_ms=1.0)
    q = p.copy()
    q.ping_ms = 2.0
    assert p.ping_ms == 1.0 and q == Peer(id="a", ping_ms=2.0)


def test_validated_normalises_and_accepts_aware_datetimes() -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    p = Peer(id="a", hops=3.0, ping_ms=2, added_at=when).validated()  # type: ignore[arg-type]
    assert p.hops == 3 and isinstance(p.hops, int)
    assert isinstance(p.ping_ms, float)
    assert p.added_at == GoTime.parse("2026-01-02T03:04:05Z")
    with pytest.raises(InvalidPeerError):
        Peer(id="a", added_at=datetime(2026, 1, 1)).validated()  # type: ignore[arg-type]


def test_parse_time_keeps_offset_and_nanoseconds() -> None:
    t = parse_time("2026-11-27T14:34:11.000000001-05:30")
    assert t.nanosecond == 1 and t.offset_seconds == -(5 * 3600 + 30 * 60)
    assert t.format() == "2026-11-27T14:34:11.000000001-05:30"


@pytest.mark.parametrize("name", ["", "a", "Z9", "peer-01", "Peer_01 x", "two  spaces", "a" * 64])
def test_valid_names(name: str) -> None:
    validate_peer_name(name)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a" * 65, "too long"),
        ("é" * 33, "too long"),  # 66 bytes: the limit is in bytes
        ("-bad", "invalid characters"),
        ("bad-", "invalid characters"),
        ("has.dot", "invalid characters"),
        ("ünïcode", "invalid characters"),
        ("trailing\n", "invalid characters"),  # Python's `$` would let this through
        (" lead", "invalid characters"),
        ("tab\tin", "invalid characters"),
    ],
)
def test_invalid_names(name: str, message: str) -> None:
    with pytest.raises(InvalidPeerError, match=message):
        validate_peer_name(name)
