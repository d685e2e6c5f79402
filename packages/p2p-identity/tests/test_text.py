"""safe_text: remote strings rendered for logs and terminals (escaped, bounded)."""

from __future__ import annotations

import pytest
from p2p.identity import DEFAULT_TEXT_LIMIT, has_control_chars, safe_text
from p2p.identity.text import ELLIPSIS


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("worker-1", "worker-1"),
        ("a b", "a b"),
        ("ünïcode ok", "ünïcode ok"),
        ("line\nforged WARNING", "line\\x0aforged WARNING"),
        ("\r\x1b[2K\x07", "\\x0d\\x1b[2K\\x07"),
        ("\x7f\x85\x9b", "\\x7f\\x85\\x9b"),  # DEL and C1 controls (NEL, CSI)
        ("abc\u202edcba\u2066\u200f", "abc\\u202edcba\\u2066\\u200f"),  # bidi controls
        ("\u2028\u2029\u00a0", "\\u2028\\u2029\\xa0"),
        ("\udcff", "\\udcff"),  # a lone surrogate (surrogateescape'd bytes)
        ("\U000e0001tag", "\\U000e0001tag"),
    ],
)
def test_escapes_what_a_terminal_would_act_on(raw: str, shown: str) -> None:
    assert safe_text(raw) == shown
    assert safe_text(shown) == shown  # the escaped form is itself safe: idempotent
    assert has_control_chars(raw) == (raw != shown)


def test_output_is_bounded_with_an_ellipsis() -> None:
    out = safe_text("x" * 700_000)
    assert len(out) == DEFAULT_TEXT_LIMIT and out.endswith(ELLIPSIS)
    assert safe_text("x" * 10, 10) == "x" * 10
    assert safe_text("x" * 11, 10) == "x" * 9 + ELLIPSIS


def test_truncation_never_cuts_an_escape() -> None:
    out = safe_text("\x1b" * 100, 20)
    assert out == "\\x1b" * 4 + ELLIPSIS
    assert len(safe_text("ab\x1b", 5)) <= 5
    assert safe_text("ab\x1b", 5) == "ab" + ELLIPSIS


def test_every_character_of_the_output_is_printable() -> None:
    raw = "".join(chr(c) for c in range(0x0, 0x3000))
    out = safe_text(raw, None)
    assert out.isprintable()
    assert len(safe_text(raw)) <= DEFAULT_TEXT_LIMIT


def test_bytes_and_other_objects() -> None:
    assert safe_text(b"ok\x1b\xff") == "ok\\x1b\\xff"
    assert safe_text(ValueError("bad\nthing")) == "bad\\x0athing"
    assert safe_text(12) == "12"
    assert safe_text("x" * 500, None) == "x" * 500
    with pytest.raises(ValueError):
        safe_text("x", 0)
