"""Sans-I/O core of the dashboard's history: a bounded ring buffer of fleet samples.

The node asks `get_all_stats` (and pings every connected peer) once per interval; each
round becomes one `Sample` that `FleetHistory.record` writes into fixed-size columns: one
timestamp column and one float column per series (``fleet`` hashrate, ``hashrate:<peer>``,
``ping:<peer>``). Memory is ``points x 8 bytes x series`` and never grows: the capacity is
fixed at construction, at most `max_peers` peers have series, and a peer that has not been
seen for a whole window loses its series. A restart loses the history, by design.

No clock is read here: every call takes ``now`` (seconds since the epoch), so tests drive
time by hand.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DialPolicy",
    "FleetHistory",
    "MinerSample",
    "Sample",
    "Schedule",
    "WorkerSample",
]

FLEET = "fleet"
_NAN = math.nan


@dataclass(frozen=True)
class MinerSample:
    """One miner as one round saw it."""

    name: str
    type: str
    hashrate: float
    shares: int
    rejected: int
    uptime: int


@dataclass(frozen=True)
class WorkerSample:
    """A worker's answer to `get_stats` in one round."""

    node_name: str
    uptime: int
    miners: tuple[MinerSample, ...] = ()

    @property
    def hashrate(self) -> float:
        return sum(m.hashrate for m in self.miners if math.isfinite(m.hashrate))

    @classmethod
    def from_stats(cls, stats: Any) -> WorkerSample:
        """From a `StatsPayload` (or anything with its attribute names)."""
        miners = tuple(
            MinerSample(
                str(getattr(m, "name", "")),
                str(getattr(m, "type", "")),
                _finite(getattr(m, "hashrate", 0.0)),
                int(getattr(m, "shares", 0) or 0),
                int(getattr(m, "rejected", 0) or 0),
                int(getattr(m, "uptime", 0) or 0),
            )
            for m in (getattr(stats, "miners", None) or ())
        )
        return cls(str(getattr(stats, "node_name", "")), int(stats.uptime or 0), miners)


def _finite(value: object) -> float:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return f if math.isfinite(f) and f >= 0 else 0.0


@dataclass(frozen=True)
class Sample:
    """One sampling round: who answered what, who failed and why, ping times (ms)."""

    at: float
    workers: Mapping[str, WorkerSample] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    pings: Mapping[str, float] = field(default_factory=dict)


class FleetHistory:
    """Fixed-capacity columns of samples, oldest overwritten first.

    `points` samples are kept (the last ``points x interval`` seconds); series exist for
    the fleet total and for at most `max_peers` peers (hashrate and ping each). A missing
    value (the worker timed out, was not connected) is NaN: a gap in the plot, not a zero.
    """

    def __init__(self, points: int, max_peers: int) -> None:
        if points < 2:
            raise ValueError("points must be at least 2")
        if max_peers < 1:
            raise ValueError("max_peers must be at least 1")
        self.points = points
        self.max_peers = max_peers
        self._times = array("d", [_NAN]) * points
        self._series: dict[str, array[float]] = {FLEET: array("d", [_NAN]) * points}
        self._last_seen: dict[str, int] = {}  # peer id -> sample number it last had a value
        self._head = 0  # where the next sample goes
        self._count = 0  # samples written, ever
        #: peers seen but not given a series because `max_peers` were tracked
        self.untracked = 0
        self.latest: Sample | None = None

    def __len__(self) -> int:
        return min(self._count, self.points)

    @property
    def peers(self) -> list[str]:
        """Peers that have series, in the order they were first seen."""
        return list(self._last_seen)

    @property
    def footprint(self) -> int:
        """Bytes held by the columns (what the documented bound is about)."""
        return self._times.itemsize * self.points * (1 + len(self._series))

    def record(self, sample: Sample) -> None:
        """Write one round; evict peers unseen for a whole window."""
        n = self._count
        head = self._head
        self._times[head] = sample.at
        for column in self._series.values():
            column[head] = _NAN
        values: dict[str, float] = {}
        for pid, worker in sample.workers.items():
            values[f"hashrate:{pid}"] = worker.hashrate
        for pid, ms in sample.pings.items():
            if math.isfinite(ms) and ms >= 0:
                values[f"ping:{pid}"] = ms
        seen = dict.fromkeys(key.partition(":")[2] for key in values)  # first seen first
        for pid in seen:
            if pid in self._last_seen:
                self._last_seen[pid] = n
            elif len(self._last_seen) < self.max_peers:
                self._last_seen[pid] = n
                for kind in ("hashrate", "ping"):
                    self._series[f"{kind}:{pid}"] = array("d", [_NAN]) * self.points
            else:
                self.untracked += 1
        for key, value in values.items():
            target = self._series.get(key)
            if target is not None:
                target[head] = value
        if sample.workers:
            self._series[FLEET][head] = sum(w.hashrate for w in sample.workers.values())
        self._head = (head + 1) % self.points
        self._count = n + 1
        for pid, last in list(self._last_seen.items()):
            if n - last >= self.points:  # no value left in the window
                del self._last_seen[pid]
                for kind in ("hashrate", "ping"):
                    self._series.pop(f"{kind}:{pid}", None)
        self.latest = sample

    def _order(self) -> Iterable[int]:
        size = len(self)
        start = (self._head - size) % self.points
        return ((start + i) % self.points for i in range(size))

    def times(self, since: float | None = None) -> list[float]:
        return [self._times[i] for i in self._order() if since is None or self._times[i] > since]

    def series(self, key: str, since: float | None = None) -> list[tuple[float, float | None]]:
        """``[(t, value or None), ...]`` oldest first; None where there was no value."""
        column = self._series.get(key)
        if column is None:
            return []
        out: list[tuple[float, float | None]] = []
        for i in self._order():
            t = self._times[i]
            if since is not None and t <= since:
                continue
            v = column[i]
            out.append((t, None if math.isnan(v) else v))
        return out

    def to_json(self, since: float | None = None) -> dict[str, Any]:
        """``{"t": [ms...], "series": {key: [value|null...]}}`` for the browser."""
        idx = [i for i in self._order() if since is None or self._times[i] > since]
        series = {
            key: [None if math.isnan(column[i]) else round(column[i], 3) for i in idx]
            for key, column in self._series.items()
        }
        return {"t": [int(self._times[i] * 1000) for i in idx], "series": series}


class Schedule:
    """When the next round starts: every `interval` seconds, never two at once.

    A round that takes longer than the interval (a worker that times out makes
    `get_all_stats` wait its stats timeout) delays the next one instead of piling up.
    """

    def __init__(self, interval: float) -> None:
        if not (math.isfinite(interval) and interval > 0):
            raise ValueError("interval must be positive")
        self.interval = interval
        self._next: float | None = None

    def delay(self, now: float) -> float:
        """Seconds to wait before the next round (0: start it now)."""
        if self._next is None:
            return 0.0
        return max(0.0, self._next - now)

    def started(self, now: float) -> None:
        """A round starts at `now`: the following one is due one interval later."""
        self._next = now + self.interval

    def finished(self, now: float) -> None:
        """A round ended at `now`; if it overran, the next one waits a short beat."""
        if self._next is not None and now >= self._next:
            self._next = now + min(self.interval, 1.0)


class DialPolicy:
    """Which known, disconnected peers to dial this round: each at most once per
    `interval` seconds (0 disables dialling), at most `limit` per round."""

    def __init__(self, interval: float, limit: int = 16) -> None:
        self.interval = interval
        self.limit = limit
        self._tried: dict[str, float] = {}

    def due(self, now: float, disconnected: Iterable[str]) -> list[str]:
        if self.interval <= 0:
            return []
        wanted = list(disconnected)
        keep = set(wanted)
        for pid in list(self._tried):  # forget peers that connected or were removed
            if pid not in keep:
                del self._tried[pid]
        out: list[str] = []
        for pid in wanted:
            if len(out) >= self.limit:
                break
            last = self._tried.get(pid)
            if last is None or now - last >= self.interval:
                self._tried[pid] = now
                out.append(pid)
        return out
