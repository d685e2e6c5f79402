"""Go ``encoding/json`` rules, so our bytes equal the reference's and we read what it
reads: the one home of Go string quoting and of Go's key → struct field matching
(:class:`GoFields`) for every p2p package (identity files, the transport envelope, its
payloads and the SMSG body, controller bundles).

Go escapes ``"``, ``\\``, control characters (``\\n \\r \\t \\b \\f`` short, others
``\\u00XX``), always U+2028/U+2029, and with HTML escaping on (``json.Marshal``) also
``< > &``. Python's C string encoder (``ensure_ascii=False``) does the first part; the rest
is a rare-path replace. Lone surrogates (which a Go string cannot hold) stay in the returned
``str``; :func:`to_utf8` turns them into U+FFFD, as Go's decoder would have.

:func:`go_string_utf8` is the hot-path spelling for long strings (an SMSG body is a whole
message's JSON): orjson when it is installed, which writes Go's bytes except for
``< > &`` (Go escapes them in HTML mode), U+2028/U+2029 (Go always escapes them) and lone
surrogates (orjson refuses them; Go would have U+FFFD) — those inputs take the path above.
"""

from __future__ import annotations

import importlib
import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from json import encoder as _enc
from typing import Any, TypeVar


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


orjson: Any = _optional("orjson")
"""The orjson module when installed (a dependency on CPython), else ``None``: every fast
path built on it has a stdlib twin that gives the same answers."""

__all__ = [
    "ORJSON",
    "GoFields",
    "go_fix_string",
    "go_float",
    "go_fold_key",
    "go_quote",
    "go_string",
    "go_string_utf8",
    "marshal",
    "to_utf8",
]

ORJSON = orjson is not None
"""Whether orjson serves :func:`go_string_utf8` (and the SMSG plaintext decode)."""

_encode_basestring: Any = getattr(_enc, "c_encode_basestring", None) or _enc.py_encode_basestring
_encode_basestring_ascii: Any = (
    getattr(_enc, "c_encode_basestring_ascii", None) or _enc.py_encode_basestring_ascii
)
_ESCAPED = bytes(range(0x20)) + b'"\\'
_ESCAPED_HTML = _ESCAPED + b"<>&"
_HTML = re.compile("[<>&\u2028\u2029]")
_LINESEP = re.compile("[\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_HTML_ESC = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}


def _esc(m: re.Match[str]) -> str:
    return _HTML_ESC[m.group()]


def go_string(s: str, *, html: bool = True) -> str:
    """``s`` as a quoted JSON string the way Go's encoder writes it."""
    if s.isascii():
        if '"' not in s:  # plain text: one C pass finds out whether anything needs escaping
            b = s.encode("ascii")
            if len(b.translate(None, _ESCAPED_HTML if html else _ESCAPED)) == len(b):
                return '"' + s + '"'
        if "\x7f" not in s:  # the C ASCII encoder is faster; same bytes when DEL is absent
            out: str = _encode_basestring_ascii(s)
        else:
            out = _encode_basestring(s)
    else:
        out = _encode_basestring(s)
    if html:
        if "<" in out or ">" in out or "&" in out or "\u2028" in out or "\u2029" in out:
            out = _HTML.sub(_esc, out)
    elif "\u2028" in out or "\u2029" in out:
        out = _LINESEP.sub(_esc, out)
    return out


def go_fix_string(s: str) -> str:
    """What a Go string holds after a round trip: lone surrogates become U+FFFD."""
    return _SURROGATE.sub("\ufffd", s)


def go_quote(s: str) -> str:
    """:func:`go_string` in HTML mode of :func:`go_fix_string` of ``s``: Go's
    ``json.Marshal`` of a string, as a ``str`` that always encodes as UTF-8."""
    return go_string(go_fix_string(s))


def _go_string_utf8_slow(s: str, html: bool = True) -> bytes:
    return to_utf8(go_string(s, html=html))


def _make_go_string_utf8() -> Any:
    if orjson is None:
        return _go_string_utf8_slow
    dumps = orjson.dumps
    error = orjson.JSONEncodeError

    def go_string_utf8(s: str, html: bool = True) -> bytes:
        if "\u2028" in s or "\u2029" in s or (html and ("<" in s or ">" in s or "&" in s)):
            return _go_string_utf8_slow(s, html)
        try:
            out: bytes = dumps(s)
        except error:  # lone surrogates
            return _go_string_utf8_slow(s, html)
        return out

    return go_string_utf8


go_string_utf8: Any = _make_go_string_utf8()
"""``go_string_utf8(s, html=True) -> bytes``: :func:`to_utf8` of :func:`go_string`, faster."""


def to_utf8(s: str) -> bytes:
    """UTF-8 bytes of ``s``; lone surrogates (which Go strings cannot hold) become U+FFFD,
    as Go's decoder would have made them."""
    try:
        return s.encode()
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", s).encode()


def go_float(f: float) -> str:
    """A float64 as Go's encoder writes it (shortest digits; exponent form only below 1e-6
    or from 1e21; ``e-07`` cleaned to ``e-7``). NaN and infinities are errors, as in Go."""
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"unsupported float value {f!r}")
    if f == int(f) and abs(f) < 1e16:
        return str(int(f)) if f or math.copysign(1.0, f) > 0 else "-0"
    r = repr(f)
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        # Go: strconv 'e' with minimal digits, exponent at least two digits, then e-0X -> e-X
        mant, _, exp = r.partition("e")
        if not exp:
            mant, exp = f"{Decimal(r):e}".split("e")
            mant = mant.rstrip("0").rstrip(".") if "." in mant else mant
        sign = "-" if exp.startswith("-") else "+"
        digits = exp.lstrip("+-").lstrip("0") or "0"
        if sign == "+" and len(digits) < 2:
            digits = digits.zfill(2)
        return f"{mant}e{sign}{digits}"
    if "e" in r or "E" in r:
        r = format(Decimal(r), "f")
    if r.endswith(".0"):
        r = r[:-2]
    return r


_FLAT = frozenset((str, int, bool, type(None)))


def _make_marshal_flat() -> Any:
    """orjson for a ``dict`` of ``str`` keys to exactly ``str``/``int``/``bool``/``None``
    values (most payloads): sorted keys give Go's bytes except for the inputs
    :func:`go_string_utf8` steps aside for (``< > &`` in HTML mode, U+2028/U+2029, lone
    surrogates) and ints beyond 64 bits; ``None`` sends those, and every other value, to
    the general :func:`marshal`."""
    if orjson is None:
        return lambda _value, _html: None
    dumps, error, sort = orjson.dumps, orjson.JSONEncodeError, orjson.OPT_SORT_KEYS
    flat = _FLAT

    def marshal_flat(value: dict[Any, Any], html: bool) -> str | None:
        for k, v in value.items():
            if k.__class__ is not str or v.__class__ not in flat:
                return None
        try:
            out: bytes = dumps(value, option=sort)
        except error:  # lone surrogates, ints beyond 64 bits
            return None
        if html and (b"<" in out or b">" in out or b"&" in out):
            return None
        if not out.isascii() and (b"\xe2\x80\xa8" in out or b"\xe2\x80\xa9" in out):
            return None
        return out.decode()

    return marshal_flat


_marshal_flat: Any = _make_marshal_flat()


def marshal(value: Any, *, html: bool = True) -> str:
    """Go ``json.Marshal`` of a ``map[string]any``-like value: maps with sorted keys,
    compact separators, Go string and float rules."""
    if value.__class__ is dict:
        out: str | None = _marshal_flat(value, html)
        if out is not None:
            return out
    return _marshal(value, html)


def _marshal(value: Any, html: bool) -> str:
    """:func:`marshal` with the stdlib quoting (the flat fast path's twin)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return go_string(value, html=html)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, Mapping):
        items = sorted((str(k), v) for k, v in value.items())
        return (
            "{"
            + ",".join(f"{go_string(k, html=html)}:{marshal(v, html=html)}" for k, v in items)
            + "}"
        )
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(marshal(v, html=html) for v in value) + "]"
    raise TypeError(f"cannot marshal {type(value).__name__}")


# --- decoding: which struct field a JSON key fills ---------------------------------------
#
# Go (encoding/json, decode.go ``object``): a key fills the field whose name equals it
# exactly, else the first field (in struct order) whose ``foldName`` equals the key's;
# a key matching no field is ignored, and a later duplicate overwrites an earlier one.
# ``foldName`` (fold.go, Go 1.21+; older releases used ``bytes.EqualFold``, same classes)
# upper-cases ASCII a-z and maps every other rune to the smallest rune of its
# ``unicode.SimpleFold`` orbit. The only non-ASCII runes whose orbit holds an ASCII rune
# are U+212A KELVIN SIGN (with K, k) and U+017F LATIN SMALL LETTER LONG S (with S, s):
# U+0130 (capital I with dot) and U+0131 (dotless i) fold to themselves, so they match
# no ASCII letter, and Python's full case mappings (``"\u00df".upper() == "SS"``,
# ``"\ufb06".casefold() == "st"``, ``"\u0131".upper() == "I"``) are not Go's. Every
# go-p2p field name is ASCII, so a key can only match one if it is ASCII once those two
# runes are replaced.

_KELVIN_LONG_S = {0x212A: "k", 0x017F: "s"}

F = TypeVar("F")


def go_fold_key(key: str) -> str | None:
    """``key`` folded for matching against ASCII field names (lower-cased; Go folds to upper
    case, the classes are the same): Kelvin sign → ``k``, long s → ``s``. ``None`` when
    the key holds any other non-ASCII rune, because then it matches no ASCII name in Go."""
    if key.isascii():
        return key.lower()
    key = key.translate(_KELVIN_LONG_S)
    return key.lower() if key.isascii() else None


class GoFields(dict[str, F | None]):
    """The fields of one Go struct by JSON name: ``fields[key]`` is the field Go's
    ``json.Unmarshal`` fills for a key (exact name first, else case-insensitively as
    :func:`go_fold_key` says, the first field in struct order winning), ``None`` for a
    key Go ignores (look up with ``fields[key]``: ``get`` and ``in`` see exact names only).
    An exact name is a plain dict hit (the hot path: Go writes exact names); other keys go
    through ``__missing__`` and are not remembered, so remote keys cost no memory.
    Duplicates are the caller's: assign in document order, the last one wins.

    Field names must be ASCII (every go-p2p struct's are): matching non-ASCII names
    would need Go's whole SimpleFold table.
    """

    __slots__ = ("_folded",)

    def __init__(self, fields: Iterable[tuple[str, F]]) -> None:
        super().__init__()
        folded: dict[str, F] = {}
        for name, value in fields:
            if not name.isascii():
                raise ValueError(f"Go field name {name!r} is not ASCII")
            if name in self:
                raise ValueError(f"duplicate Go field name {name!r}")
            self[name] = value
            folded.setdefault(name.lower(), value)  # Go: the first folded match wins
        self._folded = folded

    def __missing__(self, key: str) -> F | None:
        folded = go_fold_key(key)
        return None if folded is None else self._folded.get(folded)
