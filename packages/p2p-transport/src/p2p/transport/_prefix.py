"""The source prefix of a dotted-quad IPv4 host without :mod:`ipaddress` (one per handshake
side, twice per inbound connection: ``ipaddress`` costs tens of µs each time here).

Only the canonical form takes this path (what ``inet_ntop`` writes back unchanged, which
``ipaddress`` accepts too); everything else (IPv6, mapped, zone ids, garbage) is left to
the callers' ``ipaddress`` code, so results are the same strings as before.
"""

from __future__ import annotations

import socket

__all__ = ["ipv4_prefix"]

_AF_INET = socket.AF_INET
_pton = socket.inet_pton
_ntop = socket.inet_ntop


def ipv4_prefix(host: str, bits: int) -> str | None:
    """``"a.b.c.d/bits"`` (host bits cleared) for a canonical IPv4 ``host`` and
    ``0 <= bits <= 32``; ``None`` when the caller must decide (anything else)."""
    if not 0 <= bits <= 32 or not host or not host[0].isdigit():
        return None
    try:
        packed = _pton(_AF_INET, host)
    except (OSError, ValueError):
        return None
    if _ntop(_AF_INET, packed) != host:
        return None  # a spelling inet_pton tolerates but is not canonical
    if bits == 32:
        return f"{host}/32"
    mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
    network = (int.from_bytes(packed, "big") & mask).to_bytes(4, "big")
    return f"{_ntop(_AF_INET, network)}/{bits}"
