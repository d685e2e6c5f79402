"""The handshake's ``features`` list reads the same with orjson as with the stdlib."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from p2p.transport.handshake import MAX_FEATURE_LEN, MAX_FEATURES, _features


def _stdlib_features(payload_text: str | None) -> tuple[str, ...]:
    """The stdlib-only reading (what ``_features`` did before its orjson fast path)."""
    if not payload_text or '"features"' not in payload_text:
        return ()
    try:
        raw = json.loads(payload_text).get("features")
    except (ValueError, AttributeError, RecursionError):
        return ()
    if not isinstance(raw, list):
        return ()
    return tuple(f for f in raw[:MAX_FEATURES] if isinstance(f, str) and len(f) <= MAX_FEATURE_LEN)


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(
    st.dictionaries(st.sampled_from(["features", "identity", "version", "x"]), _json),
    st.lists(st.text() | st.integers() | st.none(), max_size=40),
)
def test_features_same_as_stdlib(extra: dict[str, Any], features: list[Any]) -> None:
    for payload in ({**extra, "features": features}, extra):
        text = json.dumps(payload)
        assert _features(text) == _stdlib_features(text)


def test_edge_inputs_same_as_stdlib() -> None:
    for text in (
        '{"features":["a"],"features":["b"]}',
        '{"features":["\\ud800"]}',  # a lone surrogate: orjson refuses, the stdlib reads it
        '{"features":["a"],"n":NaN}',
        '{"features":["a"],"n":123456789012345678901234567890}',
        '["features"]',
        '{"x":"\\"features\\""}',
        '{"features":null}',
        "not json features",
        '{"features":["a"',
    ):
        assert _features(text) == _stdlib_features(text), text
