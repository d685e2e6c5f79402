"""Nearest-peer selection: a weighted 4-D KD-tree plus a buffer of recent changes.

Sans-I/O and single-threaded (the registry serialises access). Each peer is the point
``(ping_ms*1.0, hops*0.7, geo_km*0.2, (100-score)*1.2)``; the distance is plain Euclidean,
summed in that order then square-rooted, exactly as the reference computes it.

Why a buffer: the reference rebuilds its tree on every metric update, which costs ~0.3 s at
10^6 points. Here an update only writes the point and records its slot in a *change buffer*;
a query asks the (possibly stale) tree, drops answers whose slot has changed since the build,
and merges a scan of the buffer. The tree is rebuilt lazily, at query time, once the buffer
exceeds ``rebuild_fraction`` of the live points, so a rebuild is amortised over many updates.

Answers are exact and deterministic: candidates are re-ranked by their distance computed
with the reference's formula, ties broken by peer id, and a ball query pulls in every point
whose distance could tie the last answer.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

_SORT_ALL = 256
"""Up to this many candidates a query sorts them all (cheaper than numpy's set-up)."""

__all__ = [
    "ORIGIN",
    "WEIGHTS",
    "RebuildJob",
    "SelectionIndex",
    "distance",
    "load_tree_library",
    "point",
]

#: Reference weights for (ping_ms, hops, geo_km, 100 - score).
WEIGHTS = (1.0, 0.7, 0.2, 1.2)
ORIGIN = (0.0, 0.0, 0.0, 0.0)

_F64 = npt.NDArray[np.float64]
_I64 = npt.NDArray[np.int64]


def point(ping_ms: float, hops: int, geo_km: float, score: float) -> tuple[float, ...]:
    """The weighted 4-D point of a peer (the reference's coordinates)."""
    return (ping_ms * 1.0, hops * 0.7, geo_km * 0.2, (100.0 - score) * 1.2)


def distance(p: Sequence[float], target: Sequence[float] = ORIGIN) -> float:
    """The reference's distance: sqrt of the squared differences summed in axis order."""
    a = p[0] - target[0]
    b = p[1] - target[1]
    c = p[2] - target[2]
    d = p[3] - target[3]
    return math.sqrt(((a * a + b * b) + c * c) + d * d)


def _distances(pts: _F64, target: _F64 | None) -> _F64:
    """Vectorised ``distance`` with the same operation order (so bit-identical)."""
    if target is None:
        a, b, c, d = pts[:, 0], pts[:, 1], pts[:, 2], pts[:, 3]
    else:
        a, b, c, d = (pts[:, i] - target[i] for i in range(4))
    out: _F64 = np.sqrt(((a * a + b * b) + c * c) + d * d)
    return out


def load_tree_library() -> None:
    """Import scipy's KD-tree (~0.2-0.3 s the first time, mostly interpreted code). An
    owner on an event loop calls this in a worker thread before it needs a tree, so the
    first selection above ``min_rebuild`` points never pays the import on the loop."""
    from scipy.spatial import cKDTree  # noqa: PLC0415, F401 (slow import, on demand)


class RebuildJob:
    """A tree build over a snapshot of the points; ``run`` touches no index state (and
    scipy releases the GIL while building), so it may run in a worker thread."""

    __slots__ = ("gen", "pts", "slots", "tree")

    def __init__(self, slots: _I64, pts: _F64, gen: int) -> None:
        self.slots = slots
        self.pts = pts
        self.gen = gen
        self.tree: Any = None

    def run(self) -> None:
        if len(self.slots):
            from scipy.spatial import cKDTree  # noqa: PLC0415 (slow import, needed here only)

            self.tree = cKDTree(self.pts, balanced_tree=False, compact_nodes=False)
        self.pts = np.zeros((0, 4))  # the tree holds the points now


class SelectionIndex:
    """Ids mapped to weighted points; ``nearest(n)`` answers like a brute-force scan.

    ``rebuild_fraction``: rebuild the tree when more than this fraction of the live points
    changed since the last build (and more than ``min_rebuild``). Up to ``min_rebuild``
    points are served by the buffer scan alone.

    ``background_min``: from this many live points on, the owner builds trees off-thread
    (``wants_background_rebuild`` → ``prepare_rebuild`` → ``RebuildJob.run`` in a worker →
    ``install``) and ``nearest`` only rebuilds inline once the buffer reaches four times
    the threshold. None: always inline.
    """

    def __init__(
        self,
        *,
        rebuild_fraction: float = 0.05,
        min_rebuild: int = 512,
        background_min: int | None = None,
    ) -> None:
        if not 0.0 < rebuild_fraction <= 1.0:
            raise ValueError("rebuild_fraction must be in (0, 1]")
        if min_rebuild < 1:
            raise ValueError("min_rebuild must be >= 1")
        self.rebuild_fraction = rebuild_fraction
        self.min_rebuild = min_rebuild
        self.background_min = background_min
        self.rebuilds = 0
        self._reset()

    def _reset(self) -> None:
        cap = 64
        self._pts: _F64 = np.zeros((cap, 4), dtype=np.float64)
        self._norm: _F64 = np.zeros(cap, dtype=np.float64)
        self._alive = np.zeros(cap, dtype=np.bool_)
        self._ids: list[str | None] = [None] * cap
        self._slot_of: dict[str, int] = {}
        self._free: list[int] = []
        self._hi = 0  # slots [0, _hi) have been used
        # change buffer: slots whose point changed since the tree was built
        self._bpos: _I64 = np.full(cap, -1, dtype=np.int64)
        self._bslots: _I64 = np.zeros(cap, dtype=np.int64)
        self._bnorm: _F64 = np.zeros(cap, dtype=np.float64)
        self._bn = 0
        self._tree: Any = None  # scipy.spatial.cKDTree (imported lazily: it is slow to import)
        self._tree_slots: _I64 = np.zeros(0, dtype=np.int64)
        # change clock: _ver[slot] = clock value of the slot's last change
        self._clock = 0
        self._ver: _I64 = np.zeros(cap, dtype=np.int64)
        self._tree_gen = -1  # clock value the current tree reflects

    # -- bookkeeping ---------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._slot_of

    @property
    def pending(self) -> int:
        """Changes not yet folded into the tree."""
        return self._bn

    def _grow(self) -> None:
        old = len(self._ids)
        cap = old * 2
        pts = np.zeros((cap, 4), dtype=np.float64)
        pts[:old] = self._pts
        self._pts = pts
        self._norm = np.concatenate([self._norm, np.zeros(old, dtype=np.float64)])
        self._alive = np.concatenate([self._alive, np.zeros(old, dtype=np.bool_)])
        self._bpos = np.concatenate([self._bpos, np.full(old, -1, dtype=np.int64)])
        self._bslots = np.concatenate([self._bslots, np.zeros(old, dtype=np.int64)])
        self._bnorm = np.concatenate([self._bnorm, np.zeros(old, dtype=np.float64)])
        self._ver = np.concatenate([self._ver, np.zeros(old, dtype=np.int64)])
        self._ids.extend([None] * old)

    def _touch(self, slot: int, norm: float) -> None:
        self._clock += 1
        self._ver[slot] = self._clock
        pos = int(self._bpos[slot])
        if pos < 0:
            pos = self._bn
            self._bn += 1
            self._bslots[pos] = slot
            self._bpos[slot] = pos
        self._bnorm[pos] = norm

    def _alloc(self, peer_id: str) -> int:
        if self._free:
            slot = self._free.pop()
        else:
            if self._hi == len(self._ids):
                self._grow()
            slot = self._hi
            self._hi += 1
        self._slot_of[peer_id] = slot
        self._ids[slot] = peer_id
        self._alive[slot] = True
        return slot

    # -- mutation ------------------------------------------------------------------------

    def set(self, peer_id: str, ping_ms: float, hops: int, geo_km: float, score: float) -> None:
        """Insert or move a peer's point. O(1): no tree work."""
        p = point(ping_ms, hops, geo_km, score)
        slot = self._slot_of.get(peer_id)
        if slot is None:
            slot = self._alloc(peer_id)
        d = distance(p)
        pts = self._pts
        pts[slot, 0], pts[slot, 1], pts[slot, 2], pts[slot, 3] = p
        self._norm[slot] = d
        self._touch(slot, d)

    def remove(self, peer_id: str) -> None:
        """Forget a peer (unknown ids are ignored). O(1)."""
        slot = self._slot_of.pop(peer_id, None)
        if slot is None:
            return
        self._alive[slot] = False
        self._ids[slot] = None
        self._touch(slot, math.inf)
        self._free.append(slot)

    def clear(self) -> None:
        """Forget every point."""
        self._reset()

    def bulk_load(self, rows: Sequence[tuple[str, float, int, float, float]]) -> None:
        """Replace the content with ``(id, ping_ms, hops, geo_km, score)`` rows; builds the tree."""
        self.clear()
        n = len(rows)
        while len(self._ids) < n:
            self._grow()
        for i, (peer_id, *_rest) in enumerate(rows):
            self._slot_of[peer_id] = i
            self._ids[i] = peer_id
        if n:
            raw = np.array([r[1:] for r in rows], dtype=np.float64)
            pts = np.empty((n, 4), dtype=np.float64)
            pts[:, 0] = raw[:, 0] * 1.0
            pts[:, 1] = raw[:, 1] * 0.7
            pts[:, 2] = raw[:, 2] * 0.2
            pts[:, 3] = (100.0 - raw[:, 3]) * 1.2
            self._pts[:n] = pts
            self._norm[:n] = _distances(pts, None)
            self._alive[:n] = True
        self._hi = n
        if n > self.min_rebuild:
            self.rebuild()
        else:  # small: served by the buffer scan, no tree (and no scipy import) needed
            self._bslots[:n] = np.arange(n, dtype=np.int64)
            self._bpos[:n] = np.arange(n, dtype=np.int64)
            self._bnorm[:n] = self._norm[:n]
            self._bn = n

    # -- tree ----------------------------------------------------------------------------

    def rebuild(self) -> None:
        """Fold every pending change into a fresh tree, now."""
        job = self.prepare_rebuild()
        job.run()
        self.install(job)

    def prepare_rebuild(self) -> RebuildJob:
        """Snapshot the live points for a tree build that may run in another thread."""
        slots = np.flatnonzero(self._alive[: self._hi]).astype(np.int64)
        return RebuildJob(slots, self._pts[slots], self._clock)

    def install(self, job: RebuildJob) -> bool:
        """Adopt a finished job's tree; changes made since its snapshot stay in the buffer.
        A job older than the current tree is dropped (False)."""
        if job.gen <= self._tree_gen or (len(job.slots) and job.tree is None):
            return False
        self._tree = job.tree
        self._tree_slots = job.slots
        self._tree_gen = job.gen
        bn = self._bn
        bslots = self._bslots[:bn]
        keep = self._ver[bslots] > job.gen
        self._bpos[bslots[~keep]] = -1
        kept = bslots[keep]
        m = len(kept)
        self._bnorm[:m] = self._bnorm[:bn][keep]
        self._bslots[:m] = kept
        self._bpos[kept] = np.arange(m, dtype=np.int64)
        self._bn = m
        self.rebuilds += 1
        return True

    def _threshold(self) -> float:
        return max(self.min_rebuild, self.rebuild_fraction * len(self._slot_of))

    def wants_background_rebuild(self) -> bool:
        """True when the owner should start an off-thread rebuild (see ``background_min``)."""
        bg = self.background_min
        return bg is not None and len(self._slot_of) >= bg and self._bn > self._threshold()

    def _maybe_rebuild(self) -> None:
        limit = self._threshold()
        bg = self.background_min
        if bg is not None and len(self._slot_of) >= bg:
            if self._tree is None:
                return  # the first tree comes from the background; the buffer scan is exact
            limit *= 4  # a background build is (or will be) on its way
        if self._bn > limit:
            self.rebuild()

    # -- queries -------------------------------------------------------------------------

    def _exact(self, slots: _I64, target: _F64 | None) -> list[float]:
        if target is None:
            out: list[float] = self._norm[slots].tolist()
            return out
        exact: list[float] = _distances(self._pts[slots], target).tolist()
        return exact

    def nearest(self, n: int, target: Sequence[float] | None = None) -> list[str]:
        """Ids of the ``n`` points nearest ``target`` (default: the origin), nearest first,
        ties by id. Same answer as sorting every point by ``(distance, id)``."""
        live = len(self._slot_of)
        if n <= 0 or live == 0:
            return []
        n = min(n, live)
        tgt: _F64 | None = None
        if target is not None and any(x != 0.0 for x in target):
            tgt = np.asarray(target, dtype=np.float64).reshape(4)
        if 4 * n >= live:
            return self._scan_all(n, tgt)
        self._maybe_rebuild()
        cands: dict[int, float] = {}
        # 1. the change buffer, scanned exactly (its n-th distance bounds the answer's)
        bn = self._bn
        if bn:
            bslots = self._bslots[:bn]
            if tgt is None:
                bd = self._bnorm[:bn]
            else:
                bd = _distances(self._pts[bslots], tgt)
                bd[~self._alive[bslots]] = math.inf
            if bn > n:
                kth = np.partition(bd, n - 1)[n - 1]
                pick = np.flatnonzero((bd <= kth) & (bd < math.inf))
            else:
                pick = np.flatnonzero(bd < math.inf)
            picked = bslots[pick]
            for s, d in zip(picked.tolist(), bd[pick].tolist(), strict=True):
                cands[s] = d
        # 2. the tree, skipping entries whose slot has changed since the build
        tree = self._tree
        size = len(self._tree_slots)
        k = 0
        tmax = math.inf
        q: _F64 = np.zeros(4) if tgt is None else tgt
        if tree is not None:
            k = min(size, n + 8 + min(bn, n))
            while True:
                dist, idx = tree.query(q, k=k)
                idx = np.atleast_1d(idx)
                slots = self._tree_slots[idx]
                valid = slots[self._bpos[slots] < 0]
                if len(valid) >= n or k == size:
                    break
                k = min(size, 2 * k)
            tmax = float(np.atleast_1d(dist)[-1])
            for s, d in zip(valid.tolist(), self._exact(valid, tgt), strict=True):
                cands[s] = d
        ranked = self._best(cands, n)
        t = ranked[n - 1][0] if len(ranked) >= n else math.inf
        tol = abs(t) * 1e-9 + 1e-12
        if tree is not None and k < size and tmax <= t + tol:
            # points the k-query cut off could tie (or, by rounding, beat) the n-th answer
            ball = np.asarray(tree.query_ball_point(q, r=t + tol), dtype=np.int64)
            slots = self._tree_slots[ball]
            extra = slots[self._bpos[slots] < 0]
            for s, d in zip(extra.tolist(), self._exact(extra, tgt), strict=True):
                cands[s] = d
            ranked = self._best(cands, n)
        return [r[1] for r in ranked[:n]]

    def _best(self, cands: dict[int, float], n: int) -> list[tuple[float, str, int]]:
        """The first ``n`` of ``cands`` sorted by (distance, id, slot). Many candidates
        (peers at one point tie: a fresh fleet's are all unmeasured) are cut with numpy
        first; only the n-th distance's ties reach an id comparison, and only the ``n``
        smallest of those are kept (not a sort of thousands of tuples on the loop)."""
        ids = self._ids
        if len(cands) <= _SORT_ALL:
            return sorted((d, ids[s] or "", s) for s, d in cands.items())[:n]
        slots = np.fromiter(cands.keys(), dtype=np.int64, count=len(cands))
        dist = np.fromiter(cands.values(), dtype=np.float64, count=len(cands))
        kth = float(np.partition(dist, n - 1)[n - 1])
        below = np.flatnonzero(dist < kth)
        ranked = sorted(
            (d, ids[s] or "", s)
            for s, d in zip(slots[below].tolist(), dist[below].tolist(), strict=True)
        )
        tied = slots[dist == kth].tolist()
        ranked += [
            (kth, i, s)
            for i, s in heapq.nsmallest(n - len(ranked), ((ids[s] or "", s) for s in tied))
        ]
        return ranked

    def _scan_all(self, n: int, tgt: _F64 | None) -> list[str]:
        slots = np.flatnonzero(self._alive[: self._hi]).astype(np.int64)
        ids = self._ids
        ranked = sorted(
            zip(self._exact(slots, tgt), (ids[s] or "" for s in slots.tolist()), strict=True)
        )
        return [r[1] for r in ranked[:n]]
