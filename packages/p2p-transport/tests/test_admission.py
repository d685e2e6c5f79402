"""The admission table without sockets: events in, verdicts out, an injected clock."""

from __future__ import annotations

import pytest
from p2p.transport import TransportConfig
from p2p.transport.admission import (
    Admission,
    AdmissionError,
    AdmissionLimits,
    Admit,
    ConnState,
    Refuse,
    address_prefix,
)


def table(**limits: object) -> Admission:
    base: dict[str, object] = {
        "burst_per_prefix": 1000,
        "refill_per_prefix_s": 1000.0,
        "reserve": 0,
    }
    base.update(limits)
    return Admission(AdmissionLimits(**base))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("host", "v4", "v6", "prefix"),
    [
        ("10.1.2.3", 32, 64, "10.1.2.3/32"),
        ("10.1.2.3", 24, 64, "10.1.2.0/24"),
        ("2001:db8:1:2:3:4:5:6", 32, 64, "2001:db8:1:2::/64"),
        ("2001:db8:1:2:3:4:5:6", 32, 48, "2001:db8:1::/48"),
        ("::ffff:10.1.2.3", 24, 64, "10.1.2.0/24"),  # IPv4-mapped counts as IPv4
        ("fe80::1%eth0", 32, 64, "fe80::/64"),
        ("unknown", 32, 64, "unknown"),
    ],
)
def test_address_prefix(host: str, v4: int, v6: int, prefix: str) -> None:
    assert address_prefix(host, v4, v6) == prefix


def test_limits_from_config() -> None:
    cfg = TransportConfig(
        max_conns=50, max_pending_handshakes=7, max_handshakes_per_ip=3, known_reserve_fraction=0.2
    )
    lim = AdmissionLimits.from_config(cfg)
    assert (lim.max_conns, lim.max_pending, lim.max_pending_per_prefix, lim.reserve) == (
        50,
        7,
        3,
        10,
    )


def test_pending_and_established_are_separate_budgets() -> None:
    adm = table(max_conns=2, max_pending=4, max_pending_per_prefix=10)
    for i in range(4):  # four silent upgrades: all pending, no established slot used
        assert adm.upgrade_requested(f"s{i}", "10.0.0.1", 0.0) == Admit()
    assert adm.pending == 4 and adm.established == 0
    assert adm.handshake_done("s0", known=False) == Admit()
    assert adm.handshake_done("s1", known=False) == Admit()
    # every inbound slot is taken: upgrades now get Go's 503
    verdict = adm.upgrade_requested("late", "10.0.0.2", 0.0)
    assert isinstance(verdict, Refuse) and verdict.status == 503
    assert verdict.body == "Too many connections\n" and verdict.counter == "max_conns"
    # a pending one that completes now is refused and forgotten
    verdict = adm.handshake_done("s2", known=False)
    assert isinstance(verdict, Refuse) and verdict.reason == "too many connections"
    assert adm.state("s2") is ConnState.NEW and adm.pending == 1
    adm.closed("s0")
    assert adm.handshake_done("s3", known=False) == Admit()
    assert adm.state("s3") is ConnState.ESTABLISHED and adm.established == 2


def test_outbound_connections_never_take_inbound_slots() -> None:
    """A controller holding many dialled connections still accepts inbound ones (issue 14)."""
    adm = table(max_conns=2, max_outbound=100)
    for i in range(50):
        assert adm.dial_requested(f"out{i}") == Admit()
        adm.outbound_established(f"out{i}", "10.9.9.9")
    adm.outbound_established("unreserved", "10.9.9.8")  # counted, never refused
    assert adm.outbound == 51 and adm.established == 0
    assert adm.upgrade_requested("in", "10.0.0.1", 0.0) == Admit()
    assert adm.handshake_done("in", known=False) == Admit()
    assert adm.established == 1 and adm.established_from("10.9.9.9/32") == 50


def test_dials_have_their_own_budget() -> None:
    adm = table(max_conns=1, max_outbound=2)
    assert adm.upgrade_requested("in", "10.0.0.1", 0.0) == Admit()
    assert adm.handshake_done("in", known=False) == Admit()  # inbound budget now full
    assert adm.dial_requested("d1") == Admit()  # a dial in progress counts
    assert adm.state("d1") is ConnState.DIALLING
    assert adm.dial_requested("d2") == Admit()
    verdict = adm.dial_requested("d3")
    assert isinstance(verdict, Refuse) and verdict.counter == "outbound_full"
    assert verdict.reason == "outbound budget full"
    assert adm.state("d3") is ConnState.NEW
    adm.closed("d1")  # a failed dial gives its slot back
    assert adm.outbound == 1
    assert adm.dial_requested("d3") == Admit()
    adm.outbound_established("d3", "10.0.0.5")
    adm.closed("d3")
    adm.closed("d3")
    assert adm.outbound == 1 and adm.established_from("10.0.0.5/32") == 0


def test_limits_take_the_outbound_budget_from_config() -> None:
    lim = AdmissionLimits.from_config(TransportConfig(max_conns=7, max_outbound_conns=9))
    assert (lim.max_conns, lim.max_outbound) == (7, 9)


def test_per_prefix_pending_cap_and_rate() -> None:
    adm = table(max_pending_per_prefix=2, burst_per_prefix=3, refill_per_prefix_s=1.0)
    assert adm.upgrade_requested("a", "10.0.0.1", 0.0) == Admit()
    assert adm.upgrade_requested("b", "10.0.0.1", 0.0) == Admit()
    verdict = adm.upgrade_requested("c", "10.0.0.1", 0.0)
    assert isinstance(verdict, Refuse) and (verdict.status, verdict.counter) == (
        429,
        "ip_concurrent",
    )
    adm.closed("a")
    assert adm.upgrade_requested("c", "10.0.0.1", 0.0) == Admit()  # third token
    adm.closed("b")
    verdict = adm.upgrade_requested("d", "10.0.0.1", 0.5)
    assert isinstance(verdict, Refuse) and verdict.counter == "ip_rate"
    assert adm.upgrade_requested("d", "10.0.0.1", 1.5) == Admit()  # refilled
    # another address is another source
    assert adm.upgrade_requested("e", "10.0.0.2", 1.5) == Admit()


def test_prefix_length_groups_addresses() -> None:
    adm = table(max_pending_per_prefix=2, ipv4_prefix_len=24, ipv6_prefix_len=48)
    assert adm.upgrade_requested("a", "10.0.0.1", 0.0) == Admit()
    assert adm.upgrade_requested("b", "10.0.0.2", 0.0) == Admit()
    assert isinstance(adm.upgrade_requested("c", "10.0.0.3", 0.0), Refuse)
    assert adm.upgrade_requested("c", "10.0.1.3", 0.0) == Admit()
    assert adm.upgrade_requested("d", "2001:db8:1:1::1", 0.0) == Admit()
    assert adm.upgrade_requested("e", "2001:db8:1:2::1", 0.0) == Admit()
    assert isinstance(adm.upgrade_requested("f", "2001:db8:1:3::1", 0.0), Refuse)


def test_full_pending_budget_evicts_the_heaviest_source() -> None:
    """13 sources x 8 silent sockets against a budget of 64: a newcomer from a fresh
    address always gets a slot, taken from the oldest socket of the heaviest source."""
    adm = table(max_pending=64, max_pending_per_prefix=8)
    admitted = []
    for round_ in range(8):
        for src in range(13):
            key = f"{src}-{round_}"
            verdict = adm.upgrade_requested(key, f"10.0.0.{src}", 0.0)
            if isinstance(verdict, Admit):
                admitted.append(key)
    assert adm.pending == 64
    verdict = adm.upgrade_requested("honest", "10.9.9.9", 0.0)
    assert isinstance(verdict, Admit) and len(verdict.evict) == 1
    victim = verdict.evict[0]
    assert adm.state(victim) is ConnState.NEW  # forgotten by the table
    assert adm.state("honest") is ConnState.PENDING and adm.pending == 64
    assert adm.handshake_done("honest", known=True) == Admit()


def test_eviction_prefers_the_heaviest_then_the_oldest() -> None:
    adm = table(max_pending=4, max_pending_per_prefix=4)
    for key, host in [
        ("a1", "10.0.0.1"),
        ("b1", "10.0.0.2"),
        ("a2", "10.0.0.1"),
        ("a3", "10.0.0.1"),
    ]:
        assert adm.upgrade_requested(key, host, 0.0) == Admit()
    assert adm.upgrade_requested("n", "10.0.0.3", 0.0) == Admit(("a1",))
    # a: 2, b: 1, n: 1 -> equal-weight tie broken by arrival: a2 before b1
    assert adm.upgrade_requested("m", "10.0.0.4", 0.0) == Admit(("a2",))
    # now every source holds one: a newcomer from a source holding one already is refused
    verdict = adm.upgrade_requested("b2", "10.0.0.2", 0.0)
    assert isinstance(verdict, Refuse) and (verdict.status, verdict.counter) == (
        503,
        "pending_full",
    )
    # a fresh source takes the oldest of the (equal) singletons
    assert adm.upgrade_requested("z", "10.0.0.9", 0.0) == Admit(("b1",))


def test_the_heaviest_source_cannot_evict_others() -> None:
    adm = table(max_pending=3, max_pending_per_prefix=3)
    assert adm.upgrade_requested("x", "10.0.0.1", 0.0) == Admit()
    assert adm.upgrade_requested("y", "10.0.0.1", 0.0) == Admit()
    assert adm.upgrade_requested("h", "10.0.0.2", 0.0) == Admit()
    verdict = adm.upgrade_requested("z", "10.0.0.1", 0.0)
    assert isinstance(verdict, Refuse) and verdict.counter == "pending_full"
    assert adm.state("h") is ConnState.PENDING


def test_reserve_is_for_known_peers() -> None:
    adm = table(max_conns=10, reserve=3, max_pending=20, max_pending_per_prefix=20)
    for i in range(10):
        adm.upgrade_requested(i, f"10.0.0.{i}", 0.0)
    for i in range(7):
        assert adm.handshake_done(i, known=False) == Admit()
    verdict = adm.handshake_done(7, known=False)
    assert isinstance(verdict, Refuse) and verdict.counter == "reserved"
    assert adm.handshake_done(8, known=True) == Admit()
    assert adm.established == 8
    # a stranger's duplicate (replacement or probation) is admitted over the totals
    adm.upgrade_requested("dup", "10.0.0.1", 0.0)
    assert adm.handshake_done("dup", known=False, duplicate=True) == Admit()
    assert adm.established == 9


def test_per_prefix_established_cap_spares_known_peers() -> None:
    adm = table(max_conns=100, reserve=0, max_conns_per_prefix=2, max_pending_per_prefix=10)
    for key in "abcd":
        adm.upgrade_requested(key, "10.0.0.1", 0.0)
    assert adm.handshake_done("a", known=False) == Admit()
    assert adm.handshake_done("b", known=False) == Admit()
    verdict = adm.handshake_done("c", known=False)
    assert isinstance(verdict, Refuse) and verdict.counter == "prefix_conns"
    assert adm.handshake_done("d", known=True) == Admit()
    assert adm.established_from("10.0.0.1/32") == 3
    adm.closed("a")
    adm.upgrade_requested("e", "10.0.0.1", 0.0)
    assert adm.handshake_done("e", known=False) == Admit()


def test_closed_releases_everything_and_is_idempotent() -> None:
    adm = table()
    adm.upgrade_requested("a", "10.0.0.1", 0.0)
    adm.upgrade_requested("b", "10.0.0.1", 0.0)
    adm.handshake_done("b", known=False)
    adm.outbound_established("c", "10.0.0.2")
    for key in "abc":
        adm.closed(key)
        adm.closed(key)
    adm.closed("never-seen")
    assert adm.pending == adm.established == 0
    assert adm.pending_from("10.0.0.1/32") == adm.established_from("10.0.0.1/32") == 0


def test_events_out_of_order_are_errors() -> None:
    adm = table()
    with pytest.raises(AdmissionError):
        adm.handshake_done("x", known=False)  # never upgraded
    adm.upgrade_requested("x", "10.0.0.1", 0.0)
    with pytest.raises(AdmissionError):
        adm.upgrade_requested("x", "10.0.0.1", 0.0)
    adm.handshake_done("x", known=False)
    with pytest.raises(AdmissionError):
        adm.handshake_done("x", known=False)
    with pytest.raises(AdmissionError):
        adm.outbound_established("x", "10.0.0.1")
    with pytest.raises(AdmissionError):
        adm.dial_requested("x")


@pytest.mark.parametrize(
    "changes",
    [
        {"max_pending_handshakes": 0},
        {"max_conns_per_prefix": 0},
        {"ipv4_prefix_len": 33},
        {"ipv6_prefix_len": 0},
        {"known_reserve_fraction": 1.0},
        {"known_reserve_fraction": -0.1},
        {"write_limit": 0},
        {"max_outbound_bytes": 1024},  # below write_limit + max_message_size
        {"max_handshake_outbound_bytes": 0},
        {"max_inflight_bytes": 0},
        {"recv_queue_frames": 0},
        {"recv_queue_frames": 5000},
    ],
)
def test_hold_the_line_knobs_are_validated(changes: dict[str, object]) -> None:
    from p2p.transport import ConfigError

    with pytest.raises(ConfigError):
        TransportConfig(**changes)  # type: ignore[arg-type]


def test_known_reserve_rounds_down() -> None:
    assert TransportConfig().known_reserve == 10
    assert TransportConfig(max_conns=5).known_reserve == 0


def test_allowlist_gate_knows_its_keys() -> None:
    from p2p.transport import AllowlistGate, OpenGate

    gate = AllowlistGate(["key-a"])
    assert gate.is_peer_known("id", "key-a") and not gate.is_peer_known("id", "key-b")
    assert not hasattr(OpenGate(), "is_peer_known")  # nobody is known to an open gate
