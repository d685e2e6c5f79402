"""Controller/worker benchmark: request round trips over loopback with real encryption.

    python tools/bench/controller.py [--quick]

Measures, in one run, sequential round trips/s and p50 of:
- the floor: a bare ``ping`` sent on a PeerConnection, its ``pong`` (answered by the
  transport) awaited through a subscriber future, no Controller;
- ``Controller.ping_peer`` (adds correlation, timeout, registry metric update);
- ``Controller.get_remote_stats`` (adds the Worker handler and a ``stats`` payload);
and the throughput of ``get_remote_stats`` with 64 requests in flight. Ratios are to the
floor. Rate limits are raised so the reference's 50 msg/s bucket does not cap the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import platform
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from p2p.controller import Controller, Worker
from p2p.identity import NodeManager
from p2p.peers import Peer, PeerRegistry
from p2p.transport import PeerConnection, Transport, TransportConfig
from p2p.transport.messages import Message, MessageType, PingPayload


def identity(base: Path, name: str) -> NodeManager:
    manager = NodeManager(base / name / "private.key", base / name / "node.json")
    manager.generate(name)
    return manager


async def timed(n: int, call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """(round trips per second, p50 ms) of `n` sequential calls."""
    samples = []
    start = time.perf_counter()
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    return n / total, statistics.median(samples) * 1000


async def run(n: int) -> list[tuple[str, float, float]]:
    cfg = TransportConfig(
        listen_host="127.0.0.1",
        listen_port=0,
        rate_burst=1_000_000,
        rate_refill_per_s=500_000.0,
        ts_window=None,
    )
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        worker_nm = identity(base, "worker")
        wt = Transport(worker_nm, config=cfg)
        await wt.start()
        Worker(worker_nm, wt, data_dir=base / "data")
        ctl_nm = identity(base, "controller")
        registry = PeerRegistry(persist=False)
        ct = Transport(ctl_nm, registry, cfg)
        await ct.start()
        controller = Controller(ctl_nm, registry, ct)
        w = worker_nm.identity
        own = ctl_nm.identity
        assert w is not None and own is not None
        registry.add(Peer(id=w.id, name=w.name, public_key=w.public_key, address=wt.address))
        conn: PeerConnection = await controller.connect_to_peer(w.id)

        waiting: dict[str, asyncio.Future[Message]] = {}

        def on_reply(_conn: PeerConnection, msg: Message) -> None:
            fut = waiting.pop(msg.reply_to, None)
            if fut is not None:
                fut.set_result(msg)

        ct.on_message(on_reply)
        loop = asyncio.get_running_loop()

        async def bare_ping() -> None:
            msg = Message.new(MessageType.PING, own.id, w.id, PingPayload(0))
            fut: asyncio.Future[Message] = loop.create_future()
            waiting[msg.id] = fut
            await conn.send(msg)
            await fut

        rows = []
        try:
            for _ in range(3):  # warm-up
                await bare_ping()
                await controller.get_remote_stats(w.id)
            rows.append(("bare ping/pong (floor)", *await timed(n, bare_ping)))
            rows.append(
                ("Controller.ping_peer", *await timed(n, lambda: controller.ping_peer(w.id)))
            )
            rows.append(
                (
                    "Controller.get_remote_stats",
                    *await timed(n, lambda: controller.get_remote_stats(w.id)),
                )
            )
            sem = asyncio.Semaphore(64)

            async def one() -> None:
                async with sem:
                    await controller.get_remote_stats(w.id)

            start = time.perf_counter()
            await asyncio.gather(*(one() for _ in range(n)))
            rate = n / (time.perf_counter() - start)
            rows.append(("get_remote_stats, 64 in flight", rate, float("nan")))
        finally:
            await controller.close()
            await ct.stop()
            await wt.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 requests instead of 2000")
    args = parser.parse_args()
    n = 300 if args.quick else 2000
    rows = asyncio.run(run(n))
    floor = rows[0][1]
    print(f"{n} requests per row, Python {platform.python_version()}")
    print(f"{'operation':34} {'req/s':>9} {'p50 ms':>8} {'vs floor':>9}")
    for name, rate, p50 in rows:
        p50_text = "-" if math.isnan(p50) else f"{p50:.3f}"
        print(f"{name:34} {rate:9.0f} {p50_text:>8} {rate / floor:8.2f}x")


if __name__ == "__main__":
    main()
