"""PeerRegistry: the peers a node knows, who may connect, and which ones to use next.

Thread-safe (one re-entrant lock, as the reference's mutex) and usable with or without an
event loop. Persistence is debounced: the first change after a save arms a one-shot timer
(``save_delay``, 5 s by default, as in the reference); when it fires, a background thread
writes the then-current state. Records are copy-on-write — every change stores a new
``Peer`` object — so a snapshot is a cheap list of references that no later change can
alter, and the write (serialise + fsync + rename) happens off the caller's thread.

Learned peers (issue 13): a peer that only ever arrived over the network — registered by
``peer_connected``, never added by the operator (``add``) nor adopted (``adopt``) — is
*learned*. Strangers must not grow the registry without bound, so learned peers whose key
is not allowlisted are capped at ``max_learned`` (1 000 by default). When a new stranger
arrives at the cap, one of them is evicted: the lowest score first, then the oldest
``last_seen``, then the smallest id, never one that is connected right now. If every
learned peer is connected, the newcomer is not registered (its connection goes on).
Operator-added and allowlisted peers are never evicted and never count against the cap.
Which ids are learned is kept in a sidecar, ``peers.json.learned.json`` (a sorted JSON
array of ids), so peers.json stays exactly Go's format; an id in peers.json that the
sidecar does not list (a Go-written or pre-existing entry) counts as the operator's. The
name of a learned peer is what that peer claimed: name resolution prefers the operator's
peers (see ``p2p.controller.node.resolve_peer``).
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import logging
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from p2p.identity import LimitedLogger, safe_text
from p2p.peers import store
from p2p.peers._keys import node_id_for
from p2p.peers.errors import (
    CorruptPeersFileError,
    InvalidPeerError,
    PeerError,
    PeerExistsError,
    PeerNotFoundError,
    PeerStoreError,
    RegistryFullError,
)
from p2p.peers.index import SelectionIndex, load_tree_library
from p2p.peers.peer import (
    MAX_ADDRESS_LEN,
    MAX_PUBLIC_KEY_LEN,
    SCORE_DEFAULT,
    SCORE_MAX,
    SCORE_MIN,
    Peer,
    _float,
    _int,
    now,
    validate_peer_name,
)

__all__ = ["AuthMode", "PeerIdentity", "PeerRegistry"]

log = logging.getLogger(__name__)
#: one line per stranger that cannot be stored would be a log flood: budgeted (issue 13)
_flood = LimitedLogger(log)

SUCCESS_DELTA = 1.0
FAILURE_DELTA = -5.0
TIMEOUT_DELTA = -3.0

DEFAULT_SAVE_DELAY = 5.0
BACKGROUND_REBUILD_MIN = 512
"""From this many peers on, KD-trees are built in a worker thread, never in a selection
(which may run on an event loop): until a tree is installed the change buffer answers."""
PRELOAD_TREE_AT = 256
"""Peers at which the registry imports scipy's KD-tree in a worker thread, ahead of need."""
PRELOAD_WAIT = 30.0
"""Seconds :meth:`PeerRegistry.open` waits at most for that import to finish."""
DEFAULT_MAX_PEERS = 1_000_000
#: Learned (auto-registered, not allowlisted) peers kept at most; the rest are evicted.
DEFAULT_MAX_LEARNED = 1_000
DEFAULT_MAX_FILE_BYTES = 2 << 30
MAX_ALLOWLIST = 100_000
_MAX_ALLOWLIST_BYTES = 64 << 20
_MAX_LEARNED_BYTES = 256 << 20


class AuthMode(enum.IntEnum):
    """Who may connect: anyone (OPEN, the default) or allowlisted keys (ALLOWLIST)."""

    OPEN = 0
    ALLOWLIST = 1


class PeerIdentity(Protocol):
    """What the transport knows of a peer after its handshake (a NodeIdentity)."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def public_key(self) -> str: ...
    @property
    def role(self) -> Any: ...


class PeerRegistry:
    """Known peers with metrics, scores, an allowlist and nearest-peer selection.

    ``path=None`` is where a Go node keeps peers.json (see ``store.default_peers_path``);
    ``persist=False`` keeps everything in memory. A peers.json that cannot be read fully is
    copied aside and reported in ``load_error`` (raised instead when ``strict=True``).
    Call ``close()`` (or ``await aclose()``) last: it writes any pending change.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        auth_mode: AuthMode = AuthMode.OPEN,
        save_delay: float = DEFAULT_SAVE_DELAY,
        persist: bool = True,
        strict: bool = False,
        max_peers: int = DEFAULT_MAX_PEERS,
        max_learned: int = DEFAULT_MAX_LEARNED,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        rebuild_fraction: float = 0.05,
    ) -> None:
        if not (0.0 <= save_delay <= 3600.0) or math.isnan(save_delay):
            raise ValueError("save_delay must be within [0, 3600] seconds")
        if max_peers < 1:
            raise ValueError("max_peers must be >= 1")
        if max_learned < 0:
            raise ValueError("max_learned must be >= 0")
        self._path = Path(path) if path is not None else store.default_peers_path()
        self._persist = persist
        self._auth_mode = AuthMode(auth_mode)
        self._save_delay = float(save_delay)
        self._max_peers = max_peers
        self._max_learned = max_learned
        #: ids registered from the network and not (yet) the operator's
        self._learned: set[str] = set()
        #: learned ids evicted since the last peers.json write: the sidecar keeps listing
        #: them until peers.json no longer holds them (a crash in between loses nothing)
        self._evicted: set[str] = set()
        #: learned peers evicted to make room for newer strangers, since start
        self.evictions = 0
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._records: dict[str, Peer] = {}
        self._connected: set[str] = set()
        self._allow: set[str] = set()
        self._index = SelectionIndex(
            rebuild_fraction=rebuild_fraction, background_min=BACKGROUND_REBUILD_MIN
        )
        self._rebuilding = False
        self._preloading: threading.Thread | None = None
        self._gen = 0  # bumped by every persisted change
        self._snap_gen = 0  # generation of the newest snapshot handed to a writer
        self._written_gen = 0  # generation of the newest snapshot on disk
        self._timer: threading.Timer | None = None
        #: problem found reading peers.json or the allowlist at start-up, if any
        self.load_error: CorruptPeersFileError | None = None
        if persist:
            self._load(max_file_bytes, strict)

    @classmethod
    async def open(cls, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> PeerRegistry:
        """Construct in a worker thread, so loading a large peers.json never blocks the loop,
        and return once the KD-tree library is imported, if the file held enough peers to
        start that (see :meth:`wait_preloaded`)."""

        def build() -> PeerRegistry:
            registry = cls(path, **kwargs)
            registry.wait_preloaded(PRELOAD_WAIT)
            return registry

        return await asyncio.to_thread(build)

    def wait_preloaded(self, timeout: float | None = None) -> bool:
        """Block until the import of scipy's KD-tree that the registry starts in a worker
        thread at :data:`PRELOAD_TREE_AT` peers has finished (at most ``timeout`` seconds);
        True unless it is still running. The import is ~0.2 s of interpreted code: running
        beside an event loop, it takes the GIL each time the loop makes a system call, and
        the loop waits up to CPython's switch interval (5 ms) to get it back, per call. A
        node that loads a large registry therefore waits for it before it serves."""
        thread = self._preloading
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    # -- load ----------------------------------------------------------------------------

    def _load(self, max_file_bytes: int, strict: bool) -> None:
        result = store.load_peers(self._path, max_bytes=max_file_bytes, max_peers=self._max_peers)
        keys, allow_err = store.load_allowlist(
            store.allowlist_path(self._path), max_bytes=_MAX_ALLOWLIST_BYTES
        )
        self.load_error = result.error or allow_err
        if strict and self.load_error is not None:
            raise self.load_error
        self._records = {p.id: p for p in result.peers}
        self._allow = keys
        learned = store.load_learned(store.learned_path(self._path), max_bytes=_MAX_LEARNED_BYTES)
        self._learned = (learned or set()) & self._records.keys()
        capped = self._capped_learned()
        if len(capped) > self._max_learned:  # e.g. the cap was lowered since
            self._evict_learned(capped, len(capped) - self._max_learned)
        self._index.bulk_load([(p.id, p.ping_ms, p.hops, p.geo_km, p.score) for p in result.peers])
        self._maybe_preload()
        if result.error is not None:
            # what we hold differs from the file: write the repaired state (the bad file
            # was copied aside first)
            self._changed()
        log.debug("loaded %d peers from %s", len(self._records), self._path)

    # -- properties ----------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def count(self) -> int:
        return len(self._records)

    def __len__(self) -> int:
        return len(self._records)

    @property
    def auth_mode(self) -> AuthMode:
        return self._auth_mode

    @auth_mode.setter
    def auth_mode(self, mode: AuthMode) -> None:
        self._auth_mode = AuthMode(mode)

    def set_auth_mode(self, mode: AuthMode) -> None:
        """Not persisted (as in the reference): every start is OPEN until set."""
        self.auth_mode = mode

    # -- CRUD ----------------------------------------------------------------------------

    def add(self, peer: Peer, *, learned: bool = False) -> None:
        """Register a new peer (the operator's, unless ``learned``: see the module doc).
        ``added_at`` unset ⇒ now; ``score == 0`` ⇒ 50 (reference rule). Raises
        InvalidPeerError (empty id, bad name, bad field), PeerExistsError,
        RegistryFullError."""
        if not getattr(peer, "id", ""):
            raise InvalidPeerError("peer ID is required")
        validate_peer_name(peer.name)
        rec = peer.validated()
        if rec.added_at.is_zero():
            rec.added_at = now()
        if rec.score == 0:
            rec.score = SCORE_DEFAULT
        with self._lock:
            if rec.id in self._records:
                raise PeerExistsError(rec.id)
            if len(self._records) >= self._max_peers:
                raise RegistryFullError(f"registry holds max_peers={self._max_peers} peers")
            if learned and not self._room_for_learned(rec.public_key):
                raise RegistryFullError(
                    f"max_learned={self._max_learned} learned peers, all connected"
                )
            self._store(rec)
            if learned:
                self._learned.add(rec.id)
                self._evicted.discard(rec.id)
            self._changed()

    # -- learned peers -------------------------------------------------------------------

    @property
    def max_learned(self) -> int:
        return self._max_learned

    def is_learned(self, peer_id: str) -> bool:
        """True if the peer only arrived over the network (its name is its own claim)."""
        return peer_id in self._learned

    def learned_ids(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._learned)

    def adopt(self, peer_id: str) -> bool:
        """Make a learned peer the operator's (never evicted; its name counts as given by
        the operator). False if it was not learned."""
        with self._lock:
            if peer_id not in self._learned:
                return False
            self._learned.discard(peer_id)
            self._changed()
            return True

    def _capped_learned(self) -> list[str]:
        """Learned ids that count against ``max_learned`` (key not allowlisted)."""
        recs = self._records
        return [i for i in self._learned if recs[i].public_key not in self._allow]

    def _room_for_learned(self, public_key: str) -> bool:
        """Make room for one more learned peer with ``public_key`` (evicting per the
        documented rule); False if there is none to be had."""
        if public_key in self._allow:
            return True
        capped = self._capped_learned()
        if len(capped) < self._max_learned:
            return True
        return self._evict_learned(capped, len(capped) - self._max_learned + 1)

    def _evict_learned(self, capped: list[str], need: int) -> bool:
        """Evict ``need`` capped learned peers by the documented rule (none if fewer than
        ``need`` are disconnected); True if done."""
        candidates = [self._records[i] for i in capped if i not in self._connected]
        if len(candidates) < need:
            return False
        for victim in heapq.nsmallest(need, candidates, key=_eviction_key):
            del self._records[victim.id]
            self._index.remove(victim.id)
            self._learned.discard(victim.id)
            self._evicted.add(victim.id)
            self.evictions += 1
            log.debug("evicted learned peer %s (score %.1f)", victim.id, victim.score)
        self._changed()
        return True

    def update(self, peer: Peer) -> None:
        """Replace a known peer's whole record (as the reference: no name rule)."""
        rec = peer.validated()
        with self._lock:
            if rec.id not in self._records:
                raise PeerNotFoundError(rec.id)
            self._store(rec)
            self._changed()

    def remove(self, peer_id: str) -> None:
        with self._lock:
            if self._records.pop(peer_id, None) is None:
                raise PeerNotFoundError(peer_id)
            self._learned.discard(peer_id)
            self._connected.discard(peer_id)
            self._index.remove(peer_id)
            self._changed()

    def get(self, peer_id: str) -> Peer | None:
        """A copy of the peer's record, or None."""
        with self._lock:
            rec = self._records.get(peer_id)
            return rec.copy() if rec is not None else None

    def __contains__(self, peer_id: object) -> bool:
        return peer_id in self._records

    def peers(self) -> list[Peer]:
        """Copies of every record (insertion order)."""
        with self._lock:
            return [p.copy() for p in self._records.values()]

    def _store(self, rec: Peer) -> None:
        self._records[rec.id] = rec
        if rec.connected:
            self._connected.add(rec.id)
        else:
            self._connected.discard(rec.id)
        self._index.set(rec.id, rec.ping_ms, rec.hops, rec.geo_km, rec.score)
        self._maybe_preload()

    def _maybe_preload(self) -> None:
        """Start the KD-tree import once the registry holds :data:`PRELOAD_TREE_AT` peers."""
        if self._preloading is None and len(self._records) >= PRELOAD_TREE_AT:
            self._preload_tree_library()

    def _preload_tree_library(self) -> None:
        """Import scipy's KD-tree in a worker thread once, before a selection needs it."""

        def run() -> None:
            try:
                load_tree_library()
            except Exception:  # ImportError, MemoryError: the build will say so again
                log.exception("loading the KD-tree library failed")

        self._preloading = threading.Thread(target=run, name="p2p-peers-preload", daemon=True)
        self._preloading.start()

    def _replace(self, peer_id: str) -> Peer:
        """A fresh copy of a record, for a change (records are copy-on-write)."""
        rec = self._records.get(peer_id)
        if rec is None:
            raise PeerNotFoundError(peer_id)
        return rec.copy()

    # -- metrics and score ---------------------------------------------------------------

    def update_metrics(self, peer_id: str, ping_ms: float, geo_km: float, hops: int) -> None:
        """Set the measured metrics (and ``last_seen = now``); selection sees them at once."""
        ping = _float("pingMs", ping_ms)
        geo = _float("geoKm", geo_km)
        h = _int("hops", hops)
        with self._lock:
            rec = self._replace(peer_id)
            rec.ping_ms, rec.geo_km, rec.hops = ping, geo, h
            rec.last_seen = now()
            self._records[peer_id] = rec
            self._index.set(peer_id, ping, h, geo, rec.score)
            self._changed()

    def update_score(self, peer_id: str, score: float) -> None:
        """Set the score, clamped to [0, 100]."""
        s = float(score)
        if math.isnan(s):
            raise InvalidPeerError("score must be a number")
        with self._lock:
            self._set_score(self._replace(peer_id), min(max(s, SCORE_MIN), SCORE_MAX), False)

    def _set_score(self, rec: Peer, score: float, seen: bool) -> None:
        rec.score = score
        if seen:
            rec.last_seen = now()
        self._records[rec.id] = rec
        self._index.set(rec.id, rec.ping_ms, rec.hops, rec.geo_km, score)
        self._changed()

    def _bump(self, peer_id: str, delta: float, seen: bool) -> bool:
        with self._lock:
            rec = self._records.get(peer_id)
            if rec is None:
                return False
            rec = rec.copy()
            s = rec.score + delta
            s = min(s, SCORE_MAX) if delta > 0 else max(s, SCORE_MIN)
            self._set_score(rec, s, seen)
            return True

    def record_success(self, peer_id: str) -> bool:
        """+1 (max 100) and ``last_seen = now``. Unknown id ⇒ False, as the reference ignores it."""
        return self._bump(peer_id, SUCCESS_DELTA, True)

    def record_failure(self, peer_id: str) -> bool:
        """-5 (min 0). Unknown id ⇒ False."""
        return self._bump(peer_id, FAILURE_DELTA, False)

    def record_timeout(self, peer_id: str) -> bool:
        """-3 (min 0). Unknown id ⇒ False."""
        return self._bump(peer_id, TIMEOUT_DELTA, False)

    # -- connection state ----------------------------------------------------------------

    def set_connected(self, peer_id: str, connected: bool) -> bool:
        """Flag a peer (dis)connected; connecting also sets ``last_seen``. Unknown ⇒ False."""
        with self._lock:
            rec = self._records.get(peer_id)
            if rec is None:
                return False
            rec = rec.copy()
            rec.connected = bool(connected)
            if connected:
                rec.last_seen = now()
                self._connected.add(peer_id)
            else:
                self._connected.discard(peer_id)
            self._records[peer_id] = rec
            if connected:
                self._changed()
            return True

    def connected_peers(self) -> list[Peer]:
        with self._lock:
            return [self._records[i].copy() for i in self._connected]

    def connected_ids(self) -> list[str]:
        """The ids of the connected peers, in `connected_peers()` order, without copying
        a record per peer (what a controller's stats round needs)."""
        with self._lock:
            return list(self._connected)

    # -- selection -----------------------------------------------------------------------

    def by_score(self) -> list[Peer]:
        """Copies of every peer, best score first (ties by id)."""
        with self._lock:
            return [p.copy() for p in sorted(self._records.values(), key=_score_key)]

    def select_nearest(self, n: int, *, target: Sequence[float] | None = None) -> list[Peer]:
        """The ``n`` peers nearest the ideal point (ping 0, hops 0, geo 0, score 100) in the
        reference's weighted space, nearest first, ties by id. ``target`` picks another
        point of that weighted space. ``n <= 0`` ⇒ []."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError("n must be an int")
        tgt = None
        if target is not None:
            tgt = [float(x) for x in target]
            if len(tgt) != 4 or not all(math.isfinite(x) for x in tgt):
                raise InvalidPeerError("target must be 4 finite numbers")
        with self._lock:
            found = [self._records[i].copy() for i in self._index.nearest(n, tgt)]
            if not self._rebuilding and self._index.wants_background_rebuild():
                self._start_rebuild()
            return found

    def _start_rebuild(self) -> None:
        """Build the next tree in a worker thread (scipy releases the GIL meanwhile), so a
        selection never waits ~0.2 s for a rebuild at 10^6 peers; answers stay exact."""
        job = self._index.prepare_rebuild()
        self._rebuilding = True

        def run() -> None:
            try:
                job.run()
            except Exception:  # e.g. MemoryError: keep the old tree, keep serving
                log.exception("KD-tree rebuild failed")
            finally:
                with self._lock:
                    self._rebuilding = False
                    self._index.install(job)

        threading.Thread(target=run, name="p2p-peers-rebuild", daemon=True).start()

    def select_optimal(self) -> Peer | None:
        """The single nearest peer, or None when the registry is empty."""
        best = self.select_nearest(1)
        return best[0] if best else None

    # -- allowlist and the transport's PeerGate ------------------------------------------

    def allow_public_key(self, public_key: str) -> None:
        """Allowlist a key (exact string) and write the sidecar at once."""
        if not isinstance(public_key, str) or not public_key:
            raise InvalidPeerError("public key must be a non-empty string")
        if len(public_key) > MAX_PUBLIC_KEY_LEN:
            raise InvalidPeerError("public key too long")
        with self._lock:
            if public_key in self._allow:
                return
            if len(self._allow) >= MAX_ALLOWLIST:
                raise RegistryFullError(f"allowlist holds {MAX_ALLOWLIST} keys")
            self._allow.add(public_key)
            self._save_allowlist()

    def revoke_public_key(self, public_key: str) -> None:
        with self._lock:
            if public_key not in self._allow:
                return
            self._allow.discard(public_key)
            self._save_allowlist()

    def is_public_key_allowed(self, public_key: str) -> bool:
        return public_key in self._allow

    def allowed_public_keys(self) -> list[str]:
        """The allowlist, sorted."""
        with self._lock:
            return sorted(self._allow)

    def _save_allowlist(self) -> None:
        if self._persist:
            data = store.encode_allowlist(self._allow)
            store.write_atomic(store.allowlist_path(self._path), [data])

    def is_peer_allowed(self, peer_id: str, public_key: str) -> bool:
        """May this (id, key) connect? OPEN: yes. ALLOWLIST: the id must derive from the key,
        and the key must be allowlisted or be the key registered for that id. (The
        reference admits any registered id whatever key it presents.)"""
        if self._auth_mode == AuthMode.OPEN:
            return True
        if node_id_for(public_key) != peer_id:
            return False
        with self._lock:
            if public_key in self._allow:
                return True
            rec = self._records.get(peer_id)
            return rec is not None and rec.public_key == public_key

    def is_peer_known(self, peer_id: str, public_key: str) -> bool:
        """PeerGate (optional method): may this (id, key) use the established slots the
        transport reserves for known peers (``TransportConfig.known_reserve_fraction``)?
        Known = the id derives from the key and the key is allowlisted, or is the stored key
        of a peer the operator added (`add` without ``learned``, or made the operator's by
        `adopt`). A peer the registry only learned from the network is a stranger here,
        whatever it claims: its record is its own word. Independent of the auth mode."""
        if not isinstance(public_key, str) or not public_key:
            return False
        if node_id_for(public_key) != peer_id:
            return False
        with self._lock:
            if public_key in self._allow:
                return True
            rec = self._records.get(peer_id)
            return rec is not None and peer_id not in self._learned and rec.public_key == public_key

    def peer_connected(self, identity: PeerIdentity, address: str = "") -> None:
        """PeerGate: a peer proved its key. Unknown peers are auto-registered as *learned*
        (TRANSPORT.md R6), within ``max_learned``, when their identity is well-formed; a
        malformed one is only logged. A record we hold keeps its name."""
        peer_id = identity.id
        with self._lock:
            if peer_id in self._records:
                rec = self._replace(peer_id)
                if rec.public_key and rec.public_key != identity.public_key:
                    log.warning(
                        "peer %s connected with a key other than its registered one", peer_id
                    )
                if not rec.address and isinstance(address, str) and len(address) <= MAX_ADDRESS_LEN:
                    rec.address = address
                rec.connected = True
                rec.last_seen = now()
                self._records[peer_id] = rec
                self._connected.add(peer_id)
                self._changed()
                return
            role = getattr(identity.role, "value", identity.role)
            stamp = now()
            peer = Peer(
                id=peer_id,
                name=identity.name,
                public_key=identity.public_key,
                address=address if isinstance(address, str) else "",
                role=role if isinstance(role, str) else "",
                added_at=stamp,
                last_seen=stamp,
                score=SCORE_DEFAULT,
                connected=True,
            )
            try:
                if node_id_for(peer.public_key) != peer_id:
                    raise InvalidPeerError("id does not derive from the public key")
                self.add(peer, learned=True)
            except PeerError as e:
                _flood.info(
                    "not registered",
                    "connected peer %s not registered: %s",
                    safe_text(peer_id, 64),
                    e,
                )

    def peer_disconnected(self, peer_id: str) -> None:
        """PeerGate: the connection closed."""
        self.set_connected(peer_id, False)

    # -- protocol 1.1 pins (issue 16) ----------------------------------------------------

    def peer_protocol(self, public_key: str) -> str:
        """PeerGate (optional method): the protocol stored for this key ("1.1" = pinned:
        the transport refuses 1.0 from or to it), "" if none or the key is not the record's."""
        peer_id = node_id_for(public_key) if isinstance(public_key, str) else None
        if peer_id is None:
            return ""
        with self._lock:
            rec = self._records.get(peer_id)
            return rec.protocol if rec is not None and rec.public_key == public_key else ""

    def peer_protocol_seen(self, public_key: str, protocol: str) -> None:
        """PeerGate (optional method): a handshake with this key used ``protocol``. "1.1"
        pins the record; "1.0" is noted only where nothing was known (a pin is never lowered
        here: :meth:`reset_protocol` does that)."""
        peer_id = node_id_for(public_key) if isinstance(public_key, str) else None
        if protocol not in ("1.0", "1.1") or peer_id is None:
            return
        with self._lock:
            rec = self._records.get(peer_id)
            if rec is None or rec.public_key != public_key or rec.protocol == protocol:
                return
            if rec.protocol == "1.1":
                return
            rec = rec.copy()
            rec.protocol = protocol
            self._records[peer_id] = rec
            self._changed()

    def reset_protocol(self, peer_id: str) -> str:
        """Forget a peer's stored protocol (lifts a 1.1 pin); returns what it was.
        Raises PeerNotFoundError for an unknown id."""
        with self._lock:
            rec = self._replace(peer_id)
            old, rec.protocol = rec.protocol, ""
            self._records[peer_id] = rec
            if old:
                self._changed()
            return old

    # -- persistence ---------------------------------------------------------------------

    def _changed(self) -> None:
        self._gen += 1
        if self._persist and self._timer is None:
            timer = threading.Timer(self._save_delay, self._on_timer)
            timer.daemon = True
            self._timer = timer
            timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            if self._timer is threading.current_thread():
                self._timer = None  # the next change arms a new timer
        try:
            self._save()
        except PeerStoreError as e:
            log.error("saving peers failed (will retry on the next change or close): %s", e)

    def _snapshot(self) -> tuple[int, list[Peer], set[str], set[str]] | None:
        with self._lock:
            if self._gen == self._snap_gen:
                return None
            self._snap_gen = self._gen
            evicted = set(self._evicted)
            return self._gen, list(self._records.values()), self._learned | evicted, evicted

    def _save(self) -> None:
        # The snapshot is taken under the write lock: a save that returns has written the
        # newest state (or found it written). Taken before the lock, a timer's snapshot could
        # wait behind the lock while close() got it first, saw "nothing new" and returned
        # with the newest changes still unwritten.
        with self._write_lock:  # also waits for a write already in flight
            snap = self._snapshot()
            if snap is None or snap[0] <= self._written_gen:
                return
            gen, peers, learned, evicted = snap
            try:
                # the sidecar first: an id in peers.json is never missing from it (and
                # no sidecar at all until the first learned peer)
                side = store.learned_path(self._path)
                if learned or side.exists():
                    store.write_atomic(side, [store.encode_learned(learned)])
                store.write_atomic(self._path, store.encode_peers(peers))
                with self._lock:
                    self._evicted -= evicted  # peers.json no longer holds them
            except PeerStoreError:
                with self._lock:
                    if self._snap_gen == gen:
                        self._snap_gen = -1  # still dirty: the next save retries
                raise
            self._written_gen = gen

    def save(self) -> None:
        """Write pending changes now, in this thread. Raises PeerStoreError."""
        if self._persist:
            self._save()

    async def flush(self) -> None:
        """Write pending changes without blocking the event loop. Raises PeerStoreError."""
        if self._persist:
            await asyncio.to_thread(self._save)

    def close(self) -> None:
        """Cancel the save timer and write pending changes (synchronously)."""
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.save()

    async def aclose(self) -> None:
        """``close()`` for async code: the final write runs in a worker thread."""
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        await self.flush()

    @property
    def dirty(self) -> bool:
        """True while a change has not been handed to a writer."""
        return self._gen != self._snap_gen


def _score_key(p: Peer) -> tuple[float, str]:
    return (-p.score, p.id)


def _eviction_key(p: Peer) -> tuple[float, int, int, str]:
    """Lowest score first, then the oldest last_seen, then the smallest id."""
    return (p.score, p.last_seen.unix_seconds, p.last_seen.nanosecond, p.id)
