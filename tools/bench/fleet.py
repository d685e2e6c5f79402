"""Fleet benchmark: one controller, N workers, real sockets and encryption on 127.x.

    python tools/bench/fleet.py [-n 1000] [--direction out|in] [--gc default|freeze] [--json]

The workers are in-process nodes (``Transport`` + ``Worker``) in one or more child
processes (``--worker-procs``, default: one per 4 000 workers, for the fd limit), listening
on ``--addresses`` loopback addresses (127.0.1.1, 127.0.1.2, ...). The controller
(``Transport`` + ``PeerRegistry`` + ``Controller``) runs alone in this process, so its
rusage is the controller's own. ``--direction out``: the controller dials every worker
(how ``p2p-node`` controllers run); ``in``: the workers dial the controller (its inbound
budget and per-address limits are what is measured; they all come from 127.0.0.1).

Measured, per phase (connecting, stats rounds, idle with keepalive, selecting):
- wall time and controller CPU (user+sys rusage, all threads): per handshake while
  connecting, per peer in a ``get_all_stats`` round;
- event-loop stalls: a sampler sleeps 5 ms in a loop and records how late it wakes
  (p50/p99/max per phase);
- GC pauses (``gc.callbacks``): count, longest and total per phase, per generation 2;
- ``select_nearest`` call times (the first call above 512 peers is the interesting one).
``--gc freeze`` calls ``gc.freeze()`` once connected (what ``Node`` could do after start-up);
``--gc tuned`` does what a running ``Node`` does (``p2p.controller._gc``: threshold
``(10_000, 20, 100)`` and the start-up heap frozen).
The stats phase also reports the worker processes' CPU per peer (they answer every
request: with both sides on one machine, a round's wall time is bounded by the two
together), and ``--profile FILE`` writes a cProfile (CPU time) of the controller's stats
rounds. ``tools/bench/stats_round.py`` measures the controller's part without a transport.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from p2p.identity import KeyPair, NodeIdentity
from p2p.transport import ConnectError, Transport, TransportConfig

HERE = Path(__file__).resolve().parent
PER_PROC = 4000


class MemoryIdentity:
    """An in-memory identity (no files): what Transport and Worker need from a NodeManager."""

    def __init__(self, name: str) -> None:
        self.keypair = KeyPair.generate()
        self.identity: NodeIdentity | None = NodeIdentity.create(self.keypair, name)

    def derive_shared_secret(self, peer_public_key: str) -> bytes:
        return self.keypair.derive_shared_secret(peer_public_key)


def fleet_config(n: int, ping_interval: float, **changes: Any) -> TransportConfig:
    """The controller settings a fleet of ``n`` needs (documented in the transport README):
    inbound and outbound budgets above ``n`` (inbound: above the known-peer reserve too),
    per-address limits sized for many workers behind one address, a handshake bucket that
    lets a fleet reconnect at once."""
    # unknown workers dialling in cannot take the slots kept for known peers
    reserve = TransportConfig().known_reserve_fraction
    base: dict[str, Any] = {
        "listen_host": "127.0.0.1",
        "listen_port": 0,
        "max_conns": math.ceil((n + 64) / (1 - reserve)),
        "max_outbound_conns": n + 64,
        "max_conns_per_prefix": n + 64,
        "max_pending_handshakes": 256,
        "max_handshakes_per_ip": 256,
        "handshake_burst_per_ip": n + 64,
        "handshake_refill_per_ip_s": 1000.0,
        "max_tracked_ips": 4096,
        "ping_interval": ping_interval,
        "pong_timeout": max(10.0, ping_interval),
        "handshake_timeout": 30.0,
        "connect_timeout": 30.0,
    }
    base.update(changes)
    return TransportConfig(**base)


# --- the workers (child process) --------------------------------------------------------


async def child_main(args: argparse.Namespace) -> None:
    from p2p.controller import Worker

    n, first = args.count, args.first
    cfg_base = {"ping_interval": args.ping_interval, "pong_timeout": max(10.0, args.ping_interval)}
    data = Path(tempfile.mkdtemp(prefix="fleet-"))
    workers: list[Transport] = []
    for i in range(first, first + n):
        ident = MemoryIdentity(f"w{i}")
        host = f"127.0.1.{1 + i % args.addresses}"
        t = Transport(ident, None, TransportConfig(listen_host=host, listen_port=0, **cfg_base))
        await t.start()
        Worker(ident, t, data_dir=data)
        workers.append(t)
        assert ident.identity is not None
        if args.controller is None:
            line = {"id": ident.identity.id, "key": ident.identity.public_key, "addr": t.address}
            print(json.dumps(line), flush=True)
    failures: dict[str, int] = defaultdict(int)
    if args.controller is not None:
        sem = asyncio.Semaphore(args.concurrency)
        start = time.perf_counter()

        async def dial(t: Transport) -> None:
            async with sem:
                try:
                    await t.connect(args.controller)
                except ConnectError as exc:
                    failures[exc.reason] += 1

        await asyncio.gather(*(dial(t) for t in workers))
        summary = {"dialled": n, "failed": sum(failures.values()), "reasons": failures}
        summary["seconds"] = time.perf_counter() - start
        print(json.dumps({"summary": summary}), flush=True)
    print(json.dumps({"ready": True}), flush=True)
    loop = asyncio.get_running_loop()
    # "cpu" asks for this process's CPU so far (the controller brackets its stats rounds
    # with it); anything else (an empty line, EOF) stops the workers
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "cpu":
        print(json.dumps({"cpu_now_s": cpu_s()}), flush=True)
    print(json.dumps({"cpu_s": cpu_s()}), flush=True)
    await asyncio.gather(*(t.stop() for t in workers), return_exceptions=True)


# --- the controller (this process) ------------------------------------------------------


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class LoopLag:
    """How late a 5 ms sleep wakes up, per phase: the event loop's stalls."""

    def __init__(self, period: float = 0.005) -> None:
        self.period = period
        self.phase = "start"
        self.samples: dict[str, list[float]] = defaultdict(list)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(self.period)
            self.samples[self.phase].append(time.perf_counter() - t0 - self.period)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class GcPauses:
    """Collector pauses per phase, from ``gc.callbacks``."""

    def __init__(self, lag: LoopLag) -> None:
        self.lag = lag
        self.pauses: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self._t0 = 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, what: str, info: dict[str, Any]) -> None:
        if what == "start":
            self._t0 = time.perf_counter()
        else:
            self.pauses[self.lag.phase].append((info["generation"], time.perf_counter() - self._t0))

    def close(self) -> None:
        gc.callbacks.remove(self._cb)


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


async def workers_cpu_s(children: list[Any]) -> float:
    """The worker processes' CPU so far (user+sys, summed)."""
    total = 0.0
    for proc in children:
        proc.stdin.write(b"cpu\n")
        await proc.stdin.drain()
        total += json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))["cpu_now_s"]
    return total


_WORKER_CPUS: set[int] = set()


def pin_controller() -> None:
    """``--pin``: the controller on the first CPU, workers on the others (as if the
    controller had its own machine: the workers' CPU no longer preempts its event loop)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin needs at least two CPUs")
    _WORKER_CPUS.update(cpus[1:])
    os.sched_setaffinity(0, {cpus[0]})


def _pin_workers() -> None:  # in the forked child, before exec
    os.sched_setaffinity(0, _WORKER_CPUS)


async def spawn_workers(args: argparse.Namespace, controller_addr: str | None) -> list[Any]:
    procs = args.worker_procs or max(1, math.ceil(args.n / PER_PROC))
    per = math.ceil(args.n / procs)
    children = []
    for p in range(procs):
        first, count = p * per, min(per, args.n - p * per)
        if count <= 0:
            break
        cmd = [sys.executable, str(Path(__file__)), "--child", "--first", str(first)]
        cmd += ["--count", str(count), "--addresses", str(args.addresses)]
        cmd += ["--ping-interval", str(args.ping_interval), "--concurrency", str(args.concurrency)]
        if controller_addr is not None:
            cmd += ["--controller", controller_addr]
        children.append(
            await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 20,
                preexec_fn=_pin_workers if args.pin else None,
            )
        )
    return children


async def read_until_ready(proc: Any) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    lines, summary = [], None
    while True:
        raw = await asyncio.wait_for(proc.stdout.readline(), 900)
        if not raw:
            raise RuntimeError("worker process exited early")
        obj = json.loads(raw)
        if obj.get("ready"):
            return lines, summary
        if "summary" in obj:
            summary = obj["summary"]
        else:
            lines.append(obj)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from p2p.controller import Controller
    from p2p.peers import Peer, PeerRegistry
    from p2p.peers.registry import PRELOAD_WAIT

    if args.gc == "freeze":
        gc.collect()
    elif args.gc == "tuned":
        from p2p.controller import _gc

        _gc.acquire()  # what a running Node does (threshold 10 000, start-up heap frozen)
    lag = LoopLag()
    pauses = GcPauses(lag)
    lag.start()
    ident = MemoryIdentity("controller")
    registry = PeerRegistry(persist=False, max_learned=max(1000, args.n + 64))
    cfg = fleet_config(args.n, args.ping_interval)
    if args.turn_budget is not None:
        cfg = cfg.replace(handshake_turn_budget=args.turn_budget)
    if args.default_limits:  # what a default controller does with a fleet dialling in
        cfg = TransportConfig(listen_host="127.0.0.1", listen_port=0)
    ct = Transport(ident, registry, cfg)
    await ct.start()
    if args.stats_concurrency:
        from p2p.controller.controller import ControllerConfig

        controller = Controller(
            ident,
            registry,
            ct,
            config=ControllerConfig(max_concurrent_stats=args.stats_concurrency),
        )
    else:
        controller = Controller(ident, registry, ct)
    out: dict[str, Any] = {"n": args.n, "direction": args.direction, "gc": args.gc, "pin": args.pin}
    out["turn_budget_ms"] = cfg.handshake_turn_budget * 1000
    out["handshakes_deferred"] = 0
    out["stats_concurrency"] = args.stats_concurrency or 32
    children: list[Any] = []
    try:
        # --- workers up (not measured), then connecting
        lag.phase = "spawn"
        children = await spawn_workers(args, ct.address if args.direction == "in" else None)
        c0, w0 = cpu_s(), time.perf_counter()
        if args.direction == "out":
            lag.phase = "registry"
            rows = []
            for proc in children:
                got, _ = await read_until_ready(proc)
                rows += got
            for r in rows:
                registry.add(Peer(id=r["id"], name="w", public_key=r["key"], address=r["addr"]))
            # a controller loads its fleet from peers.json with PeerRegistry.open, which
            # returns once scipy's KD-tree is imported (see PeerRegistry.wait_preloaded)
            await asyncio.to_thread(registry.wait_preloaded, PRELOAD_WAIT)
            lag.phase = "connecting"
            c0, w0 = cpu_s(), time.perf_counter()
            sem = asyncio.Semaphore(args.concurrency)
            failures: dict[str, int] = defaultdict(int)

            async def dial(pid: str) -> None:
                async with sem:
                    try:
                        await controller.connect_to_peer(pid)
                    except Exception as exc:
                        reason = getattr(exc, "reason", None) or f"{type(exc).__name__}: {exc}"
                        failures[str(reason)[:120]] += 1

            await asyncio.gather(*(dial(r["id"]) for r in rows))
            out["connect_failures"] = dict(failures)
        else:
            lag.phase = "connecting"  # the workers dial in as soon as they are up
            summaries = []
            for proc in children:
                _, summary = await read_until_ready(proc)
                summaries.append(summary)
            out["connect_failures"] = {
                k: v for s in summaries if s for k, v in s["reasons"].items()
            }
            deadline = time.monotonic() + 60
            while len(ct.connected_peers) < args.n - sum(out["connect_failures"].values()):
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
        connect_wall = time.perf_counter() - w0
        connect_cpu = cpu_s() - c0
        connected = len(ct.connected_peers)
        out["handshakes_deferred"] = ct.pacer.budget.deferred
        out["connected"] = connected
        out["connect_s"] = connect_wall
        out["handshake_cpu_ms"] = connect_cpu / max(1, connected) * 1000
        if args.gc == "freeze":
            gc.collect()
            gc.freeze()
        # --- stats rounds
        lag.phase = "serving"
        rounds = []
        workers_c0 = await workers_cpu_s(children)
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile(time.process_time)  # CPU, not wall time
        for _ in range(args.rounds):
            c0, w0 = cpu_s(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            stats = await controller.get_all_stats()
            if profiler is not None:
                profiler.disable()
            wall, cpu = time.perf_counter() - w0, cpu_s() - c0
            answered = len(stats.stats)
            rounds.append((wall * 1000, cpu / max(1, answered) * 1e6, len(stats.errors), answered))
            await asyncio.sleep(0.2)
        workers_cpu = await workers_cpu_s(children) - workers_c0  # pauses included
        if profiler is not None:
            profiler.dump_stats(args.profile)
        served = sum(r[3] for r in rounds)
        out["stats_worker_cpu_us_per_peer"] = workers_cpu / max(1, served) * 1e6
        out["stats_round_ms"] = [r[0] for r in rounds]
        out["stats_cpu_us_per_peer"] = [r[1] for r in rounds]
        out["stats_errors"] = sum(r[2] for r in rounds)
        # --- idle: keepalive only
        lag.phase = "idle"
        c0 = cpu_s()
        await asyncio.sleep(args.idle)
        out["idle_cpu_pct"] = (cpu_s() - c0) / args.idle * 100
        # --- selecting
        lag.phase = "selecting"
        sel = []
        for i in range(args.selects):
            t0 = time.perf_counter()
            registry.select_nearest(10)
            sel.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.05 if i == 0 else 0.01)
        out["select_ms_first"] = sel[0] if sel else 0.0
        out["select_ms_median"] = statistics.median(sel) if sel else 0.0
        lag.phase = "end"
    finally:
        await lag.stop()
        pauses.close()
        worker_cpu = 0.0
        for proc in children:
            assert proc.stdin is not None
            with contextlib.suppress(Exception):
                proc.stdin.write(b"\n")
                await proc.stdin.drain()
        for proc in children:
            with contextlib.suppress(Exception):
                while raw := await asyncio.wait_for(proc.stdout.readline(), 120):
                    obj = json.loads(raw)
                    worker_cpu += obj.get("cpu_s", 0.0)
            await proc.wait()
        out["worker_procs_cpu_s"] = worker_cpu
        await controller.close()
        await ct.stop()
    for phase in ("connecting", "serving", "idle", "selecting"):
        s = [x * 1000 for x in lag.samples.get(phase, [])]
        out[f"lag_{phase}_p50_ms"] = pct(s, 0.5)
        out[f"lag_{phase}_p99_ms"] = pct(s, 0.99)
        out[f"lag_{phase}_max_ms"] = max(s) if s else 0.0
        g = pauses.pauses.get(phase, [])
        out[f"gc_{phase}_count"] = len(g)
        out[f"gc_{phase}_max_ms"] = max((d for _, d in g), default=0.0) * 1000
        out[f"gc_{phase}_total_ms"] = sum(d for _, d in g) * 1000
        out[f"gc_{phase}_gen2"] = sum(1 for gen, _ in g if gen == 2)
    out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def report(out: dict[str, Any]) -> None:
    print(
        f"python {platform.python_version()}, N={out['n']} workers, direction {out['direction']}, "
        f"gc {out['gc']}{', pinned' if out['pin'] else ''}, "
        f"stats concurrency {out['stats_concurrency']}, "
        f"handshake turn budget {out['turn_budget_ms']:g} ms, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    print(
        f"connected {out['connected']}/{out['n']} in {out['connect_s']:.1f} s; failures: "
        f"{out['connect_failures'] or 'none'}"
    )
    print(
        f"controller CPU per handshake (TCP+upgrade+handshake): {out['handshake_cpu_ms']:.2f} ms"
        f" ({out['handshakes_deferred']} steps waited a turn)"
    )
    rms, cpu = out["stats_round_ms"], out["stats_cpu_us_per_peer"]
    med = statistics.median(rms)
    print(
        f"get_all_stats round: {min(rms):.0f}-{max(rms):.0f} ms (median {med:.0f}), "
        f"controller CPU {min(cpu):.0f}-{max(cpu):.0f} us/peer, errors {out['stats_errors']}; "
        f"worker processes' CPU {out['stats_worker_cpu_us_per_peer']:.0f} us/peer"
    )
    print(f"idle (keepalive only): controller CPU {out['idle_cpu_pct']:.1f} %")
    print(
        f"select_nearest(10): first {out['select_ms_first']:.2f} ms, then "
        f"{out['select_ms_median']:.3f} ms"
    )
    print(
        f"{'phase':12} {'lag p50':>8} {'p99':>8} {'max':>8}   {'gc n':>5} {'gen2':>5} "
        f"{'gc max':>7} {'gc sum':>7}  (ms)"
    )
    for phase in ("connecting", "serving", "idle", "selecting"):
        print(
            f"{phase:12} {out[f'lag_{phase}_p50_ms']:8.2f} {out[f'lag_{phase}_p99_ms']:8.2f} "
            f"{out[f'lag_{phase}_max_ms']:8.2f}   {out[f'gc_{phase}_count']:5d} "
            f"{out[f'gc_{phase}_gen2']:5d} {out[f'gc_{phase}_max_ms']:7.1f} "
            f"{out[f'gc_{phase}_total_ms']:7.1f}"
        )
    print(f"controller max RSS {out['rss_mib']:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1000, help="workers (default 1000)")
    ap.add_argument("--quick", action="store_true", help="N=200, 3 rounds")
    ap.add_argument("--direction", choices=("out", "in"), default="out")
    ap.add_argument("--gc", choices=("default", "freeze", "tuned"), default="default")
    ap.add_argument(
        "--pin",
        action="store_true",
        help="controller on the first CPU, worker processes on the others",
    )
    ap.add_argument("--addresses", type=int, default=8, help="127.0.1.x listen addresses")
    ap.add_argument("--worker-procs", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=64, help="dials in flight")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of keepalive only")
    ap.add_argument("--ping-interval", type=float, default=30.0)
    ap.add_argument(
        "--stats-concurrency", type=int, default=0, help="max_concurrent_stats (0: default 32)"
    )
    ap.add_argument("--selects", type=int, default=20)
    ap.add_argument(
        "--turn-budget",
        type=float,
        default=None,
        help="controller's handshake_turn_budget in seconds (0: no pacing; default: its default)",
    )
    ap.add_argument(
        "--default-limits", action="store_true", help="controller with TransportConfig defaults"
    )
    ap.add_argument("--json", action="store_true")
    ap.add_argument(
        "--profile",
        metavar="FILE",
        default="",
        help="cProfile the stats rounds (controller process) into FILE (pstats format)",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--controller", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        asyncio.run(child_main(args))
        return
    if args.quick:
        args.n, args.rounds, args.idle = 200, 3, 3.0
    if args.pin:
        pin_controller()
    out = asyncio.run(run(args))
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        report(out)


if __name__ == "__main__":
    main()
