"""The native receive path gives exactly the Python decoders' answers.

With the ``p2p.ueps`` extension live, a frame in the shape Go writes is opened in one call
(AEAD, SMSG body, envelope: ``sigil_open_message``), and a 1.1 body or any bytes given to
``Message.from_json`` go through ``go_envelope_fields`` first. Both may only pass
(``None`` / the plaintext back): whatever they return must be what the Python decoders
return, and whatever those refuse they must pass on. Held here on every vector message
and frame, and by hypothesis on accepted and rejected inputs (the error type included).
Without the extension these tests skip; the Python paths are then the only ones.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p2p.identity import GoTime, gojson
from p2p.transport import messages as msgs
from p2p.transport import sigil, smsg
from p2p.transport.errors import SmsgError, TransportError
from p2p.transport.frames import FrameCodec
from p2p.transport.messages import Message, MessageType
from pytest_p2p.vectors import message_texts

NATIVE = msgs._native_fields is not None and sigil._fused_open_message is not None
needs_native = pytest.mark.skipif(not NATIVE, reason="the p2p.ueps extension is not live")
pytestmark = needs_native

MAX = msgs.MAX_MESSAGE_SIZE
_ext: Any = sigil._speedups()


def _outcome(fn: Callable[[], Message]) -> tuple[str, Any]:
    """``("ok", observable fields)`` or ``("error", exception type)``."""
    try:
        m = fn()
    except TransportError as e:
        return "error", type(e).__name__
    return "ok", _observe(m)


def _observe(m: Message) -> tuple[Any, ...]:
    return (
        m.id,
        m.type,
        m.type.__class__,
        m.from_,
        m.to,
        m.payload,
        m.reply_to,
        m.ts_unix_ns(),
        m.ts,
        m.to_json_text(),
    )


def _python_from_json(data: bytes | str, max_size: int = MAX) -> Message:
    """``Message.from_json`` as it is without the extension (the Python decoders)."""
    saved = msgs._native_fields
    msgs._native_fields = None
    try:
        return Message.from_json(data, max_size=max_size)
    finally:
        msgs._native_fields = saved


def _envelope_agrees(data: bytes, max_size: int = MAX) -> bool:
    """The native envelope parser passes or gives the Python answer; ``True`` if it took
    the input."""
    want = _outcome(lambda: _python_from_json(data, max_size))
    fields = _ext.go_envelope_fields(data, max_size)
    if fields is not None:
        assert want[0] == "ok", (data, want)
        assert _outcome(lambda: msgs._from_fields(fields)) == want, data
    assert _outcome(lambda: Message.from_json(data, max_size=max_size)) == want, data
    return fields is not None


def _python_plaintext(plain: bytes, max_message: int = MAX) -> Message:
    """What ``FrameCodec.open`` makes of a plaintext without the extension."""
    body = smsg._parse_plaintext(plain).body
    return _python_from_json(body, max_message)


def _plaintext_agrees(plain: bytes, max_message: int = MAX) -> bool:
    want = _outcome(lambda: _python_plaintext(plain, max_message))
    fields = _ext.go_smsg_plaintext_fields(plain, max_message)
    if fields is not None:
        assert want[0] == "ok", (plain, want)
        assert _outcome(lambda: msgs._from_fields(fields)) == want, plain
    return fields is not None


def _frame(plain: bytes, key: bytes, nonce: bytes | None = None) -> bytes:
    return sigil._seal_prefixed(key, nonce or os.urandom(24), plain, smsg._PREFIX)


@pytest.fixture(scope="module")
def codec() -> FrameCodec:
    return FrameCodec(bytes(range(32)))


def _frame_agrees(codec: FrameCodec, frame: bytes) -> None:
    """``FrameCodec.open`` on the native path and on the Python path agree."""
    fused = _outcome(lambda: codec.open(frame))
    with sigil._fused_path(False):
        assert sigil._fused_open_message is None
        composed = _outcome(lambda: codec.open(frame))
    assert fused == composed, frame


# --- inputs ---------------------------------------------------------------------------------

# every character class the parsers branch on, plus anything
_chars = st.one_of(
    st.sampled_from('<>&"\\/\u2028\ud800\x00\x1f\x7f\n\té😀 aZ09{}[]:,.-+eEtrufalsn'),
    st.characters(),
)
_text = st.text(alphabet=_chars, max_size=24)
_ascii = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'),
    max_size=40,
)
_ts_texts = st.one_of(
    st.builds(
        lambda y, mo, d, h, mi, s, frac, zone: (
            f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{zone}"
        ),
        st.sampled_from([0, 1, 1900, 1970, 2000, 2024, 2025, 2100, 2400, 9999]),
        st.integers(0, 13),
        st.sampled_from([0, 1, 9, 28, 29, 30, 31, 32]),
        st.sampled_from([0, 9, 23, 24]),
        st.sampled_from([0, 59, 60]),
        st.sampled_from([0, 59, 60]),
        st.sampled_from(["", ".", ".5", ".50", ".123456789", ".1234567890", ".000000001", ",5"]),
        st.sampled_from(
            [
                *("Z", "z", "+01:00", "-05:30", "+00:00", "-00:00", "+24:00", "+23:59", "-00:01"),
                "+12:60",
                "+1:00",
                "",
                "Z ",
                "+0100",
            ]
        ),
    ),
    st.just("0001-01-01T00:00:00Z"),
    _text,
)
_PAYLOAD_EDGES = [
    *("1", "-0", "0", "01", "-01", "1.", ".5", "1.50", "-", "1e", "1E+5", "1e+", "1e400", "2" * 70),
    *("-1.5e-7", "0x1", "+1", "Infinity", "NaN", "true", "false", "null", "nul", "tru", "True"),
    *('"x"', '"\\u00e9"', '"\\ud800"', '"\\x"', '"\\u12"', '"\\u12g4"', '"\\"', '"\x01"'),
    *('"\x7f"', '"\u00e9"', '"\'"', '"a', "[]", "{}", "[1,]", "[,1]", "{,}", '{"a":1,}'),
    *('{"a" :1}', '{"a":}', '{"a"}', "{1:2}", "[1 ,2]", "[1,,2]", "[[[[1]]]]", "[" * 70 + "]" * 70),
    *('{"a":{"b":[]}}', '{"a":1,"a":2}', '{"A":1,"a":2}', "[1]]", "{}}", "1 ", " 1", "[1] "),
]
"""Payload texts around every branch of the validators (valid and not)."""
_WRAPS = ["{}", "[{}]", '{{"k":{}}}', "[1,{}]", '{{"k":{},"l":2}}']
_payloads = st.one_of(
    st.none(),
    st.sampled_from(_PAYLOAD_EDGES),
    st.tuples(st.sampled_from(_PAYLOAD_EDGES), st.sampled_from(_WRAPS)).map(
        lambda t: t[1].format(t[0])
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _text,
        lambda c: st.lists(c, max_size=3) | st.dictionaries(_text, c, max_size=3),
        max_leaves=8,
    ).flatmap(
        lambda v: st.sampled_from(
            [json.dumps(v), json.dumps(v, ensure_ascii=False), json.dumps(v, indent=1)]
        )
    ),
)


def _go_text(
    id_: str, typ: str, frm: str, to: str, ts: str, payload: str | None, reply_to: str
) -> str:
    """An envelope put together as text (keys in Go's order, ts raw, payload raw)."""
    out = (
        f'{{"id":{json.dumps(id_)},"type":{json.dumps(typ)},"from":{json.dumps(frm)},'
        f'"to":{json.dumps(to)},"ts":"{ts}","payload":{"null" if payload is None else payload}'
    )
    return out + (f',"replyTo":{json.dumps(reply_to)}}}' if reply_to else "}")


_envelopes = st.builds(
    _go_text,
    st.one_of(_ascii, _text),
    st.one_of(st.sampled_from([*MessageType, "custom"]).map(str), _text),
    st.one_of(_ascii, _text),
    st.one_of(_ascii, _text),
    _ts_texts,
    _payloads,
    st.one_of(st.just(""), _ascii, _text),
)

_EDITS = [*'{}[]",:\\ \n0-9aeEuU.', '"ID"', '"Id"', '"payload"', ',"x":1', "\u00e9", "\x00"]


@st.composite
def _mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """A text with a few edits (insert, delete, replace) at random places."""
    text = draw(base)
    for _ in range(draw(st.integers(0, 3))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["ins", "del", "rep"]))
        piece = draw(st.sampled_from(_EDITS))
        if op == "ins":
            text = text[:i] + piece + text[i:]
        elif op == "del":
            text = text[:i] + text[i + 1 :]
        else:
            text = text[:i] + piece + text[i + 1 :]
    return text


_P = '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":'
"""The envelope up to its payload, as Go writes it."""
_wrong_shapes = st.sampled_from(
    [
        '{"ID":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":1}',
        '{"id":"a","Type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":1}',
        _P + '1,"id":"b"}',
        _P + '1,"payload":2}',
        _P + '1,"replyTo":null}',
        _P + '1,"replyTo":1}',
        _P + '1,"replyTo":"r","x":1}',
        _P + "1} ",
        ' {"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":1}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z"}',
        _P + "}",
        '{"id":null,"type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":1}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":null,"payload":1}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05\\u005a","payload":1}',
        '{"id":"\\u0061","type":"ping","from":"f","to":"t","ts":"2025-01-02T03:04:05Z","payload":1}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2023-02-29T03:04:05Z","payload":1}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2024-02-29T03:04:05Z","payload":1}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-04-31T03:04:05Z","payload":1}',
        '{"id":"a","type":"ping","from":"f","to":"t","ts":"2025-12-31T23:59:59.999999999-23:59","payload":1}',
        _P + '1,"replyTo":"r"]',
        _P + '1,"replyTo":"r" ',
        _P + '1,"replyTo":"r"}}',
        _P + '1,"replyTo":"r"',
        _P + "1]",
        _P + "1",
        _P + "1,",
        _P + '1,"replyTo":""}',
        '{"id":"","type":"","from":"","to":"","ts":"2025-01-02T03:04:05Z","payload":null}',
        "null",
        "{}",
        "[]",
        "",
    ]
)

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _ascii,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(_ascii, c, max_size=3),
    max_leaves=10,
)
_compact_json = _json_values.map(lambda v: json.dumps(v, separators=(",", ":")))
_HEAD = ("a", "ping", "f" * 32, "t" * 32)
# one part varied at a time, the rest as Go writes it, so each branch is reached often
_payload_varied = st.builds(
    lambda p, r: _go_text(*_HEAD, "2025-01-02T03:04:05.5Z", p, r),
    st.one_of(_payloads, _compact_json, _mutated(_compact_json)),
    st.sampled_from(["", "r"]),
)
_ts_varied = st.builds(
    lambda ts: _go_text(*_HEAD, ts, "1", ""), st.one_of(_ts_texts, _mutated(_ts_texts))
)
_go_made = st.builds(
    _go_text,
    _ascii,
    st.sampled_from([*MessageType, "custom"]).map(str),
    _ascii,
    _ascii,
    st.sampled_from(["2025-01-02T03:04:05Z", "2024-02-29T23:59:59.123456789+05:30"]),
    _compact_json,
    st.one_of(st.just(""), _ascii),
)
_any_envelope = st.one_of(
    _envelopes,
    _mutated(_envelopes),
    _payload_varied,
    _ts_varied,
    _mutated(_go_made),
    _wrong_shapes,
    _mutated(_wrong_shapes),
)


def _as_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


# --- the envelope ---------------------------------------------------------------------------


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_any_envelope)
def test_native_envelope_matches_the_python_decoders(text: str) -> None:
    _envelope_agrees(_as_bytes(text))


@pytest.mark.parametrize("wrap", ["{}", *_WRAPS])
@pytest.mark.parametrize("reply", ["", "r"])
def test_every_payload_edge_case_agrees(wrap: str, reply: str) -> None:
    for edge in _PAYLOAD_EDGES:
        text = _go_text(*_HEAD, "2025-01-02T03:04:05Z", wrap.format(edge), reply)
        _envelope_agrees(_as_bytes(text))
        _plaintext_agrees(_plaintext(text, ',"timestamp":1}'))


@settings(max_examples=200, deadline=None)
@given(_any_envelope, st.integers(0, 400))
def test_native_envelope_honours_max_size(text: str, max_size: int) -> None:
    _envelope_agrees(_as_bytes(text), max_size)


@settings(max_examples=300, deadline=None)
@given(
    _ascii,
    st.sampled_from([*MessageType, "custom"]).map(str),
    _ascii,
    _ascii,
    st.integers(-62135596800, 253402300799),
    st.integers(0, 999_999_999),
    st.sampled_from([0, 3600, -19800, 50400]),
    _json_values,
    st.one_of(st.just(""), _ascii),
)
def test_native_envelope_takes_what_go_sends(
    id_: str, typ: str, frm: str, to: str, sec: int, ns: int, off: int, value: Any, reply: str
) -> None:
    """Go's own shape (ASCII, plain strings, compact payload): the native parser takes it
    and gives the Python answer (so the property above is not vacuous)."""
    ts = GoTime(sec, ns, off)
    try:
        ts.format()
    except ValueError:
        return
    payload = json.dumps(value, separators=(",", ":"), allow_nan=False)
    m = Message(id=id_, type=typ, from_=frm, to=to, ts=ts, payload=payload, reply_to=reply)
    data = m.to_json()
    assert _envelope_agrees(data), data
    assert Message.from_json(data) == m


# --- the SMSG plaintext and the whole frame ---------------------------------------------------


def _plaintext(body: str, stamp: str) -> bytes:
    return b'{"body":' + gojson._go_string_utf8_slow(body) + stamp.encode()


_STAMP_EDGES = [
    *(',"timestamp":1}', ',"timestamp":0}', ',"timestamp":-0}', ',"timestamp":01}'),
    *(',"timestamp":00}', ',"timestamp":-1}', ',"timestamp":+1}', ',"timestamp":1.0}'),
    *(',"timestamp":1e3}', ',"timestamp":null}', ',"timestamp":"1"}', ',"timestamp":}'),
    *(',"timestamp":9223372036854775807}', ',"timestamp":9223372036854775808}'),
    *(',"timestamp":9999999999999999999}', ',"timestamp":10000000000000000000}'),
    *(',"timestamp":-9223372036854775808}', ',"timestamp":-9223372036854775809}'),
    *(',"timestamp":999999999999999999}', ',"timestamp":1,"body":"b"}', ',"timestamp":1} '),
    *(',"timestamp":1,"Body":"b"}', ',"timestamp":1}x', ',"timestamp":1]', ',"Timestamp":1}'),
    *("}", ',"subject":"s"}', ',"timestamp":1', ',"timestamp" :1}', ', "timestamp":1}'),
]
"""Tails of an SMSG plaintext after the body (valid and not)."""
_stamps = st.one_of(
    st.integers(-(2**64), 2**64).map(lambda t: f',"timestamp":{t}}}'),
    st.sampled_from(_STAMP_EDGES),
)


@st.composite
def _escaped_variants(draw: st.DrawFn, body: str) -> bytes:
    """The body quoted by Go, or with escapes a sender may choose (``\\u0022``, ``\\/``)."""
    quoted = gojson._go_string_utf8_slow(body)
    swap = draw(
        st.sampled_from(
            [
                None,
                ('\\"', "\\u0022"),
                ("/", "\\/"),
                ("a", "\\u0061"),
                ("a", "\\u0161"),
                ("f", "\\u0166"),
                ("1", "\\u2031"),
                ("p", "\\u0070"),
                ('\\"', "\\u0122"),
            ]
        )
    )
    if swap is not None:
        quoted = quoted.replace(swap[0].encode(), swap[1].encode())
    return quoted


_plaintexts = st.one_of(
    st.builds(_plaintext, _any_envelope, _stamps),
    st.builds(_plaintext, _go_made, _stamps),
    _go_made.flatmap(_escaped_variants).map(lambda q: b'{"body":' + q + b',"timestamp":1}'),
    st.tuples(_any_envelope, _stamps).flatmap(
        lambda t: _escaped_variants(t[0]).map(lambda q: b'{"body":' + q + t[1].encode())
    ),
    _mutated(st.builds(lambda e: _plaintext(e, ',"timestamp":1}').decode(), _envelopes)).map(
        _as_bytes
    ),
    st.binary(max_size=80),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_plaintexts)
def test_native_plaintext_matches_the_python_decoders(plain: bytes) -> None:
    _plaintext_agrees(plain)


def _ts_edges() -> list[str]:
    """Go's ts text with one part changed at a time (each valid and invalid choice)."""
    parts = {
        "y": ["0000", "0001", "1900", "2000", "2023", "2024", "2100", "2400", "9999", "999"],
        "mo": ["01", "02", "04", "12", "00", "13", "1", "0a"],
        "d": ["01", "28", "29", "30", "31", "00", "32", "1"],
        "h": ["00", "23", "24", "2"],
        "mi": ["00", "59", "60"],
        "s": ["00", "59", "60"],
        "frac": ["", ".5", ".05", ".50", ".123456789", ".1234567890", ".000000001", ".", ",5"],
        "zone": [
            *("Z", "z", "+01:00", "-05:30", "+00:00", "-00:00", "+24:00", "+23:59"),
            "-00:01",
            "+12:60",
            "+1:00",
            "",
            "Z ",
            "+0100",
            "+01:0",
            "+01:000",
            "ZZ",
            "+01-00",
        ],
    }
    base = {"y": "2024", "mo": "02", "d": "29", "h": "23", "mi": "59", "s": "59", "frac": ".5"}
    base["zone"] = "+05:30"
    out = []
    for key, choices in parts.items():
        for choice in choices:
            p = {**base, key: choice}
            mo = "04" if key == "d" else p["mo"]
            out.append(f"{p['y']}-{mo}-{p['d']}T{p['h']}:{p['mi']}:{p['s']}{p['frac']}{p['zone']}")
            out.append(
                f"{p['y']}-{p['mo']}-{p['d']}T{p['h']}:{p['mi']}:{p['s']}{p['frac']}{p['zone']}"
            )
    return out


def test_every_ts_edge_case_agrees() -> None:
    for ts in _ts_edges():
        text = _go_text(*_HEAD, ts, "1", "")
        _envelope_agrees(_as_bytes(text))
        _plaintext_agrees(_plaintext(text, ',"timestamp":1}'))


def test_every_plaintext_tail_and_escape_agrees() -> None:
    text = _go_text(*_HEAD, "2025-01-02T03:04:05Z", '{"a":[1,"b"]}', "r")
    for stamp in _STAMP_EDGES:
        _plaintext_agrees(_plaintext(text, stamp))
    for esc in ("\\u0161", "\\u0061", "\\u007f", "\\u0080", "\\u00ff", "\\u0100", "\\u2028"):
        for at in ("a", "f", "1", "{"):
            quoted = gojson._go_string_utf8_slow(text).replace(at.encode(), esc.encode(), 1)
            _plaintext_agrees(b'{"body":' + quoted + b',"timestamp":1}')


@settings(max_examples=200, deadline=None)
@given(_plaintexts, st.integers(0, 400))
def test_native_plaintext_honours_max_message(plain: bytes, max_message: int) -> None:
    _plaintext_agrees(plain, max_message)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_plaintexts, st.sampled_from(["as is", "flip", "cut", "wrong key", "no header"]))
def test_frame_open_is_the_same_on_both_paths(codec: FrameCodec, plain: bytes, how: str) -> None:
    key = codec._key if how != "wrong key" else bytes(32)
    frame = _frame(plain, key)
    if how == "flip":
        i = len(frame) - 1 - (len(plain) % 17)
        frame = frame[:i] + bytes([frame[i] ^ 0x40]) + frame[i + 1 :]
    elif how == "cut":
        frame = frame[: len(smsg._PREFIX) + sigil.OVERHEAD - 1 + len(plain) % 3]
    elif how == "no header":
        frame = frame[len(smsg._PREFIX) :]
    _frame_agrees(codec, frame)


def test_frame_limits_are_the_same_on_both_paths() -> None:
    m = Message.new("ping", "a" * 32, "b" * 32, msgs.PingPayload(1))
    small = FrameCodec(bytes(range(32)), max_frame=300, max_message=150)
    for codec in (small, FrameCodec(bytes(range(32)), max_message=len(m.to_json()))):
        for plain_m in (m, Message.new("ping", "a" * 32, "b" * 32, "x" * 200)):
            frame = FrameCodec(bytes(range(32))).seal(plain_m)
            _frame_agrees(codec, frame)
            _frame_agrees(codec, bytearray(frame))  # type: ignore[arg-type]
            _frame_agrees(codec, frame + b"x")


def test_large_frames_take_the_composed_path(codec: FrameCodec) -> None:
    """At and beyond sigil.FUSED_LARGE the frame opens the composed way, same answer."""
    for n in (sigil.FUSED_LARGE - 200, sigil.FUSED_LARGE, sigil.FUSED_LARGE + 100):
        m = Message.new("stats", "a" * 32, "b" * 32, {"x": "y" * n})
        frame = codec.seal(m)
        assert codec.open(frame) == m
        _frame_agrees(codec, frame)


def test_decrypt_errors_keep_their_type_and_text(codec: FrameCodec) -> None:
    frame = codec.seal(Message.new("ping", "a" * 32, "b" * 32, msgs.PingPayload(1)))
    bad = frame[:-1] + bytes([frame[-1] ^ 1])
    texts = []
    for fused in (True, False):
        with sigil._fused_path(fused):
            with pytest.raises(SmsgError) as e:
                codec.open(bad)
            texts.append((type(e.value), str(e.value)))
    assert texts[0] == texts[1]


# --- every vector -----------------------------------------------------------------------------


def test_every_vector_message_is_the_same_on_the_native_path(
    golden: dict[str, Any], codec: FrameCodec
) -> None:
    for text in message_texts(golden):
        _envelope_agrees(_as_bytes(text))
        _plaintext_agrees(_plaintext(text, ',"timestamp":1764650000}'))
        _frame_agrees(codec, _frame(_plaintext(text, ',"timestamp":1764650000}'), codec._key))
    taken = [
        c["type"]
        for c in golden["messages"]["messages"]
        if c["json"].isascii() and _envelope_agrees(c["json"].encode())
    ]
    assert len(taken) == sum(c["json"].isascii() for c in golden["messages"]["messages"])
    assert taken


def test_every_vector_plaintext_and_captured_frame_is_the_same(golden: dict[str, Any]) -> None:
    for c in golden["smsg"]["fixed_nonce"]:
        _plaintext_agrees(c["plaintext_json"].encode())
    w = golden["wire_capture"]
    codec = FrameCodec(bytes.fromhex(w["shared_secret_hex"]))
    opened = 0
    for f in w["capture"]["frames"]:
        if f["opcode_name"] != "binary":
            continue
        frame = bytes.fromhex(f["payload_hex"])
        _frame_agrees(codec, frame)
        plain = sigil.open(codec._key, frame[len(smsg._PREFIX) :])
        assert _plaintext_agrees(plain), plain  # Go's own frames take the native path
        opened += 1
    assert opened


def test_the_toggles_switch_the_native_paths() -> None:
    """The toggles the tests above rely on do switch the native paths."""
    assert msgs._native_fields is not None
    with sigil._fused_path(False):
        assert sigil._fused_open_message is None
    assert sigil._fused_open_message is not None
