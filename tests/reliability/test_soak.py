"""Soak: a mesh of 4 controllers x 5 workers (24 nodes, real sockets and encryption, one
real miner process per worker) under continuous requests for ``P2P_SOAK_SECONDS``.

Figures: requests sent/answered, p50/p99 latency per operation, lost and mis-correlated
replies (both must be zero), and this process's RSS and open descriptors after warm-up vs
at the end (bounded growth). All nodes share this process's event loop: the latencies
include queueing behind the other 23 nodes on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from typing import Any

import pytest
from pytest_p2p.transport_fixtures import open_fds

from .conftest import SOAK_SECONDS, percentile, report, rss_kib

CONTROLLERS = int(os.environ.get("P2P_SOAK_CONTROLLERS", "4"))
WORKERS_PER_CONTROLLER = 5
PACE_S = 0.1
"""Pause between two requests of one controller→worker pair (10/s, under the 50/s limit)."""
RSS_GROWTH_BOUND_KIB = 64 * 1024
FD_GROWTH_BOUND = 16


@pytest.mark.soak
async def test_soak_mesh(make_node) -> None:
    controllers = [await make_node(f"ctl-{i}") for i in range(CONTROLLERS)]
    workers = [await make_node(f"wrk-{i}") for i in range(CONTROLLERS * WORKERS_PER_CONTROLLER)]
    pairs: list[tuple[Any, Any, str]] = []
    for ci, ctl in enumerate(controllers):
        for w in workers[ci * WORKERS_PER_CONTROLLER : (ci + 1) * WORKERS_PER_CONTROLLER]:
            w.policy.grant(ctl.identity.public_key)
            await ctl.add_peer(w.address)
            miner = await ctl.controller.start_remote_miner(w.id, "sh", config={"pool": "soak"})
            pairs.append((ctl, w, miner))
    assert len(controllers) + len(workers) >= 20

    loop = asyncio.get_running_loop()
    latencies: dict[str, list[float]] = {"stats": [], "ping": [], "logs": []}
    counts = {"sent": 0, "answered": 0, "lost": 0, "miscorrelated": 0}
    errors: list[str] = []
    measuring = {"on": False}

    async def pair_load(ctl: Any, w: Any, miner: str, end: float) -> None:
        c = ctl.controller
        op = 0
        while loop.time() < end:
            kind = ("stats", "ping", "logs")[op % 3]
            op += 1
            counts["sent"] += 1
            start = loop.time()
            try:
                if kind == "stats":
                    stats = await c.get_remote_stats(w.id)
                    ok = stats.node_id == w.id and any(m.name == miner for m in stats.miners)
                elif kind == "ping":
                    ok = (await c.ping_peer(w.id)) >= 0
                else:
                    lines = await c.get_remote_logs(w.id, miner, 5)
                    ok = all("accepted" in line for line in lines)
            except Exception as exc:
                counts["lost"] += 1
                errors.append(f"{kind} {w.id[:8]}: {exc!r}"[:200])
                continue
            if measuring["on"]:
                latencies[kind].append((loop.time() - start) * 1000)
            counts["answered"] += 1
            if not ok:
                counts["miscorrelated"] += 1
            await asyncio.sleep(PACE_S)

    warmup = min(3.0, SOAK_SECONDS / 3)
    end = loop.time() + warmup + SOAK_SECONDS
    tasks = [asyncio.ensure_future(pair_load(c, w, m, end)) for c, w, m in pairs]
    await asyncio.sleep(warmup)
    gc.collect()
    rss0, fds0, t0 = rss_kib(), open_fds(), time.monotonic()
    measuring["on"] = True
    sent0 = counts["sent"]
    nodes = controllers + workers
    series: list[tuple[int, int, int, int]] = []

    async def sample() -> None:
        """(s, RSS MiB, fds, dedup ids held): growth should follow the 300 s dedup TTL."""
        step = max(1.0, SOAK_SECONDS / 10)
        while loop.time() < end:
            series.append(
                (
                    round(time.monotonic() - t0),
                    rss_kib() // 1024,
                    open_fds(),
                    sum(len(n.transport.dedup) for n in nodes),
                )
            )
            await asyncio.sleep(step)

    sampler = asyncio.ensure_future(sample())
    await asyncio.gather(*tasks)
    sampler.cancel()
    elapsed = time.monotonic() - t0
    gc.collect()
    rss1, fds1 = rss_kib(), open_fds()
    miners_alive = sum(
        1
        for _c, w, m in pairs
        if w.miners.get_miner(m).running  # real processes still up
    )
    all_lat = [x for v in latencies.values() for x in v]
    report(
        "soak.mesh",
        nodes=len(controllers) + len(workers),
        seconds=round(elapsed, 1),
        requests_sent=counts["sent"] - sent0,
        requests_total=counts["sent"],
        answered=counts["answered"],
        lost=counts["lost"],
        miscorrelated=counts["miscorrelated"],
        requests_per_s=round((counts["sent"] - sent0) / elapsed, 1),
        p50_ms=round(percentile(all_lat, 50), 2),
        p99_ms=round(percentile(all_lat, 99), 2),
        p50_ms_by_op={k: round(percentile(v, 50), 2) for k, v in latencies.items()},
        p99_ms_by_op={k: round(percentile(v, 99), 2) for k, v in latencies.items()},
        rss_kib_start=rss0,
        rss_kib_end=rss1,
        fds_start=fds0,
        fds_end=fds1,
        miners_alive=miners_alive,
        series_s_rssmib_fds_dedup=series,
        drops={
            k: sum(n.transport.drops[k] for n in controllers + workers)
            for k in ("rate", "dedup", "decrypt", "stale_ts", "overload")
        },
    )
    assert counts["lost"] == 0, errors[:5]
    assert counts["miscorrelated"] == 0
    assert counts["answered"] == counts["sent"]
    assert miners_alive == len(pairs)
    assert fds1 - fds0 <= FD_GROWTH_BOUND, (fds0, fds1)
    assert rss1 - rss0 <= RSS_GROWTH_BOUND_KIB, (rss0, rss1)
