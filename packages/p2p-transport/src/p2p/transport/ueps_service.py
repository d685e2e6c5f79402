"""The transport's own UEPS side: one session per connection, one dispatcher, the breaker.

A :class:`~p2p.transport.Transport` owns one :class:`UepsHub` (``transport.ueps``);
nothing wraps its gate or patches its connections. Applications use the front door:
``transport.on_ueps(intent, handler)`` and ``await conn.send_ueps(intent, payload)``.

The transport calls these hooks (the only coupling, all synchronous):

- :meth:`UepsHub.negotiated` when it builds a connection: raw (non-SMSG) binary frames are
  routed to UEPS only when both handshakes advertised ``ueps/1``; for every other peer they
  are tried as SMSG, as Go does (decided once, never toggled later);
- :meth:`UepsHub.refuses` from the handshake's admission check and :meth:`UepsHub.admits`
  before a proven connection becomes the peer's (the documented breaker hook: a peer, or a
  source prefix, in its cool-down is refused there);
- :meth:`UepsHub.proven` once the connection is the peer's (outbound: at once; inbound:
  after its first proving frame): its :class:`UepsSession` is made from the handshake's
  shared secret (``conn.shared_secret``; no second X25519) and our setup frame is written;
- :meth:`UepsHub.frame` for every raw frame of a proven, negotiated connection, after the
  transport's size and rate limits; :meth:`UepsHub.closed` when the connection ends.

An inbound connection that has not proven its key gets no session, so nothing it sends is
ever charged to the identity it claims. Violations on a proven channel are charged to the
peer *and* to its source prefix, so cycling identities from one place cannot escape a ban;
each one is also reported to the gate's optional ``record_failure(peer_id)`` (the peer
registry lowers the peer's score). Handlers run in the connection's bounded handler pool,
exactly like message handlers.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, cast

from p2p.identity import LimitedLogger, safe_text
from p2p.transport.connection import DISCONNECT_PROTOCOL_ERROR, PeerConnection, with_timeout
from p2p.transport.errors import (
    ConnectionClosedError,
    NotConnectedError,
    PeerRefusedError,
    UepsNotEnabledError,
    UepsNotNegotiatedError,
    UepsSessionError,
)
from p2p.transport.limits import source_prefix
from p2p.transport.ueps_channel import (
    Accept,
    ReasonCounters,
    Reject,
    RejectReason,
    ThreatTracker,
    UepsConfig,
    UepsSession,
    advertises_ueps,
)
from p2p.transport.ueps_frames import BoundPacket
from p2p.ueps import THREAT_SCORE_THRESHOLD, Dispatcher, ThreatScoreExceeded, UnknownIntent

if TYPE_CHECKING:
    from p2p.transport.config import TransportConfig
    from p2p.transport.gate import PeerGate

__all__ = [
    "PeerDispatcher",
    "PeerPacketHandler",
    "PeerRefusedError",
    "UepsHub",
    "UepsNotEnabledError",
]

log = logging.getLogger(__name__)
#: repetitive lines: a few per kind and minute, then one summary (issue 13)
_flood = LimitedLogger(log)

PeerPacketHandler = Callable[[PeerConnection, BoundPacket], "Awaitable[None] | None"]
"""``handler(peer_connection, packet)``; a plain function or ``async def``."""


class PeerDispatcher:
    """Intent routing for the channel: :class:`p2p.ueps.Dispatcher`'s rules (one handler
    per intent, threat score > threshold refused before lookup), handlers get the peer."""

    def __init__(self, threshold: int = THREAT_SCORE_THRESHOLD) -> None:
        self._inner = Dispatcher(threshold, log_drops=False)  # logged below, within a budget

    @property
    def threshold(self) -> int:
        return self._inner.threshold

    def register(self, intent_id: int, handler: PeerPacketHandler) -> None:
        """Route ``intent_id`` to ``handler`` (replacing any earlier one)."""
        self._inner.register(intent_id, cast(Any, handler))

    def unregister(self, intent_id: int) -> None:
        self._inner.unregister(intent_id)

    def handlers(self) -> dict[int, PeerPacketHandler]:
        return {k: cast(PeerPacketHandler, v) for k, v in self._inner.handlers().items()}

    def route(self, packet: BoundPacket) -> PeerPacketHandler:
        """The handler for ``packet`` (raises ``ThreatScoreExceeded`` / ``UnknownIntent``)."""
        return cast(PeerPacketHandler, self._inner.route(packet))


class _Owner(Protocol):
    """What the hub needs from its transport (keeps the import one-way)."""

    config: TransportConfig
    gate: PeerGate

    def connection(self, peer_id: str) -> PeerConnection | None: ...
    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None: ...


class _Channel:
    """One connection's UEPS state: its session and whether data may flow yet."""

    __slots__ = ("closed", "conn", "counters", "ready", "session", "setup_written")

    def __init__(
        self, conn: PeerConnection, session: UepsSession, counters: ReasonCounters
    ) -> None:
        self.conn = conn
        self.session = session
        self.counters = counters
        self.ready = asyncio.Event()
        self.closed = False
        self.setup_written = False

    def update(self) -> None:
        """Open for data once the peer's setup arrived *and* ours was written."""
        if self.session.ready and self.setup_written:
            self.ready.set()

    def close(self) -> None:
        self.closed = True
        self.ready.set()  # wake senders; they see ``closed``


class UepsHub:
    """Session-bound UEPS frames for one transport: sessions, dispatcher, threat breaker.

    Built by the :class:`~p2p.transport.Transport` (``Transport(..., ueps_config=...)``);
    reach it as ``transport.ueps`` for counters and the breaker's state.
    """

    def __init__(
        self,
        owner: _Owner,
        *,
        config: UepsConfig | None = None,
        clock: Callable[[], float],
    ) -> None:
        self._owner = owner
        self.config = config if config is not None else UepsConfig()
        #: the one intent dispatcher of this transport (``Transport.on_ueps`` registers here)
        self.dispatcher = PeerDispatcher(self.config.dispatch_threshold)
        self.threats = ThreatTracker.from_config(self.config, clock)
        #: the same breaker keyed by source prefix (see :meth:`source_of`)
        self.sources = ThreatTracker.from_config(
            self.config, clock, threshold_factor=self.config.source_breaker_factor
        )
        self.trips = 0
        self.source_trips = 0
        self.counters = ReasonCounters()
        self._peer_counters: OrderedDict[str, ReasonCounters] = OrderedDict()
        self._channels: dict[PeerConnection, _Channel] = {}

    # --- inspection -----------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        """Whether this transport advertises ``ueps/1`` (``features=with_ueps()``)."""
        return advertises_ueps(self._owner.config.features)

    def negotiated(self, features: tuple[str, ...]) -> bool:
        """Whether a connection whose peer advertised ``features`` speaks UEPS."""
        return self.enabled and advertises_ueps(features)

    def speaks_ueps(self, peer_id: str) -> bool:
        """Whether the peer's current connection negotiated ``ueps/1``."""
        conn = self._owner.connection(peer_id)
        return conn is not None and self.negotiated(conn.features)

    def peer_counters(self, peer_id: str) -> dict[str, int]:
        """Outcomes of frames from (and sent to) ``peer_id``."""
        c = self._peer_counters.get(peer_id)
        return c.as_dict() if c is not None else ReasonCounters().as_dict()

    def source_of(self, conn: PeerConnection) -> str:
        """The source prefix a connection is charged to (``source_prefix_v4/v6``)."""
        cfg = self.config
        return source_prefix(conn.address, cfg.source_prefix_v4, cfg.source_prefix_v6)

    def session(self, peer_id: str) -> UepsSession | None:
        """The live session of the peer's current connection (for inspection and tests)."""
        conn = self._owner.connection(peer_id)
        ch = self._channels.get(conn) if conn is not None else None
        return ch.session if ch is not None else None

    async def wait_ready(self, peer_id: str, timeout: float | None = None) -> UepsSession:
        """Wait until the peer's current connection can carry UEPS data; returns its session."""
        self._check_refused(peer_id)
        conn = self._owner.connection(peer_id)
        if conn is None:
            raise NotConnectedError(peer_id)
        ch = await self._ready(conn, timeout)
        return ch.session

    # --- hooks called by the transport ---------------------------------------------------
    def refuses(self, peer_id: str) -> bool:
        """Breaker hook of the handshake's admission: is ``peer_id`` in its cool-down?"""
        if self.threats.refused(peer_id):
            _flood.info("UEPS refused", "peer %s refused: UEPS threat cool-down", peer_id)
            return True
        return False

    def admits(self, conn: PeerConnection) -> bool:
        """Breaker hook before a proven connection becomes the peer's: ``False`` while the
        peer or its source prefix is in its cool-down (the transport then closes it)."""
        left = max(
            self.threats.refused_for(conn.peer_id),
            self.sources.refused_for(self.source_of(conn)),
        )
        if left > 0:
            log.warning("closing connection to %s: refused for %.0f s (UEPS)", conn.peer_id, left)
            return False
        return True

    def proven(self, conn: PeerConnection) -> None:
        """``conn`` is now the peer's connection: open its session, write our setup frame."""
        if not self.negotiated(conn.features) or conn in self._channels:
            return
        # protocol 1.1 (issue 16): the session's own forward-secret UEPS key; 1.0: the
        # handshake's static shared secret, carried forward
        secret = getattr(conn.session, "ueps_key", b"") or conn.shared_secret
        session = UepsSession(secret, outbound=conn.outbound)
        ch = _Channel(conn, session, self._counters_for(conn.peer_id))
        self._channels[conn] = ch
        self._owner._spawn(self._send_setup(ch, session.setup_frame()))

    def closed(self, conn: PeerConnection) -> None:
        """``conn`` ended: its session ends with it."""
        ch = self._channels.pop(conn, None)
        if ch is not None:
            ch.close()

    def frame(self, conn: PeerConnection, data: bytes) -> Awaitable[None] | None:
        """Judge one raw frame of a proven, negotiated connection; route it if accepted."""
        peer_id = conn.peer_id
        ch = self._channels.get(conn)
        if ch is None or ch.closed:
            counters = ch.counters if ch is not None else self._counters_for(peer_id)
            refused = ch is not None or self.threats.refused(peer_id)
            counters.add(RejectReason.REFUSED if refused else RejectReason.UNBOUND)
            return None
        counters = ch.counters
        verdict = ch.session.receive(data)
        if isinstance(verdict, Reject):
            counters.add(verdict.reason)
            _flood.info(
                "UEPS reject", "UEPS frame from %s rejected: %s", peer_id, safe_text(verdict.detail)
            )
            if verdict.violation:
                self._violation(ch, verdict.reason)
            return None
        if not isinstance(verdict, Accept):  # the peer's setup frame
            ch.update()
            return None
        packet = verdict.packet
        try:
            handler = self.dispatcher.route(packet)
        except ThreatScoreExceeded:
            counters.add(RejectReason.THREAT)
            _flood.warning("UEPS threat", "UEPS packet from %s over the threat threshold", peer_id)
            return None
        except UnknownIntent:
            counters.add(RejectReason.UNKNOWN_INTENT)
            _flood.warning("UEPS intent", "UEPS packet from %s: unknown intent", peer_id)
            return None
        counters.add("accepted")
        return handler(conn, packet)

    async def send(
        self, conn: PeerConnection, intent_id: int, payload: bytes, threat_score: int = 0
    ) -> None:
        """One session-bound frame on ``conn`` (what ``conn.send_ueps`` does)."""
        ch = self._channels.get(conn)
        if ch is None or ch.closed or not ch.ready.is_set():  # the fast path skips this
            self._check_refused(conn.peer_id)
            ch = await self._ready(conn, None)
        frame = ch.session.seal(intent_id, payload, threat_score)  # no await until written
        await conn.send_raw(frame)
        ch.counters.add("sent")

    # --- internals ------------------------------------------------------------------
    def _check_refused(self, peer_id: str) -> None:
        left = self.threats.refused_for(peer_id)
        if left > 0:
            raise PeerRefusedError(peer_id, left)

    async def _ready(self, conn: PeerConnection, timeout: float | None) -> _Channel:
        if not self.enabled:
            raise UepsNotNegotiatedError(conn.peer_id)
        if not advertises_ueps(conn.features):
            raise UepsNotNegotiatedError(conn.peer_id)
        deadline = self.config.setup_timeout if timeout is None else timeout
        if conn.on_probation and not conn.closed:
            # an inbound connection gets its session once it has shown its key
            try:
                await with_timeout(conn.wait_settled(), deadline)
            except TimeoutError:
                raise UepsSessionError(f"{conn.peer_id} did not prove its key in time") from None
        if conn.closed:
            raise ConnectionClosedError(conn.peer_id)
        ch = self._channels.get(conn)
        if ch is None:
            raise UepsSessionError(f"no UEPS session with {conn.peer_id} (not its connection)")
        if not ch.ready.is_set():
            try:
                await with_timeout(ch.ready.wait(), deadline)
            except TimeoutError:
                raise UepsSessionError(
                    f"no UEPS setup from {conn.peer_id} in {deadline:g} s"
                ) from None
        if ch.closed:
            raise UepsSessionError(f"UEPS session with {conn.peer_id} closed")
        return ch

    async def _send_setup(self, ch: _Channel, frame: bytes) -> None:
        try:
            await ch.conn.send_raw(frame)
        except Exception as exc:
            log.info("UEPS setup to %s not sent: %r", ch.conn.peer_id, exc)
            ch.close()
            return
        ch.setup_written = True
        ch.update()

    def _violation(self, ch: _Channel, reason: RejectReason) -> None:
        """Charge a violation on a proven channel to the peer and to its source prefix."""
        peer_id = ch.conn.peer_id
        source = self.source_of(ch.conn)
        if self.sources.record(source):
            self.source_trips += 1
            log.warning(
                "source %s tripped the UEPS threat breaker: its identities refused %.0f s",
                source,
                self.config.cooldown,
            )
        record_failure = getattr(self._owner.gate, "record_failure", None)
        if record_failure is not None:
            try:
                record_failure(peer_id)
            except Exception:
                log.exception("gate.record_failure(%s) failed", peer_id)
        if self.threats.record(peer_id):
            self.trips += 1
            log.warning(
                "peer %s tripped the UEPS threat breaker (%s): disconnecting, refused %.0f s",
                peer_id,
                reason.value,
                self.config.cooldown,
            )
        elif not self.sources.refused(source):
            return
        conns = {ch.conn}
        current = self._owner.connection(peer_id)
        if current is not None:
            conns.add(current)
        for conn in conns:
            other = self._channels.get(conn)
            if other is not None:
                other.close()
            self._owner._spawn(
                conn.graceful_close("UEPS threat threshold exceeded", DISCONNECT_PROTOCOL_ERROR)
            )

    def _counters_for(self, peer_id: str) -> ReasonCounters:
        c = self._peer_counters.get(peer_id)
        if c is None:
            c = ReasonCounters(self.counters)
            self._peer_counters[peer_id] = c
            while len(self._peer_counters) > self.config.max_tracked_peers:
                self._peer_counters.popitem(last=False)
        else:
            self._peer_counters.move_to_end(peer_id)
        return c
