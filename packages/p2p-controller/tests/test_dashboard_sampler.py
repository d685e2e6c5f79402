"""The dashboard's sans-I/O sampler core: ring buffer bounds, intervals, timeouts."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from p2p.controller.dashboard.sampler import (
    DialPolicy,
    FleetHistory,
    MinerSample,
    Sample,
    Schedule,
    WorkerSample,
)
from p2p.controller.dashboard.settings import DashboardConfig


def worker(*rates: float, name: str = "w") -> WorkerSample:
    miners = tuple(MinerSample(f"m{i}", "xmrig", r, i, 0, 10) for i, r in enumerate(rates))
    return WorkerSample(name, 100, miners)


def test_ring_buffer_keeps_the_last_points_and_never_grows() -> None:
    h = FleetHistory(points=5, max_peers=4)
    footprints = set()
    for i in range(23):
        h.record(Sample(at=1000.0 + i, workers={"a": worker(float(i))}, pings={"a": 1.0 + i}))
        if i >= 1:
            footprints.add(h.footprint)
    assert len(h) == 5
    assert h.times() == [1018.0, 1019.0, 1020.0, 1021.0, 1022.0]
    assert h.series("hashrate:a") == [(1018.0 + k, 18.0 + k) for k in range(5)]
    assert h.series("fleet")[-1] == (1022.0, 22.0)
    assert h.series("ping:a")[0] == (1018.0, 19.0)
    assert footprints == {8 * 5 * 4}  # times, fleet, hashrate:a, ping:a: fixed
    doc = h.to_json(since=1020.0)
    assert doc["t"] == [1021000, 1022000]
    assert doc["series"]["hashrate:a"] == [21.0, 22.0]


def test_series_per_peer_are_bounded_and_unseen_peers_are_evicted() -> None:
    h = FleetHistory(points=3, max_peers=2)
    h.record(Sample(1.0, {p: worker(10.0) for p in ("a", "b", "c")}))
    assert h.peers == ["a", "b"]  # the first max_peers, in the order they answered
    assert h.untracked == 1
    # "a" keeps answering, the others stop: after a whole window they lose their series
    for t in (2.0, 3.0, 4.0):
        h.record(Sample(t, {"a": worker(10.0)}))
    assert h.peers == ["a"]
    assert h.series("hashrate:b") == []
    # and the freed slot goes to the next new peer
    h.record(Sample(5.0, {"a": worker(1.0), "d": worker(2.0)}))
    assert sorted(h.peers) == ["a", "d"]
    assert h.series("hashrate:d") == [(3.0, None), (4.0, None), (5.0, 2.0)]


def test_a_worker_that_times_out_is_a_gap_not_a_zero() -> None:
    h = FleetHistory(points=10, max_peers=8)
    h.record(Sample(1.0, {"a": worker(100.0), "b": worker(50.0, 25.0)}, pings={"a": 2.0}))
    h.record(Sample(2.0, {"a": worker(110.0)}, errors={"b": "request timeout"}, pings={"a": 3.0}))
    assert h.series("hashrate:b") == [(1.0, 75.0), (2.0, None)]
    assert h.series("fleet") == [(1.0, 175.0), (2.0, 110.0)]
    assert [v for _, v in h.series("ping:b")] == [None, None]  # never answered a ping
    assert h.latest is not None and h.latest.errors == {"b": "request timeout"}
    # a round in which nobody answered leaves the fleet total empty too
    h.record(Sample(3.0, {}, errors={"a": "timeout", "b": "timeout"}))
    assert h.series("fleet")[-1] == (3.0, None)


def test_bad_numbers_from_a_worker_do_not_poison_the_totals() -> None:
    @dataclass
    class M:
        name: str = "m"
        type: str = "t"
        hashrate: object = float("inf")
        shares: int = 1
        rejected: int = 0
        uptime: int = 3

    @dataclass
    class Stats:
        node_name: str = "w"
        uptime: int = 5
        miners: list[M] = field(default_factory=lambda: [M(), M(hashrate=-3.0), M(hashrate=7.5)])

    w = WorkerSample.from_stats(Stats())
    assert w.hashrate == 7.5
    assert [m.hashrate for m in w.miners] == [0.0, 0.0, 7.5]


def test_schedule_spaces_rounds_and_does_not_pile_up_after_a_slow_one() -> None:
    s = Schedule(5.0)
    assert s.delay(100.0) == 0.0  # the first round starts at once
    s.started(100.0)
    s.finished(100.4)
    assert s.delay(100.4) == pytest.approx(4.6)
    assert s.delay(106.0) == 0.0
    s.started(105.0)
    s.finished(117.0)  # a worker made the round wait its 10 s stats timeout
    assert s.delay(117.0) == pytest.approx(1.0)  # a short beat, not a burst of late rounds
    with pytest.raises(ValueError):
        Schedule(0.0)


def test_dial_policy_retries_each_peer_once_per_interval() -> None:
    d = DialPolicy(30.0, limit=2)
    assert d.due(0.0, ["a", "b", "c"]) == ["a", "b"]
    assert d.due(1.0, ["a", "b", "c"]) == ["c"]
    assert d.due(10.0, ["a", "b", "c"]) == []
    assert d.due(31.0, ["a", "c"]) == ["a", "c"]  # b connected: forgotten
    assert d.due(32.0, ["b"]) == ["b"]
    assert DialPolicy(0.0).due(0.0, ["a"]) == []


def test_config_sizes_the_ring_buffer_and_bounds_it() -> None:
    cfg = DashboardConfig()
    assert cfg.points == 721  # one hour at 5 s
    h = FleetHistory(cfg.points, cfg.max_peers)
    assert h.footprint == 8 * 721 * 2
    with pytest.raises(ValueError):
        DashboardConfig(sample_interval=0.2, history=7 * 86400)  # over MAX_POINTS
    with pytest.raises(ValueError):
        FleetHistory(1, 1)
