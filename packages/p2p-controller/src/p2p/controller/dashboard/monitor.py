"""The sampler's I/O shell: one asyncio task that asks the fleet, once per interval.

Each round runs `Controller.get_all_stats` and a ping of every connected peer (both
bounded by the controller), dials known peers that are not connected (`DialPolicy`),
writes one `Sample` into the `FleetHistory` and hands the new fleet view to the live
streams. Cost per round: one stats request and one ping per connected peer; memory: the
ring buffer's fixed columns plus the latest sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from p2p.controller.dashboard.sampler import (
    DialPolicy,
    FleetHistory,
    Sample,
    Schedule,
    WorkerSample,
)
from p2p.controller.dashboard.settings import DashboardConfig

if TYPE_CHECKING:
    from p2p.controller.node import Node

__all__ = ["FleetMonitor", "clip"]

log = logging.getLogger(__name__)

#: Remote strings (names, errors, log lines) are cut to this many characters.
MAX_TEXT = 500
#: Pings in flight at once in one round.
MAX_CONCURRENT_PINGS = 16


def clip(text: object, limit: int = MAX_TEXT) -> str:
    """A remote string made safe to show: str, bounded."""
    s = str(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


class FleetMonitor:
    """Samples the node's fleet into a ring buffer; `view()` is what the browser shows."""

    def __init__(
        self,
        node: Node,
        config: DashboardConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.node = node
        self.config = config
        self.clock = clock
        self.history = FleetHistory(config.points, config.max_peers)
        self.schedule = Schedule(config.sample_interval)
        self.dials = DialPolicy(config.dial_interval)
        self.rounds = 0
        self._listeners: set[Callable[[dict[str, Any]], None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """`listener(event)` after every round; returns the unsubscribe function."""
        self._listeners.add(listener)
        return lambda: self._listeners.discard(listener)

    def poke(self) -> None:
        """Sample again soon (after an action changed the fleet)."""
        self._wake.set()

    # -- the loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            delay = self.schedule.delay(loop.time())
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            self.schedule.started(loop.time())
            try:
                await self.sample_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dashboard sampling round failed")
            self.schedule.finished(loop.time())

    async def sample_once(self) -> Sample:
        """One round: dial, stats, pings; record and broadcast."""
        node = self.node
        if not node.running:
            raise RuntimeError("node not running")
        controller = node.controller
        at = self.clock()
        await self._dial()
        connected = [p.id for p in node.registry.connected_peers()]
        sem = asyncio.Semaphore(MAX_CONCURRENT_PINGS)
        pings: dict[str, float] = {}

        async def ping(pid: str) -> None:
            async with sem:
                try:
                    pings[pid] = await controller.ping_peer(pid)
                except Exception as exc:  # a peer that does not answer is a gap
                    log.debug("ping %s failed: %s", pid, exc)

        all_stats, _ = await asyncio.gather(
            controller.get_all_stats(), asyncio.gather(*(ping(p) for p in connected))
        )
        workers = {pid: WorkerSample.from_stats(s) for pid, s in all_stats.items()}
        errors = {pid: clip(exc) for pid, exc in all_stats.errors.items()}
        sample = Sample(at, workers, errors, pings)
        self.history.record(sample)
        self.rounds += 1
        if self._listeners:
            event = {"state": self.view(), "point": self.point(sample)}
            for listener in list(self._listeners):
                listener(event)
        return sample

    async def _dial(self) -> None:
        node = self.node
        disconnected = [p.id for p in node.registry.peers() if p.address and not p.connected]
        due = self.dials.due(self.clock(), disconnected)

        async def dial(pid: str) -> None:
            try:
                await node.controller.connect_to_peer(pid)
            except Exception as exc:
                log.debug("dial %s failed: %s", pid, exc)

        if due:
            await asyncio.gather(*(dial(pid) for pid in due))

    # -- views -------------------------------------------------------------------------

    def point(self, sample: Sample) -> dict[str, Any]:
        """The newest history point, as the browser appends it."""
        tracked = set(self.history.peers)
        series: dict[str, float | None] = {
            "fleet": round(sum(w.hashrate for w in sample.workers.values()), 3)
            if sample.workers
            else None
        }
        for pid, w in sample.workers.items():
            if pid in tracked:
                series[f"hashrate:{pid}"] = round(w.hashrate, 3)
        for pid, ms in sample.pings.items():
            if pid in tracked and math.isfinite(ms):
                series[f"ping:{pid}"] = round(ms, 3)
        return {"t": int(sample.at * 1000), "series": series}

    def view(self) -> dict[str, Any]:
        """The fleet view: every known peer (up to `max_peers`), its miners, totals."""
        node = self.node
        latest = self.history.latest
        workers = latest.workers if latest is not None else {}
        errors = latest.errors if latest is not None else {}
        pings = latest.pings if latest is not None else {}
        peers = node.registry.peers()
        peers.sort(key=lambda p: (not p.connected, (p.name or p.id).lower()))
        shown = peers[: self.config.max_peers]
        rows = []
        for p in shown:
            w = workers.get(p.id)
            rows.append(
                {
                    "id": p.id,
                    "name": clip(p.name or (w.node_name if w else ""), 64),
                    "address": clip(p.address, 200),
                    "role": clip(p.role, 32),
                    "connected": bool(p.connected),
                    "protocol": self._protocol(p.id, p.address),
                    "pingMs": round(pings.get(p.id, p.ping_ms) or 0.0, 3),
                    "score": round(p.score, 1),
                    "lastSeen": None
                    if p.last_seen.is_zero()
                    else p.last_seen.unix_seconds * 1000 + p.last_seen.nanosecond // 1_000_000,
                    "uptime": w.uptime if w else None,
                    "hashrate": round(w.hashrate, 3) if w else None,
                    "error": errors.get(p.id),
                    "miners": [
                        {
                            "name": clip(m.name, 128),
                            "type": clip(m.type, 64),
                            "hashrate": round(m.hashrate, 3),
                            "shares": m.shares,
                            "rejected": m.rejected,
                            "uptime": m.uptime,
                        }
                        for m in (w.miners if w else ())
                    ],
                }
            )
        miners = sum(len(w.miners) for w in workers.values())
        ident = node.identity
        return {
            "node": {"id": ident.id, "name": clip(ident.name, 64), "address": node.address},
            "at": int((latest.at if latest is not None else self.clock()) * 1000),
            "readOnly": self.config.read_only,
            "interval": self.config.sample_interval,
            "totals": {
                "peers": len(peers),
                "shown": len(shown),
                "connected": sum(1 for p in peers if p.connected),
                "workers": len(workers),
                "miners": miners,
                "hashrate": round(sum(w.hashrate for w in workers.values()), 3),
                "shares": sum(m.shares for w in workers.values() for m in w.miners),
            },
            "peers": rows,
        }

    def _protocol(self, peer_id: str, address: str) -> str:
        scheme = "wss" if address.startswith("wss://") else "ws"
        try:
            if self.node.ueps.speaks_ueps(peer_id):
                return f"{scheme} · ueps/1"
        except Exception:  # the transport API may change under us: the scheme is enough
            pass
        return scheme
