"""Token bucket, keyed buckets, dedup table and drop counters, driven by an explicit clock."""

from __future__ import annotations

import pytest
from p2p.transport.limits import DropCounters, DropReason, KeyedBuckets, TokenBucket


def test_bucket_starts_full_then_drops() -> None:
    bucket = TokenBucket(100, 50.0, now=0.0)
    assert sum(bucket.allow(0.0) for _ in range(150)) == 100
    assert not bucket.allow(0.0)


def test_bucket_refills_continuously() -> None:
    bucket = TokenBucket(100, 50.0, now=0.0)
    for _ in range(100):
        bucket.allow(0.0)
    # Go refills only per whole second; here 0.5 s gives 25 tokens.
    assert sum(bucket.allow(0.5) for _ in range(40)) == 25
    assert bucket.tokens(0.5) == pytest.approx(0.0)
    assert bucket.tokens(0.52) == pytest.approx(1.0)


def test_bucket_never_exceeds_capacity() -> None:
    bucket = TokenBucket(10, 50.0, now=0.0)
    assert bucket.tokens(1000.0) == 10
    assert sum(bucket.allow(1000.0) for _ in range(20)) == 10


def test_bucket_long_run_bound() -> None:
    bucket = TokenBucket(100, 50.0, now=0.0)
    admitted = sum(bucket.allow(i * 0.001) for i in range(10_000))  # 10 s of 1000/s offers
    assert admitted <= 100 + 50 * 10 + 1
    assert admitted >= 100 + 50 * 10 - 1


def test_bucket_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 1.0, now=0.0)
    with pytest.raises(ValueError):
        TokenBucket(1, 0.0, now=0.0)


def test_keyed_buckets_separate_and_bounded() -> None:
    buckets = KeyedBuckets(2, 1.0, max_keys=3)
    assert buckets.allow("a", 0.0) and buckets.allow("a", 0.0)
    assert not buckets.allow("a", 0.0)
    assert buckets.allow("b", 0.0)
    for key in "cde":
        buckets.allow(key, 0.0)
    assert len(buckets) == 3
    # "a" was evicted (LRU), so it starts full again
    assert buckets.allow("a", 0.0)


def test_drop_counters_roll_up() -> None:
    total = DropCounters()
    a, b = DropCounters(total), DropCounters(total)
    a.add(DropReason.RATE)
    a.add(DropReason.DECRYPT, 3)
    b.add(DropReason.RATE)
    assert a["rate"] == 1 and a[DropReason.DECRYPT] == 3
    assert total.as_dict()["rate"] == 2
    assert total.total == 5
    assert set(total.as_dict()) >= {"rate", "dedup", "decrypt", "stale_ts", "oversize"}
