"""Render a string that came from the network so it is safe in a log line or a terminal.

A remote peer chooses its name, version, miner type, reasons and error texts. Written raw,
a newline forges a log line, ESC/CSI sequences drive the operator's terminal, a carriage
return overwrites what was printed, and bidi overrides make text read differently from
what it is. :func:`safe_text` is the one place that decides how such a string is shown:

- every character ``str.isprintable()`` calls unprintable (C0 and C1 controls, DEL, the
  bidi and zero-width format characters, line/paragraph separators, surrogates, private
  and unassigned code points; every space but U+0020) is shown as a Python-style escape
  (``\\x1b``, ``\\u202e``, ``\\U000e0001``), so nothing of it reaches the terminal;
- the result is at most ``limit`` characters; a longer one ends with ``…`` (and never
  cuts an escape in half).

Backslashes are kept as they are: a literal ``\\x1b`` typed by a peer then looks like an
escaped ESC, which is harmless (neither reaches the terminal as a control).
Only the first ``limit`` characters of the input are looked at, so a 700 KB name costs
the same as a short one.
"""

from __future__ import annotations

__all__ = ["DEFAULT_TEXT_LIMIT", "ELLIPSIS", "has_control_chars", "safe_text"]

#: Default bound of a rendered remote string, in characters (escapes included).
DEFAULT_TEXT_LIMIT = 160
#: Appended to a truncated string.
ELLIPSIS = "…"


def _escape(ch: str) -> str:
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def safe_text(value: object, limit: int | None = DEFAULT_TEXT_LIMIT) -> str:
    """``value`` as printable text of at most ``limit`` characters (``None``: no bound).

    ``bytes`` are decoded as UTF-8 (bad bytes become ``\\xNN``); other objects go through
    ``str()``. See the module docstring for the rules.
    """
    if isinstance(value, str):
        text = value
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value[: (limit + 1) * 4] if limit is not None else value)
        text = raw.decode("utf-8", "backslashreplace")
    else:
        text = str(value)
    if limit is not None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        head = text[: limit + 1]
    else:
        head = text
    if head.isprintable():
        if limit is None or len(head) <= limit:
            return head
        return head[: limit - 1] + ELLIPSIS
    pieces = [ch if ch.isprintable() else _escape(ch) for ch in head]
    if limit is None or (len(text) <= limit and sum(map(len, pieces)) <= limit):
        return "".join(pieces)
    kept: list[str] = []
    size = 0
    for piece in pieces:  # whole pieces only: an escape is never cut in half
        if size + len(piece) > limit - 1:
            break
        kept.append(piece)
        size += len(piece)
    return "".join(kept) + ELLIPSIS


def has_control_chars(text: str) -> bool:
    """True if ``text`` holds anything :func:`safe_text` would escape (for names we set
    ourselves: refuse them rather than store them)."""
    return not text.isprintable()
