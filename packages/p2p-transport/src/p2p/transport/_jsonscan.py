"""Top-level JSON object scanning with raw value spans, using the stdlib's C scanner.

Go keeps some values raw (``json.RawMessage``) and parses some strings itself
(``time.Time`` sees the quoted text before unescaping), so decoders here need both the
parsed value and the exact source span of each top-level member, in document order
(duplicates included: Go lets the last one win). Everything below the top level is parsed
by the C scanner, as ``json.loads`` would.
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
import re
from typing import Any

__all__ = ["Member", "loads", "scan_object", "scan_string", "scan_value"]

Member = tuple[str, Any, int, int]
"""``(key, value, start, end)``: ``text[start:end]`` is the raw JSON of ``value``."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON literal {name}")


_decoder = json.JSONDecoder(parse_constant=_reject_constant)
_scan_once: Any = json.scanner.make_scanner(_decoder)  # type: ignore[arg-type]
_scanstring: Any = json.decoder.scanstring  # type: ignore[attr-defined]
scan_value: Any = _scan_once
"""``scan_value(text, idx) -> (value, end)``: one JSON value at ``idx`` (C scanner);
``StopIteration`` if none starts there, ``ValueError`` if it is malformed."""
scan_string: Any = _scanstring
"""``scan_string(text, idx_after_quote, True) -> (str, end_after_quote)``."""
_ws = re.compile(r"[ \t\n\r]*").match
_WS = " \t\n\r"


def loads(text: str) -> Any:
    """``json.loads`` with Go's grammar (no NaN/Infinity literals)."""
    return _decoder.decode(text)


def _skip(text: str, i: int) -> int:
    if i < len(text) and text[i] in _WS:
        m = _ws(text, i)
        assert m is not None
        return m.end()
    return i


def scan_object(text: str) -> list[Member] | None:
    """The members of the JSON object ``text`` (``None`` if ``text`` is ``null``).

    ``ValueError`` if ``text`` is not exactly one JSON object (or null) with optional
    surrounding whitespace; ``RecursionError`` may escape for absurd nesting.
    """
    n = len(text)
    i = _skip(text, 0)
    if text.startswith("null", i):
        if _skip(text, i + 4) != n:
            raise ValueError("trailing data after top-level value")
        return None
    if i >= n or text[i] != "{":
        raise ValueError("top-level value is not an object")
    i = _skip(text, i + 1)
    members: list[Member] = []
    append = members.append
    scan = _scan_once
    if text.startswith("}", i):
        i += 1
    else:
        while True:
            if not text.startswith('"', i):
                raise ValueError(f"expected a key at offset {i}")
            key, i = _scanstring(text, i + 1, True)
            if text.startswith(":", i):
                i += 1
            else:
                i = _skip(text, i)
                if not text.startswith(":", i):
                    raise ValueError(f"expected ':' at offset {i}")
                i += 1
            if i < n and text[i] in _WS:
                i = _skip(text, i)
            try:
                value, end = scan(text, i)
            except StopIteration:
                raise ValueError(f"expected a value at offset {i}") from None
            append((key, value, i, end))
            i = end
            if i < n and text[i] in _WS:
                i = _skip(text, i)
            if text.startswith(",", i):
                i = _skip(text, i + 1)
                continue
            if text.startswith("}", i):
                i += 1
                break
            raise ValueError(f"expected ',' or '}}' at offset {i}")
    if i != n and _skip(text, i) != n:
        raise ValueError("trailing data after top-level value")
    return members
