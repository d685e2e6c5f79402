"""GoTime: RFC 3339 with nanoseconds, parsed and written as Go's time.Time JSON."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from p2p.identity import GoTime, IdentityError, IdentityFormatError, gotime

_TS = re.compile(r'"(?:ts|createdAt|sentAt|addedAt|lastSeen)":"([^"]+)"')


def _go_timestamps(golden: dict[str, Any]) -> list[str]:
    """Every timestamp Go wrote in the message and capture vectors."""
    written = {k: v for k, v in golden["messages"].items() if k != "decode_cases"}
    text = json.dumps(written) + json.dumps(golden["wire_capture"])
    found = set(_TS.findall(text.replace('\\"', '"')))
    return sorted(found)


def test_go_written_timestamps_round_trip(golden: dict[str, Any]) -> None:
    stamps = _go_timestamps(golden)
    assert len(stamps) >= 10
    for s in stamps:
        assert GoTime.parse(s).format() == s


def test_timestamp_formats_section(golden: dict[str, Any]) -> None:
    cases = golden["messages"]["timestamp_formats"]
    for case in cases:
        ts = json.loads(case["json"])["ts"]
        assert GoTime.parse(ts).format() == ts, case["name"]


def test_decode_cases_on_ts(golden: dict[str, Any]) -> None:
    """Go's verdicts on the ``ts`` decode cases, applied to the timestamp alone."""
    for case in golden["messages"]["decode_cases"]:
        if not case["name"].startswith("ts_"):
            continue
        ts = json.loads(case["input"]).get("ts")
        if not isinstance(ts, str):
            continue  # number / null / missing are JSON-level cases
        if case["ok"]:
            assert GoTime.parse(ts).format() == case["parsed"]["ts"], case["name"]
        else:
            with pytest.raises(IdentityFormatError):
                GoTime.parse(ts)


def test_known_values() -> None:
    t = GoTime.parse("2026-11-27T14:34:11.458922911Z")
    assert t.nanosecond == 458922911
    assert t.unix_seconds == int(
        datetime(2026, 11, 27, 14, 34, 11, tzinfo=timezone.utc).timestamp()
    )
    m = GoTime.parse("2025-01-01T21:34:05.000000001-05:30")
    assert m.offset_seconds == -(5 * 3600 + 30 * 60)
    assert m.same_instant(GoTime.parse("2025-01-02T03:04:05.000000001Z"))
    assert m != GoTime.parse("2025-01-02T03:04:05.000000001Z")  # offset differs
    assert GoTime.parse("2025-01-02T03:04:05+00:00").format() == "2025-01-02T03:04:05Z"
    assert GoTime.parse("2025-01-02T03:04:05.100Z").format() == "2025-01-02T03:04:05.1Z"
    # digits past nanoseconds are truncated, as Go does
    assert GoTime.parse("2025-01-02T03:04:05.1234567891234Z").nanosecond == 123456789
    assert GoTime.zero().format() == "0001-01-01T00:00:00Z"
    assert GoTime.parse("0001-01-01T00:00:00Z").is_zero()
    assert GoTime.parse("0000-01-01T00:00:00Z").format() == "0000-01-01T00:00:00Z"
    assert GoTime.parse("9999-12-31T23:59:59.999999999Z").format() == (
        "9999-12-31T23:59:59.999999999Z"
    )
    assert GoTime.parse("2024-02-29T00:00:00Z").format() == "2024-02-29T00:00:00Z"


@pytest.mark.parametrize(
    "text",
    [
        "2025-01-02T03:04:05",  # no zone
        "2025-01-02 03:04:05Z",  # space
        "2025-01-02t03:04:05z",  # lower case
        "2025-01-02T03:04:05z",
        "2025-01-02T3:04:05Z",  # one-digit hour
        "2025-01-02T03:04:05,123Z",  # comma fraction
        "2025-01-02T03:04:05.Z",  # empty fraction
        "2025-13-02T03:04:05Z",
        "2025-02-29T03:04:05Z",  # not a leap year
        "2025-04-31T03:04:05Z",
        "2025-01-00T03:04:05Z",
        "2025-01-02T24:00:00Z",
        "2025-01-02T03:60:05Z",
        "2025-01-02T03:04:60Z",  # Go has no leap seconds
        "2025-01-02T03:04:05+24:00",
        "2025-01-02T03:04:05+01:60",
        "2025-01-02T03:04:05+0100",
        "+2025-01-02T03:04:05Z",
        "\uff12\uff10\uff12\uff15-01-02T03:04:05Z",  # non-ASCII (fullwidth) digits
        "2025-01-02T03:04:05." + "1" * 100 + "Z",  # over the length bound
        "",
    ],
)
def test_rejects_what_go_rejects(text: str) -> None:
    with pytest.raises(IdentityFormatError):
        GoTime.parse(text)


def test_now_is_local_and_precise() -> None:
    t = GoTime.now()
    local = datetime.now().astimezone().utcoffset()
    assert local is not None
    assert t.offset_seconds == int(local.total_seconds())
    assert abs(t.to_datetime().timestamp() - datetime.now().timestamp()) < 60
    assert GoTime.parse(t.format()) == t


def test_datetime_conversion() -> None:
    dt = datetime(2025, 1, 2, 5, 4, 5, 500000, tzinfo=timezone(timedelta(hours=2)))
    t = GoTime.from_datetime(dt)
    assert t.format() == "2025-01-02T05:04:05.5+02:00"
    assert t.to_datetime() == dt
    assert (
        GoTime.from_datetime(dt, nanosecond=123).format() == "2025-01-02T05:04:05.000000123+02:00"
    )
    with pytest.raises(ValueError):
        GoTime.from_datetime(datetime(2025, 1, 2))  # naive
    with pytest.raises(ValueError):
        GoTime(0, 1_000_000_000)


_offsets = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(lambda m: m * 60)


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    st.integers(min_value=0, max_value=999_999_999),
    _offsets,
)
def test_format_parse_round_trip(dt: datetime, ns: int, offset: int) -> None:
    aware = dt.replace(tzinfo=timezone(timedelta(seconds=offset)), microsecond=0)
    t = GoTime.from_datetime(aware, nanosecond=ns)
    text = t.format()
    assert GoTime.parse(text) == t
    # the calendar arithmetic agrees with Python's datetime
    expected = aware.isoformat()[:19]
    assert text[:19] == expected
    assert t.to_datetime().replace(microsecond=0) == aware


def test_fast_paths_agree_with_the_general_ones() -> None:
    """GoTime.parse's fast path gives exactly the general path's answers (or defers to it);
    format's C date arithmetic gives the civil algorithm's dates."""
    import random

    rng = random.Random(99)
    samples = [
        "0001-01-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "2024-02-29T23:59:59.999999999-23:59",
        "2023-02-29T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:60:00Z",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00.Z",
        "2026-01-01t00:00:00Z",
        "2026-01-01T00:00:00.1234567891Z",
    ]
    for _ in range(3000):
        frac = rng.choice(["", "." + str(rng.randrange(10**9)).zfill(rng.randint(1, 9))])
        sign = rng.choice("+-")
        zone = rng.choice(["Z", f"{sign}{rng.randint(0, 25):02d}:{rng.randint(0, 61):02d}"])
        day = f"{rng.randint(0, 9999):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 31):02d}"
        clock = f"{rng.randint(0, 24):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 60):02d}"
        samples.append(f"{day}T{clock}{frac}{zone}")
    for text in samples:
        try:
            want: GoTime | None = GoTime._parse_general(text)
        except (IdentityError, ValueError):
            want = None
        if want is None:
            with pytest.raises((IdentityError, ValueError)):
                GoTime.parse(text)
        else:
            got = GoTime.parse(text)
            assert (got.unix_seconds, got.nanosecond, got.offset_seconds) == (
                want.unix_seconds,
                want.nanosecond,
                want.offset_seconds,
            ), text
            days = (got.unix_seconds + got.offset_seconds) // 86_400
            y, m, d = gotime._civil_from_days(days)
            assert got.format().startswith(f"{y:04d}-{m:02d}-{d:02d}T"), text
