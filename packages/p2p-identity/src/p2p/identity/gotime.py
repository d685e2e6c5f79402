"""Go ``time.Time`` as JSON carries it: RFC 3339 with nanoseconds and the writer's offset.

Python's ``datetime`` keeps microseconds only, so a Go timestamp such as
``2026-11-27T14:34:11.458922911+01:00`` would not survive a round trip through it.
``GoTime`` keeps the instant (Unix seconds + nanoseconds) and the UTC offset, parses
exactly what Go's ``time.Time.UnmarshalJSON`` accepts and formats exactly as Go's
``MarshalJSON`` (``RFC3339Nano``: trailing zeros of the fraction trimmed, ``Z`` for a zero
offset). Calendar arithmetic is done here (proleptic Gregorian), so Go's whole range of
years 0000-9999 works, including the zero time ``0001-01-01T00:00:00Z``.

The one home of Go time for every p2p package: identity and peers files use :class:`GoTime`
(with a fast path for the common shapes), the message envelope uses the lenient
:func:`parse_go_time` and the canonical-text hot paths below it.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from p2p.identity.errors import IdentityFormatError

__all__ = [
    "GoTime",
    "ParsedTime",
    "canonical_unix_ns",
    "format_utc",
    "parse_canonical",
    "parse_go_time",
    "to_go_time",
]

_NS = 1_000_000_000
_DAY = 86_400
# Unix seconds of 0001-01-01T00:00:00Z, Go's zero time.
_ZERO_UNIX = -62_135_596_800
# Longest valid text: 19 (date-time) + 1 + 9 digits... we accept any number of fraction
# digits (Go does, truncating past 9) but bound the input at this many characters.
MAX_TEXT_LEN = 64

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_ORDINAL = date(9999, 12, 31).toordinal()
_FAST = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:Z|([+-])(\d\d):(\d\d))",
    re.ASCII,
)
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:(Z)|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    y -= m <= 2
    era = y // 400  # floor division: no negative-year adjustment needed in Python
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _civil_from_days(z: int) -> tuple[int, int, int]:
    """Inverse of :func:`_days_from_civil`."""
    z += 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return y + (m <= 2), m, d


def _parse_fast(text: str) -> tuple[int, int, int] | None:
    """The common shapes through C date arithmetic, ~3x faster than the general path (a
    peers file of 10^6 peers parses 2x10^6 times); None: let the general path decide."""
    m = _FAST.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = map(int, m.group(1, 2, 3, 4, 5, 6))
    if year < 1 or hour > 23 or minute > 59 or second > 59:
        return None
    try:
        days = date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    frac = m.group(7)
    offset = 0
    if m.group(8):
        oh, om = int(m.group(9)), int(m.group(10))
        if oh > 23 or om > 59:
            return None
        offset = (oh * 3600 + om * 60) * (-1 if m.group(8) == "-" else 1)
    local = days * _DAY + hour * 3600 + minute * 60 + second
    return local - offset, int(frac.ljust(9, "0")) if frac else 0, offset


def _days_in_month(y: int, m: int) -> int:
    if m == 2:
        leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
        return 29 if leap else 28
    return 30 if m in (4, 6, 9, 11) else 31


@dataclass(frozen=True, slots=True, order=True)
class GoTime:
    """An instant with nanosecond precision and the UTC offset it was written with.

    Ordering follows the instant (offset last); equality also compares the offset, like
    Go's ``==`` on ``time.Time`` values (use :meth:`same_instant` for Go's ``Equal``).
    """

    unix_seconds: int
    nanosecond: int = 0
    offset_seconds: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.nanosecond < _NS:
            raise ValueError("nanosecond must be in [0, 1e9)")
        if not -86_400 < self.offset_seconds < 86_400:
            raise ValueError("UTC offset must be within ±24 h")

    # -- construction -------------------------------------------------------------------

    @classmethod
    def zero(cls) -> GoTime:
        """Go's zero ``time.Time``: ``0001-01-01T00:00:00Z``."""
        return cls(_ZERO_UNIX, 0, 0)

    @classmethod
    def now(cls) -> GoTime:
        """The current time in the local zone, as Go's ``time.Now()`` would marshal it."""
        ns = time.time_ns()
        sec, nsec = divmod(ns, _NS)
        offset = datetime.fromtimestamp(sec, timezone.utc).astimezone().utcoffset()
        off = int(offset.total_seconds()) if offset is not None else 0
        return cls(sec, nsec, off)

    @classmethod
    def from_datetime(cls, dt: datetime, nanosecond: int | None = None) -> GoTime:
        """From an aware ``datetime``; ``nanosecond`` overrides its microseconds."""
        offset = dt.utcoffset()
        if offset is None:
            raise ValueError("datetime must be timezone-aware")
        off = int(offset.total_seconds())
        local = _days_from_civil(dt.year, dt.month, dt.day) * _DAY + (
            dt.hour * 3600 + dt.minute * 60 + dt.second
        )
        ns = dt.microsecond * 1000 if nanosecond is None else nanosecond
        return cls(local - off, ns, off)

    @classmethod
    def parse(cls, text: str) -> GoTime:
        """Parse RFC 3339 exactly as Go's ``time.Time.UnmarshalJSON`` does (strict form):
        ``T`` and ``Z`` upper case, two-digit fields in range, ``.`` before the fraction,
        offsets ``±hh:mm`` with hh < 24 and mm < 60, digits past nanoseconds truncated."""
        fast = _parse_fast(text)
        if fast is not None:
            return cls(*fast)
        return cls._parse_general(text)

    @classmethod
    def _parse_general(cls, text: str) -> GoTime:
        """:meth:`parse` without the fast path (every shape, and every error)."""
        if len(text) > MAX_TEXT_LEN:
            raise IdentityFormatError(f"timestamp longer than {MAX_TEXT_LEN} characters")
        m = _RFC3339.fullmatch(text)
        if m is None:
            raise IdentityFormatError(f"timestamp {text!r} is not RFC 3339")
        year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
        if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
            raise IdentityFormatError(f"timestamp {text!r}: day out of range")
        if hour > 23 or minute > 59 or second > 59:
            raise IdentityFormatError(f"timestamp {text!r}: time of day out of range")
        frac = m.group(7)
        nanos = int(frac[:9].ljust(9, "0")) if frac else 0
        offset = 0
        if m.group(8) is None:
            oh, om = int(m.group(10)), int(m.group(11))
            if oh > 23 or om > 59:
                raise IdentityFormatError(f"timestamp {text!r}: UTC offset out of range")
            offset = (oh * 3600 + om * 60) * (-1 if m.group(9) == "-" else 1)
        local = _days_from_civil(year, month, day) * _DAY + hour * 3600 + minute * 60 + second
        return cls(local - offset, nanos, offset)

    # -- views --------------------------------------------------------------------------

    def is_zero(self) -> bool:
        """True for Go's zero time (which ``null`` or a missing field decode to)."""
        return self.unix_seconds == _ZERO_UNIX and self.nanosecond == 0

    def timestamp_ns(self) -> int:
        """Nanoseconds since the Unix epoch."""
        return self.unix_seconds * _NS + self.nanosecond

    def same_instant(self, other: GoTime) -> bool:
        """Go's ``Time.Equal``: the same instant, whatever the offsets."""
        return self.timestamp_ns() == other.timestamp_ns()

    def to_datetime(self) -> datetime:
        """An aware ``datetime`` in the stored offset (sub-microsecond digits dropped)."""
        tz = timezone(timedelta(seconds=self.offset_seconds))
        base = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(
            seconds=self.unix_seconds, microseconds=self.nanosecond // 1000
        )
        return base.astimezone(tz)

    def format(self) -> str:
        """RFC3339Nano as Go formats it."""
        days, secs = divmod(self.unix_seconds + self.offset_seconds, _DAY)
        if 1 <= days + _EPOCH_ORDINAL <= _MAX_ORDINAL:  # C date arithmetic, ~3x faster
            dd = date.fromordinal(days + _EPOCH_ORDINAL)
            y, mo, d = dd.year, dd.month, dd.day
        else:
            y, mo, d = _civil_from_days(days)
        if not 0 <= y <= 9999:
            raise IdentityFormatError("year outside [0, 9999] cannot be written as RFC 3339")
        hh, rem = divmod(secs, 3600)
        mm, ss = divmod(rem, 60)
        out = f"{y:04d}-{mo:02d}-{d:02d}T{hh:02d}:{mm:02d}:{ss:02d}"
        if self.nanosecond:
            out += "." + f"{self.nanosecond:09d}".rstrip("0")
        if self.offset_seconds == 0:
            return out + "Z"
        sign = "-" if self.offset_seconds < 0 else "+"
        oh, om = divmod(abs(self.offset_seconds) // 60, 60)
        return f"{out}{sign}{oh:02d}:{om:02d}"

    def __str__(self) -> str:
        return self.format()


# --- message timestamps: Go's lenient UnmarshalJSON and the hot-path canonical forms --------
#
# Go (1.20+) first tries a strict RFC 3339 parser and, when that fails, falls back to
# ``time.Parse(time.RFC3339, s)`` — its strict re-checks are disabled (go.dev/issue/54580) —
# so it also takes a one-digit hour, ``,`` before the fraction and a zone of up to 24:60. It
# sees the raw text between the quotes (JSON escapes are not decoded). :func:`parse_go_time`
# accepts the same, except zone offsets of 24 h or more, which Go itself cannot marshal
# again. The message envelope uses these; :meth:`GoTime.parse` is the strict form.

_LENIENT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{1,2}):([0-9]{2}):([0-9]{2})"
    r"(?:([.,])([0-9]+))?(?:Z|([+-])([0-9]{2}):([0-9]{2}))"
)

ParsedTime = tuple[int, int, int, bool]
"""``(unix_seconds, nanosecond, offset_seconds, canonical)``; ``canonical`` means Go would
marshal this value back to exactly the input text."""


def parse_go_time(text: str) -> ParsedTime | None:
    """Parse like Go's ``Time.UnmarshalJSON`` on ``"text"``; ``None`` if Go would refuse."""
    m = _LENIENT.fullmatch(text)
    if m is None:
        return None
    ys, mos, ds, hs, mis, ss, sep, frac, sign, ohs, oms = m.groups()
    year, month, day = int(ys), int(mos), int(ds)
    hour, minute, sec = int(hs), int(mis), int(ss)
    if not 1 <= month <= 12 or hour > 23 or minute > 59 or sec > 59 or day < 1:
        return None
    if day > _days_in_month(year, month):
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
    """The :class:`GoTime` of a :func:`parse_go_time` result."""
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
