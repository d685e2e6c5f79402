"""Sans-I/O admission limits: token bucket, bounded dedup table, drop counters.

Nothing here reads a clock: every method takes ``now`` (seconds, monotonic) so the
behaviour is a pure function of its inputs and tests need no sleeps.
"""

from __future__ import annotations

import enum
from collections import OrderedDict

__all__ = ["DedupTable", "DropCounters", "DropReason", "KeyedBuckets", "TokenBucket"]


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
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
            self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
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


class DedupTable:
    """Seen message ids with a TTL and a count cap; ``check_and_mark`` is one atomic step.

    Entries are kept in marking order, so expiry and the cap both evict from the front in
    O(1) amortised. A duplicate does not refresh its mark (as in the reference). With the
    cap reached the oldest ids are forgotten first, so a flood of fresh ids can shorten the
    effective window but never grow memory past ``max_entries``.
    """

    __slots__ = ("_seen", "evicted", "max_entries", "ttl")

    def __init__(self, ttl: float, max_entries: int) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self.ttl = ttl
        self.max_entries = max_entries
        self._seen: OrderedDict[str, float] = OrderedDict()
        self.evicted = 0
        """Ids forgotten because of the count cap (before their TTL ran out)."""

    def check_and_mark(self, message_id: str, now: float) -> bool:
        """``True`` (and mark it) if ``message_id`` is new; ``False`` if seen within the TTL."""
        seen = self._seen
        self._expire(now)
        if message_id in seen:
            return False
        seen[message_id] = now
        if len(seen) > self.max_entries:
            seen.popitem(last=False)
            self.evicted += 1
        return True

    def _expire(self, now: float) -> None:
        seen = self._seen
        limit = now - self.ttl
        while seen:
            oldest_id, marked = next(iter(seen.items()))
            if marked > limit:
                break
            del seen[oldest_id]

    def sweep(self, now: float) -> None:
        """Forget expired ids (also done lazily by every check)."""
        self._expire(now)

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._seen


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
