"""The controller's application payloads against the Go reference's golden vectors and
Go's decoding rules (moved here from p2p.transport with the payload classes)."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p2p.controller import payloads
from p2p.controller.payloads import PAYLOAD_TYPES
from p2p.transport import Message, MessageError, MessageType, parse_response


def test_every_typed_payload_roundtrips(golden: dict[str, Any]) -> None:
    for c in golden["messages"]["messages"]:
        m = Message.from_json(c["json"])
        p = m.decode_payload(PAYLOAD_TYPES)
        if c["type"] == "get_stats":
            assert p is None
            continue
        assert isinstance(p, PAYLOAD_TYPES[MessageType(c["type"])])  # type: ignore[arg-type]
        assert p.to_json().decode() == c["payload_json"], c["type"]
        rebuilt = Message(
            id=m.id, type=m.type, from_=m.from_, to=m.to, ts=m.ts, payload=p.to_json().decode()
        )
        assert rebuilt.to_json() == c["json"].encode()


def test_typed_payload_fields(golden: dict[str, Any]) -> None:
    by_type = {c["type"]: Message.from_json(c["json"]) for c in golden["messages"]["messages"]}
    stats = by_type["stats"].parse_payload(payloads.StatsPayload)
    assert stats.miners is not None and stats.miners[0].hashrate == 1234.5
    assert stats.miners[1].cpu_threads == 8 and stats.uptime == 3600
    start = by_type["start_miner"].parse_payload(payloads.StartMinerPayload)
    assert start.config_value() == {"pool": "pool.example:3333", "threads": 2}
    deploy = by_type["deploy"].parse_payload(payloads.DeployPayload)
    assert deploy.data == b'{"pool":"x"}' and deploy.type == "profile"
    logs = by_type["logs"].parse_payload(payloads.LogsPayload)
    assert logs.lines == ["line 1", 'line <2> & "3"'] and logs.has_more is False
    assert by_type["get_logs"].parse_payload(payloads.GetLogsPayload).since == 1735787000000


def test_zero_value_structs(golden: dict[str, Any]) -> None:
    zero = golden["messages"]["zero_value_structs"]
    checked = 0
    for name in payloads.__all__:
        if name in zero:
            cls = getattr(payloads, name)
            want = zero[name]
            assert cls().to_json().decode() == want, name
            assert cls.from_json(want) == cls(), name
            assert cls.from_json(None) == cls() and cls.from_json("null") == cls()
            checked += 1
    assert checked == 9


def test_parse_response_into_an_application_payload() -> None:
    stats = Message.new(MessageType.STATS, "a", "b", payloads.StatsPayload(miners=[]))
    parsed = parse_response(stats, MessageType.STATS, payloads.StatsPayload)
    assert parsed == payloads.StatsPayload(miners=[])
    bad = Message(id="s", type="stats", payload='{"uptime":"long"}')
    with pytest.raises(MessageError, match="failed to parse stats payload"):
        parse_response(bad, "stats", payloads.StatsPayload)


def test_payload_go_rules() -> None:
    deploy_t = payloads.DeployPayload
    assert deploy_t.from_json('{"data":"YQ=="}').data == b"a"
    assert deploy_t.from_json('{"data":"YQ==\\n"}').data == b"a"  # Go's base64 skips CR/LF
    assert deploy_t.from_json('{"data":""}').data == b""
    assert deploy_t.from_json('{"data":"YQ==","data":null}').data is None
    assert deploy_t(data=b"").to_json() == b'{"type":"","data":"","checksum":"","name":""}'
    for bad in ('{"data":"YQ"}', '{"data":"Y-=="}', '{"data":"YQ=!"}', '{"data":1}'):
        with pytest.raises(MessageError, match="data"):
            deploy_t.from_json(bad)
    logs_t = payloads.LogsPayload
    assert logs_t.from_json('{"lines":["a",null]}').lines == ["a", ""]
    assert logs_t.from_json('{"lines":null}').lines is None
    with pytest.raises(MessageError):
        logs_t.from_json('{"lines":[1]}')
    stats_t = payloads.StatsPayload
    s = stats_t.from_json('{"miners":[null,{"NAME":"m","hashrate":7}],"uptime":1}')
    assert s.miners == [payloads.MinerStatsItem(), payloads.MinerStatsItem(name="m", hashrate=7.0)]
    for bad in (
        '{"miners":{}}',
        '{"miners":[1]}',
        '{"miners":[{"hashrate":"x"}]}',
        '{"miners":[{"hashrate":1e400}]}',
    ):
        with pytest.raises(MessageError):
            stats_t.from_json(bad)
    st_ = payloads.StartMinerPayload.from_json('{"minerType":"x","config": { "a" : 1 } }')
    assert st_.config == '{"a":1}' and st_.to_json() == b'{"minerType":"x","config":{"a":1}}'
    assert payloads.StartMinerPayload.from_json('{"config":null}').to_json() == (
        b'{"minerType":"","config":null}'
    )


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=120), st.text(max_size=120)))
def test_random_input_raises_only_message_error(data: bytes | str) -> None:
    for cls in (payloads.StatsPayload, payloads.DeployPayload, payloads.LogsPayload):
        with contextlib.suppress(MessageError):
            cls.from_json(data)
