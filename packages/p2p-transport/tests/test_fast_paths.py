"""Fast paths of the message path give exactly the slow paths' answers.

Each fast path (orjson where installed, the one-regex envelope head, the ts window without
a GoTime) has a slower twin that the golden vectors pin to Go. Here the twins are held
equal: on every vector message, and by hypothesis on inputs built to hit the guards
(``< > &``, U+2028/U+2029, lone surrogates, escapes, odd numbers, whitespace, duplicates).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p2p.identity import GoTime, gojson
from p2p.identity.gotime import canonical_unix_ns
from p2p.transport import envelope, sigil, smsg
from p2p.transport import messages as msgs
from p2p.transport.errors import MessageError, SmsgFormatError
from p2p.transport.messages import Message, MessageType
from pytest_p2p.vectors import message_texts

# Text that reaches every guard: HTML characters, line separators, surrogates, controls,
# quotes, backslashes, DEL and non-ASCII.
_nasty = st.text(
    alphabet=st.one_of(
        st.sampled_from('<>&"\\/\u2028\u2029\ud800\udfff\x00\x1f\x7f\n\té€😀 aZ09{}[]:,'),
        st.characters(),
    ),
    max_size=60,
)


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except (MessageError, SmsgFormatError) as e:
        return "error", type(e).__name__


@pytest.fixture(params=sorted(msgs._ONE_VALUE))
def one_value(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test with each payload-span validator (stdlib scanner, orjson)."""
    saved = msgs._one_value
    msgs._one_value = msgs._ONE_VALUE[request.param]
    try:
        yield request.param
    finally:
        msgs._one_value = saved


def _decoders_agree(text: str) -> None:
    """Each fast decoder either passes (``None``) or gives the general decoder's verdict."""
    general = _outcome(lambda: _general(text))
    for fast in (msgs._from_go_json, msgs._from_go_json_scan):
        got = _outcome(lambda f=fast: f(text))  # type: ignore[misc]
        if got == ("ok", None):
            continue
        assert got == general, text
        if got[0] == "ok":
            assert got[1].to_json_text() == general[1].to_json_text()
            assert got[1].ts_unix_ns() == general[1].ts_unix_ns()


def _general(text: str) -> Message:
    """The general decoder alone (no fast path)."""
    saved = msgs._from_go_json
    msgs._from_go_json = lambda _t: None  # type: ignore[assignment]
    try:
        return Message.from_json(text)
    finally:
        msgs._from_go_json = saved


# --- every vector message ---------------------------------------------------------------


def test_every_vector_message_decodes_the_same_on_every_path(
    golden: dict[str, Any], one_value: str
) -> None:
    for text in message_texts(golden):
        _decoders_agree(text)
    for c in golden["messages"]["messages"]:  # Go's own bytes take the one-regex path
        assert msgs._GO_HEAD.match(c["json"]) is not None, c["type"]
        assert msgs._from_go_json(c["json"]) is not None, c["type"]


def test_every_vector_message_reencodes_byte_identically(golden: dict[str, Any]) -> None:
    for c in golden["messages"]["messages"]:
        assert Message.from_json(c["json"]).to_json() == c["json"].encode()


def test_smsg_vectors_parse_the_same_on_both_plaintext_paths(golden: dict[str, Any]) -> None:
    cases = golden["smsg"]["fixed_nonce"]
    assert cases
    for c in cases:
        plain = c["plaintext_json"].encode()
        assert _outcome(lambda p=plain: smsg._parse_plaintext(p)) == _outcome(
            lambda p=plain: smsg._parse_plaintext_slow(p)
        )


# --- envelope: hypothesis against the slow paths ----------------------------------------


@settings(max_examples=250, deadline=None)
@given(
    _nasty,
    st.sampled_from([*MessageType, "custom", 'q"t']),
    _nasty,
    _nasty,
    st.integers(-62135596800, 253402300799),
    st.integers(0, 999_999_999),
    st.sampled_from([0, 3600, -19800]),
    st.one_of(
        st.none(),
        _nasty.map(json.dumps),
        st.sampled_from(["1", "-0", "1.50", "1e400", "[1, 2]", '{"a": {"b": []}}', '"\\ud800"']),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _nasty,
            lambda c: st.lists(c, max_size=3) | st.dictionaries(_nasty, c, max_size=3),
            max_leaves=8,
        ).map(lambda v: json.dumps(v, ensure_ascii=False)),
    ),
    st.one_of(st.just(""), _nasty),
)
def test_envelope_fast_decode_matches_the_general_decoder(
    id_: str,
    typ: str,
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
        return
    if payload is not None:
        payload = msgs._compact(payload)
    m = Message(id=id_, type=typ, from_=frm, to=to, ts=ts, payload=payload, reply_to=reply_to)
    text = m.to_json_text()
    for impl in msgs._ONE_VALUE.values():
        saved = msgs._one_value
        msgs._one_value = impl
        try:
            _decoders_agree(text)
            _decoders_agree(text[:-1] + " }")  # not Go's exact form
            _decoders_agree(text.replace(',"payload":', ',"payload": ', 1))
        finally:
            msgs._one_value = saved


@settings(max_examples=300, deadline=None)
@given(
    _nasty,
    st.sampled_from([*MessageType, "custom", "<&>", "\u2028"]),
    _nasty,
    _nasty,
    st.one_of(st.none(), _nasty.map(json.dumps), st.sampled_from(['{"a":"\u2029"}', "[1,2]"])),
    st.one_of(st.just(""), _nasty),
    st.booleans(),
)
def test_envelope_fast_encode_matches_the_stdlib_encoder(
    id_: str, typ: str, frm: str, to: str, payload: str | None, reply_to: str, now: bool
) -> None:
    if now:  # ts as Go text (what new and decoded messages hold)
        m = Message.new(typ, frm, to, reply_to=reply_to)
        m.id, m.payload = id_, payload
    else:  # ts only as a GoTime: the fast path must step aside
        m = Message(id=id_, type=typ, from_=frm, to=to, ts=GoTime(1, 2, 3600), payload=payload)
        m.reply_to = reply_to
    want = m._to_json_text()
    fast = msgs._to_json_fast(m)
    if fast is not None:
        assert fast == gojson.to_utf8(want)
    assert m.to_json() == gojson.to_utf8(want)
    assert m.to_json_text() == want


def test_every_vector_message_encodes_the_same_on_both_paths(golden: dict[str, Any]) -> None:
    for c in golden["messages"]["messages"]:
        m = Message.from_json(c["json"])
        fast = msgs._to_json_fast(m)
        assert fast is not None and fast == c["json"].encode() == m._to_json_text().encode()


@pytest.mark.parametrize(
    "text",
    [
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":1,"payload":2}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":"x","replyTo":"r","replyTo":"s"}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":"\\",\\"replyTo\\":\\"z"}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":{"replyTo":"z"},"replyTo":"r"}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":"\\ud800","replyTo":"r"}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-02-29T03:04:05Z","payload":1}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2024-02-29T03:04:05Z","payload":1}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":,"replyTo":"r"}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":1,"replyTo":"r\\"}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":[1,],"replyTo":"r"}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":NaN}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":1}x',
    ],
)
def test_envelope_edge_cases_agree(text: str, one_value: str) -> None:
    _decoders_agree(text)


# --- payload encoding ------------------------------------------------------------------------


@dataclass(slots=True)
class _AllKinds(msgs.Payload):
    """One field of each codec kind, some omitempty, to hold the payload fast path to its
    twin (values of the wrong class included: both paths must write the same text)."""

    s: Any = ""
    i: Any = 0
    b: Any = False
    f: Any = 0.0
    raw: Any = None
    strs: Any = None
    blob: Any = None
    opt: Any = ""
    _FIELDS = (
        msgs.Field("s", "s", "str"),
        msgs.Field("i", "i", "int"),
        msgs.Field("b", "b", "bool"),
        msgs.Field("f", "f", "float"),
        msgs.Field("raw", "raw", "raw", True),
        msgs.Field("strs", "strs", "strlist"),
        msgs.Field("blob", "blob", "bytes"),
        msgs.Field("opt", "opt", "str", True),
    )


class _Text(str):
    """A str subclass: goes through its codec, not straight to orjson."""


_ints = st.one_of(
    st.integers(-(2**70), 2**70), st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63) - 1])
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(_nasty, _nasty.map(_Text)),
    st.one_of(_ints, st.booleans()),
    st.one_of(st.booleans(), st.integers(0, 1)),
    st.floats(allow_nan=False, allow_infinity=False),
    st.one_of(st.none(), st.just(""), _nasty.map(json.dumps), st.just('{"a": [1, 2]}')),
    st.one_of(st.none(), st.lists(_nasty, max_size=3)),
    st.one_of(st.none(), st.binary(max_size=8)),
    st.one_of(st.just(""), _nasty),
)
def test_payload_fast_encode_matches_the_slow_encoder(
    s: Any, i: Any, b: Any, f: float, raw: Any, strs: Any, blob: Any, opt: Any
) -> None:
    p = _AllKinds(s, i, b, f, raw, strs, blob, opt)
    want = p._encode_slow()
    plan = p._PLAN
    assert plan is not None
    fast = msgs._encode_fast(p, plan)
    if fast is not None:
        assert fast == want
    assert p._encode() == want
    assert p.to_json() == gojson.to_utf8(want)


def test_payload_with_a_key_needing_escapes_takes_the_slow_path() -> None:
    @dataclass(slots=True)
    class Odd(msgs.Payload):
        v: str = "x"
        _FIELDS = (msgs.Field("v", "a<b", "str"),)

    assert Odd._PLAN is not None  # HTML off: < needs no escape in a key
    assert Odd()._encode() == '{"a<b":"x"}'

    @dataclass(slots=True)
    class Quoted(msgs.Payload):
        v: str = "x"
        _FIELDS = (msgs.Field("v", "a\tb", "str"),)

    assert Quoted._PLAN is None
    assert Quoted()._encode() == Quoted()._encode_slow()


def test_every_vector_payload_encodes_the_same_on_both_paths(golden: dict[str, Any]) -> None:
    seen = 0
    for c in golden["messages"]["messages"]:
        m = Message.from_json(c["json"])
        cls = msgs.TRANSPORT_PAYLOAD_TYPES.get(m.type)  # type: ignore[call-overload]
        if cls is None or m.payload is None:
            continue
        p = m.parse_payload(cls)
        assert p._encode() == p._encode_slow()
        seen += 1
    assert seen


# --- SMSG plaintext and Go string quoting -------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(_nasty, st.booleans())
def test_go_string_utf8_matches_the_stdlib_path(s: str, html: bool) -> None:
    assert gojson.go_string_utf8(s, html) == gojson.to_utf8(gojson.go_string(s, html=html))


def _plaintexts() -> st.SearchStrategy[bytes]:
    go_made = st.builds(
        lambda body, ts: b'{"body":' + gojson._go_string_utf8_slow(body) + b',"timestamp":%d}' % ts,
        _nasty,
        st.integers(-(2**64), 2**64),
    )
    variants = st.builds(
        lambda body, tail: b'{"body":"' + body + tail,
        st.binary(max_size=30) | _nasty.map(lambda s: s.encode("utf-8", "surrogatepass")),
        st.sampled_from(
            [
                b'","timestamp":1}',
                b'","timestamp":1.0}',
                b'","timestamp":1e3}',
                b'","timestamp":-0}',
                b'","timestamp":null}',
                b'","timestamp":9223372036854775808}',
                b'","timestamp":1,"body":"b"}',
                b'","timestamp":1,"Body":"b"}',
                b'","timestamp":1,"subject":"s"}',
                b'","timestamp":1} ',
                b'","timestamp":1}x',
                b'","timestamp":"1"}',
                b'"}',
                b"",
            ]
        ),
    )
    return go_made | variants | st.binary(max_size=60)


@settings(max_examples=400, deadline=None)
@given(_plaintexts())
def test_smsg_plaintext_fast_decode_matches_the_slow_path(plain: bytes) -> None:
    assert _outcome(lambda: smsg._parse_plaintext(plain)) == _outcome(
        lambda: smsg._parse_plaintext_slow(plain)
    )


@settings(max_examples=150, deadline=None)
@given(_nasty.filter(bool), st.integers(1, 2**40))
def test_smsg_plaintext_encode_is_gos(body: str, ts: int) -> None:
    frame = smsg.encrypt(body, "pw", nonce=bytes(24), timestamp=ts)
    assert smsg.decrypt(frame, "pw").body == gojson._SURROGATE.sub("\ufffd", body)
    want = b'{"body":' + gojson._go_string_utf8_slow(body) + b',"timestamp":%d}' % ts
    assert sigil.open(sigil.derive_key("pw"), frame[len(smsg._PREFIX) :]) == want


# --- the ts window ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.integers(-62135596800, 253402300799),
    st.integers(0, 999_999_999),
    st.sampled_from([0, 60, 3600, -19800, 50400, -43200]),
)
def test_ts_unix_ns_matches_the_goTime(sec: int, ns: int, off: int) -> None:
    ts = GoTime(sec, ns, off)
    try:
        text = ts.format()
    except ValueError:
        return
    m = Message.from_json(
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"' + text + '","payload":null}'
    )
    want = None if ts.is_zero() else ts.timestamp_ns()
    assert m.ts_unix_ns() == want
    assert envelope.ts_seconds(m) == (None if want is None else want / 1e9)
    m.ts  # noqa: B018 - build the GoTime; the answer must not change
    assert m.ts_unix_ns() == want
    if text.endswith("Z"):
        assert canonical_unix_ns(text) == ts.timestamp_ns()


def test_ts_unix_ns_of_new_zero_and_missing() -> None:
    m = Message.new("ping", "a")
    assert m.ts_unix_ns() == m.ts.timestamp_ns()
    assert Message.from_json('{"id":"a"}').ts_unix_ns() is None
    zero = '{"id":"a","type":"ping","from":"f","to":"t","ts":"0001-01-01T00:00:00Z","payload":1}'
    assert Message.from_json(zero).ts_unix_ns() is None
    assert envelope.ts_seconds(Message.from_json(zero)) is None
    # the per-second cache: two texts of one second, then another second
    base = "2026-12-01T22:05:46"
    assert canonical_unix_ns(base + ".5Z") - canonical_unix_ns(base + "Z") == 500_000_000
    assert canonical_unix_ns("2026-12-01T22:05:47Z") - canonical_unix_ns(base + "Z") == 10**9


_WITHOUT_ORJSON = """
import sys
sys.modules["orjson"] = None  # as if it were not installed
from p2p.identity import gojson
from p2p.transport import messages, smsg
from p2p.transport.frames import FrameCodec
assert not gojson.ORJSON and list(messages._ONE_VALUE) == ["scan"]
assert smsg._parse_plaintext is smsg._parse_plaintext_slow
m = messages.Message.new("ping", "a" * 32, "b" * 32, messages.PingPayload(7), reply_to="r")
codec = FrameCodec(bytes(range(32)))
back = codec.open(codec.seal(m))
assert back.to_json() == m.to_json() and back.ts_unix_ns() == m.ts.timestamp_ns()
assert gojson.go_string_utf8('<a\\u2028"') == b'"\\\\u003ca\\\\u2028\\\\""'
assert gojson.marshal({"b": "<", "a": 1, "c": None}) == '{"a":1,"b":"\\\\u003c","c":null}'
assert messages.PingPayload(7)._encode() == '{"sentAt":7}'
print("ok")
"""


def test_everything_works_without_orjson() -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _WITHOUT_ORJSON],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
