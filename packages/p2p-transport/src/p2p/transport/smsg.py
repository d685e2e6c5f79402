"""SMSG: the encrypted frame every post-handshake WebSocket message is (Borg ``pkg/smsg``).

``frame = TRIX("SMSG", {"algorithm":"chacha20poly1305","version":"1.0"}, sigil(K, P))`` with
``K = SHA-256(password)`` and ``P = {"body":<str>,"timestamp":<unix s>}`` as Go marshals it.
For a link between two nodes the password is ``base64(shared_secret)``
(:func:`password_for_secret`). We send exactly what Go sends (v1, uncompressed, the fixed
header) and accept what a Go receiver accepts (SMSG.md §6): unknown header keys, ``v2``
framing, gzip and — when a zstd library is importable — zstd, and a ``checksum`` header.
Sizes are bounded before anything is allocated: frame, header, decompressed plaintext.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import json.decoder
import logging
import re
import struct
import time
import zlib
from collections.abc import Callable, Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from p2p.identity.gojson import GoFields, go_string_utf8, orjson
from p2p.transport import sigil, trix
from p2p.transport._jsonscan import scan_object
from p2p.transport.errors import (
    SigilError,
    SmsgDecryptError,
    SmsgError,
    SmsgFormatError,
    SmsgHeaderError,
    SmsgValueError,
    TrixError,
)

try:  # Python 3.14+
    from compression import zstd as _zstd_mod  # type: ignore[import-not-found]
except ImportError:
    _zstd_mod = None
_zstandard: Any
try:  # typed or not depending on the version installed: keep it Any either way
    _zstandard = importlib.import_module("zstandard")
except ImportError:
    _zstandard = None

__all__ = [
    "DEFAULT_MAX_FRAME",
    "DEFAULT_MAX_PLAINTEXT",
    "HEADER_JSON",
    "MAGIC",
    "ZSTD_AVAILABLE",
    "SmsgDecryptError",
    "SmsgError",
    "SmsgFormatError",
    "SmsgHeaderError",
    "SmsgMessage",
    "SmsgValueError",
    "decrypt",
    "encrypt",
    "open_with_key",
    "password_for_secret",
    "seal_with_key",
]

log = logging.getLogger(__name__)

MAGIC = b"SMSG"
HEADER_JSON = b'{"algorithm":"chacha20poly1305","version":"1.0"}'
"""The header Go writes on every frame (its map, marshalled: sorted keys, compact)."""

DEFAULT_MAX_FRAME = 16 * 1024 * 1024
"""Largest frame :func:`decrypt` looks at, and largest :func:`encrypt` produces."""

DEFAULT_MAX_PLAINTEXT = 16 * 1024 * 1024
"""Largest plaintext after decompression (a decompression bomb stops here)."""

ZSTD_AVAILABLE = _zstd_mod is not None or _zstandard is not None
"""Whether zstd-compressed frames can be read (install the ``zstd`` extra)."""

_PREFIX = MAGIC + struct.pack(">BI", trix.VERSION, len(HEADER_JSON)) + HEADER_JSON
_HDR_END = len(_PREFIX)
_V2_LEN = struct.Struct(">I")
_INT64 = (-(1 << 63), (1 << 63) - 1)
_CHECKSUMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512, "sha1": hashlib.sha1}


class SmsgMessage:
    """A decrypted SMSG message (Borg ``smsg.Message``). ``body`` is the go-p2p Message
    JSON for transport frames; ``timestamp`` is Unix seconds and is never checked by Go.
    ``format`` (``"v1"``/``"v2"``) and ``compression`` (``""``/``"gzip"``/``"zstd"``) say
    how the frame was packed."""

    __slots__ = (
        "attachments",
        "body",
        "compression",
        "format",
        "from_",
        "meta",
        "reply_key",
        "subject",
        "timestamp",
    )

    def __init__(  # noqa: PLR0917 - mirrors the Go struct; all but body have defaults
        self,
        body: str,
        timestamp: int = 0,
        subject: str = "",
        from_: str = "",
        attachments: tuple[Any, ...] = (),
        reply_key: dict[str, Any] | None = None,
        meta: Mapping[str, str] | None = None,
        format: str = "v1",
        compression: str = "",
    ) -> None:
        self.body = body
        self.timestamp = timestamp
        self.subject = subject
        self.from_ = from_
        self.attachments = attachments
        self.reply_key = reply_key
        self.meta: Mapping[str, str] = _NO_META if meta is None else meta
        self.format = format
        self.compression = compression

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, k) for k in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SmsgMessage):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"SmsgMessage(body=<{len(self.body)} chars>, timestamp={self.timestamp}, "
            f"format={self.format!r}, compression={self.compression!r})"
        )


_NO_META: Mapping[str, str] = MappingProxyType({})


@lru_cache(maxsize=256)
def _key(password: str) -> bytes:
    return sigil.derive_key(password)


def password_for_secret(secret: bytes) -> str:
    """The SMSG password of a link: standard padded base64 of the 32-byte shared secret."""
    return base64.b64encode(bytes(secret)).decode("ascii")


def encrypt(
    body: str,
    password: str,
    *,
    nonce: bytes | None = None,
    timestamp: int | None = None,
    max_frame: int = DEFAULT_MAX_FRAME,
) -> bytes:
    """Encrypt ``body`` into one SMSG frame, byte-for-byte what Go's ``smsg.Encrypt`` makes.

    ``timestamp`` defaults to now (Go also replaces 0 with now); ``nonce`` (24 bytes)
    defaults to fresh random bytes and must only be fixed for tests and vectors.
    """
    if not body:
        raise SmsgValueError("message cannot be empty")
    if not password:
        raise SmsgValueError("password is required")
    key = _key(password)
    return seal_with_key(body, key, nonce=nonce, timestamp=timestamp, max_frame=max_frame)


def seal_with_key(
    body: str,
    key: bytes,
    *,
    nonce: bytes | None = None,
    timestamp: int | None = None,
    max_frame: int = DEFAULT_MAX_FRAME,
) -> bytes:
    """:func:`encrypt` with the password's key already derived (``sigil.derive_key``).

    A link's codec keeps its key: a controller of thousands of links would otherwise
    derive it per message, the per-password cache being far smaller than its fleet.
    """
    if not body:
        raise SmsgValueError("message cannot be empty")
    if nonce is not None and len(nonce) != sigil.NONCE_SIZE:
        raise SmsgValueError(f"nonce must be {sigil.NONCE_SIZE} bytes, got {len(nonce)}")
    if not timestamp:
        timestamp = int(time.time())
    elif not _INT64[0] <= timestamp <= _INT64[1]:
        raise SmsgValueError("timestamp out of int64 range")
    plain = b"".join((b'{"body":', go_string_utf8(body), b',"timestamp":%d}' % timestamp))
    if len(plain) + _HDR_END + sigil.OVERHEAD > max_frame:
        raise SmsgValueError(
            f"a {len(plain)}-byte plaintext exceeds the {max_frame}-byte frame limit"
        )
    nonce = sigil.random_nonce() if nonce is None else bytes(nonce)
    return sigil._seal_prefixed(key, nonce, plain, _PREFIX)


def decrypt(
    data: bytes,
    password: str,
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
    max_plaintext: int = DEFAULT_MAX_PLAINTEXT,
) -> SmsgMessage:
    """Decrypt one SMSG frame. Raises a :class:`SmsgError` subclass for anything a Go
    receiver would drop, plus our bounds (``max_frame``, ``max_plaintext``)."""
    n = len(data)
    if n > max_frame:
        raise SmsgHeaderError(f"frame of {n} bytes exceeds the {max_frame}-byte limit")
    if not password:
        raise SmsgValueError("password is required")
    return open_with_key(data, _key(password), max_frame=max_frame, max_plaintext=max_plaintext)


def open_with_key(
    data: bytes,
    key: bytes,
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
    max_plaintext: int = DEFAULT_MAX_PLAINTEXT,
) -> SmsgMessage:
    """:func:`decrypt` with the password's key already derived (see :func:`seal_with_key`)."""
    n = len(data)
    if n > max_frame:
        raise SmsgHeaderError(f"frame of {n} bytes exceeds the {max_frame}-byte limit")
    data = bytes(data)
    if data.startswith(_PREFIX):  # what every Go sender writes: nothing in the header to act on
        if n - _HDR_END < sigil.OVERHEAD:
            raise SmsgDecryptError(f"payload of {n - _HDR_END} bytes is shorter than nonce + tag")
        try:
            return _parse_plaintext(sigil._open_at(key, data, _HDR_END))
        except SigilError:
            raise SmsgDecryptError("decryption failed (wrong password?)") from None
    try:
        c = trix.decode(data, MAGIC, max_header=min(trix.MAX_HEADER, max_frame))
    except TrixError as e:
        raise SmsgHeaderError(f"invalid SMSG container: {e}") from None
    header, payload = c.header, c.payload
    _verify_checksum(header, payload)
    if len(payload) < sigil.OVERHEAD:
        raise SmsgDecryptError(f"payload of {len(payload)} bytes is shorter than nonce + tag")
    try:
        plain = sigil._open_at(key, payload, 0)
    except SigilError:
        raise SmsgDecryptError("decryption failed (wrong password?)") from None
    compression = header.get("compression")
    compression = compression if compression in ("gzip", "zstd") else ""
    if compression:
        plain = _decompress(plain, compression, max_plaintext)
    fmt = "v2" if header.get("format") == "v2" else "v1"
    if fmt == "v2":
        if len(plain) < 4:
            raise SmsgFormatError("v2 plaintext shorter than its length prefix")
        (jlen,) = _V2_LEN.unpack_from(plain)
        if jlen > len(plain) - 4:
            raise SmsgFormatError(f"v2 JSON length {jlen} runs past the plaintext")
        plain = plain[4 : 4 + jlen]
    msg = _parse_plaintext(plain)
    msg.format = fmt
    msg.compression = compression
    return msg


def _verify_checksum(header: Mapping[str, Any], payload: bytes) -> None:
    want = header.get("checksum")
    if not isinstance(want, str):
        return
    algo = header.get("checksum_algo")
    if not isinstance(algo, str):
        raise SmsgHeaderError("checksum without checksum_algo")
    if algo == "md5":
        got = hashlib.md5(payload, usedforsecurity=False).hexdigest()
    elif algo == "lthn":
        raise SmsgHeaderError("unsupported checksum algorithm 'lthn'")
    else:  # Go: sha256/sha512/sha1 by name, anything else falls back to sha256
        got = _CHECKSUMS.get(algo, hashlib.sha256)(payload).hexdigest()
    # The header travels outside the encryption: compare bytes (compare_digest refuses
    # non-ASCII str), so any value is a plain mismatch rather than a crash.
    if not hmac.compare_digest(got.encode(), want.encode("utf-8", "surrogatepass")):
        raise SmsgHeaderError("payload checksum mismatch")


def _decompress(data: bytes, kind: str, limit: int) -> bytes:
    if kind == "gzip":
        d = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out = d.decompress(data, limit + 1)
        except zlib.error as e:
            raise SmsgFormatError(f"gzip: {e}") from None
        if len(out) > limit:
            raise SmsgFormatError(f"decompressed plaintext exceeds {limit} bytes")
        if not d.eof:
            raise SmsgFormatError("gzip: truncated stream")
        return out
    return _zstd_decompress(data, limit)


#: Bytes one zstd read step produces: output is taken in steps and counted as it comes,
#: so a bomb stops one step past ``max_plaintext`` (never a big up-front allocation).
_ZSTD_STEP = 64 * 1024


def _zstd_decompress(data: bytes, limit: int) -> bytes:
    """Decompress the first zstd frame, reading at most ``limit + 1`` bytes of output."""
    if _zstandard is not None:
        try:
            with _zstandard.ZstdDecompressor().stream_reader(data) as reader:
                out = _read_bounded(reader.read, limit)
        except _zstandard.ZstdError as e:
            raise SmsgFormatError(f"zstd: {e}") from None
    elif _zstd_mod is not None:  # pragma: no cover - Python 3.14
        try:
            d = _zstd_mod.ZstdDecompressor()
            out = d.decompress(data, max_length=limit + 1)
        except _zstd_mod.ZstdError as e:
            raise SmsgFormatError(f"zstd: {e}") from None
    else:
        raise SmsgFormatError("zstd frame but no zstd library (install p2p-transport[zstd])")
    if len(out) > limit:
        raise SmsgFormatError(f"decompressed plaintext exceeds {limit} bytes")
    return out


def _read_bounded(read: Any, limit: int) -> bytes:
    """``read(n)`` until EOF or until more than ``limit`` bytes came (then stop at once)."""
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk: bytes = read(min(_ZSTD_STEP, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _make_parse_plaintext_fast() -> Callable[[bytes], SmsgMessage] | None:
    """orjson for what Go sends (``{"body":"…","timestamp":N}``, valid UTF-8). Only a
    result with exactly those two members of the right types is taken; anything orjson
    refuses (invalid UTF-8, lone surrogate escapes, …) or reads otherwise goes to the
    general decoder, which gives Go's answer."""
    if orjson is None:
        return None
    loads, lo, hi = orjson.loads, _INT64[0], _INT64[1]
    error = orjson.JSONDecodeError

    def parse(plain: bytes) -> SmsgMessage:
        if plain.startswith(b'{"body":"'):
            try:
                d = loads(plain)
            except error:
                return _parse_plaintext_slow(plain)
            if len(d) == 2:
                body = d.get("body")
                ts = d.get("timestamp")
                if body.__class__ is str and ts.__class__ is int and lo <= ts <= hi:
                    return SmsgMessage(body, ts)
        return _parse_plaintext_slow(plain)

    return parse


def _parse_plaintext_slow(plain: bytes) -> SmsgMessage:
    """Go ``json.Unmarshal`` into ``smsg.Message``: keys case-insensitive, last duplicate
    wins, unknown keys ignored, wrong types rejected."""
    text = plain.decode("utf-8", "replace")
    if text.startswith('{"body":"'):  # what Go sends: {"body":"...","timestamp":N}
        try:
            body, end = _scanstring(text, 9, True)
        except ValueError:
            body, end = "", -1
        m = _TS_TAIL.fullmatch(text, end) if end > 0 else None
        if m is not None:
            ts = int(m.group(1))
            if _INT64[0] <= ts <= _INT64[1]:
                return SmsgMessage(body, ts)
    try:
        members = scan_object(text)
    except (ValueError, RecursionError) as e:
        raise SmsgFormatError(f"plaintext is not a JSON object: {e}") from None
    msg = SmsgMessage("")
    for key, value, _, _ in members or ():
        name = key if key in _EXACT else _FIELDS[key]  # exact names: the usual case
        if name == "body":
            if value is not None:
                msg.body = _str(value, "body")
        elif name == "timestamp":
            if value is not None:
                if type(value) is not int or not _INT64[0] <= value <= _INT64[1]:
                    raise SmsgFormatError("timestamp is not an int64")
                msg.timestamp = value
        elif name == "subject":
            if value is not None:
                msg.subject = _str(value, "subject")
        elif name == "from":
            if value is not None:
                msg.from_ = _str(value, "from")
        elif name == "attachments":
            if value is None:
                msg.attachments = ()
            elif not isinstance(value, list) or not all(
                a is None or isinstance(a, dict) for a in value
            ):
                raise SmsgFormatError("attachments is not an array of objects")
            else:
                msg.attachments = tuple(value)
        elif name == "reply_key":
            if value is not None and not isinstance(value, dict):
                raise SmsgFormatError("reply_key is not an object")
            msg.reply_key = value
        elif name == "meta":
            if value is None:
                msg.meta = _NO_META
            elif not isinstance(value, dict) or not all(
                v is None or isinstance(v, str) for v in value.values()
            ):
                raise SmsgFormatError("meta is not an object of strings")
            else:
                msg.meta = {k: v or "" for k, v in value.items()}
    return msg


_TS_TAIL = re.compile(r',"timestamp":(-?(?:0|[1-9][0-9]{0,18}))\}')
_scanstring: Any = json.decoder.scanstring  # type: ignore[attr-defined]
_FIELDS: GoFields[str] = GoFields(
    (n, n) for n in ("subject", "body", "attachments", "reply_key", "from", "timestamp", "meta")
)
"""``smsg.Message``'s JSON names in Go's struct order; ``_FIELDS[key]`` is the one Go fills."""
_EXACT = frozenset(_FIELDS)  # a frozenset answers `in` faster than a dict subclass


_parse_plaintext: Callable[[bytes], SmsgMessage] = (
    _make_parse_plaintext_fast() or _parse_plaintext_slow
)
"""Go ``json.Unmarshal`` of a plaintext into ``smsg.Message`` (orjson fast path when
installed, :func:`_parse_plaintext_slow` otherwise)."""


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise SmsgFormatError(f"{name} is not a string")
    return value
