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
