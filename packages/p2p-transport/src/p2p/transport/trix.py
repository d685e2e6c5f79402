"""TRIX: the container around SMSG frames and STIM bundles (Enchantrix ``pkg/trix``).

Layout: ``magic(4) || version 0x02 || uint32 BE header length H || header JSON (H bytes) ||
payload`` — the payload has no length field and runs to the end of the buffer. The header
is Go ``json.Marshal`` of a map: sorted keys, compact, HTML-escaped. Every length is checked
against the buffer before anything is sliced or parsed.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from p2p.identity.gojson import marshal, to_utf8
from p2p.transport.errors import TrixError

__all__ = ["MAX_HEADER", "VERSION", "TrixContainer", "TrixError", "decode", "encode"]

VERSION = 2
"""The only container version the reference writes or reads."""

MAX_HEADER = 16 * 1024 * 1024
"""Go rejects a header length above 16 MiB; so do we, before slicing."""

_PREFIX = struct.Struct(">BI")


@dataclass(frozen=True, slots=True)
class TrixContainer:
    """A decoded container: the header as a JSON object (``{}`` for ``null``) and the
    payload bytes (everything after the header)."""

    header: dict[str, Any]
    payload: bytes


def encode(magic: bytes, header: Mapping[str, Any] | bytes, payload: bytes) -> bytes:
    """Build a container. ``header`` is a mapping (marshalled like Go) or ready JSON bytes."""
    if len(magic) != 4:
        raise TrixError(f"magic must be 4 bytes, got {len(magic)}")
    raw = header if isinstance(header, (bytes, bytearray)) else to_utf8(marshal(header))
    if len(raw) > MAX_HEADER:
        raise TrixError(f"header of {len(raw)} bytes exceeds {MAX_HEADER}")
    return b"".join((magic, _PREFIX.pack(VERSION, len(raw)), raw, payload))


def _bad_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON literal {name}")


def decode(data: bytes, magic: bytes, *, max_header: int = MAX_HEADER) -> TrixContainer:
    """Parse a container, checking magic, version 2 and ``H <= max_header`` (and
    ``H <= len(data) - 9``) before reading the header, which must be a JSON object or
    ``null``."""
    n = len(data)
    if n < 4:
        raise TrixError("truncated: no magic")
    if data[:4] != magic:
        raise TrixError(f"invalid magic number: expected {magic!r}, got {bytes(data[:4])!r}")
    if n < 9:
        raise TrixError("truncated: no version or header length")
    version, hlen = _PREFIX.unpack_from(data, 4)
    if version != VERSION:
        raise TrixError(f"invalid version {version}")
    if hlen > max_header:
        raise TrixError(f"header size {hlen} exceeds maximum {max_header}")
    if hlen > n - 9:
        raise TrixError(f"header length {hlen} runs past the end ({n - 9} bytes left)")
    try:
        hdr = json.loads(bytes(data[9 : 9 + hlen]), parse_constant=_bad_constant)
    except (ValueError, RecursionError) as e:
        raise TrixError(f"header is not valid JSON: {e}") from None
    if hdr is None:
        hdr = {}
    elif not isinstance(hdr, dict):
        raise TrixError(f"header is a JSON {type(hdr).__name__}, not an object")
    return TrixContainer(hdr, bytes(data[9 + hlen :]))
