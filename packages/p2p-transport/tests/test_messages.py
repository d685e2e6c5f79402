"""go-p2p messages: byte-identical round trips, Go's decode verdicts, typed payloads."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p2p.identity import GoTime, NodeIdentity, NodeRole
from p2p.identity.gojson import go_float
from p2p.transport import messages as msgs
from p2p.transport.errors import TransportError
from p2p.transport.messages import (
    DisconnectCode,
    ErrorCode,
    ErrorPayload,
    HandshakeAckPayload,
    Message,
    MessageError,
    MessageType,
    ProtocolError,
    ResponseError,
)

UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
NANO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z")


# --- golden vectors -------------------------------------------------------------------------


def test_every_message_type_roundtrips(golden: dict[str, Any]) -> None:
    cases = golden["messages"]["messages"]
    assert {c["type"] for c in cases} == {t.value for t in MessageType}
    for c in cases:
        m = Message.from_json(c["json"])
        assert m.type is MessageType(c["type"])
        assert m.to_json() == c["json"].encode()
        assert Message.from_json(c["json"].encode()).to_json_text() == c["json"]
        assert (m.payload or "null") == c["payload_json"]


def test_transport_payloads_roundtrip(golden: dict[str, Any]) -> None:
    """The transport's own payloads; the application ones are tested in p2p-controller."""
    for c in golden["messages"]["messages"]:
        m = Message.from_json(c["json"])
        p = m.decode_payload()
        want = msgs.TRANSPORT_PAYLOAD_TYPES.get(MessageType(c["type"]))
        if want is None:
            assert p is None  # the envelope itself names no application payload class
            continue
        assert isinstance(p, want)
        assert p.to_json().decode() == c["payload_json"], c["type"]
        rebuilt = Message(
            id=m.id, type=m.type, from_=m.from_, to=m.to, ts=m.ts, payload=p.to_json().decode()
        )
        assert rebuilt.to_json() == c["json"].encode()


def test_typed_payload_fields(golden: dict[str, Any]) -> None:
    by_type = {c["type"]: Message.from_json(c["json"]) for c in golden["messages"]["messages"]}
    hs = by_type["handshake"].parse_payload(msgs.HandshakePayload)
    assert hs.version == "1.0" and hs.challenge == bytes([0xAB]) * 32
    assert hs.identity.role == NodeRole.DUAL and hs.identity.name == "node-0"
    ack = by_type["handshake_ack"].parse_payload(HandshakeAckPayload)
    assert ack.accepted and len(ack.challenge_response) == 32 and ack.reason == ""
    err = by_type["error"].parse_payload(ErrorPayload)
    assert (err.code, err.message, err.details) == (1004, "miner not found", "xmrig-9")


def test_timestamp_formats(golden: dict[str, Any]) -> None:
    cases = golden["messages"]["timestamp_formats"]
    assert len(cases) == 7
    for c in cases:
        m = Message.from_json(c["json"])
        assert m.to_json() == c["json"].encode(), c["name"]
        ts = json.loads(c["json"])["ts"]
        assert m.ts.format() == ts  # the parsed value itself formats back, too
        m2 = Message(id="x", type="ping", from_="a", to="b", ts=m.ts)
        assert m2.to_json() == c["json"].encode()
    nanos = Message.from_json(cases[0]["json"]).ts
    assert nanos.nanosecond == 123456789 and nanos.offset_seconds == 0
    minus = Message.from_json(next(c for c in cases if c["name"] == "minus_0530")["json"]).ts
    assert minus.offset_seconds == -(5 * 3600 + 30 * 60) and minus.nanosecond == 1
    assert Message.from_json(cases[-1]["json"]).ts.is_zero()


def test_decode_cases_same_verdicts_as_go(golden: dict[str, Any]) -> None:
    cases = golden["messages"]["decode_cases"]
    assert len(cases) == 17
    for c in cases:
        if not c["ok"]:
            with pytest.raises(MessageError):
                Message.from_json(c["input"])
            continue
        m = Message.from_json(c["input"])
        want = c["parsed"]
        assert (m.id, str(m.type), m.from_, m.to, m.reply_to) == (
            want["id"],
            want["type"],
            want["from"],
            want["to"],
            want["replyTo"],
        ), c["name"]
        assert m.ts.format() == want["ts"] and m.ts.is_zero() == want["ts_is_zero"]
        if want["payload_is_nil"]:
            assert m.payload is None
        else:
            assert m.payload == want["payload_raw"]


def test_zero_value_structs(golden: dict[str, Any]) -> None:
    zero = golden["messages"]["zero_value_structs"]
    checked = 0
    for name, want in zero.items():
        if name == "Message":
            assert Message().to_json().decode() == want
        elif name in msgs.__all__:
            cls = getattr(msgs, name)
            assert cls().to_json().decode() == want, name
            assert cls.from_json(want) == cls(), name
            assert cls.from_json(None) == cls() and cls.from_json("null") == cls()
        else:  # owned by p2p.identity / p2p.peers / p2p.controller (application payloads)
            assert name in ("NodeIdentity", "Peer") or name.endswith(("Payload", "Item")), name
            continue
        checked += 1
    assert checked == 7


def test_reply_example(golden: dict[str, Any]) -> None:
    ex = golden["messages"]["reply_example"]
    req = Message.from_json(ex["request"])
    want = Message.from_json(ex["reply"])
    rep = req.reply(
        MessageType.PONG, msgs.PongPayload(sent_at=1735787045123, received_at=1735787045125)
    )
    assert (rep.from_, rep.to, rep.reply_to) == (req.to, req.from_, req.id)
    assert UUID4.fullmatch(rep.id) and rep.id != req.id
    rep.id, rep.ts = want.id, want.ts
    assert rep.to_json() == ex["reply"].encode()


def test_error_message_and_validate_response(golden: dict[str, Any]) -> None:
    mv = golden["messages"]
    errmsg = Message.from_json(mv["error_message"])
    assert errmsg.to_json() == mv["error_message"].encode()
    want = {c["case"]: c["error"] for c in mv["validate_response"]}
    with pytest.raises(ResponseError) as e1:
        msgs.validate_response(None, MessageType.PONG)
    assert str(e1.value) == want["nil_response"]
    with pytest.raises(ProtocolError) as e2:
        msgs.validate_response(errmsg, MessageType.LOGS)
    assert str(e2.value) == want["error_message"]
    assert e2.value.code == ErrorCode.OPERATION_FAILED
    assert isinstance(e2.value, ProtocolError) and e2.value.code == 1004
    unparseable = Message(id="e", type="error", payload='"not an object"')
    with pytest.raises(ProtocolError) as e3:
        msgs.validate_response(unparseable, "pong")
    assert str(e3.value) == want["unparseable_error_payload"]
    stats = Message.new(MessageType.STATS, "a", "b", {"miners": []})
    with pytest.raises(ResponseError) as e4:
        msgs.validate_response(stats, MessageType.PONG)
    assert str(e4.value) == want["wrong_type_expected_pong_got_stats"]
    assert msgs.validate_response(stats, "stats") is None
    pong = Message.new(MessageType.PONG, "a", "b", msgs.PongPayload(1, 2))
    assert msgs.parse_response(pong, MessageType.PONG, msgs.PongPayload) == msgs.PongPayload(1, 2)
    assert msgs.parse_response(stats, MessageType.STATS) is None
    bad = Message(id="s", type="pong", payload='{"sentAt":"long"}')
    with pytest.raises(MessageError, match="failed to parse pong payload"):
        msgs.parse_response(bad, "pong", msgs.PongPayload)
    assert str(ProtocolError(1004, "boom")) == mv["protocol_error_format"]


def test_handshake_reject_payload(golden: dict[str, Any]) -> None:
    mv = golden["messages"]
    ident = NodeIdentity(
        id="c3dc8ec3a5df5ca5fe8f405d77a4dbff",
        name="node-1",
        public_key="1zrcLFd1loHn67vg4Tcm98o1YAsH6+u6GyVHNkcYY3U=",
        created_at=GoTime.parse("2025-01-02T03:04:05Z"),
        role=NodeRole.DUAL,
    )
    reason = mv["handshake_reject_reasons"][0].replace("<v>", "2.0")
    ack = HandshakeAckPayload(identity=ident, accepted=False, reason=reason)
    assert ack.to_json().decode() == mv["handshake_reject_version_payload"]
    assert HandshakeAckPayload.from_json(mv["handshake_reject_version_payload"]) == ack
    assert mv["handshake_reject_reasons"][1] == "peer not authorized"


def test_live_messages_and_new(golden: dict[str, Any]) -> None:
    for text in golden["messages"]["live_new_message"]:
        m = Message.from_json(text)
        assert m.to_json() == text.encode() and UUID4.fullmatch(m.id)
    m = Message.new(MessageType.GET_STATS, "me")
    assert UUID4.fullmatch(m.id) and m.to == "" and m.payload is None
    assert NANO_UTC.fullmatch(m.ts.format())
    assert b'"payload":null' in m.to_json()
    again = Message.from_json(m.to_json())
    assert again == m and again.to_json() == m.to_json()
    assert len({Message.new("ping", "a").id for _ in range(100)}) == 100


def test_constants(golden: dict[str, Any]) -> None:
    c = golden["messages"]["constants"]
    assert msgs.PROTOCOL_VERSION == c["ProtocolVersion"] == msgs.MIN_PROTOCOL_VERSION
    assert list(msgs.SUPPORTED_PROTOCOL_VERSIONS) == c["SupportedProtocolVersions"]
    assert "2.0" not in msgs.SUPPORTED_PROTOCOL_VERSIONS
    assert c["ChallengeSize"] == msgs.CHALLENGE_SIZE
    assert c["ErrCodeUnknown"] == ErrorCode.UNKNOWN
    assert c["ErrCodeInvalidMessage"] == ErrorCode.INVALID_MESSAGE
    assert c["ErrCodeUnauthorized"] == ErrorCode.UNAUTHORIZED
    assert c["ErrCodeNotFound"] == ErrorCode.NOT_FOUND
    assert c["ErrCodeOperationFailed"] == ErrorCode.OPERATION_FAILED
    assert c["ErrCodeTimeout"] == ErrorCode.TIMEOUT
    assert c["DisconnectNormal"] == DisconnectCode.NORMAL
    assert c["DisconnectGoingAway"] == DisconnectCode.GOING_AWAY
    assert c["DisconnectProtocolErr"] == DisconnectCode.PROTOCOL_ERROR
    assert c["DisconnectTimeout"] == DisconnectCode.TIMEOUT
    assert c["DisconnectShutdown"] == DisconnectCode.SHUTDOWN
    assert len(MessageType) == 15 and str(MessageType.GET_LOGS) == "get_logs"


# --- Go's decoder, beyond the vectors -------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "canonical"),
    [
        ("2025-01-02T03:04:05+00:00", "2025-01-02T03:04:05Z"),
        ("2025-01-02T03:04:05-00:00", "2025-01-02T03:04:05Z"),
        ("2025-01-02T03:04:05.120Z", "2025-01-02T03:04:05.12Z"),
        ("2025-01-02T03:04:05.000Z", "2025-01-02T03:04:05Z"),
        ("2025-01-02T03:04:05.1234567891Z", "2025-01-02T03:04:05.123456789Z"),
        ("2025-01-02T3:04:05Z", "2025-01-02T03:04:05Z"),  # time.Parse fallback: 1-digit hour
        ("2025-01-02T03:04:05,5Z", "2025-01-02T03:04:05.5Z"),  # and ',' before the fraction
        ("2024-02-29T23:59:59+23:59", "2024-02-29T23:59:59+23:59"),
        ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00Z"),
    ],
)
def test_ts_accepted_and_canonicalised(ts: str, canonical: str) -> None:
    m = Message.from_json(f'{{"id":"a","ts":"{ts}"}}')
    assert json.loads(m.to_json())["ts"] == canonical


@pytest.mark.parametrize(
    "ts",
    [
        "2025-02-29T00:00:00Z",
        "2025-13-01T00:00:00Z",
        "2025-00-01T00:00:00Z",
        "2025-01-32T00:00:00Z",
        "2025-01-02T24:00:00Z",
        "2025-01-02T03:60:00Z",
        "2025-01-02T03:04:60Z",
        "2025-01-02T03:04:05.Z",
        "2025-01-02T03:04:05+0100",
        "2025-01-02T03:04:05+01",
        "2025-1-02T03:04:05Z",
        "25-01-02T03:04:05Z",
        "2025-01-02T03:04:05Zjunk",
        "2025-01-02T03:04:05+25:00",
        "2025-01-02T03:04:05+24:00",
        "",
        "\\u0032025-01-02T03:04:05Z",
        "2025-01-02T03:04:05\uff3a",
        "\uff12025-01-02T03:04:05Z",
    ],
)
def test_ts_rejected(ts: str) -> None:
    with pytest.raises(MessageError, match="ts"):
        Message.from_json(f'{{"id":"a","ts":"{ts}"}}')


@pytest.mark.parametrize(
    "text",
    [
        '{"id":1}',
        '{"type":true}',
        '{"from":[]}',
        '{"to":{}}',
        '{"replyTo":2}',
        '{"ts":{}}',
        '{"ts":[]}',
        '{"ts":true}',
        "",
        " ",
        "1",
        '"x"',
        "[]",
        "{",
        '{"id":"a",}',
        '{"id":NaN}',
        '{"payload":Infinity}',
        '{"id":"a"}{}',
        '{"id":"\x01"}',
        "\ufeff{}",
    ],
)
def test_envelope_rejects(text: str) -> None:
    with pytest.raises(MessageError):
        Message.from_json(text)


def test_envelope_go_rules() -> None:
    assert Message.from_json("null") == Message()
    assert Message.from_json(
        ' \n{ "id" : "a" , "payload" : { "b" : [ 1 , "x y" ] } }\t'
    ).payload == ('{"b":[1,"x y"]}')
    m = Message.from_json('{"Id":"a","iD":"b","TYPE":"pong","\u017fomething":1,"replyto":"r"}')
    assert (m.id, m.type, m.reply_to) == ("b", MessageType.PONG, "r")
    assert Message.from_json('{"id":"a","id":null}').id == "a"  # null leaves the value
    assert Message.from_json('{"type":"custom"}').type == "custom"  # unknown types parse
    assert Message.from_json('{"payload":null}').payload == "null"
    assert Message.from_json(b'{"id":"\xff"}').id == "\ufffd"
    assert Message.from_json('{"id":"\\u003c\\u2028"}').to_json() == (
        b'{"id":"<\\u2028","type":"","from":"","to":"","ts":"0001-01-01T00:00:00Z","payload":null}'
    )
    assert Message.from_json('{"id":"\\ud800"}').to_json().startswith('{"id":"\ufffd"'.encode())
    with pytest.raises(MessageError, match="exceeds"):
        Message.from_json('{"id":"' + "a" * 100 + '"}', max_size=50)


def test_envelope_html_off_and_payload_values() -> None:
    m = Message.new("logs", "<&>", "b", {"lines": ["<b>&</b>"], "n": 1.5, "ok": True})
    assert m.to_json().startswith(b'{"id":"')
    assert b'"from":"<&>"' in m.to_json()
    assert m.payload == '{"lines":["<b>&</b>"],"n":1.5,"ok":true}'
    assert m.payload_value() == {"lines": ["<b>&</b>"], "n": 1.5, "ok": True}
    with pytest.raises(MessageError):
        Message.new("ping", "a", "b", {"x": float("nan")})
    with pytest.raises(MessageError):
        Message.new("ping", "a", "b", {"x": object()})


def test_error_reply() -> None:
    req = Message.new(MessageType.GET_LOGS, "ctrl", "worker", {"minerName": "x"})
    rep = req.error_reply("worker-id", ErrorCode.OPERATION_FAILED, "boom", "d")
    assert (rep.type, rep.from_, rep.to, rep.reply_to) == ("error", "worker-id", "ctrl", req.id)
    assert rep.payload == '{"code":1004,"message":"boom","details":"d"}'


def test_payload_go_rules() -> None:
    ping_t = msgs.PingPayload
    assert ping_t.from_json('{"SENTAT":5,"sentat":6}') == ping_t(6)
    assert ping_t.from_json('{"sentAt":null}') == ping_t(0)
    assert ping_t.from_json(b'{"sentAt":-9223372036854775808}') == ping_t(-(1 << 63))
    for bad in (
        '{"sentAt":1.0}',
        '{"sentAt":1e3}',
        '{"sentAt":"1"}',
        '{"sentAt":true}',
        '{"sentAt":9223372036854775808}',
        "[1]",
        "1",
        '{"sentAt":1',
        "x",
    ):
        with pytest.raises(MessageError):
            ping_t.from_json(bad)
    hs_t = msgs.HandshakePayload
    with pytest.raises(MessageError, match="identity"):
        hs_t.from_json('{"identity":"x"}')
    with pytest.raises(MessageError, match="identity"):
        hs_t.from_json('{"identity":{"createdAt":"yesterday"}}')
    assert hs_t.from_json('{"identity":null,"version":"1.0"}') == hs_t(version="1.0")


@pytest.mark.parametrize(
    ("value", "go"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (1234.5, "1234.5"),
        (0.1, "0.1"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e22, "1.5e+22"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (1.234e-10, "1.234e-10"),
        (123456789.125, "123456789.125"),
        (2.0**53, "9007199254740992"),
        (1e16, "10000000000000000"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_go_float_format(value: float, go: str) -> None:
    assert go_float(value) == go


def test_go_float_rejects_nan_inf() -> None:
    for v in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError):
            go_float(v)


def test_ts_setter_and_bad_marshal() -> None:
    m = Message.from_json('{"id":"a","ts":"2025-01-02T03:04:05.5+01:00"}')
    assert m.ts.offset_seconds == 3600
    m.ts = GoTime.parse("2026-01-01T00:00:00Z")
    assert b'"ts":"2026-01-01T00:00:00Z"' in m.to_json()
    far = Message(id="a", ts=GoTime(10**12, 0, 0))  # year > 9999: Go refuses to marshal
    with pytest.raises(MessageError, match="ts"):
        far.to_json()


def test_errors_typed() -> None:
    assert issubclass(MessageError, TransportError) and issubclass(ResponseError, MessageError)
    assert issubclass(ProtocolError, TransportError)


# --- properties -------------------------------------------------------------------------------

_str = st.text(max_size=40)
_payloads = st.one_of(
    st.none(),
    st.builds(lambda n: msgs.PingPayload(n).to_json().decode(), st.integers(0, 2**62)),
    st.builds(lambda s, c: msgs.ErrorPayload(c, s).to_json().decode(), _str, st.integers(0, 5000)),
)


@settings(max_examples=150, deadline=None)
@given(
    _str,
    st.sampled_from([*MessageType, "custom"]),
    _str,
    _str,
    st.integers(-62135596800, 253402300799),
    st.integers(0, 999_999_999),
    st.integers(-23 * 60, 23 * 60).map(lambda m: m * 60),
    _payloads,
    _str,
)
def test_any_message_roundtrips(
    id_: str,
    typ: MessageType | str,
    frm: str,
    to: str,
    sec: int,
    ns: int,
    off: int,
    payload: str | None,
    reply_to: str,
) -> None:
    ts = GoTime(sec, ns, off)
    try:
        ts.format()
    except ValueError:
        return  # year outside 0..9999 in that offset
    m = Message(id=id_, type=typ, from_=frm, to=to, ts=ts, payload=payload, reply_to=reply_to)
    out = m.to_json()
    back = Message.from_json(out)
    assert back.to_json() == out
    assert json.loads(out)["id"] == json.loads(json.dumps(id_).encode("utf-8", "replace"))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=120), st.text(max_size=120)))
def test_random_input_raises_only_message_error(data: bytes | str) -> None:
    with contextlib.suppress(MessageError):
        Message.from_json(data)
    for cls in (msgs.PingPayload, msgs.ErrorPayload, msgs.HandshakePayload, msgs.DisconnectPayload):
        with contextlib.suppress(MessageError):
            cls.from_json(data)


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
        max_leaves=10,
    )
)
def test_random_json_values_in_fields(value: Any) -> None:
    m = Message.from_json(json.dumps({"id": "a", "payload": value}))  # any payload is fine
    assert m.payload is not None and json.loads(m.payload) == value
    assert m.payload == json.dumps(value, separators=(",", ":"))  # compacted like Go
    for key in ("ts", "type", "id", "replyTo"):
        try:
            got = Message.from_json(json.dumps({key: value}))
        except MessageError:
            assert value is not None and (key == "ts" or not isinstance(value, str))
        else:
            assert value is None or isinstance(value, str)
            if isinstance(value, str) and key == "id":
                assert got.id == value


@pytest.mark.parametrize(
    "text",
    [
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":1,"id":5}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":1,'
        '"replyTo":"r","ts":"bad"}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"junk","ts":"2025-01-02T03:04:05Z",'
        '"payload":1}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":NaN}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":1}}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-02-30T03:04:05Z","payload":1}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":1,'
        '"replyTo":"r"} ',
    ],
)
def test_go_ordered_but_invalid_inputs_rejected(text: str) -> None:
    if text.endswith(" "):  # trailing whitespace is fine in Go
        assert Message.from_json(text).reply_to == "r"
        return
    with pytest.raises(MessageError):
        Message.from_json(text)


def test_duplicate_keys_after_payload_take_the_last_value() -> None:
    text = (
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z",'
        '"payload":1,"payload":{"x": 2},"replyTo":"r","replyTo":"s"}'
    )
    m = Message.from_json(text)
    assert (m.payload, m.reply_to) == ('{"x":2}', "s")


@settings(max_examples=150, deadline=None)
@given(_str, _str, _str, _str, _payloads, _str, st.integers(0, 2))
def test_fast_and_general_decoders_agree(
    id_: str, typ: str, frm: str, to: str, payload: str | None, reply_to: str, ws: int
) -> None:
    m = Message(
        id=id_,
        type=typ,
        from_=frm,
        to=to,
        ts=GoTime(1735787045, 5, 3600),
        payload=payload,
        reply_to=reply_to,
    )
    text = m.to_json_text()
    general = text.replace('{"id"', "{" + " \n\t"[ws] + '"id"', 1)  # not Go's exact form
    a, b = Message.from_json(text), Message.from_json(general)
    assert a == b and a.to_json() == b.to_json() == m.to_json()


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet=st.characters(max_codepoint=0x80), max_size=40) | st.text(max_size=40),
    st.booleans(),
)
def test_go_string_matches_go_rules(s: str, html: bool) -> None:
    from p2p.identity.gojson import go_string

    want = json.dumps(s, ensure_ascii=False)
    want = want.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    if html:
        want = want.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    assert go_string(s, html=html) == want


def test_new_id_is_uuid4_and_ts_is_now() -> None:
    import time

    ids = {msgs.new_id() for _ in range(500)}
    assert len(ids) == 500 and all(UUID4.fullmatch(i) for i in ids)
    before = time.time_ns()
    m = Message.new("ping", "a")
    after = time.time_ns()
    assert before // 1000 <= m.ts.timestamp_ns() // 1000 <= after // 1000 + 1
    assert m.ts.offset_seconds == 0 and m.ts.format() == json.loads(m.to_json())["ts"]


def test_lazy_ts_matches_full_parse(golden: dict[str, Any]) -> None:
    from p2p.identity.gotime import parse_go_time

    for c in golden["messages"]["timestamp_formats"]:
        raw = json.loads(c["json"])["ts"]
        parsed = parse_go_time(raw)
        assert parsed is not None
        ts = Message.from_json(c["json"]).ts
        assert (ts.unix_seconds, ts.nanosecond, ts.offset_seconds) == parsed[:3]
