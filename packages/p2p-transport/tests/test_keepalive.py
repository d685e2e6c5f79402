"""Keepalive decisions without sockets: phase spreading and the per-tick ping budget."""

from __future__ import annotations

import random

import pytest
from p2p.transport.keepalive import (
    MIN_PINGS_PER_TICK,
    due_pings,
    initial_last_ping,
    ping_budget,
)

INTERVAL = 30.0
TICK = 2.5


def simulate(n: int, seconds: float, seed: int = 1) -> list[int]:
    """Pings sent per tick by ``n`` connections all made at t=0 (what a fleet does)."""
    rng = random.Random(seed)
    last = {i: initial_last_ping(0.0, INTERVAL, rng.random()) for i in range(n)}
    sent = []
    now = 0.0
    while now < seconds:
        now += TICK
        due = due_pings(last.items(), now, INTERVAL, ping_budget(n, TICK, INTERVAL))
        for key in due:
            last[key] = now
        sent.append(len(due))
    return sent


def test_connections_made_together_ping_spread_over_the_interval() -> None:
    n = 1000
    sent = simulate(n, 5 * INTERVAL)
    steady = n * TICK / INTERVAL  # 83.3 per tick if perfectly even
    assert max(sent) <= ping_budget(n, TICK, INTERVAL) < n / 4
    assert max(sent) < 2 * steady
    # every connection is pinged about once per interval, none starves
    per_interval = sum(sent[12:24])
    assert n * 0.9 <= per_interval <= n * 1.1


def test_first_ping_is_due_at_the_drawn_point_of_the_first_interval() -> None:
    last = initial_last_ping(100.0, INTERVAL, 0.25)
    assert due_pings([("c", last)], 100.0 + 0.24 * INTERVAL, INTERVAL, 10) == []
    assert due_pings([("c", last)], 100.0 + 0.25 * INTERVAL, INTERVAL, 10) == ["c"]
    with pytest.raises(ValueError):
        initial_last_ping(0.0, INTERVAL, 1.0)


def test_budget_sends_the_most_overdue_first_and_the_rest_next_tick() -> None:
    last = [(f"c{i}", float(-i)) for i in range(40)]  # c39 is the most overdue
    first = due_pings(last, INTERVAL, INTERVAL, 10)
    assert first == [f"c{i}" for i in range(39, 29, -1)]
    assert due_pings([("a", 5.0), ("b", 0.0)], 10.0, INTERVAL, 10) == []


def test_budget_scales_with_the_fleet() -> None:
    assert ping_budget(0, TICK, INTERVAL) == MIN_PINGS_PER_TICK
    assert ping_budget(10_000, TICK, INTERVAL) == 1667
    # a backlog of everyone (aligned pings) drains within one interval
    assert ping_budget(10_000, TICK, INTERVAL) * (INTERVAL / TICK) >= 2 * 10_000
