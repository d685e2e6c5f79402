"""The selection index answers exactly like a brute-force scan (sorted by distance, then id),
through inserts, moves, removals, lazy rebuilds and ties, at 10^4 points."""

from __future__ import annotations

import random

import pytest
from p2p.peers.index import SelectionIndex, distance, point

Row = tuple[float, int, float, float]


def _brute(data: dict[str, Row], n: int, target: tuple[float, ...] | None = None) -> list[str]:
    tgt = target or (0.0, 0.0, 0.0, 0.0)
    ranked = sorted((distance(point(*v), tgt), pid) for pid, v in data.items())
    return [pid for _, pid in ranked[: max(n, 0)]]


def _row(rng: random.Random, coarse: bool) -> Row:
    if coarse:  # few distinct values: many exact ties
        return (
            float(rng.choice([0, 10, 20])),
            rng.randint(0, 2),
            float(rng.choice([0, 100])),
            float(rng.choice([50, 60, 100])),
        )
    return (rng.uniform(0, 500), rng.randint(0, 20), rng.uniform(0, 20000), rng.uniform(0, 100))


@pytest.mark.parametrize("coarse", [False, True], ids=["continuous", "ties"])
def test_matches_brute_force_at_10k_through_updates(coarse: bool) -> None:
    rng = random.Random(1234 + coarse)
    idx = SelectionIndex(rebuild_fraction=0.05, min_rebuild=64)
    data: dict[str, Row] = {}
    ids: list[str] = []
    for _ in range(10_000):
        pid = f"{rng.getrandbits(64):016x}"
        ids.append(pid)
        data[pid] = _row(rng, coarse)
        idx.set(pid, *data[pid])
    assert idx.nearest(10) == _brute(data, 10)  # first query builds the tree
    assert idx.rebuilds == 1
    queries = 0
    served_with_pending = 0
    for step in range(4000):
        r = rng.random()
        if r < 0.6:  # move a point (often the same one again)
            pid = rng.choice(ids) if step % 7 else ids[0]
            data[pid] = _row(rng, coarse)
            idx.set(pid, *data[pid])
        elif r < 0.75:  # remove one
            k = rng.randrange(len(ids))
            ids[k], ids[-1] = ids[-1], ids[k]
            pid = ids.pop()
            del data[pid]
            idx.remove(pid)
        else:  # add one
            pid = f"{rng.getrandbits(64):016x}"
            ids.append(pid)
            data[pid] = _row(rng, coarse)
            idx.set(pid, *data[pid])
        if step % 40 == 0:
            n = rng.choice([1, 2, 5, 10, 37, 200])
            target = None
            if rng.random() < 0.3:
                target = (rng.uniform(0, 300), 1.4, rng.uniform(0, 4000), rng.uniform(0, 60))
            served_with_pending += idx.pending > 0
            assert idx.nearest(n, target) == _brute(data, n, target), (step, n, target)
            queries += 1
    assert len(idx) == len(data)
    assert idx.rebuilds > 1  # the lazy rebuild happened, and many answers merged the buffer
    assert served_with_pending > queries // 2


def test_small_index_never_builds_a_tree() -> None:
    idx = SelectionIndex()
    for i in range(100):
        idx.set(f"p{i:03d}", float(i % 7), i % 3, 0.0, 50.0)
    assert idx.nearest(3) == _brute(
        {f"p{i:03d}": (float(i % 7), i % 3, 0.0, 50.0) for i in range(100)}, 3
    )
    assert idx.rebuilds == 0


def test_edge_cases() -> None:
    idx = SelectionIndex(min_rebuild=1)
    assert idx.nearest(5) == []
    idx.set("b", 1.0, 0, 0.0, 100.0)
    idx.set("a", 1.0, 0, 0.0, 100.0)  # exact tie: id decides
    assert idx.nearest(0) == [] and idx.nearest(-3) == []
    assert idx.nearest(10) == ["a", "b"]
    idx.remove("a")
    idx.remove("missing")
    assert idx.nearest(1) == ["b"] and "a" not in idx and len(idx) == 1
    idx.set("a", 0.0, 0, 0.0, 100.0)  # re-added into a freed slot
    assert idx.nearest(1) == ["a"]


def test_bulk_load_then_updates() -> None:
    rng = random.Random(7)
    rows = {f"{i:05d}": _row(rng, False) for i in range(3000)}
    idx = SelectionIndex(min_rebuild=100)
    idx.bulk_load([(pid, *v) for pid, v in rows.items()])
    assert idx.rebuilds == 1 and idx.pending == 0
    assert idx.nearest(25) == _brute(rows, 25)
    for pid in list(rows)[:50]:
        rows[pid] = (0.0, 0, 0.0, 100.0 - rng.random())
        idx.set(pid, *rows[pid])
    assert idx.pending == 50
    assert idx.nearest(60) == _brute(rows, 60)


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        SelectionIndex(rebuild_fraction=0)
    with pytest.raises(ValueError):
        SelectionIndex(min_rebuild=0)


def test_off_thread_rebuild_keeps_later_changes_pending() -> None:
    """prepare_rebuild snapshots; changes made while the job runs (moves, removals, slot
    reuse, additions) stay in the buffer after install, so answers stay exact."""
    rng = random.Random(3)
    data = {f"{i:05d}": _row(rng, False) for i in range(2000)}
    idx = SelectionIndex(min_rebuild=50, background_min=100)
    for pid, v in data.items():
        idx.set(pid, *v)
    idx.rebuild()
    ids = list(data)
    for _ in range(200):
        pid = rng.choice(ids)
        data[pid] = _row(rng, False)
        idx.set(pid, *data[pid])
    assert idx.wants_background_rebuild()
    job = idx.prepare_rebuild()
    # while the job "runs": more changes, including a removal whose slot is reused
    for _ in range(150):
        pid = rng.choice(ids)
        data[pid] = (0.0, 0, rng.uniform(0, 5), 99.0)
        idx.set(pid, *data[pid])
    gone = ids.pop()
    del data[gone]
    idx.remove(gone)
    data["new"] = (0.0, 0, 0.0, 100.0)
    idx.set("new", *data["new"])
    job.run()
    assert idx.install(job)
    assert 0 < idx.pending <= 152
    for n in (1, 10, 100, 400):
        assert idx.nearest(n) == _brute(data, n)
    newer = idx.prepare_rebuild()
    older = job
    newer.run()
    assert idx.install(newer) and idx.pending == 0
    assert not idx.install(older)  # a stale job never replaces a newer tree
    assert idx.nearest(50) == _brute(data, 50)


def test_inline_rebuild_is_deferred_when_building_in_background() -> None:
    idx = SelectionIndex(min_rebuild=10, rebuild_fraction=0.1, background_min=100)
    data = {f"{i:04d}": (float(i), 0, 0.0, 50.0) for i in range(200)}
    for pid, v in data.items():
        idx.set(pid, *v)
    # no tree yet: the first one always comes from the background (issue 14: the first
    # selection above 512 peers imported scipy and built a tree on the event loop)
    assert idx.nearest(3) == _brute(data, 3)
    assert idx.rebuilds == 0 and idx.wants_background_rebuild()
    job = idx.prepare_rebuild()
    job.run()
    assert idx.install(job) and idx.rebuilds == 1
    for pid in list(data)[:30]:
        data[pid] = (1000.0, 0, 0.0, 50.0)
        idx.set(pid, *data[pid])
    assert idx.wants_background_rebuild()
    assert idx.nearest(5) == _brute(data, 5)
    assert idx.rebuilds == 1  # left to the owner's background job
    for pid in list(data)[30:120]:  # 120 pending > 4 x 20: the background job is late
        data[pid] = (2000.0, 0, 0.0, 50.0)
        idx.set(pid, *data[pid])
    assert idx.nearest(5) == _brute(data, 5)
    assert idx.rebuilds == 2  # inline, once a tree exists and the buffer ran away


@pytest.mark.parametrize("n", [1, 10, 300])
def test_a_fresh_fleet_all_at_one_point_ranks_by_id(n: int) -> None:
    """10 000 unmeasured peers share one point (every one ties with every other), a few
    are measured: the answer is the measured ones that are nearer, then the smallest ids."""
    rng = random.Random(7)
    idx = SelectionIndex(rebuild_fraction=0.05, min_rebuild=64)
    data: dict[str, Row] = {}
    for i in range(10_000):
        pid = f"{rng.getrandbits(64):016x}"
        data[pid] = (0.0, 0, 0.0, 50.0) if i % 1000 else (1.0, 0, 0.0, 60.0)
        idx.set(pid, *data[pid])
    for _ in range(3):  # tree built on the first; the others are served from it
        assert idx.nearest(n) == _brute(data, n)
    moved = sorted(data)[5]
    data[moved] = (0.0, 0, 0.0, 100.0)  # the best point of all, pending in the buffer
    idx.set(moved, *data[moved])
    assert idx.nearest(n) == _brute(data, n)
    assert idx.nearest(n)[0] == moved
