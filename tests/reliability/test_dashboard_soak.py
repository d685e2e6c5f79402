"""Soak: the fleet dashboard's memory stays bounded over a long run with 20 workers.

Twenty real `p2p-node serve` workers (separate processes, each running a real miner
process) and, in this process, a controller node serving the dashboard, sampled twice a
second into a ring buffer of one minute (so it wraps ten times in ten minutes), with one
live-update stream open and a client polling state, history and a log tail like a
browser tab does. ``tox -e soak`` runs it for ``P2P_SOAK_SECONDS`` (600).

The figure is the growth of this process's resident memory from the end of the warm-up
to the end of the run, next to the ring buffer's own (fixed) footprint.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from .conftest import SOAK_SECONDS, report, rss_kib

pytest.importorskip("aiohttp", reason="the dashboard needs p2p-controller[dashboard]")

import aiohttp

#: Twenty for the real run; the short form (the integration env's 10 s) starts four.
WORKERS = 20 if SOAK_SECONDS >= 60 else 4
#: RSS growth after warm-up allowed over the run (generous: allocator noise, not a leak).
MAX_GROWTH_KIB = 24 * 1024
MINER = """\
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
n = 0
while True:
    n += 1
    print(f"speed {900 + n % 50}.0 H/s accepted {n}", flush=True)
    time.sleep(0.5)
"""


@pytest.mark.soak
async def test_dashboard_memory_is_bounded_with_many_workers(
    tmp_path: Path, p2p_serve: Any
) -> None:
    from p2p.controller import Node, NodeConfig
    from p2p.controller.dashboard import Dashboard, DashboardConfig

    duration = max(SOAK_SECONDS, 10.0)
    warmup = min(60.0, duration / 5)
    script = tmp_path / "miner.py"
    script.write_text(MINER, encoding="utf-8")
    controller = Node(tmp_path / "ctl", config=NodeConfig(listen="127.0.0.1:0"), name="ctl")
    await controller.start()
    authz = importlib.util.find_spec("p2p.controller.authz") is not None
    extra = ["--controller", controller.identity.public_key] if authz else []
    workers = []
    for i in range(WORKERS):
        d = tmp_path / f"w{i}"
        d.mkdir()
        (d / "config.toml").write_text(
            "[miners.fake]\n"
            f"command = {json.dumps([sys.executable, '-u', str(script)])}\n"
            "stats_regex = 'speed (?P<hashrate>[\\d.]+) H/s accepted (?P<shares>\\d+)'\n"
            "log_lines = 200\n",
            encoding="utf-8",
        )
        workers.append(p2p_serve(d, "--name", f"w{i}", *extra))
    cfg = DashboardConfig(port=0, sample_interval=0.5, history=60.0, max_peers=64)
    dash = Dashboard(controller, cfg)
    try:
        ctl = controller.controller
        ids = []
        for w in workers:
            peer = await controller.add_peer(w.address, public_key=w.info["publicKey"])
            ids.append(peer.id)
            await ctl.start_remote_miner(peer.id, "fake", config={})
        await dash.start()
        base = dash.base_url
        events = 0
        polls = 0

        async def stream(session: aiohttp.ClientSession) -> None:
            nonlocal events
            async with session.get(base + "api/events") as resp:
                assert resp.status == 200
                async for line in resp.content:
                    if line.startswith(b"event: state"):
                        events += 1

        async def poll(session: aiohttp.ClientSession, until: float) -> None:
            nonlocal polls
            since = 0
            while time.monotonic() < until:
                for path in ("api/state", "api/history"):
                    async with session.get(base + path) as resp:
                        assert resp.status == 200
                        await resp.read()
                q = {"peer": ids[polls % WORKERS], "miner": "fake", "since": str(since)}
                async with session.get(base + "api/logs", params=q) as resp:
                    assert resp.status == 200
                    since = (await resp.json())["at"]
                polls += 1
                await asyncio.sleep(1.0)

        headers = {"Authorization": f"Bearer {dash.guard.token}"}
        # no total timeout: aiohttp's default (5 min) would cut the live stream mid-run
        timeout = aiohttp.ClientTimeout(total=None, sock_read=60)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            streamer = asyncio.get_running_loop().create_task(stream(session))
            start = time.monotonic()
            await poll(session, start + warmup)
            gc.collect()
            traced = os.environ.get("P2P_TRACEMALLOC") == "1"  # where growth comes from
            if traced:
                tracemalloc.start(8)
                before = tracemalloc.take_snapshot()
            rss_start = rss_kib()
            footprint_start = dash.monitor.history.footprint
            samples = [rss_start]
            end = start + duration
            while time.monotonic() < end:
                await poll(session, min(end, time.monotonic() + 10.0))
                samples.append(rss_kib())
            gc.collect()
            rss_end = rss_kib()
            if traced:
                diff = tracemalloc.take_snapshot().compare_to(before, "filename")
                tracemalloc.stop()
                for stat in diff[:12]:
                    print(f"TRACEMALLOC {stat}")
            assert not streamer.done(), streamer  # the live stream lasted the whole run
            streamer.cancel()
            await asyncio.gather(streamer, return_exceptions=True)
        history = dash.monitor.history
        latest = history.latest
        assert latest is not None and len(latest.workers) == WORKERS
        # full once it wrapped, and never more
        assert len(history) == min(dash.monitor.rounds, cfg.points)
        assert history.footprint == footprint_start
        assert events > 0 and polls > 0
        growth = rss_end - rss_start
        report(
            "soak.dashboard",
            seconds=round(duration),
            workers=WORKERS,
            rounds=dash.monitor.rounds,
            events=events,
            stream_drops=dash.stream_drops,
            polls=polls,
            ring_points=cfg.points,
            ring_footprint_bytes=history.footprint,
            rss_start_kib=rss_start,
            rss_end_kib=rss_end,
            rss_max_kib=max(samples),
            rss_every_60s_kib=samples[::6],
            rss_growth_kib=growth,
            fleet_hashrate=round(sum(w.hashrate for w in latest.workers.values())),
        )
        assert growth < MAX_GROWTH_KIB, f"RSS grew {growth} KiB after warm-up"
    finally:
        await dash.close()
        await controller.close()
