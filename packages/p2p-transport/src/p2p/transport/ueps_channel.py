"""UEPS as a session-bound channel between our nodes, sans-I/O.

Rules of this module:

1. No sockets, no clocks you cannot inject, no randomness you cannot inject.
2. Negotiation rides on the handshake's optional ``features`` list (Go ignores the key and
   sends none): a connection speaks UEPS only when both sides advertised
   :data:`FEATURE_UEPS`. A Go peer therefore never sees a UEPS frame.
3. UEPS has no id or timestamp, and the HMAC key (the X25519 shared secret) never changes
   between sessions, so a recorded frame would verify forever. Each connection therefore
   starts with one *setup* frame per side carrying a fresh 32-byte nonce; the session ids
   are ``HMAC(secret, "ueps-session/1" ‖ initiator_nonce ‖ responder_nonce ‖ direction)``
   truncated to 16 bytes, one per direction (a frame reflected back to its sender fails).
   Every data frame carries its direction's session id and a counter that strictly
   increases; the receiver refuses another session's frame and any counter not above the
   last one accepted (replay, reorder). Gaps are allowed: frames dropped by the rate
   limit never reach this layer.
4. Violations (bad HMAC, malformed, unbound, wrong session, replay) feed a per-peer
   :class:`ThreatTracker`: +100 each, linear decay, and above the breaker threshold the
   peer is cut off for a cool-down.
"""

from __future__ import annotations

import enum
import heapq
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from p2p.transport.errors import (
    UepsNotNegotiatedError,
    UepsSessionError,
)
from p2p.transport.ueps_frames import (
    COUNTER_MAX,
    NONCE_SIZE,
    SESSION_ID_SIZE,
    BoundPacket,
    decode_bound,
    encode_bound,
    encode_setup,
)
from p2p.ueps import (
    INTENT_HANDSHAKE,
    THREAT_SCORE_THRESHOLD,
    HmacKey,
    IntegrityError,
    MissingSignatureError,
    UEPSError,
)

__all__ = [
    "FEATURE_UEPS",
    "VIOLATIONS",
    "Accept",
    "ReasonCounters",
    "Reject",
    "RejectReason",
    "SessionReady",
    "ThreatTracker",
    "UepsConfig",
    "UepsNotNegotiatedError",
    "UepsSession",
    "UepsSessionError",
    "advertises_ueps",
    "derive_session_ids",
    "with_ueps",
]

FEATURE_UEPS = "ueps/1"
SESSION_LABEL = b"ueps-session/1"
DIR_INITIATOR_TO_RESPONDER = b"\x01"
DIR_RESPONDER_TO_INITIATOR = b"\x02"


def advertises_ueps(features: Iterable[str]) -> bool:
    """Whether a handshake ``features`` list offers this channel."""
    return FEATURE_UEPS in tuple(features)


def with_ueps(features: Iterable[str] = ()) -> tuple[str, ...]:
    """``features`` plus :data:`FEATURE_UEPS` (for ``TransportConfig(features=...)``)."""
    feats = tuple(features)
    return feats if FEATURE_UEPS in feats else (*feats, FEATURE_UEPS)


def derive_session_ids(
    secret: bytes, initiator_nonce: bytes, responder_nonce: bytes
) -> tuple[bytes, bytes]:
    """``(initiator→responder, responder→initiator)`` session ids, 16 bytes each."""
    if len(initiator_nonce) != NONCE_SIZE or len(responder_nonce) != NONCE_SIZE:
        raise ValueError(f"nonces must be {NONCE_SIZE} bytes")
    key = HmacKey(secret)
    base = SESSION_LABEL + initiator_nonce + responder_nonce
    return (
        key.digest(base + DIR_INITIATOR_TO_RESPONDER)[:SESSION_ID_SIZE],
        key.digest(base + DIR_RESPONDER_TO_INITIATOR)[:SESSION_ID_SIZE],
    )


class RejectReason(str, enum.Enum):
    """Why an inbound UEPS frame was not routed (also the counter names)."""

    INTEGRITY = "integrity"
    """HMAC mismatch or missing HMAC."""
    MALFORMED = "malformed"
    """Not a well-formed frame (truncated, bad binding TLV, trailing bytes, over the caps)."""
    UNBOUND = "unbound"
    """A data frame without session id/counter, or before the peer's setup frame."""
    WRONG_SESSION = "wrong_session"
    """A session id other than this connection's (e.g. replayed from another session)."""
    REPLAY = "replay"
    """A counter not above the last one accepted (replayed or reordered)."""
    SETUP = "setup"
    """A second or malformed setup frame."""
    THREAT = "threat"
    """The frame's own threat score is above the dispatcher's threshold (dropped)."""
    UNKNOWN_INTENT = "unknown_intent"
    """No handler is registered for the intent."""
    REFUSED = "refused"
    """The peer is in its cool-down after tripping the breaker (its channel is closed)."""


VIOLATIONS = frozenset(
    {
        RejectReason.INTEGRITY,
        RejectReason.MALFORMED,
        RejectReason.UNBOUND,
        RejectReason.WRONG_SESSION,
        RejectReason.REPLAY,
        RejectReason.SETUP,
    }
)
"""Reasons that raise the peer's threat score."""


@dataclass(frozen=True, slots=True)
class Accept:
    """A verified, in-session, in-order data frame, ready for the dispatcher."""

    packet: BoundPacket


@dataclass(frozen=True, slots=True)
class SessionReady:
    """The peer's setup frame arrived: the session ids are known."""


@dataclass(frozen=True, slots=True)
class Reject:
    """A frame that must not be routed; ``detail`` is safe to log."""

    reason: RejectReason
    detail: str

    @property
    def violation(self) -> bool:
        return self.reason in VIOLATIONS


@dataclass(frozen=True, slots=True)
class UepsConfig:
    """Limits of the UEPS channel (security parameters; see the package README)."""

    threat_increment: float = 100.0
    """Points added per violation (the reader's "ThreatScore +100")."""
    breaker_threshold: float = 1000.0
    """A peer whose score goes strictly above this is disconnected and refused."""
    threat_decay_per_s: float = 10.0
    """Points forgiven per second (linear decay)."""
    cooldown: float = 300.0
    """Seconds a peer that tripped the breaker is refused."""
    setup_timeout: float = 10.0
    """How long a send waits for the peer's setup frame."""
    max_tracked_peers: int = 4096
    """Peers (and, separately, source prefixes) whose threat score is remembered; past it the
    *least dangerous* entry is forgotten, never an active ban while a lesser entry exists."""
    source_prefix_v4: int = 32
    """Violations of every identity from one IPv4 /N are also charged to that source."""
    source_prefix_v6: int = 64
    """Likewise for IPv6 /N: cycling throw-away identities cannot wash a source clean."""
    source_breaker_factor: float = 4.0
    """A source prefix trips at ``breaker_threshold`` times this (so one misbehaving peer
    does not cut off its neighbours behind the same NAT, but identity churn does trip)."""
    dispatch_threshold: int = THREAT_SCORE_THRESHOLD
    """Frames whose own threat score is strictly above this are dropped before routing."""

    def __post_init__(self) -> None:
        for name in ("threat_increment", "breaker_threshold", "cooldown", "setup_timeout"):
            value = getattr(self, name)
            if not 0 < value <= 1e9:
                raise ValueError(f"UepsConfig.{name} must be in (0, 1e9], got {value!r}")
        if not 0 <= self.threat_decay_per_s <= 1e9:
            raise ValueError("UepsConfig.threat_decay_per_s must be in [0, 1e9]")
        if not 1 <= self.max_tracked_peers <= 1_000_000:
            raise ValueError("UepsConfig.max_tracked_peers must be in 1..1000000")
        if not 0 <= self.dispatch_threshold <= 0xFFFF:
            raise ValueError("UepsConfig.dispatch_threshold must be in 0..65535")
        if not 1.0 <= self.source_breaker_factor <= 1e6:
            raise ValueError("UepsConfig.source_breaker_factor must be in [1, 1e6]")
        if not 8 <= self.source_prefix_v4 <= 32:
            raise ValueError("UepsConfig.source_prefix_v4 must be in 8..32")
        if not 16 <= self.source_prefix_v6 <= 128:
            raise ValueError("UepsConfig.source_prefix_v6 must be in 16..128")


class UepsSession:
    """One connection's UEPS state: nonces, per-direction session ids and counters.

    Drive it with :meth:`setup_frame` (send once, first), :meth:`receive` for every inbound
    non-SMSG frame, and :meth:`seal` for outbound data once :attr:`ready`.
    """

    __slots__ = (
        "_key",
        "_recv_sid",
        "_secret",
        "_send_sid",
        "local_nonce",
        "outbound",
        "peer_nonce",
        "recv_counter",
        "send_counter",
        "setup_sent",
    )

    def __init__(self, secret: bytes, *, outbound: bool, nonce: bytes | None = None) -> None:
        self._secret = bytes(secret)
        self._key = HmacKey(self._secret)
        self.outbound = outbound
        self.local_nonce = os.urandom(NONCE_SIZE) if nonce is None else bytes(nonce)
        if len(self.local_nonce) != NONCE_SIZE:
            raise ValueError(f"nonce must be {NONCE_SIZE} bytes")
        self.peer_nonce: bytes | None = None
        self._send_sid: bytes | None = None
        self._recv_sid: bytes | None = None
        self.send_counter = 0
        self.recv_counter = 0
        self.setup_sent = False

    def __repr__(self) -> str:  # never show the secret
        return (
            f"UepsSession(outbound={self.outbound}, ready={self.ready}, "
            f"sent={self.send_counter}, received={self.recv_counter})"
        )

    @property
    def ready(self) -> bool:
        """Both setup frames exchanged: data may flow both ways."""
        return self._send_sid is not None and self.setup_sent

    @property
    def send_session_id(self) -> bytes | None:
        return self._send_sid

    @property
    def recv_session_id(self) -> bytes | None:
        return self._recv_sid

    def setup_frame(self) -> bytes:
        """Our setup frame; must be the first UEPS frame written on the connection."""
        if self.setup_sent:
            raise UepsSessionError("setup frame already produced")
        self.setup_sent = True
        return encode_setup(self._key, self.local_nonce)

    def seal(self, intent_id: int, payload: bytes, threat_score: int = 0) -> bytes:
        """The next data frame (counter + 1) for this session."""
        if intent_id == INTENT_HANDSHAKE:
            raise ValueError("intent 0x01 is reserved for the channel's setup frame")
        if not self.ready or self._send_sid is None:
            raise UepsSessionError("UEPS session not set up yet")
        if self.send_counter >= COUNTER_MAX:
            raise UepsSessionError("UEPS counter exhausted; reconnect")
        frame = encode_bound(
            self._key,
            intent_id,
            payload,
            session_id=self._send_sid,
            counter=self.send_counter + 1,
            threat_score=threat_score,
        )
        self.send_counter += 1
        return frame

    def receive(self, data: bytes) -> Accept | SessionReady | Reject:
        """Judge one inbound frame; only :class:`Accept` may be routed."""
        try:
            packet = decode_bound(data, self._secret)
        except (IntegrityError, MissingSignatureError) as exc:
            return Reject(RejectReason.INTEGRITY, str(exc))
        except UEPSError as exc:
            return Reject(RejectReason.MALFORMED, str(exc))
        if packet.nonce is not None or packet.intent_id == INTENT_HANDSHAKE:
            return self._setup(packet)
        if packet.session_id is None or packet.counter is None:
            return Reject(RejectReason.UNBOUND, "data frame without session id or counter")
        if self._recv_sid is None:
            return Reject(RejectReason.UNBOUND, "data frame before the peer's setup frame")
        if packet.session_id != self._recv_sid:
            return Reject(RejectReason.WRONG_SESSION, "frame belongs to another session")
        if packet.counter <= self.recv_counter:
            return Reject(
                RejectReason.REPLAY,
                f"counter {packet.counter} not above last accepted {self.recv_counter}",
            )
        self.recv_counter = packet.counter
        return Accept(packet)

    def _setup(self, packet: BoundPacket) -> SessionReady | Reject:
        if self.peer_nonce is not None:
            return Reject(RejectReason.SETUP, "second setup frame in one session")
        nonce = packet.nonce
        if nonce is None or packet.session_id is not None or packet.counter is not None:
            return Reject(RejectReason.SETUP, "malformed setup frame")
        if packet.intent_id != INTENT_HANDSHAKE or packet.payload:
            return Reject(RejectReason.SETUP, "malformed setup frame")
        if nonce == self.local_nonce:
            return Reject(RejectReason.SETUP, "setup frame reflected back")
        self.peer_nonce = nonce
        if self.outbound:
            to_peer, from_peer = derive_session_ids(self._secret, self.local_nonce, nonce)
        else:
            from_peer, to_peer = derive_session_ids(self._secret, nonce, self.local_nonce)
        self._send_sid, self._recv_sid = to_peer, from_peer
        return SessionReady()


class ReasonCounters:
    """Frames per outcome (every :class:`RejectReason`, plus ``accepted``/``sent``),
    optionally rolled up into a parent (the service's totals)."""

    __slots__ = ("_counts", "parent")

    KEYS: tuple[str, ...] = ("accepted", "sent", *(r.value for r in RejectReason))

    def __init__(self, parent: ReasonCounters | None = None) -> None:
        self._counts = dict.fromkeys(self.KEYS, 0)
        self.parent = parent

    def add(self, key: RejectReason | str, n: int = 1) -> None:
        name = key.value if isinstance(key, RejectReason) else key
        self._counts[name] += n
        if self.parent is not None:
            self.parent.add(name, n)

    def __getitem__(self, key: RejectReason | str) -> int:
        return self._counts[key.value if isinstance(key, RejectReason) else key]

    @property
    def rejected(self) -> int:
        return sum(v for k, v in self._counts.items() if k not in ("accepted", "sent"))

    def as_dict(self) -> dict[str, int]:
        return dict(self._counts)

    def __repr__(self) -> str:
        return f"ReasonCounters({ {k: v for k, v in self._counts.items() if v} })"


@dataclass(slots=True)
class _Threat:
    score: float
    at: float
    refused_until: float = 0.0
    trips: int = 0


class ThreatTracker:
    """Per-peer threat scores with linear decay and a circuit breaker (clock injected).

    :meth:`record` adds ``increment`` points; when the decayed score goes strictly above
    ``threshold`` the breaker trips: the score resets and the peer is refused for
    ``cooldown`` seconds. At most ``max_peers`` keys are remembered, so a flood of
    identities cannot grow memory. When full, the *least dangerous* entries go (not in
    cool-down, lowest decayed score, oldest; 1/16 of the table at a time): an active ban
    is never forgotten to make room while a lesser entry exists, and when every entry is a
    ban the newcomer is simply not tracked (counted in :attr:`untracked`), so churn cannot
    lift a ban.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        increment: float = 100.0,
        threshold: float = 1000.0,
        decay_per_s: float = 10.0,
        cooldown: float = 300.0,
        max_peers: int = 4096,
    ) -> None:
        self._clock = clock
        self.increment = increment
        self.threshold = threshold
        self.decay_per_s = decay_per_s
        self.cooldown = cooldown
        self.max_peers = max_peers
        self._peers: dict[str, _Threat] = {}
        self._lock = threading.Lock()
        self.untracked = 0
        """Violations not remembered because the table was full of active bans."""

    @classmethod
    def from_config(
        cls, config: UepsConfig, clock: Callable[[], float], *, threshold_factor: float = 1.0
    ) -> ThreatTracker:
        return cls(
            clock=clock,
            increment=config.threat_increment,
            threshold=config.breaker_threshold * threshold_factor,
            decay_per_s=config.threat_decay_per_s,
            cooldown=config.cooldown,
            max_peers=config.max_tracked_peers,
        )

    def _decayed(self, t: _Threat, now: float) -> float:
        return max(0.0, t.score - max(0.0, now - t.at) * self.decay_per_s)

    def score(self, peer_id: str) -> float:
        """The peer's current (decayed) score."""
        with self._lock:
            t = self._peers.get(peer_id)
            return 0.0 if t is None else self._decayed(t, self._clock())

    def record(self, peer_id: str, points: float | None = None) -> bool:
        """Add a violation; ``True`` iff this one tripped the breaker."""
        now = self._clock()
        with self._lock:
            t = self._peers.get(peer_id)
            if t is None:
                if len(self._peers) >= self.max_peers and not self._make_room(now):
                    self.untracked += 1
                    return False
                t = _Threat(0.0, now)
                self._peers[peer_id] = t
            t.score = self._decayed(t, now) + (self.increment if points is None else points)
            t.at = now
            if t.score > self.threshold and now >= t.refused_until:
                t.score = 0.0
                t.refused_until = now + self.cooldown
                t.trips += 1
                return True
            return False

    def _danger(self, t: _Threat, now: float) -> tuple[bool, float, float]:
        return (t.refused_until > now, self._decayed(t, now), t.at)

    def _make_room(self, now: float) -> bool:
        """Forget the least dangerous entries (1/16 of the table, so the O(n) pass is paid
        once per many newcomers), never an active ban; ``False`` if all are active bans."""
        peers = self._peers
        batch = max(1, self.max_peers // 16)
        lesser = heapq.nsmallest(batch, peers, key=lambda k: self._danger(peers[k], now))
        freed = False
        for key in lesser:
            if peers[key].refused_until > now:
                break  # sorted: the rest are bans too
            del peers[key]
            freed = True
        return freed

    def refused(self, peer_id: str) -> bool:
        """Whether the peer is inside its cool-down."""
        return self.refused_for(peer_id) > 0.0

    def refused_for(self, peer_id: str) -> float:
        """Seconds of cool-down left (0 when not refused)."""
        with self._lock:
            t = self._peers.get(peer_id)
            return 0.0 if t is None else max(0.0, t.refused_until - self._clock())

    def trips(self, peer_id: str) -> int:
        """How many times this peer tripped the breaker (while remembered)."""
        with self._lock:
            t = self._peers.get(peer_id)
            return 0 if t is None else t.trips

    def forgive(self, peer_id: str) -> None:
        """Forget the peer's score and cool-down (an operator decision)."""
        with self._lock:
            self._peers.pop(peer_id, None)

    def __len__(self) -> int:
        return len(self._peers)
