"""Transport benchmark: Python<->Python over loopback with real encryption, Go beside it.

    python tools/bench/transport.py [--quick] [--profile]

Measures, in one run: one-way encrypted messages/s (a ~280-byte ``stats`` message, rate
limits raised), sequential request/response round trips/s with p50 (ping -> pong, answered
by the transport), time per handshake (TCP + HTTP upgrade + handshake, sequential), and
memory per idle connection (tracemalloc delta of the listening process; the dialling side
runs in a child process). ``--profile`` prints where the one-way time goes (cProfile).
Go figures: the reference on the project's 2-core machine (issue 4).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import statistics
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from p2p.controller.payloads import StatsPayload
from p2p.identity import KeyPair, NodeIdentity
from p2p.transport import PeerConnection, Transport, TransportConfig, envelope

GO = {"oneway": 32_350.0, "rt": 5_460.0, "rt_p50_ms": 0.17, "handshake_ms": 1.6}


class MemoryIdentity:
    """An in-memory identity (no files): what Transport needs from a NodeManager."""

    def __init__(self, name: str) -> None:
        self.keypair = KeyPair.generate()
        self.identity: NodeIdentity | None = NodeIdentity.create(self.keypair, name)

    def derive_shared_secret(self, peer_public_key: str) -> bytes:
        return self.keypair.derive_shared_secret(peer_public_key)


def bench_config(**changes: Any) -> TransportConfig:
    base: dict[str, Any] = {
        "listen_host": "127.0.0.1",
        "listen_port": 0,
        "rate_burst": 1_000_000,
        "rate_refill_per_s": 1_000_000.0,
        "max_conns": 10_000,
        "max_handshakes_per_ip": 10_000,
        "max_pending_handshakes": 10_000,
        "max_conns_per_prefix": 10_000,
        "handshake_burst_per_ip": 1_000_000,
        "handshake_refill_per_ip_s": 1_000_000.0,
    }
    base.update(changes)
    return TransportConfig(**base)


def stats_message(from_: str, to: str) -> Any:
    """A ``stats`` reply like an idle worker's (~280 bytes of JSON)."""
    return envelope.new_message("stats", from_, to, StatsPayload(from_, "bench-node", [], 3600))


async def pair() -> tuple[Transport, Transport, PeerConnection]:
    a = Transport(MemoryIdentity("a"), None, bench_config())
    b = Transport(MemoryIdentity("b"), None, bench_config())
    await a.start()
    await b.start()
    conn = await a.connect(b.address)
    return a, b, conn


async def one_way(n: int) -> tuple[float, int]:
    a, b, conn = await pair()
    try:
        a_id = a._own_id()
        b_id = conn.peer_id
        size = len(stats_message(a_id, b_id).to_json())
        done = asyncio.Event()
        count = 0

        def on_msg(c: PeerConnection, m: Any) -> None:
            nonlocal count
            count += 1
            if count == n:
                done.set()

        b.on_message(on_msg)
        start = time.perf_counter()
        for _ in range(n):
            await conn.send(stats_message(a_id, b_id))
        await asyncio.wait_for(done.wait(), 60)
        elapsed = time.perf_counter() - start
        return n / elapsed, size
    finally:
        await a.stop()
        await b.stop()


async def round_trips(n: int) -> tuple[float, float]:
    a, b, conn = await pair()
    try:
        a_id = a._own_id()
        waiting: dict[str, asyncio.Future[None]] = {}

        def on_pong(c: PeerConnection, m: Any) -> None:
            if m.type == envelope.PONG:
                fut = waiting.pop(m.reply_to, None)
                if fut is not None:
                    fut.set_result(None)

        a.on_message(on_pong)
        loop = asyncio.get_running_loop()
        times: list[float] = []
        start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            ping = envelope.ping(a_id, conn.peer_id, int(time.time() * 1000))
            fut: asyncio.Future[None] = loop.create_future()
            waiting[ping.id] = fut
            await conn.send(ping)
            await fut
            times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        return n / elapsed, statistics.median(times) * 1000
    finally:
        await a.stop()
        await b.stop()


async def handshakes(n: int) -> float:
    server = Transport(MemoryIdentity("server"), None, bench_config())
    await server.start()
    clients = [Transport(MemoryIdentity(f"c{i}"), None, bench_config()) for i in range(n)]
    try:
        for c in clients:
            await c.start()
        total = 0.0
        for c in clients:
            t0 = time.perf_counter()
            conn = await c.connect(server.address)
            total += time.perf_counter() - t0
            await conn.close()
        return total / n * 1000
    finally:
        for c in clients:
            await c.stop()
        await server.stop()


CHILD = r"""
import asyncio, sys
from p2p.identity import KeyPair, NodeIdentity
from p2p.transport import envelope
from p2p.transport.handshake import HandshakeInitiator
from websockets.asyncio.client import connect

async def main(address, k):
    socks = []
    for _ in range(k):
        kp = KeyPair.generate()
        ident = NodeIdentity.create(kp, "idle")
        ws = await connect(f"ws://{address}/ws", compression=None, ping_interval=None, proxy=None)
        init = HandshakeInitiator(ident, kp.derive_shared_secret)
        await ws.send(envelope.to_text(init.hello()))
        init.receive_ack(await ws.recv())
        socks.append(ws)
    print("ready", flush=True)
    sys.stdin.readline()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def idle_memory(k: int) -> float:
    server = Transport(MemoryIdentity("server"), None, bench_config())
    await server.start()
    try:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            CHILD,
            server.address,
            str(k),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stdin is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        assert line.strip() == b"ready", line
        while len(server.connected_peers) < k:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        proc.stdin.write(b"\n")
        await proc.stdin.drain()
        await proc.wait()
        return (after - before) / k / 1024
    finally:
        await server.stop()


async def plain_websockets(n: int, size: int) -> float:
    """The floor: bare ``websockets`` moving ``size``-byte binary messages one way."""
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    done = asyncio.Event()

    async def sink(ws: Any) -> None:
        count = 0
        async for _ in ws:
            count += 1
            if count == n:
                done.set()

    payload = os.urandom(size)
    async with serve(sink, "127.0.0.1", 0, compression=None, ping_interval=None) as srv:
        port = srv.sockets[0].getsockname()[1]
        async with connect(
            f"ws://127.0.0.1:{port}", compression=None, ping_interval=None, proxy=None
        ) as ws:
            start = time.perf_counter()
            for _ in range(n):
                await ws.send(payload)
            await asyncio.wait_for(done.wait(), 60)
            return n / (time.perf_counter() - start)


def stage_costs() -> list[tuple[str, float]]:
    """Microseconds per message for each step of the one-way path, outside the loop."""
    import timeit

    from p2p.transport.frames import FrameCodec
    from p2p.transport.limits import ReplayGuard
    from p2p.transport.session import Session

    kp_a, kp_b = KeyPair.generate(), KeyPair.generate()
    a = NodeIdentity.create(kp_a, "a")
    b = NodeIdentity.create(kp_b, "b")
    secret = kp_a.derive_shared_secret(kp_b.public_key_b64)
    codec = FrameCodec(secret)
    msg = stats_message(a.id, b.id)
    frame = codec.seal(msg)
    cfg = bench_config()
    session = Session(a, secret, cfg, ReplayGuard.from_config(cfg), time.monotonic())
    frames = [codec.seal(stats_message(a.id, b.id)) for _ in range(20_000)]
    it = iter(frames)

    def best(fn: Any, number: int = 5000) -> float:
        return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6

    now = time.monotonic()
    wall = time.time()
    return [
        ("Message.new(stats)", best(lambda: stats_message(a.id, b.id))),
        ("Message.to_json", best(msg.to_json)),
        ("FrameCodec.seal (json+smsg encrypt)", best(lambda: codec.seal(msg))),
        ("FrameCodec.open (smsg decrypt+json)", best(lambda: codec.open(frame))),
        (
            "Session.receive (open+rate+ts+dedup)",
            best(lambda: session.receive(next(it), now, wall), number=5000),
        ),
    ]


def profile_one_way(n: int) -> str:
    prof = cProfile.Profile()
    prof.enable()
    asyncio.run(one_way(n))
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    n_msgs = 5_000 if args.quick else 30_000
    n_rt = 1_000 if args.quick else 5_000
    n_hs = 30 if args.quick else 200
    k_idle = 50 if args.quick else 200

    ow, size = asyncio.run(one_way(n_msgs))
    frame_size = size + 121  # SMSG overhead: magic, header, nonce, tag, plaintext wrapper
    plain = asyncio.run(plain_websockets(n_msgs, frame_size))
    rt, p50 = asyncio.run(round_trips(n_rt))
    hs = asyncio.run(handshakes(n_hs))
    mem = asyncio.run(idle_memory(k_idle))
    import p2p.ueps

    print(
        f"python {sys.version.split()[0]}, p2p.ueps {p2p.ueps.IMPLEMENTATION}, "
        f"pid {os.getpid()}, stats message {size} B"
    )
    print(f"{'metric':34} {'python':>12} {'go':>10} {'py/go':>7}")
    rows = [
        ("one-way msgs/s", ow, GO["oneway"], True),
        ("round trips/s (sequential)", rt, GO["rt"], True),
        ("round trip p50 (ms)", p50, GO["rt_p50_ms"], False),
        ("handshake (ms, connect+upgrade)", hs, GO["handshake_ms"], False),
    ]
    for name, ours, go, higher_better in rows:
        ratio = ours / go if higher_better else go / ours
        print(f"{name:34} {ours:12,.2f} {go:10,.2f} {ratio:6.2f}x")
    print(f"{'memory per idle connection (KiB)':34} {mem:12,.1f} {'-':>10} {'-':>7}")
    print("(py/go > 1 means Python is better)")
    print()
    print(
        f"floor: bare websockets, {frame_size}-byte binary one way: {plain:,.0f} msgs/s "
        f"(we reach {ow / plain:.0%} of it)"
    )
    print("where one message's time goes (us, measured alone):")
    for name, us in stage_costs():
        print(f"  {name:40} {us:7.1f}")
    print(f"  {'= whole one-way path per message':40} {1e6 / ow:7.1f}")
    if args.profile:
        print(profile_one_way(n_msgs // 2))


if __name__ == "__main__":
    main()
