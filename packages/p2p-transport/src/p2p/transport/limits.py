"""Sans-I/O admission limits: token bucket, bounded dedup and replay tables, drop counters.

Nothing here reads a clock: every method takes ``now`` (seconds, monotonic) so the
behaviour is a pure function of its inputs and tests need no sleeps.
"""

from __future__ import annotations

import enum
import heapq
import ipaddress
import math
from collections import OrderedDict
from typing import TYPE_CHECKING

from p2p.transport._prefix import ipv4_prefix

if TYPE_CHECKING:
    from p2p.transport.config import TransportConfig

__all__ = [
    "DropCounters",
    "DropReason",
    "KeyedBuckets",
    "ReplayGuard",
    "TokenBucket",
    "source_prefix",
]


class TokenBucket:
    """A token bucket with *continuous* refill (the reference refills only per whole second).

    Starts full. ``allow(now)`` adds ``rate * (now - last)`` tokens (capped at ``capacity``)
    and takes one if at least one is there. Over any window of T seconds it admits at most
    ``capacity + rate * T`` events, the same long-run bound as Go's, without Go's stair-step
    that forfeits fractional seconds.
    """

    __slots__ = ("_last", "_tokens", "capacity", "rate")

    def __init__(self, capacity: int, rate: float, now: float) -> None:
        if capacity <= 0 or rate <= 0:
            raise ValueError("capacity and rate must be positive")
        self.capacity = float(capacity)
        self.rate = float(rate)
        self._tokens = float(capacity)
        self._last = now

    def allow(self, now: float) -> bool:
        """Take one token if available; ``False`` means the event must be dropped."""
        tokens = self._tokens
        elapsed = now - self._last
        if elapsed > 0:
            tokens += elapsed * self.rate
            if tokens > self.capacity:  # noqa: PLR1730 - min() is a call per frame
                tokens = self.capacity
            self._last = now
        if tokens >= 1.0:
            self._tokens = tokens - 1.0
            return True
        self._tokens = tokens
        return False

    def tokens(self, now: float) -> float:
        """Tokens available at ``now`` (without taking one)."""
        return min(self.capacity, self._tokens + max(0.0, now - self._last) * self.rate)


class KeyedBuckets:
    """One :class:`TokenBucket` per key (e.g. per IP), at most ``max_keys`` remembered (LRU).

    Forgetting the least recently used key resets its bucket to full, so the cap bounds
    memory at the cost of leniency for keys not seen lately.
    """

    __slots__ = ("_buckets", "capacity", "max_keys", "rate")

    def __init__(self, capacity: int, rate: float, max_keys: int) -> None:
        self.capacity = capacity
        self.rate = rate
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = TokenBucket(self.capacity, self.rate, now)
            self._buckets[key] = bucket
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket.allow(now)

    def __len__(self) -> int:
        return len(self._buckets)


_heappush = heapq.heappush


_COMPACT_AT = 256
"""Consumed entries at the head of ``_PeerIds.order`` dropped in one ``del`` (amortised)."""


class _PeerIds:
    """One peer's accepted ids: ``id -> ts``, the ``(ts, id)`` pairs by ts, and the floor.

    A peer's ts mostly arrive in order, so the pairs live in two places: ``order`` (a list
    read from ``head``) takes every pair whose ts is at least the last one there, in O(1);
    a pair that arrives out of order goes to the min-heap ``heap``. The lowest ts is the
    lower of the two fronts. (With one heap a full table paid a 12-level ``heappop`` per
    message: most of what a busy peer's replay check cost.)
    """

    __slots__ = ("floor", "head", "heap", "ids", "newest", "order")

    def __init__(self, floor: float) -> None:
        self.ids: dict[str, float] = {}
        self.order: list[tuple[float, str]] = []
        self.head = 0
        self.heap: list[tuple[float, str]] = []
        self.floor = floor
        """Every ts at or below this is refused: its ids may have been forgotten."""
        self.newest = floor

    def add(self, ts: float, message_id: str) -> None:
        order = self.order
        if len(order) == self.head or ts >= order[-1][0]:
            order.append((ts, message_id))
        else:
            _heappush(self.heap, (ts, message_id))

    def oldest_ts(self) -> float | None:
        """The lowest ts remembered (``None``: nothing is)."""
        order, heap = self.order, self.heap
        if len(order) > self.head:
            first = order[self.head][0]
            return heap[0][0] if heap and heap[0][0] < first else first
        return heap[0][0] if heap else None

    def pop_oldest(self) -> None:
        """Forget the id with the lowest ts; the floor rises to that ts."""
        order, heap, head = self.order, self.heap, self.head
        if heap and (len(order) == head or heap[0] < order[head]):
            ts, message_id = heapq.heappop(heap)
        else:
            ts, message_id = order[head]
            head += 1
            if head == len(order):
                order.clear()
                head = 0
            elif head >= _COMPACT_AT and head * 2 >= len(order):
                del order[:head]
                head = 0
            self.head = head
        del self.ids[message_id]
        if ts > self.floor:  # noqa: PLR1730 - max() is a call per message
            self.floor = ts


class ReplayGuard:
    """Replay protection per peer (keyed by public key) that no other peer can evict.

    An accepted message id is remembered until its *own* ``ts`` plus ``window`` has passed
    (the whole acceptance window, so a frame stamped in the future cannot be replayed when
    its arrival-based mark would have run out). Every table is bounded; when one must
    forget ids it forgets the lowest ts first and raises its **floor** to that ts, and ts at
    or below the floor are refused, so forgetting never reopens a replay. Only the peer's
    own traffic fills its table; a peer over its share of ``max_entries`` makes room in its
    own table. When ``max_peers`` tables exist, the tables whose newest ts is oldest (1/16
    of them, so the O(n) pass is rare) are dropped and their newest ts becomes the floor of
    every peer without a table (the *amnesia floor*): safe, and an honest newcomer (ts ~
    now) is not affected.

    ``ts`` and ``now`` are Unix seconds (the clock ``ts`` is judged by).
    """

    __slots__ = (
        "_amnesia",
        "_peers",
        "_total",
        "evicted",
        "max_entries",
        "max_peers",
        "max_per_peer",
        "refused_floor",
        "window",
    )

    def __init__(
        self, window: float, *, max_per_peer: int, max_entries: int, max_peers: int
    ) -> None:
        if window <= 0 or min(max_per_peer, max_entries, max_peers) <= 0:
            raise ValueError("window and every cap must be positive")
        self.window = window
        self.max_per_peer = max_per_peer
        self.max_entries = max_entries
        self.max_peers = max_peers
        self._peers: dict[str, _PeerIds] = {}
        self._total = 0
        self._amnesia = -math.inf
        self.evicted = 0
        """Ids forgotten before their window ended (each one raised a floor)."""
        self.refused_floor = 0
        """Messages refused because their ts was at or below a floor."""

    @classmethod
    def from_config(cls, config: TransportConfig) -> ReplayGuard:
        """The guard a transport with ``config`` uses (window: ``ts_window``, or
        ``dedup_ttl`` when ``ts`` is not checked)."""
        window = config.ts_window if config.ts_window is not None else config.dedup_ttl
        return cls(
            window,
            max_per_peer=config.replay_max_ids_per_peer,
            max_entries=config.dedup_max_entries,
            max_peers=config.replay_max_peers,
        )

    def check_and_mark(self, peer_key: str, message_id: str, ts: float, now: float) -> bool:
        """``True`` (and remember it) if ``message_id`` from ``peer_key`` may be delivered."""
        table = self._peers.get(peer_key)
        if table is None:
            if ts <= self._amnesia:
                self.refused_floor += 1
                return False
            table = self._new_table(peer_key, now)
        else:
            order = table.order
            head = table.head
            limit = now - self.window
            if (len(order) > head and order[head][0] < limit) or (
                table.heap and table.heap[0][0] < limit
            ):  # the common case calls nothing
                self._expire(table, now)
        if ts <= table.floor:
            self.refused_floor += 1
            return False
        ids = table.ids
        if message_id in ids:
            return False
        ids[message_id] = ts
        table.add(ts, message_id)
        self._total += 1
        if ts > table.newest:  # noqa: PLR1730 - max() is a call per message
            table.newest = ts
        if len(ids) > self.max_per_peer or self._total > self.max_entries:
            while len(ids) > self.max_per_peer or (self._total > self.max_entries and len(ids) > 1):
                table.pop_oldest()
                self._total -= 1
                self.evicted += 1
        return True

    def _new_table(self, peer_key: str, now: float) -> _PeerIds:
        if len(self._peers) >= self.max_peers:
            self.sweep(now)
        if len(self._peers) >= self.max_peers:
            # drop a batch (1/16 of the tables, those whose newest ts is oldest) so the
            # O(n) pass is paid once per many newcomers, not once per newcomer
            batch = max(1, self.max_peers // 16, len(self._peers) - self.max_peers + 1)
            peers = self._peers
            for key in heapq.nsmallest(batch, peers, key=lambda k: peers[k].newest):
                dropped = peers.pop(key)
                self._total -= len(dropped.ids)
                self.evicted += len(dropped.ids)
                self._amnesia = max(self._amnesia, dropped.newest)
        table = _PeerIds(self._amnesia)
        self._peers[peer_key] = table
        return table

    def _expire(self, table: _PeerIds, now: float) -> None:
        limit = now - self.window
        while True:
            oldest = table.oldest_ts()
            if oldest is None or oldest >= limit:
                break
            table.pop_oldest()
            self._total -= 1

    def sweep(self, now: float) -> None:
        """Forget ids whose window has passed, and tables nothing can be replayed into."""
        limit = now - self.window
        for key in list(self._peers):
            table = self._peers[key]
            self._expire(table, now)
            if not table.ids and table.floor < limit:
                del self._peers[key]

    @property
    def peers(self) -> int:
        """Peers with a table."""
        return len(self._peers)

    def __len__(self) -> int:
        return self._total

    def __contains__(self, item: object) -> bool:
        """``(peer_key, message_id)`` is remembered."""
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        table = self._peers.get(item[0])
        return table is not None and item[1] in table.ids


def source_prefix(address: str, v4_bits: int = 32, v6_bits: int = 64) -> str:
    """The network ``address`` (``host:port``, ``[v6]:port`` or a bare host) belongs to,
    as ``"net/bits"``: the unit charged for what many identities from one place do."""
    host = address
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.rpartition(":")[0]
    fast = ipv4_prefix(host, v4_bits)
    if fast is not None:
        return fast
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = v4_bits if ip.version == 4 else v6_bits
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


class DropReason(str, enum.Enum):
    """Why an inbound frame never reached a handler."""

    RATE = "rate"
    DEDUP = "dedup"
    DECRYPT = "decrypt"
    STALE_TS = "stale_ts"
    OVERSIZE = "oversize"
    OVERLOAD = "overload"
    UNROUTABLE = "unroutable"
    MISADDRESSED = "misaddressed"
    UNPROVEN = "unproven"
    """A binary frame the raw hook would get, from a connection that has not proved its key."""


class DropCounters:
    """Drops per :class:`DropReason`, optionally rolled up into a parent (the transport)."""

    __slots__ = ("_counts", "parent")

    def __init__(self, parent: DropCounters | None = None) -> None:
        self._counts = dict.fromkeys(DropReason, 0)
        self.parent = parent

    def add(self, reason: DropReason, n: int = 1) -> None:
        self._counts[reason] += n
        if self.parent is not None:
            self.parent.add(reason, n)

    def __getitem__(self, reason: DropReason | str) -> int:
        return self._counts[DropReason(reason)]

    @property
    def total(self) -> int:
        return sum(self._counts.values())

    def as_dict(self) -> dict[str, int]:
        """``{reason.value: count}`` for every reason (zeros included)."""
        return {reason.value: count for reason, count in self._counts.items()}

    def __repr__(self) -> str:
        nonzero = {k: v for k, v in self.as_dict().items() if v}
        return f"DropCounters({nonzero})"
