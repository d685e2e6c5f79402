"""The controller's own CPU per peer in a ``get_all_stats`` round, transport excluded.

    python tools/bench/stats_round.py [-n 1000] [--rounds 20] [--concurrency 32] [--profile F]

A real ``Controller`` and ``PeerRegistry`` drive N in-memory connections (a stand-in for
the transport, said so here: no sockets, framing or encryption). Each connection answers
a ``get_stats`` on the next loop iteration with a canonical ``stats`` reply, as a worker
would. The reply messages are built before the round (Message.new is the transport's
per-message cost, which ``fleet.py`` measures with everything else), so the CPU per peer
here is what the controller does above the transport: correlation, futures, timers, the
fan-out, reply validation and payload decoding, registry reads; plus building each
request's Message, reported separately (``message_new_us``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from typing import Any

from p2p.controller import Controller
from p2p.controller.controller import ControllerConfig
from p2p.controller.payloads import StatsPayload
from p2p.identity import KeyPair, NodeIdentity
from p2p.peers import Peer, PeerRegistry
from p2p.transport import Message, MessageType


class Identity:
    def __init__(self, name: str) -> None:
        self.identity: NodeIdentity | None = NodeIdentity.create(KeyPair.generate(), name)


class EchoConnection:
    """A connection whose peer answers every get_stats with its prepared reply."""

    def __init__(self, peer_id: str, fleet: EchoTransport) -> None:
        self.peer_id = peer_id
        self.closed = False
        self.identity = None
        self._fleet = fleet
        self._replies: list[Message] = []
        self._closed = asyncio.Event()

    def prepare(self, count: int) -> None:
        payload = StatsPayload(self.peer_id, "w", [], 1)
        self._replies = [
            Message.new(MessageType.STATS, self.peer_id, "c", payload) for _ in range(count)
        ]

    async def send(self, message: Message) -> None:
        reply = self._replies.pop()
        reply.reply_to = message.id
        asyncio.get_running_loop().call_soon(self._fleet.deliver, self, reply)

    async def wait_closed(self) -> None:
        await self._closed.wait()


class EchoTransport:
    """What the Controller needs from a Transport: connections and one subscriber."""

    def __init__(self) -> None:
        self.conns: dict[str, EchoConnection] = {}
        self._handler: Any = None

    def on_message(self, handler: Any) -> Any:
        self._handler = handler
        return lambda: None

    def connection(self, peer_id: str) -> EchoConnection | None:
        return self.conns.get(peer_id)

    def deliver(self, conn: EchoConnection, message: Message) -> None:
        self._handler(conn, message)


def cpu_s() -> float:
    return time.process_time()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    registry = PeerRegistry(persist=False, max_learned=args.n + 64)
    fleet = EchoTransport()
    for i in range(args.n):
        pid = f"{i:064x}"
        registry.add(Peer(id=pid, name="w", public_key="", address="127.0.0.1:1"))
        registry.set_connected(pid, True)
        fleet.conns[pid] = EchoConnection(pid, fleet)
    config = ControllerConfig(max_concurrent_stats=args.concurrency)
    ctl = Controller(Identity("c"), registry, fleet, config)  # type: ignore[arg-type]
    for conn in fleet.conns.values():
        conn.prepare(args.rounds + 1)
    await ctl.get_all_stats()  # warm-up (watchers, first timer)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU, not wall time
    per_peer, walls = [], []
    for _ in range(args.rounds):
        c0, w0 = cpu_s(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        result = await ctl.get_all_stats()
        if profiler is not None:
            profiler.disable()
        walls.append((time.perf_counter() - w0) * 1000)
        per_peer.append((cpu_s() - c0) / args.n * 1e6)
        if len(result) != args.n or result.errors:
            errors = f"{len(result.errors)} errors, e.g. {result.errors}"
            raise SystemExit(f"round failed: {errors}"[:500])
    if profiler is not None:
        profiler.dump_stats(args.profile)
    t0 = time.perf_counter()
    for _ in range(args.n):
        Message.new(MessageType.GET_STATS, "c" * 64, "w" * 64, None)
    new_us = (time.perf_counter() - t0) / args.n * 1e6
    await ctl.close()
    return {
        "n": args.n,
        "concurrency": args.concurrency,
        "round_ms_median": statistics.median(walls),
        "cpu_us_per_peer_median": statistics.median(per_peer),
        "cpu_us_per_peer_min": min(per_peer),
        "message_new_us": new_us,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--profile", default="", metavar="FILE")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out = asyncio.run(run(args))
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print(
            f"N={out['n']} concurrency {out['concurrency']}: "
            f"round {out['round_ms_median']:.1f} ms, "
            f"controller CPU {out['cpu_us_per_peer_median']:.1f} us/peer "
            f"(min {out['cpu_us_per_peer_min']:.1f}), of which Message.new "
            f"~{out['message_new_us']:.1f} us, load {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
