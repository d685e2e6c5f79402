"""Transport benchmark: Python<->Python over loopback with real encryption, Go beside it.

    python tools/bench/transport.py [--quick] [--json] [--profile]
        [--go-oneway MSGS_S] [--go-rt RT_S] [--go-handshake MS]

Two configurations, each measured in the same run:

- **one process**: both nodes on one event loop (the sender's and receiver's work add up
  on one core);
- **two processes**: the receiving node B runs in a child process (how nodes really run);
  A in this process drives it; the child reports its delivery time and rusage on stdout.

Per configuration: one-way encrypted ``stats`` messages/s (~280-byte JSON, a ~400-byte
frame; rate limits raised) and UEPS frames/s of the same payload size beside it;
sequential ping -> pong round trips/s with p50/p99; CPU µs per one-way message (user+sys
rusage of both ends); handshake time. The handshake figure is TCP + HTTP upgrade +
handshake as the dialler sees it (``connect`` returns; it may send at once); inbound
connections are unproven until a fresh frame decrypts (the responder probes with a ping),
and messages *to* the dialler wait for that, so "time to proven" (from the dial to the
responder promoting the connection) is reported separately. Memory per idle connection:
tracemalloc delta of the listening process while a child holds ``k`` idle connections
(Python allocations; kernel socket buffers are not counted).

``--json`` prints one object; unqualified keys are the one-process figures
(``oneway_msgs_per_s``, ``rt_per_s``, ``rt_p50_ms``, ``handshake_ms``, ``cpu_us_per_msg``),
``*_two_process*`` keys the other configuration, plus ``idle_conn_kib``. Go figures
default to the reference measured in one sitting on the project's 2-core machine (issue 14:
60 600 msg/s, 7 500 rt/s, 0.94 ms); pass yours with ``--go-*`` (the Go harness is not in
the repo). ``--profile`` prints where the one-process one-way time goes (cProfile).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from p2p import ueps
from p2p.controller.payloads import StatsPayload
from p2p.identity import KeyPair, NodeIdentity
from p2p.transport import (
    BoundPacket,
    OpenGate,
    PeerConnection,
    Transport,
    TransportConfig,
    envelope,
    with_1_1,
    with_ueps,
)
from p2p.transport.aio import busypoll

GO = {"oneway": 60_600.0, "rt": 7_500.0, "handshake_ms": 0.94}
PROTOCOL_ENV = "P2P_BENCH_PROTOCOL"
LOOP_ENV = "P2P_BENCH_LOOP"
"""``1.0`` (default, Go's protocol) or ``1.1`` (Noise XX; ``--protocol``); the child
process inherits it through the environment."""
BUSY_POLL_ENV = "P2P_BENCH_BUSY_POLL_US"


def bench_protocol() -> str:
    return "1.1" if os.environ.get(PROTOCOL_ENV) == "1.1" else "1.0"


class MemoryIdentity:
    """An in-memory identity (no files): what Transport needs from a NodeManager."""

    def __init__(self, name: str) -> None:
        self.keypair = KeyPair.generate()
        self.identity: NodeIdentity | None = NodeIdentity.create(self.keypair, name)

    def derive_shared_secret(self, peer_public_key: str) -> bytes:
        return self.keypair.derive_shared_secret(peer_public_key)


class ProvenClock(OpenGate):
    """An open gate that notes when each connection is promoted (proven)."""

    def __init__(self) -> None:
        super().__init__()
        self.proven: list[float] = []

    def peer_connected(self, identity: Any, address: str) -> None:
        self.proven.append(time.monotonic())
        super().peer_connected(identity, address)


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
        "features": with_1_1(with_ueps()) if bench_protocol() == "1.1" else with_ueps(),
    }
    base.update(changes)
    return TransportConfig(**base)


def stats_message(from_: str, to: str) -> Any:
    """A ``stats`` reply like an idle worker's (~280 bytes of JSON)."""
    return envelope.new_message("stats", from_, to, StatsPayload(from_, "bench-node", [], 3600))


def cpu_s() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Sink:
    """Node B: counts deliveries (messages or UEPS frames), answers pings (the transport
    does), notes when dialled connections are proven."""

    def __init__(self) -> None:
        self.gate = ProvenClock()
        self.t = Transport(MemoryIdentity("b"), self.gate, bench_config())
        self.count = 0
        self.target = 0
        self.kind = ""
        self.done = asyncio.Event()
        self.done_at = 0.0

    async def start(self) -> None:
        await self.t.start()
        self.t.on_message(self._on_message)
        self.t.on_ueps(ueps.INTENT_COMPUTE, self._on_frame)

    def arm(self, n: int, kind: str) -> None:
        self.count, self.target, self.kind = 0, n, kind
        self.done.clear()

    def _hit(self) -> None:
        self.count += 1
        if self.count == self.target:
            self.done_at = time.monotonic()
            self.done.set()

    def _on_message(self, c: PeerConnection, m: Any) -> None:
        if self.kind == "smsg" and m.type == "stats":
            self._hit()

    def _on_frame(self, c: PeerConnection, packet: BoundPacket) -> None:
        if self.kind == "ueps":
            self._hit()

    async def stop(self) -> None:
        await self.t.stop()


class LocalB:
    """B on this event loop (one process): its CPU is already in ours."""

    def __init__(self) -> None:
        self.sink = Sink()

    async def start(self) -> str:
        await self.sink.start()
        return self.sink.t.address

    async def arm(self, n: int, kind: str) -> float:
        self.sink.arm(n, kind)
        return 0.0

    async def wait_done(self) -> tuple[float, float]:
        await asyncio.wait_for(self.sink.done.wait(), 120)
        return self.sink.done_at, 0.0

    async def proven(self) -> list[float]:
        out, self.sink.gate.proven = self.sink.gate.proven, []
        return out

    async def wait_proven(self, k: int) -> None:
        await wait_for_count(self.sink.gate.proven, k)

    async def stop(self) -> None:
        await self.sink.stop()


class ChildB:
    """B in a child process, driven by JSON lines on its stdin/stdout."""

    proc: Any

    async def start(self) -> str:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--child",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            limit=1 << 22,
        )
        return str((await self._read())["address"])

    async def _read(self) -> dict[str, Any]:
        line = await asyncio.wait_for(self.proc.stdout.readline(), 120)
        if not line:
            raise RuntimeError("bench child exited")
        obj: dict[str, Any] = json.loads(line)
        return obj

    async def _cmd(self, **cmd: Any) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps(cmd).encode() + b"\n")
        await self.proc.stdin.drain()
        return await self._read()

    async def arm(self, n: int, kind: str) -> float:
        return float((await self._cmd(cmd="arm", n=n, kind=kind))["cpu"])

    async def wait_done(self) -> tuple[float, float]:
        obj = await self._read()
        return float(obj["done"]), float(obj["cpu"])

    async def proven(self) -> list[float]:
        return list((await self._cmd(cmd="proven"))["proven"])

    async def wait_proven(self, k: int) -> None:
        await self._cmd(cmd="wait_proven", k=k)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._cmd(cmd="quit")
        await self.proc.wait()


async def child_main() -> None:
    sink = Sink()
    await sink.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 22)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def say(**obj: Any) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    say(address=sink.t.address)
    waiter: asyncio.Task[None] | None = None
    while line := await reader.readline():
        cmd = json.loads(line)
        if cmd["cmd"] == "arm":
            sink.arm(cmd["n"], cmd["kind"])
            say(cpu=cpu_s())

            async def report() -> None:
                await sink.done.wait()
                say(done=sink.done_at, cpu=cpu_s())

            waiter = loop.create_task(report())
        elif cmd["cmd"] == "wait_proven":
            await wait_for_count(sink.gate.proven, cmd["k"])
            say(ok=True)
        elif cmd["cmd"] == "proven":
            say(proven=sink.gate.proven)
            sink.gate.proven = []
        elif cmd["cmd"] == "quit":
            say(bye=True)
            break
    if waiter is not None:
        waiter.cancel()
    await sink.stop()


async def wait_for_count(items: list[float], k: int, timeout: float = 10.0) -> None:
    """Until ``items`` holds ``k`` entries (or ``timeout``): a poll, off the timed path."""
    deadline = time.monotonic() + timeout
    while len(items) < k and time.monotonic() < deadline:
        await asyncio.sleep(0.0005)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(q * len(s) + 0.999999) - 1))]


async def measure(remote: Any, sizes: dict[str, int]) -> dict[str, float]:
    """Every figure of one configuration against node B (``LocalB`` or ``ChildB``)."""
    out: dict[str, float] = {}
    address = await remote.start()
    a = Transport(MemoryIdentity("a"), None, bench_config())
    await a.start()
    try:
        conn = await a.connect(address)
        await a.ueps.wait_ready(conn.peer_id)
        a_id, b_id = a._own_id(), conn.peer_id
        payload = stats_message(a_id, b_id).to_json()
        sizes["stats_json"] = len(payload)

        async def one_way(n: int, kind: str) -> tuple[float, float]:
            child_cpu0 = await remote.arm(n, kind)
            t0, cpu0 = time.monotonic(), cpu_s()
            if kind == "smsg":
                for _ in range(n):
                    await conn.send(stats_message(a_id, b_id))
            else:
                for _ in range(n):
                    await conn.send_ueps(ueps.INTENT_COMPUTE, payload)
            done_at, child_cpu1 = await remote.wait_done()
            own = cpu_s() - cpu0
            return n / (done_at - t0), (own + child_cpu1 - child_cpu0) / n * 1e6

        n = sizes["n_msgs"]
        await one_way(min(n, 2000), "smsg")  # warm-up
        best, cpu_best = 0.0, float("inf")
        for _ in range(sizes["repeats"]):
            rate, cpu = await one_way(n, "smsg")
            best, cpu_best = max(best, rate), min(cpu_best, cpu)
        out["oneway"], out["cpu_us"] = best, cpu_best
        await one_way(min(n, 2000), "ueps")
        best_u = max([(await one_way(n, "ueps"))[0] for _ in range(sizes["repeats"])])
        out["ueps_oneway"] = best_u

        waiting: dict[str, asyncio.Future[None]] = {}

        def on_pong(c: PeerConnection, m: Any) -> None:
            if m.type == envelope.PONG:
                fut = waiting.pop(m.reply_to, None)
                if fut is not None:
                    fut.set_result(None)

        a.on_message(on_pong)
        loop = asyncio.get_running_loop()
        times: list[float] = []
        n_rt = sizes["n_rt"]
        start = time.perf_counter()
        for _ in range(n_rt):
            t0 = time.perf_counter()
            ping = envelope.ping(a_id, b_id, int(time.time() * 1000))
            fut: asyncio.Future[None] = loop.create_future()
            waiting[ping.id] = fut
            await conn.send(ping)
            await fut
            times.append(time.perf_counter() - t0)
        out["rt"] = n_rt / (time.perf_counter() - start)
        out["rt_p50_ms"] = statistics.median(times) * 1000
        out["rt_p99_ms"] = pct(times, 0.99) * 1000

        # handshakes: fresh dialler identities, one at a time
        n_hs = sizes["n_hs"]
        clients = [Transport(MemoryIdentity(f"c{i}"), None, bench_config()) for i in range(n_hs)]
        for c in clients:
            await c.start()
        await remote.proven()  # forget the first connection's
        starts, connected = [], []
        try:
            for i, c in enumerate(clients):
                t0 = time.monotonic()
                hc = await c.connect(address)
                connected.append(time.monotonic() - t0)
                starts.append(t0)
                # the responder's probe ping/pong ends before the next dial (sequential)
                await remote.wait_proven(i + 1)
                await hc.close()
            proven = await remote.proven()
        finally:
            await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
        out["handshake_ms"] = statistics.median(connected) * 1000
        out["handshake_p99_ms"] = pct(connected, 0.99) * 1000
        if len(proven) == len(starts):
            out["proven_ms"] = (
                statistics.median(p - s for p, s in zip(proven, starts, strict=True)) * 1000
            )
        else:
            out["proven_ms"] = float("nan")
    finally:
        await a.stop()
        await remote.stop()
    return out


async def one_way(n: int) -> tuple[float, int]:
    """One-process one-way rate (for ``--profile``)."""
    sizes = {"n_msgs": n, "n_rt": 10, "n_hs": 2, "repeats": 1}
    out = await measure(LocalB(), sizes)
    return out["oneway"], sizes["stats_json"]


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
        # inbound connections stay unproven until a fresh frame decrypts (these never
        # send one): count them wherever they are
        while len(server.connected_peers) + len(server.unproven_connections()) < k:
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


ECHO_CHILD = r"""
import asyncio, os, sys
if os.environ.get("P2P_BENCH_LOOP") == "uvloop":
    import uvloop
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
elif os.environ.get("P2P_BENCH_LOOP") == "busypoll":
    from p2p.transport.aio import busypoll
    asyncio.set_event_loop_policy(busypoll.EventLoopPolicy(float(os.environ["P2P_BENCH_BUSY_POLL_US"])))
class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
    def data_received(self, data):
        self.transport.write(data)
async def main():
    srv = await asyncio.get_running_loop().create_server(Echo, "127.0.0.1", 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
asyncio.run(main())
"""


class _Pinger(asyncio.Protocol):
    def __init__(self, size: int) -> None:
        self.size = size
        self.got = 0
        self.waiter: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self.got += len(data)
        if self.got >= self.size and self.waiter is not None and not self.waiter.done():
            self.got -= self.size
            self.waiter.set_result(None)


async def plain_round_trips(n: int, size: int) -> float:
    """The round-trip floor: an ``asyncio.Protocol`` echo in a child process (same event
    loop as the bench), pinged with ``size`` bytes ``n`` times in a row from this one."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        ECHO_CHILD,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    port = int(await proc.stdout.readline())
    loop = asyncio.get_running_loop()
    transport, pinger = await loop.create_connection(lambda: _Pinger(size), "127.0.0.1", port)
    payload = os.urandom(size)
    try:
        start = time.perf_counter()
        for _ in range(n):
            pinger.waiter = loop.create_future()
            transport.write(payload)
            await pinger.waiter
        return n / (time.perf_counter() - start)
    finally:
        transport.close()
        proc.stdin.write(b"\n")
        await proc.wait()


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
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--go-oneway", type=float, default=GO["oneway"], help="Go msgs/s")
    parser.add_argument("--go-rt", type=float, default=GO["rt"], help="Go round trips/s")
    parser.add_argument("--go-handshake", type=float, default=GO["handshake_ms"], help="Go ms")
    parser.add_argument(
        "--protocol",
        choices=("1.0", "1.1"),
        default=os.environ.get(PROTOCOL_ENV, "1.0"),
        help="1.0 (Go's SMSG frames) or 1.1 (Noise XX handshake, ChaChaPoly frames)",
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "uvloop", "busypoll"),
        default=os.environ.get(LOOP_ENV, "asyncio"),
        help="event loop of both ends (uvloop: pip install uvloop; busypoll: asyncio's selector "
        "loop polling up to --busy-poll-us before it sleeps, p2p.transport.aio.busypoll)",
    )
    parser.add_argument(
        "--busy-poll-us",
        type=float,
        default=float(os.environ.get(BUSY_POLL_ENV, "100")),
        help="the busypoll loop's longest poll per wait, in us (default 100)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ[PROTOCOL_ENV] = args.protocol  # the child process reads it too
    os.environ[LOOP_ENV] = args.loop
    os.environ[BUSY_POLL_ENV] = str(args.busy_poll_us)
    if args.loop == "busypoll":
        asyncio.set_event_loop_policy(busypoll.EventLoopPolicy(args.busy_poll_us))
    if args.loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if args.child:
        asyncio.run(child_main())
        return
    sizes = {
        "n_msgs": 5_000 if args.quick else 30_000,
        "n_rt": 1_000 if args.quick else 5_000,
        "n_hs": 30 if args.quick else 200,
        "repeats": 1 if args.quick else 3,
    }
    k_idle = 50 if args.quick else 200
    load = os.getloadavg()
    one = asyncio.run(measure(LocalB(), sizes))
    two = asyncio.run(measure(ChildB(), sizes))
    mem = asyncio.run(idle_memory(k_idle))
    size = sizes["stats_json"]
    frame_size = size + 121  # SMSG overhead: magic, header, nonce, tag, plaintext wrapper
    result: dict[str, Any] = {
        "oneway_msgs_per_s": one["oneway"],
        "oneway_two_process_msgs_per_s": two["oneway"],
        "ueps_frames_per_s": one["ueps_oneway"],
        "ueps_two_process_frames_per_s": two["ueps_oneway"],
        "rt_per_s": one["rt"],
        "rt_p50_ms": one["rt_p50_ms"],
        "rt_p99_ms": one["rt_p99_ms"],
        "rt_two_process_per_s": two["rt"],
        "rt_two_process_p50_ms": two["rt_p50_ms"],
        "rt_two_process_p99_ms": two["rt_p99_ms"],
        "handshake_ms": one["handshake_ms"],
        "handshake_p99_ms": one["handshake_p99_ms"],
        "handshake_proven_ms": one["proven_ms"],
        "handshake_two_process_ms": two["handshake_ms"],
        "handshake_two_process_proven_ms": two["proven_ms"],
        "cpu_us_per_msg": one["cpu_us"],
        "cpu_us_per_msg_two_process": two["cpu_us"],
        "idle_conn_kib": mem,
        "stats_json_bytes": size,
        "go": {"oneway": args.go_oneway, "rt": args.go_rt, "handshake_ms": args.go_handshake},
        "loadavg_before": load[0],
        "loadavg_after": os.getloadavg()[0],
        "python": sys.version.split()[0],
        "ueps_implementation": ueps.IMPLEMENTATION,
        "protocol": args.protocol,
        "loop": args.loop,
        "floor_rt_two_process_per_s": asyncio.run(plain_round_trips(sizes["n_rt"], size + 121)),
    }
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return
    print(
        f"protocol {args.protocol}, loop {args.loop}, "
        f"python {sys.version.split()[0]}, p2p.ueps {ueps.IMPLEMENTATION}, stats message "
        f"{size} B, load {load[0]:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    print(f"{'metric':36} {'1 process':>11} {'2 procs':>11} {'go':>9} {'2p/go':>7}")
    rows = [
        ("one-way msgs/s", one["oneway"], two["oneway"], args.go_oneway, True),
        ("  UEPS frames/s (same payload)", one["ueps_oneway"], two["ueps_oneway"], None, True),
        ("  CPU us per msg (both ends)", one["cpu_us"], two["cpu_us"], None, False),
        ("round trips/s (sequential)", one["rt"], two["rt"], args.go_rt, True),
        ("  round trip p50 (ms)", one["rt_p50_ms"], two["rt_p50_ms"], None, False),
        ("  round trip p99 (ms)", one["rt_p99_ms"], two["rt_p99_ms"], None, False),
        (
            "handshake ms (TCP+upgrade+hs)",
            one["handshake_ms"],
            two["handshake_ms"],
            args.go_handshake,
            False,
        ),
        ("  time to proven (ms)", one["proven_ms"], two["proven_ms"], None, False),
    ]
    for name, ours1, ours2, go, higher_better in rows:
        if go:
            ratio = f"{ours2 / go if higher_better else go / ours2:6.2f}x"
            go_text = f"{go:9,.2f}"
        else:
            ratio, go_text = f"{'-':>7}", f"{'-':>9}"
        print(f"{name:36} {ours1:11,.2f} {ours2:11,.2f} {go_text} {ratio}")
    print(f"{'memory per idle connection (KiB)':36} {mem:11,.1f}")
    print("(2p/go > 1 means Python is better; time to proven: dial start -> responder promotes)")
    plain = asyncio.run(plain_websockets(sizes["n_msgs"], frame_size))
    print()
    print(
        f"floor: bare websockets, {frame_size}-byte binary one way: {plain:,.0f} msgs/s "
        f"(one process reaches {one['oneway'] / plain:.0%} of it)"
    )
    echo = result["floor_rt_two_process_per_s"]
    print(
        f"floor: bare asyncio.Protocol echo, two processes, {args.loop}: {echo:,.0f} round "
        f"trips/s (two processes reach {two['rt'] / echo:.0%} of it)"
    )
    print("where one message's time goes (us, measured alone):")
    for name, us in stage_costs():
        print(f"  {name:40} {us:7.1f}")
    print(f"  {'= whole one-way path per message':40} {1e6 / one['oneway']:7.1f}")
    if args.profile:
        print(profile_one_way(sizes["n_msgs"] // 2))


if __name__ == "__main__":
    main()
