"""p2p.identity.gojson: the one Go string quoting every package uses (bytes as Go writes)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p2p.identity import gojson


@pytest.mark.parametrize(
    ("s", "html", "want"),
    [
        ("plain", True, '"plain"'),
        ('q"b\\', True, '"q\\"b\\\\"'),
        ("<a>&", True, '"\\u003ca\\u003e\\u0026"'),
        ("<a>&", False, '"<a>&"'),
        ("\u2028\u2029", False, '"\\u2028\\u2029"'),  # Go escapes these even without HTML
        ("\n\t\x01\x7f", True, '"\\n\\t\\u0001\x7f"'),  # DEL stays raw, as in Go
        ("é€😀", True, '"é€😀"'),  # non-ASCII raw UTF-8
    ],
)
def test_go_string_known_outputs(s: str, html: bool, want: str) -> None:
    assert gojson.go_string(s, html=html) == want
    assert gojson.go_string_utf8(s, html) == want.encode()


def test_lone_surrogates_become_replacement_characters() -> None:
    assert gojson.go_quote("a\ud800b") == '"a\ufffdb"'
    assert gojson.to_utf8(gojson.go_string("a\udfffb")) == '"a\ufffdb"'.encode()
    assert gojson.go_string_utf8("a\ud800b") == '"a\ufffdb"'.encode()


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.booleans())
def test_go_string_is_json_and_utf8_path_agrees(s: str, html: bool) -> None:
    out = gojson.go_string(s, html=html)
    assert json.loads(out) == s  # a valid JSON literal of the same text
    if html:
        assert not any(c in out for c in "<>&")
    assert "\u2028" not in out and "\u2029" not in out
    assert gojson.go_string_utf8(s, html) == gojson.to_utf8(out)
    assert gojson.go_quote(s) == gojson.go_string(gojson.go_fix_string(s))


def test_marshal_sorts_keys_like_go_maps() -> None:
    assert gojson.marshal({"b": [1, 2.5, None], "a": {"<": True}}) == (
        '{"a":{"\\u003c":true},"b":[1,2.5,null]}'
    )
    assert gojson.marshal({"<": "&"}, html=False) == '{"<":"&"}'
    with pytest.raises(TypeError):
        gojson.marshal(object())


# Text that reaches every guard of the flat-dict fast path: HTML characters, line
# separators, lone surrogates, controls, quotes, DEL, non-ASCII (also as keys: sort order).
_nasty = st.text(
    alphabet=st.one_of(
        st.sampled_from('<>&"\\/\u2028\u2029\ud800\udfff\x00\x1f\x7f\n\té€😀\uffff aZ'),
        st.characters(),
    ),
    max_size=12,
)
_flat_values = st.one_of(
    _nasty,
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]),
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        _nasty,
        st.one_of(
            _flat_values,
            st.floats(allow_nan=False, allow_infinity=False),
            st.lists(_flat_values, max_size=2),
        ),
        max_size=6,
    ),
    st.booleans(),
)
def test_marshal_flat_fast_path_matches_the_general_encoder(
    value: dict[str, object], html: bool
) -> None:
    want = gojson._marshal(value, html)
    fast = gojson._marshal_flat(value, html)
    if fast is not None:
        assert fast == want
    assert gojson.marshal(value, html=html) == want


def test_marshal_flat_fast_path_serves_plain_payloads() -> None:
    if not gojson.ORJSON:
        pytest.skip("orjson not installed")
    value = {"nodeId": "ab" * 16, "uptime": 3600, "ok": True, "none": None}
    assert gojson._marshal_flat(value, True) == gojson._marshal(value, True)
    assert gojson._marshal_flat({"a": 1.5}, True) is None  # floats: Go's rules, slow path
    assert gojson._marshal_flat({"a": "<"}, True) is None
    assert gojson._marshal_flat({"a": "<"}, False) == '{"a":"<"}'
