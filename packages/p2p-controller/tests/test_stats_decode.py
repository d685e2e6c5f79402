"""The ``stats`` payload's fast decoder gives exactly what the generic Go-compatible
decoder gives (same payload, or the same error), on canonical and on odd input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p2p.controller import payloads
from p2p.controller.payloads import MinerStatsItem, StatsPayload
from p2p.transport import MessageError, Payload

orjson = pytest.importorskip("orjson")


def generic(data: str | bytes | None) -> StatsPayload:
    """The generic decoder (what `StatsPayload.from_json` did before the fast path)."""
    return Payload.from_json.__func__(StatsPayload, data)  # type: ignore[attr-defined,no-any-return]


def outcome(decode: Any, data: str | bytes | None) -> tuple[str, Any]:
    try:
        return ("ok", decode(data))
    except MessageError as exc:
        return ("error", str(exc))


def same(data: str | bytes | None) -> None:
    assert outcome(StatsPayload.from_json, data) == outcome(generic, data), data


def test_worker_replies_take_the_fast_path() -> None:
    miner = MinerStatsItem("xmrig", "xmrig", 1234.5, 10, 1, 3600, "pool:3333", "rx/0", 4)
    for p in (
        StatsPayload("a" * 64, "w1", [], 12),
        StatsPayload("a" * 64, 'wörker "q" \\ \n\x01', [miner, MinerStatsItem()], 0),
        StatsPayload("", "", None, -5),
    ):
        data = p.to_json()
        assert payloads._decode_canonical(data) == p
        assert payloads._decode_canonical(data.decode()) == p
        assert StatsPayload.from_json(data) == p == generic(data)
    # Go escapes U+2028 and orjson does not: not canonical, the generic decoder answers
    p = StatsPayload("a", "line\u2028sep", [], 1)
    assert payloads._decode_canonical(p.to_json()) is None
    assert StatsPayload.from_json(p.to_json()) == p


@pytest.mark.parametrize(
    "text",
    [
        '{"nodeId":"a","nodeId":"b"}',  # duplicate keys
        '{"NODEID":"a","nodeId":"b"}',  # case-folded key
        '{"nodeid":"x"}',
        '{"nodeId":"a", "uptime":1}',  # whitespace
        '{"nodeId":"\\u0041"}',  # an escape orjson would not write
        '{"nodeId":"\\ud800"}',  # lone surrogate
        '{"nodeId":null,"nodeName":null,"uptime":null,"miners":null}',
        '{"miners":[null,{"hashrate":0,"cpuThreads":null}]}',
        '{"miners":[{"hashrate":1e400}]}',
        '{"miners":[{"hashrate":"1"}]}',
        '{"miners":[{"name":"a","name":"b"}]}',
        '{"miners":[{"NAME":"a"}]}',
        '{"miners":[{"extra":1}]}',
        '{"miners":[1]}',
        '{"miners":{}}',
        '{"uptime":9223372036854775807}',
        '{"uptime":9223372036854775808}',
        '{"uptime":-9223372036854775809}',
        '{"uptime":18446744073709551616}',
        '{"uptime":1.0}',
        '{"uptime":true}',
        '{"nodeId":1}',
        '{"unknown":{"a":[1,2]}}',
        "[]",
        "null",
        "1",
        '"x"',
        "{",
        "",
        b"\xff",
        b'{"nodeId":"\xc3"}',
    ],
)
def test_odd_input_decodes_as_before(text: str | bytes) -> None:
    same(text)
    same(text.encode() if isinstance(text, str) else text)


def test_no_payload() -> None:
    same(None)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(1 << 70), max_value=1 << 70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
_miner_keys = st.sampled_from([f.key for f in MinerStatsItem._FIELDS] + ["Name", "HASHRATE", "x"])
_miner = st.one_of(st.none(), st.dictionaries(_miner_keys, _scalars, max_size=10), _scalars)
_stats_keys = st.sampled_from(["nodeId", "nodeName", "uptime", "miners", "NodeId", "Uptime", "y"])
_value = st.one_of(_scalars, st.lists(_miner, max_size=3))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_stats_keys, _value), max_size=6), st.booleans())
def test_random_objects_decode_as_before(members: list[tuple[str, Any]], compact: bool) -> None:
    # written member by member, so duplicate keys reach the decoders as duplicates
    sep = "," if compact else ", "
    text = "{" + sep.join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in members) + "}"
    same(text)
    # and the canonical form of the same object (what a worker sends), when orjson has one
    try:
        canonical = orjson.dumps(dict(members))
    except (TypeError, ValueError):
        return
    same(canonical)
