"""Go ``time.Time.UnmarshalJSON`` acceptance for message timestamps, into ``GoTime``.

Go (1.20+) first tries a strict RFC 3339 parser and, when that fails, falls back to
``time.Parse(time.RFC3339, s)`` — its strict re-checks are disabled (go.dev/issue/54580) —
so it also takes a one-digit hour, ``,`` before the fraction and a zone of up to 24:60. It
sees the raw text between the quotes (JSON escapes are not decoded). We accept the same,
except zone offsets of 24 h or more, which Go itself cannot marshal again.
"""

from __future__ import annotations

import re
import time
from typing import Any

from p2p.identity import GoTime

__all__ = ["ParsedTime", "canonical_unix_ns", "format_utc", "parse_canonical", "parse_go_time"]

_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{1,2}):([0-9]{2}):([0-9]{2})"
    r"(?:([.,])([0-9]+))?(?:Z|([+-])([0-9]{2}):([0-9]{2}))"
)
_MDAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_DAY = 86_400

ParsedTime = tuple[int, int, int, bool]
"""``(unix_seconds, nanosecond, offset_seconds, canonical)``; ``canonical`` means Go would
marshal this value back to exactly the input text."""


def _days_from_civil(y: int, m: int, d: int) -> int:
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468


def parse_go_time(text: str) -> ParsedTime | None:
    """Parse like Go's ``Time.UnmarshalJSON`` on ``"text"``; ``None`` if Go would refuse."""
    m = _RE.fullmatch(text)
    if m is None:
        return None
    ys, mos, ds, hs, mis, ss, sep, frac, sign, ohs, oms = m.groups()
    year, month, day = int(ys), int(mos), int(ds)
    hour, minute, sec = int(hs), int(mis), int(ss)
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or sec > 59 or day < 1:
        return None
    mdays = _MDAYS[month]
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        mdays = 29
    if day > mdays:
        return None
    canonical = len(hs) == 2
    nanos = 0
    if frac is not None:
        nanos = int(frac[:9].ljust(9, "0"))
        canonical = canonical and sep == "." and len(frac) <= 9 and frac[-1] != "0"
    offset = 0
    if sign is not None:
        oh, om = int(ohs), int(oms)
        if oh > 24 or om > 60:
            return None
        offset = oh * 3600 + om * 60
        if offset >= _DAY:
            return None  # Go accepts 24:00 but cannot marshal it again
        if sign == "-":
            offset = -offset
        canonical = canonical and offset != 0 and om < 60
    local = _days_from_civil(year, month, day) * _DAY + hour * 3600 + minute * 60 + sec
    return local - offset, nanos, offset, canonical


def to_go_time(parsed: ParsedTime) -> GoTime:
    return GoTime(parsed[0], parsed[1], parsed[2])


_DAYS: dict[str, int] = {}


def parse_canonical(text: str) -> tuple[int, int, int]:
    """``(unix_seconds, nanosecond, offset_seconds)`` of text already known to be in Go's
    canonical RFC3339Nano form (validated by the caller); fixed offsets, a per-date cache."""
    days = _DAYS.get(text[:10])
    if days is None:
        if len(_DAYS) > 1024:
            _DAYS.clear()
        days = _DAYS[text[:10]] = _days_from_civil(int(text[:4]), int(text[5:7]), int(text[8:10]))
    sec = days * _DAY + int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19])
    if text[-1] == "Z":
        offset, end = 0, len(text) - 1
    else:
        end = len(text) - 6
        offset = int(text[end + 1 : end + 3]) * 3600 + int(text[end + 4 :]) * 60
        if text[end] == "-":
            offset = -offset
    nanos = int(text[20:end].ljust(9, "0")) if end > 19 else 0
    return sec - offset, nanos, offset


_last_head: tuple[str, int] = ("", 0)  # ("YYYY-MM-DDTHH:MM:SS", unix s) of the last UTC text


def canonical_unix_ns(text: str) -> int:
    """Nanoseconds since the epoch of canonical text (as :func:`parse_canonical` takes).
    UTC texts reuse the last second's conversion: a stream of messages mostly shares it."""
    global _last_head
    if text[-1] != "Z" or len(text) < 20:
        sec, nanos, _ = parse_canonical(text)
        return sec * 1_000_000_000 + nanos
    head = text[:19]
    cached = _last_head
    if cached[0] == head:
        sec = cached[1]
    else:
        sec = parse_canonical(head + "Z")[0]
        _last_head = (head, sec)  # one tuple swap: racing threads each store a correct pair
    if len(text) > 20:
        return sec * 1_000_000_000 + int(text[20:-1].ljust(9, "0"))
    return sec * 1_000_000_000


_last_second: list[Any] = [None, ""]  # (sec, "YYYY-MM-DDTHH:MM:SS"): one entry suffices


def format_utc(sec: int, nsec: int) -> str:
    """Go's RFC3339Nano text of a UTC instant (``sec`` within years 1970..9999)."""
    cached = _last_second
    if cached[0] == sec:
        head: str = cached[1]
    else:
        tm = time.gmtime(sec)
        head = (
            f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}"
            f"T{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}"
        )
        cached[0], cached[1] = sec, head  # racing threads both write a correct pair
    if nsec:
        return f"{head}.{f'{nsec:09d}'.rstrip('0')}Z"
    return head + "Z"
