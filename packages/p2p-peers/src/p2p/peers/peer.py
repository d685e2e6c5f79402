"""The peer record and its peers.json form (keys, order and time format as the Go node's).

Pure data: no files, no clock except ``now()`` for callers that stamp records.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

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
    "parse_time",
    "validate_peer_name",
]

#: Go's zero ``time.Time`` (``0001-01-01T00:00:00Z``): "never".
ZERO_TIME = datetime(1, 1, 1, tzinfo=timezone.utc)

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
_TIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})"
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


def now() -> datetime:
    """Current UTC time, the stamp for addedAt / lastSeen."""
    return datetime.now(timezone.utc)


def format_time(dt: datetime) -> str:
    """RFC3339Nano as Go writes it: trailing zeros of the fraction trimmed, Z for UTC."""
    off = dt.utcoffset()
    frac = f"{dt.microsecond:06d}".rstrip("0")
    text = (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:"
        f"{dt.second:02d}{'.' + frac if frac else ''}"
    )
    if off is None or off == timedelta(0):
        return text + "Z"
    minutes = int(off.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def parse_time(text: str) -> datetime:
    """Parse RFC3339(Nano); nanoseconds are truncated to microseconds."""
    m = _TIME_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise InvalidPeerError(f"bad RFC3339 time {str(text)[:40]!r}")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    micro = int((m.group(7) or "").ljust(6, "0")[:6])
    zone = m.group(8)
    if zone in ("Z", "z"):
        tz = timezone.utc
    else:
        mins = int(zone[1:3]) * 60 + int(zone[4:6])
        if mins >= 24 * 60:
            raise InvalidPeerError(f"bad RFC3339 offset {zone!r}")
        tz = timezone(timedelta(minutes=-mins if zone[0] == "-" else mins))
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError as e:
        raise InvalidPeerError(f"bad RFC3339 time {text[:40]!r}: {e}") from None


def _str(key: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidPeerError(f"{key} must be a string")
    if len(value) > limit:
        raise InvalidPeerError(f"{key} longer than {limit} characters")
    return value


def _float(key: str, value: object) -> float:
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


def _time(key: str, value: object) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidPeerError(f"{key} must be a datetime")
    if value.tzinfo is None:
        raise InvalidPeerError(f"{key} must be timezone-aware")
    return value


def _go_number(x: float) -> float | int:
    """Go's encoder writes integral floats without a fraction (``50``, not ``50.0``)."""
    x = float(x)
    return int(x) if x.is_integer() and abs(x) < 1e21 else x


@dataclass(slots=True)
class Peer:
    """One known node: identity, dial address, measured metrics and reputation score.

    ``connected`` is runtime state only (never persisted, False after a load).
    """

    id: str
    name: str = ""
    public_key: str = ""
    address: str = ""
    role: str = ""
    added_at: datetime = ZERO_TIME
    last_seen: datetime = ZERO_TIME
    ping_ms: float = 0.0
    hops: int = 0
    geo_km: float = 0.0
    score: float = 0.0
    connected: bool = field(default=False, compare=False)

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
            added_at=parse_time(g("addedAt", "0001-01-01T00:00:00Z")),
            last_seen=parse_time(g("lastSeen", "0001-01-01T00:00:00Z")),
            ping_ms=_float("pingMs", g("pingMs", 0.0)),
            hops=_int("hops", g("hops", 0)),
            geo_km=_float("geoKm", g("geoKm", 0.0)),
            score=_float("score", g("score", 0.0)),
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
        }
