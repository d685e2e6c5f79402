"""UEPS frames vs SMSG messages between two live nodes over loopback, in one run.

    python tools/bench/ueps_mesh.py [--quick] [--frames N]

Two transports in this process (rate limits raised), connected once with ``ueps/1``
negotiated. For each payload size, one-way throughput from A to B, measured from the first
send to the last delivery at B's handler:

- UEPS: ``conn.send_ueps`` (session-bound frame: HMAC-SHA256, no JSON, no AEAD), B verifies
  the HMAC, session id and counter and routes it through the dispatcher;
- SMSG: a message whose JSON payload is the same number of bytes (``conn.send``: JSON envelope,
  XChaCha20-Poly1305 + pre-obfuscation), B decrypts, parses, dedups and calls its handler.

UEPS and SMSG rounds alternate and the best of the repeats is kept, so both see the same
machine load. Sender and receiver share one event loop (and one core).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from p2p import ueps
from p2p.identity import KeyPair, NodeIdentity
from p2p.transport import PeerConnection, Transport, TransportConfig, envelope
from p2p.transport.ueps_channel import with_ueps
from p2p.transport.ueps_frames import BoundPacket

SIZES = (64, 1024)


class MemoryIdentity:
    """An in-memory identity (no files): what Transport needs from a NodeManager."""

    def __init__(self, name: str) -> None:
        self.keypair = KeyPair.generate()
        self.identity: NodeIdentity | None = NodeIdentity.create(self.keypair, name)

    def derive_shared_secret(self, peer_public_key: str) -> bytes:
        return self.keypair.derive_shared_secret(peer_public_key)


def bench_config() -> TransportConfig:
    return TransportConfig(
        listen_host="127.0.0.1",
        listen_port=0,
        rate_burst=1_000_000,
        rate_refill_per_s=1_000_000.0,
        ts_window=None,
        features=with_ueps(),
    )


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.target = 0
        self.done = asyncio.Event()

    def arm(self, target: int) -> None:
        self.n, self.target = 0, target
        self.done.clear()

    def hit(self) -> None:
        self.n += 1
        if self.n == self.target:
            self.done.set()


async def timed(
    n: int, counter: Counter, send_one: Callable[[], Awaitable[None]]
) -> tuple[float, float]:
    """(deliveries per wall second, CPU µs of this process per delivery)."""
    counter.arm(n)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(n):
        await send_one()
    await asyncio.wait_for(counter.done.wait(), 120)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return n / wall, cpu / n * 1e6


Row = tuple[int, float, float, float, float]


async def run(frames: int, repeats: int) -> list[Row]:
    a = Transport(MemoryIdentity("a"), None, bench_config())
    b = Transport(MemoryIdentity("b"), None, bench_config())
    await a.start()
    await b.start()
    try:
        conn = await a.connect(b.address)
        await a.ueps.wait_ready(conn.peer_id)
        a_id, b_id = a._own_id(), conn.peer_id
        ueps_count, smsg_count = Counter(), Counter()

        def on_frame(c: PeerConnection, packet: BoundPacket) -> None:
            ueps_count.hit()

        def on_message(c: PeerConnection, m: Any) -> None:
            if m.type == "bench":
                smsg_count.hit()

        b.on_ueps(ueps.INTENT_COMPUTE, on_frame)
        b.on_message(on_message)
        rows = []
        for size in SIZES:
            payload = b"x" * size
            text = json.dumps("x" * (size - 2))  # a JSON payload of exactly `size` bytes
            assert len(text) == size

            async def send_frame(payload: bytes = payload) -> None:
                await conn.send_ueps(ueps.INTENT_COMPUTE, payload)

            async def send_message(text: str = text) -> None:
                message = envelope.new_message("bench", a_id, b_id, None)
                message.payload = text
                await conn.send(message)

            await timed(200, ueps_count, send_frame)  # warm-up
            await timed(200, smsg_count, send_message)
            best_u = best_s = 0.0
            cpu_u = cpu_s = float("inf")
            for _ in range(repeats):
                rate, cpu = await timed(frames, ueps_count, send_frame)
                best_u, cpu_u = max(best_u, rate), min(cpu_u, cpu)
                rate, cpu = await timed(frames, smsg_count, send_message)
                best_s, cpu_s = max(best_s, rate), min(cpu_s, cpu)
            rows.append((size, best_u, best_s, cpu_u, cpu_s))
        assert b.ueps.counters.rejected == 0
        return rows
    finally:
        await a.stop()
        await b.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames and repeats")
    parser.add_argument("--frames", type=int, default=None, help="frames per timed round")
    args = parser.parse_args()
    frames = args.frames or (1000 if args.quick else 5000)
    repeats = 2 if args.quick else 5
    rows = asyncio.run(run(frames, repeats))
    print(
        f"Python {sys.version.split()[0]}, p2p.ueps {ueps.IMPLEMENTATION}, "
        f"{frames} per round, best of {repeats}; one way A -> B over 127.0.0.1"
    )
    print(
        f"{'payload':>8}  {'UEPS frames/s':>14}  {'SMSG msgs/s':>12}  {'ratio':>6}"
        f"  {'UEPS CPU µs':>11}  {'SMSG CPU µs':>11}  {'CPU ratio':>9}"
    )
    for size, u, s, cu, cs in rows:
        print(
            f"{size:>6} B  {u:>14,.0f}  {s:>12,.0f}  {u / s:>5.2f}x"
            f"  {cu:>11.1f}  {cs:>11.1f}  {cs / cu:>8.2f}x"
        )
    print("ratio = UEPS/SMSG throughput; CPU ratio = SMSG/UEPS CPU per delivery (both ends)")


if __name__ == "__main__":
    main()
