"""The IPv4 prefix fast path gives exactly what ``ipaddress`` gives, or steps aside."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from p2p.transport._prefix import ipv4_prefix
from p2p.transport.admission import address_prefix
from p2p.transport.limits import source_prefix


def _slow(host: str, bits: int) -> str:
    return str(ipaddress.ip_network((ipaddress.ip_address(host), bits), strict=False))


@given(st.integers(0, 2**32 - 1), st.integers(0, 32))
def test_fast_path_matches_ipaddress(value: int, bits: int) -> None:
    host = str(ipaddress.IPv4Address(value))
    assert ipv4_prefix(host, bits) == _slow(host, bits)
    assert address_prefix(host, bits, 64) == _slow(host, bits)
    assert source_prefix(f"{host}:7777", bits, 64) == _slow(host, bits)


@pytest.mark.parametrize(
    "host",
    [
        "",
        "01.2.3.4",
        "1.2.3.04",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        " 1.2.3.4",
        "1.2.3.4 ",
        "0x1.2.3.4",
        "1.2.3.4%eth0",
        "::1",
        "::ffff:1.2.3.4",
        "localhost",
        "1.2.3.4\x00",
        "\uff11.2.3.4",  # a fullwidth digit one
    ],
)
def test_non_canonical_hosts_step_aside(host: str) -> None:
    assert ipv4_prefix(host, 24) is None


@pytest.mark.parametrize("bits", [-1, 33, 64])
def test_out_of_range_bits_step_aside(bits: int) -> None:
    assert ipv4_prefix("10.1.2.3", bits) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("::ffff:10.1.2.3", "10.1.2.0/24"),  # mapped: still counted as IPv4 (slow path)
        ("01.2.3.4", "01.2.3.4"),  # unparsable: its own source, as before
        ("2001:db8::1", "2001:db8::/64"),
    ],
)
def test_callers_keep_their_slow_path(host: str, expected: str) -> None:
    assert address_prefix(host, 24, 64) == expected
