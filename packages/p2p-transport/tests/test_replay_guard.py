"""ReplayGuard: replay protection per peer key over the whole ts window (sans-I/O)."""

from __future__ import annotations

import pytest
from p2p.transport import TransportConfig
from p2p.transport.limits import ReplayGuard, source_prefix

NOW = 1_800_000_000.0


def _guard(**kw: int) -> ReplayGuard:
    caps = {"max_per_peer": 100, "max_entries": 1000, "max_peers": 10}
    caps.update(kw)
    return ReplayGuard(300.0, **caps)


def test_an_id_is_remembered_until_its_own_ts_plus_window() -> None:
    g = _guard()
    future = NOW + 300.0  # the latest ts the window accepts
    assert g.check_and_mark("A", "m1", future, NOW)
    # arrival + 300 s has passed; ts + 300 s has not: still a replay
    assert not g.check_and_mark("A", "m1", future, NOW + 599.0)
    g.sweep(NOW + 599.0)
    assert ("A", "m1") in g
    g.sweep(NOW + 601.0)  # now its ts is outside the window: the ts check refuses it
    assert ("A", "m1") not in g


def test_tables_are_per_peer_key() -> None:
    g = _guard()
    assert g.check_and_mark("A", "same-id", NOW, NOW)
    assert g.check_and_mark("B", "same-id", NOW, NOW)  # B cannot block or evict A's ids
    assert not g.check_and_mark("A", "same-id", NOW, NOW)


def test_other_peers_traffic_cannot_evict_an_id() -> None:
    g = _guard(max_per_peer=50, max_entries=200, max_peers=1000)
    assert g.check_and_mark("victim", "start_miner", NOW, NOW)
    for i in range(5000):  # a flood of fresh ids from many attacker identities
        g.check_and_mark(f"attacker-{i % 40}", f"x{i}", NOW + i * 0.01, NOW + i * 0.01)
    assert ("victim", "start_miner") in g
    assert not g.check_and_mark("victim", "start_miner", NOW, NOW + 60)
    assert len(g) <= 200


def test_own_cap_forgets_lowest_ts_and_raises_the_floor() -> None:
    g = _guard(max_per_peer=3)
    for i, ts in enumerate([NOW + 5, NOW + 1, NOW + 3, NOW + 4]):
        assert g.check_and_mark("A", f"m{i}", ts, NOW)
    assert len(g) == 3 and ("A", "m1") not in g and g.evicted == 1
    # the forgotten id (ts NOW+1) and anything at or below it cannot come back
    assert not g.check_and_mark("A", "m1", NOW + 1, NOW)
    assert not g.check_and_mark("A", "new", NOW + 0.5, NOW)
    assert g.refused_floor == 2
    assert g.check_and_mark("A", "newer", NOW + 2, NOW)  # above the floor: fine


def test_dropping_a_table_sets_a_floor_for_peers_without_one() -> None:
    g = _guard(max_peers=2)
    assert g.check_and_mark("A", "a1", NOW - 10, NOW)
    assert g.check_and_mark("B", "b1", NOW + 100, NOW)
    assert g.check_and_mark("C", "c1", NOW, NOW)  # A's table (oldest newest ts) goes
    assert g.peers == 2
    assert not g.check_and_mark("A", "a1", NOW - 10, NOW)  # still no replay for A
    assert g.check_and_mark("A", "a2", NOW + 1, NOW)  # an honest ts ~ now is fine


def test_sweep_forgets_tables_nothing_can_be_replayed_into() -> None:
    g = _guard()
    g.check_and_mark("A", "a1", NOW, NOW)
    g.sweep(NOW + 301.0)
    assert g.peers == 0 and len(g) == 0


def test_from_config_uses_the_ts_window_or_the_ttl() -> None:
    assert ReplayGuard.from_config(TransportConfig()).window == 300.0
    lax = TransportConfig(ts_window=None, dedup_ttl=120.0)
    assert ReplayGuard.from_config(lax).window == 120.0
    with pytest.raises(ValueError):
        ReplayGuard(0, max_per_peer=1, max_entries=1, max_peers=1)


@pytest.mark.parametrize(
    ("address", "v4", "v6", "expected"),
    [
        ("127.0.0.1:5000", 32, 64, "127.0.0.1/32"),
        ("127.1.2.3:1", 16, 64, "127.1.0.0/16"),
        ("[::1]:5000", 32, 64, "::/64"),
        ("[::ffff:127.0.0.9]:80", 32, 64, "127.0.0.9/32"),
        ("unknown", 32, 64, "unknown"),
    ],
)
def test_source_prefix(address: str, v4: int, v6: int, expected: str) -> None:
    assert source_prefix(address, v4, v6) == expected


class _Model:
    """The rule, spelled out slowly: per peer ``id -> ts`` and a floor; over the cap the
    lowest ts is forgotten; ids past ``ts + window`` expire; what is forgotten either way
    raises the floor to its ts."""

    def __init__(self, window: float, max_per_peer: int) -> None:
        self.window = window
        self.max_per_peer = max_per_peer
        self.ids: dict[str, dict[str, float]] = {}
        self.floor: dict[str, float] = {}

    def check_and_mark(self, peer: str, message_id: str, ts: float, now: float) -> bool:
        ids = self.ids.setdefault(peer, {})
        floor = self.floor.setdefault(peer, -float("inf"))
        for old in [k for k, t in ids.items() if t < now - self.window]:
            self.floor[peer] = floor = max(floor, ids.pop(old))
        if ts <= floor or message_id in ids:
            return False
        ids[message_id] = ts
        while len(ids) > self.max_per_peer:
            oldest = min(ids, key=lambda k: ids[k])
            self.floor[peer] = max(self.floor[peer], ids.pop(oldest))
        return True


@pytest.mark.parametrize("seed", range(40))
def test_decisions_match_the_rule_in_and_out_of_order(seed: int) -> None:
    """Mostly rising ts with stragglers, repeats and ties, a clock that moves on: the
    two-part table (in-order list + heap) decides as the slow model does."""
    import random

    rng = random.Random(seed)
    window, cap = 30.0, rng.choice([1, 3, 8, 64])
    guard = ReplayGuard(window, max_per_peer=cap, max_entries=10_000, max_peers=100)
    model = _Model(window, cap)
    now, sent = NOW, []
    for i in range(600):
        now += rng.choice([0.0, 0.01, 0.5, 5.0])
        peer = rng.choice("AB")
        roll = rng.random()
        if roll < 0.15 and sent:
            message_id, ts = rng.choice(sent)  # a replay (maybe of a forgotten id)
        else:
            message_id = f"m{i}"
            ts = now - (rng.choice([0.0, 0.0, 0.0, 1.0, 12.0, 40.0]) if roll < 0.9 else 0.0)
            ts = round(ts, 1)  # ties
            sent.append((message_id, ts))
        expected = model.check_and_mark(peer, message_id, ts, now)
        assert guard.check_and_mark(peer, message_id, ts, now) is expected, (i, peer, ts)
    for peer, ids in model.ids.items():
        kept = {k for k, t in ids.items() if t >= now - window}
        assert {k for k in kept if (peer, k) in guard} == kept
