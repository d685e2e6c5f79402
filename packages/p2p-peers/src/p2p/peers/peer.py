"""The peer record and its peers.json form (keys, order and time format as the Go node's).

Pure data: no files, no clock except ``now()`` for callers that stamp records.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from p2p.identity import GoTime, IdentityError
from p2p.peers.errors import InvalidPeerError

__all__ = [
    "MAX_ADDRESS_LEN",
    "MAX_ID_LEN",
    "MAX_NAME_BYTES",
    "MAX_PUBLIC_KEY_LEN",
    "MAX_ROLE_LEN",
    "SCORE_DEFAULT",
    "SCORE_MAX",
    "SCORE_MIN",
    "ZERO_TIME",
    "Peer",
    "format_time",
    "now",
    "parse_time",
    "validate_peer_name",
]

#: Go's zero ``time.Time`` (``0001-01-01T00:00:00Z``): "never".
ZERO_TIME = GoTime.zero()
# instants writable as RFC 3339 in any UTC offset (a day of margin each side)
_MIN_UNIX = GoTime.parse("0000-01-02T00:00:00Z").unix_seconds
_MAX_UNIX = GoTime.parse("9999-12-30T23:59:59Z").unix_seconds

SCORE_MIN = 0.0
SCORE_MAX = 100.0
SCORE_DEFAULT = 50.0

#: Bounds checked at the boundary (the reference checks none of these but the name).
MAX_NAME_BYTES = 64
MAX_ID_LEN = 256
MAX_PUBLIC_KEY_LEN = 256
MAX_ADDRESS_LEN = 1024
MAX_ROLE_LEN = 64
#: |ping|, |geo|, |score| bound: keeps every squared distance finite.
MAX_ABS_METRIC = 1e100
MAX_ABS_HOPS = 2**53

_NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9\-_ ]{0,62}[a-zA-Z0-9]|[a-zA-Z0-9]")
_NAME_CHARS_MSG = (
    "peer name contains invalid characters (use alphanumeric, hyphens, underscores, spaces)"
)


def validate_peer_name(name: str) -> None:
    """Apply the reference's name rule; empty is allowed. Raises InvalidPeerError."""
    if not isinstance(name, str):
        raise InvalidPeerError("peer name must be a string")
    if name == "":
        return
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise InvalidPeerError("peer name too long")
    # fullmatch, not `$`: Python's `$` would also accept a trailing newline.
    if _NAME_RE.fullmatch(name) is None:
        raise InvalidPeerError(_NAME_CHARS_MSG)


def now() -> GoTime:
    """Current time in the local zone, as Go's ``time.Now()`` marshals it (cheaper than
    ``GoTime.now()``: this is on the metric-update path)."""
    global _offset_minute, _offset
    sec, nsec = divmod(time.time_ns(), 1_000_000_000)
    minute = sec // 60
    if minute != _offset_minute:  # zone offsets change on minute boundaries at most
        _offset = time.localtime(sec).tm_gmtoff
        _offset_minute = minute
    return GoTime(sec, nsec, _offset)


_offset_minute = -1
_offset = 0


def parse_time(text: object) -> GoTime:
    """RFC3339Nano as Go reads it (nanoseconds and offset kept). Raises InvalidPeerError."""
    if not isinstance(text, str):
        raise InvalidPeerError("time must be an RFC 3339 string")
    try:
        return GoTime.parse(text)
    except (IdentityError, ValueError) as e:
        raise InvalidPeerError(str(e)) from None


def format_time(t: GoTime) -> str:
    """RFC3339Nano as Go writes it (``GoTime.format``)."""
    return t.format()


def _str(key: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidPeerError(f"{key} must be a string")
    if len(value) > limit:
        raise InvalidPeerError(f"{key} longer than {limit} characters")
    return value


def _float(key: str, value: object) -> float:
    if type(value) is float and -MAX_ABS_METRIC <= value <= MAX_ABS_METRIC:
        return value  # the common case, fast (NaN fails the comparison)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidPeerError(f"{key} must be a number")
    f = float(value)
    if not math.isfinite(f) or abs(f) > MAX_ABS_METRIC:
        raise InvalidPeerError(f"{key} out of range: {f!r}")
    return f


def _int(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidPeerError(f"{key} must be an integer")
    if isinstance(value, float) and not value.is_integer():
        raise InvalidPeerError(f"{key} must be an integer")
    if isinstance(value, float) and abs(value) > MAX_ABS_HOPS:
        raise InvalidPeerError(f"{key} out of range")
    i = int(value)
    if abs(i) > MAX_ABS_HOPS:
        raise InvalidPeerError(f"{key} out of range")
    return i


def _time(key: str, value: object) -> GoTime:
    if isinstance(value, GoTime):
        # years outside 0000-9999 cannot be written back as RFC 3339
        if not _MIN_UNIX <= value.unix_seconds <= _MAX_UNIX:
            raise InvalidPeerError(f"{key} out of range")
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidPeerError(f"{key} must be timezone-aware")
        return GoTime.from_datetime(value)
    raise InvalidPeerError(f"{key} must be a GoTime (or an aware datetime)")


def _opt_time(value: object) -> GoTime:
    """A missing or ``null`` time is Go's zero time."""
    return ZERO_TIME if value is None else parse_time(value)


def _go_number(x: float) -> float | int:
    """Go's encoder writes integral floats without a fraction (``50``, not ``50.0``)."""
    x = float(x)
    return int(x) if x.is_integer() and abs(x) < 1e21 else x


PROTOCOLS = ("", "1.0", "1.1")
"""Values of :attr:`Peer.protocol` ("" = not known yet)."""


def _protocol(value: object) -> str:
    if not isinstance(value, str) or value not in PROTOCOLS:
        raise InvalidPeerError(f"protocol must be one of {PROTOCOLS!r}, got {value!r:.40}")
    return value


@dataclass(slots=True)
class Peer:
    """One known node: identity, dial address, measured metrics and reputation score.

    ``added_at`` / ``last_seen`` are ``GoTime`` (nanoseconds and the writer's UTC offset
    kept, so a Go-written peers.json round-trips byte for byte); zero means "never".

    ``connected`` is runtime state only (never persisted, False after a load).

    ``protocol`` is this port's addition (issue 16): ``"1.1"`` once the peer completed a
    protocol 1.1 handshake with us (it is then pinned: a 1.0 handshake from or to its key is
    refused until reset), ``"1.0"`` if it spoke 1.0, ``""`` if unknown. Written to
    peers.json as ``"protocol"`` only when set (Go ignores the key; a Go-written file
    round-trips unchanged).
    """

    id: str
    name: str = ""
    public_key: str = ""
    address: str = ""
    role: str = ""
    added_at: GoTime = ZERO_TIME
    last_seen: GoTime = ZERO_TIME
    ping_ms: float = 0.0
    hops: int = 0
    geo_km: float = 0.0
    score: float = 0.0
    connected: bool = field(default=False, compare=False)
    protocol: str = ""

    def copy(self) -> Peer:
        """An independent copy (the registry never hands out its own records)."""
        return Peer(
            self.id,
            self.name,
            self.public_key,
            self.address,
            self.role,
            self.added_at,
            self.last_seen,
            self.ping_ms,
            self.hops,
            self.geo_km,
            self.score,
            self.connected,
            self.protocol,
        )

    def validated(self) -> Peer:
        """A copy with every field type- and range-checked (not the name rule).

        Raises InvalidPeerError. Numbers are normalised (``ping_ms`` float, ``hops`` int).
        """
        return Peer(
            _str("id", self.id, MAX_ID_LEN),
            _str("name", self.name, MAX_NAME_BYTES * 4),
            _str("publicKey", self.public_key, MAX_PUBLIC_KEY_LEN),
            _str("address", self.address, MAX_ADDRESS_LEN),
            _str("role", getattr(self.role, "value", self.role), MAX_ROLE_LEN),
            _time("addedAt", self.added_at),
            _time("lastSeen", self.last_seen),
            _float("pingMs", self.ping_ms),
            _int("hops", self.hops),
            _float("geoKm", self.geo_km),
            _float("score", self.score),
            bool(self.connected),
            _protocol(self.protocol),
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Peer:
        """Build from a peers.json element (Go keys). Missing keys take Go's zero values;
        unknown keys are ignored. Raises InvalidPeerError on a wrong type or range."""
        if not isinstance(d, Mapping):
            raise InvalidPeerError(f"peer entry must be an object, not {type(d).__name__}")
        g = d.get
        return cls(
            id=_str("id", g("id", ""), MAX_ID_LEN),
            name=_str("name", g("name", ""), MAX_NAME_BYTES * 4),
            public_key=_str("publicKey", g("publicKey", ""), MAX_PUBLIC_KEY_LEN),
            address=_str("address", g("address", ""), MAX_ADDRESS_LEN),
            role=_str("role", g("role", ""), MAX_ROLE_LEN),
            added_at=_opt_time(g("addedAt")),
            last_seen=_opt_time(g("lastSeen")),
            ping_ms=_float("pingMs", g("pingMs", 0.0)),
            hops=_int("hops", g("hops", 0)),
            geo_km=_float("geoKm", g("geoKm", 0.0)),
            score=_float("score", g("score", 0.0)),
            protocol=_protocol(g("protocol", "")),
        )

    def to_dict(self) -> dict[str, Any]:
        """The peers.json element, keys in Go's order; ``connected`` is not included."""
        return {
            "id": self.id,
            "name": self.name,
            "publicKey": self.public_key,
            "address": self.address,
            "role": self.role,
            "addedAt": format_time(self.added_at),
            "lastSeen": format_time(self.last_seen),
            "pingMs": _go_number(self.ping_ms),
            "hops": self.hops,
            "geoKm": _go_number(self.geo_km),
            "score": _go_number(self.score),
            **({"protocol": self.protocol} if self.protocol else {}),
        }
