"""p2p.peers benchmark: registry build/load/save, selection and metric updates vs peers.

    python tools/bench/peers.py [--sizes 1e3,1e4,1e5] [--with-1e6] [--quick]

Each size runs in a fresh child process (clean memory figures). Columns:
- build: ``add()`` of N peers (Peer construction included); load: ``PeerRegistry(path)``
  from the saved peers.json (parse + validate + tree build); save: one full atomic write.
- tree: one cKDTree build of N points — what the reference does on *every* metric update.
- nearest10 / optimal: median ``select_nearest(10)`` / ``select_optimal()`` (tree current);
  scan10: median numpy brute-force scan for the same answer (the reference's linear scan).
- update: ``update_metrics`` amortised over a stream of random updates with a
  ``select_nearest(10)`` after every 100 updates (stream wall time / updates: the lazy
  rebuilds and the selections are included). vs-rebuild = tree / update.
- worst select: the slowest ``select_nearest(10)`` of that stream (CPU of the calling
  thread: from 50 000 peers on, tree rebuilds run in a worker thread).
- same: the final ``select_nearest(10)`` equals a brute-force (distance, id) sort.
- mem: RSS growth while building (records + index + tree).
Times are CPU time of the benchmark process (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from p2p.identity import GoTime
from p2p.peers import Peer, PeerRegistry
from p2p.peers.index import _distances


def clock() -> float:
    """CPU seconds of this process: on a shared machine, wall time would mostly measure the
    other tenants. Everything timed here is single-threaded CPU work (``save`` leaves out
    the fsync wait)."""
    return time.process_time()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def median_s(fn: Any, reps: int) -> float:
    out = []
    for _ in range(reps):
        t = clock()
        fn()
        out.append(clock() - t)
    return statistics.median(out)


def brute_nearest(reg: PeerRegistry, n: int) -> list[str]:
    peers = reg.peers()
    pts = np.array(
        [(p.ping_ms * 1.0, p.hops * 0.7, p.geo_km * 0.2, (100.0 - p.score) * 1.2) for p in peers]
    )
    d = _distances(pts, None)
    cut = np.partition(d, n - 1)[n - 1]
    cand = sorted((float(d[i]), peers[i].id) for i in np.flatnonzero(d <= cut))
    return [pid for _, pid in cand[:n]]


def run_one(n: int, quick: bool) -> dict[str, Any]:
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(n)
    ping = rng.uniform(1, 500, n).round(2)
    hops = rng.integers(1, 20, n)
    geo = rng.uniform(0, 20000, n).round(2)
    score = rng.uniform(1, 100, n).round(2)
    ids = [f"{x:032x}" for x in rng.integers(0, 2**63, n, dtype=np.int64)]
    key = "B6N8vBQgk8i3VdwbEOhstCY3StFqqFPtC9/AsrhtHHw="
    stamp = GoTime.now()
    res: dict[str, Any] = {"n": n}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "peers.json"
        base = rss_bytes()
        t = clock()
        reg = PeerRegistry(path, save_delay=3600, max_peers=n)
        for i in range(n):
            reg.add(
                Peer(
                    ids[i],
                    f"peer-{i}",
                    key,
                    f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}:9091",
                    "worker",
                    GoTime(stamp.unix_seconds - i, 0, 0),
                    GoTime(stamp.unix_seconds, i, 0),
                    float(ping[i]),
                    int(hops[i]),
                    float(geo[i]),
                    float(score[i]),
                )
            )
        res["build"] = clock() - t
        t = clock()
        reg.select_optimal()  # first selection builds the tree
        res["first_select"] = clock() - t
        res["mem"] = rss_bytes() - base

        pts = np.column_stack([ping * 1.0, hops * 0.7, geo * 0.2, (100.0 - score) * 1.2])
        reps_tree = 1 if n >= 10**6 or quick else 3
        res["tree"] = median_s(
            lambda: cKDTree(pts, balanced_tree=False, compact_nodes=False), reps_tree
        )
        reps = 50 if quick else 300
        res["nearest10"] = median_s(lambda: reg.select_nearest(10), reps)
        res["optimal"] = median_s(reg.select_optimal, reps)
        norms = _distances(pts, None)
        res["scan10"] = median_s(lambda: np.argpartition(norms, 10)[:10], 20)

        updates = max(20_000, n // 5) if not quick else 10_000
        upd_ids = [ids[i] for i in rng.integers(0, n, updates)]
        upd = rng.uniform(0, 500, (updates, 2)).tolist()
        upd_h = rng.integers(0, 20, updates).tolist()
        t = clock()
        rebuilds0 = reg._index.rebuilds
        worst = 0.0
        for j in range(updates):
            reg.update_metrics(upd_ids[j], upd[j][0], upd[j][1] * 40, upd_h[j])
            if j % 100 == 99:
                q = time.thread_time()
                reg.select_nearest(10)
                worst = max(worst, time.thread_time() - q)
        res["update"] = (clock() - t) / updates
        res["worst_select"] = worst
        while reg._rebuilding:  # let a background build finish before the next figures
            time.sleep(0.01)
        res["stream_rebuilds"] = reg._index.rebuilds - rebuilds0
        res["same"] = [p.id for p in reg.select_nearest(10)] == brute_nearest(reg, 10)

        t = clock()
        reg.save()
        res["save"] = clock() - t
        res["file_mb"] = path.stat().st_size / 1e6
        t = clock()
        again = PeerRegistry(path, save_delay=3600, max_peers=n)
        res["load"] = clock() - t
        assert again.count == n and again.load_error is None
        reg.close()
    return res


def fmt_t(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.1f} µs"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1e3,1e4,1e5")
    ap.add_argument("--with-1e6", action="store_true", help="also 10^6 peers (~2 GB, minutes)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--one", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(int(args.one), args.quick)))
        return
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    if args.with_1e6:
        sizes.append(10**6)
    rows = []
    for n in sizes:
        cmd = [sys.executable, __file__, "--one", str(n)] + (["--quick"] if args.quick else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        rows.append(r)
        print(f"# {n}: done", file=sys.stderr)
    head = (
        "| peers | build | load | save (file) | tree build | nearest10 | optimal | scan10 "
        "| update (amortised) | vs rebuild | worst select | same | mem |"
    )
    print(head)
    print("|---" * 13 + "|")
    for r in rows:
        print(
            f"| {r['n']:,} | {fmt_t(r['build'])} | {fmt_t(r['load'])} "
            f"| {fmt_t(r['save'])} ({r['file_mb']:.0f} MB) | {fmt_t(r['tree'])} "
            f"| {fmt_t(r['nearest10'])} | {fmt_t(r['optimal'])} | {fmt_t(r['scan10'])} "
            f"| {fmt_t(r['update'])} ({r['stream_rebuilds']} rebuilds) "
            f"| {r['tree'] / r['update']:,.0f}x | {fmt_t(r['worst_select'])} "
            f"| {'yes' if r['same'] else 'NO'} "
            f"| {r['mem'] / 1e6:.0f} MB |"
        )


if __name__ == "__main__":
    main()
