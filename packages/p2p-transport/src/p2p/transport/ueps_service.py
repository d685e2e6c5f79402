"""The live UEPS channel: a thin asyncio shell putting :mod:`ueps_channel` on a Transport.

It needs nothing but the transport's public hooks: ``config.features`` (advertise
``ueps/1``), ``PeerConnection.features`` (what the peer advertised), ``on_raw_frame`` (binary
frames that do not start with ``b"SMSG"``, after the transport's size limit and per-peer
rate limit), ``send_raw``, and the :class:`~p2p.transport.gate.PeerGate` it wraps to learn
of new connections and to refuse peers in their cool-down. Handlers run through the
connection's bounded handler pool, exactly like message handlers.

Attach the service *before* connecting peers: each side's setup frame is sent when the
connection is established and proven. An inbound connection that has not proven its key
(protocol 1.0 makes the initiator prove nothing) gets no channel: the transport does not
route its binary frames here and does not report it connected, so nothing it sends is ever
charged to the identity it claims. Violations on a proven channel are charged to the peer
*and* to its source prefix, so cycling identities from one place cannot escape a ban.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from p2p.identity import LimitedLogger, safe_text
from p2p.transport.connection import DISCONNECT_PROTOCOL_ERROR, PeerConnection, with_timeout
from p2p.transport.errors import (
    PeerRefusedError,
    UepsNotEnabledError,
)
from p2p.transport.limits import source_prefix
from p2p.transport.transport import NotConnectedError
from p2p.transport.ueps_channel import (
    Accept,
    ReasonCounters,
    Reject,
    RejectReason,
    ThreatTracker,
    UepsConfig,
    UepsNotNegotiatedError,
    UepsSession,
    UepsSessionError,
    advertises_ueps,
)
from p2p.transport.ueps_frames import BoundPacket
from p2p.ueps import THREAT_SCORE_THRESHOLD, Dispatcher, ThreatScoreExceeded, UnknownIntent

if TYPE_CHECKING:
    from p2p.identity import NodeIdentity
    from p2p.transport.gate import PeerGate
    from p2p.transport.transport import Transport

__all__ = [
    "FailureRecorder",
    "PeerDispatcher",
    "PeerPacketHandler",
    "PeerRefusedError",
    "UepsNotEnabledError",
    "UepsService",
]

log = logging.getLogger(__name__)
#: repetitive lines: a few per kind and minute, then one summary (issue 13)
_flood = LimitedLogger(log)

PeerPacketHandler = Callable[[PeerConnection, BoundPacket], "Awaitable[None] | None"]
"""``handler(peer_connection, packet)``; a plain function or ``async def``."""
FailureRecorder = Callable[[str], object]
"""``record_failure(peer_id)`` (e.g. ``PeerRegistry.record_failure``)."""


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


class _Channel:
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


class _BreakerGate:
    """The transport's gate, plus the breaker's refusals and connection events."""

    def __init__(self, inner: PeerGate, service: UepsService) -> None:
        self.inner = inner
        self._service = service

    def is_peer_allowed(self, peer_id: str, public_key: str) -> bool:
        if self._service.threats.refused(peer_id):
            log.info("peer %s refused: UEPS threat cool-down", peer_id)
            return False
        return bool(self.inner.is_peer_allowed(peer_id, public_key))

    def peer_connected(self, identity: NodeIdentity, address: str) -> None:
        self.inner.peer_connected(identity, address)
        self._service._connected(identity.id)

    def peer_disconnected(self, peer_id: str) -> None:
        self.inner.peer_disconnected(peer_id)
        self._service._disconnected(peer_id)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class UepsService:
    """Session-bound UEPS frames over a :class:`Transport`, routed by a per-node dispatcher."""

    def __init__(
        self,
        transport: Transport,
        *,
        config: UepsConfig | None = None,
        dispatcher: PeerDispatcher | None = None,
        record_failure: FailureRecorder | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not advertises_ueps(transport.config.features):
            raise UepsNotEnabledError(
                "transport config does not advertise ueps/1 (use features=with_ueps())"
            )
        self.transport = transport
        self.config = config if config is not None else UepsConfig()
        self.dispatcher = (
            dispatcher if dispatcher is not None else PeerDispatcher(self.config.dispatch_threshold)
        )
        self.threats = ThreatTracker.from_config(self.config, clock)
        #: the same breaker keyed by source prefix (see :meth:`source_of`)
        self.sources = ThreatTracker.from_config(
            self.config, clock, threshold_factor=self.config.source_breaker_factor
        )
        self.source_trips = 0
        self._record_failure = record_failure
        self.counters = ReasonCounters()
        self._peer_counters: OrderedDict[str, ReasonCounters] = OrderedDict()
        self._channels: dict[str, _Channel] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.trips = 0
        self._gate = _BreakerGate(transport.gate, self)
        transport.gate = self._gate
        transport.on_raw_frame(self._on_frame)
        for conn in transport.connections():
            self._connected(conn.peer_id)

    # --- public ---------------------------------------------------------------------
    def register(self, intent_id: int, handler: PeerPacketHandler) -> None:
        """Shortcut for ``dispatcher.register``."""
        self.dispatcher.register(intent_id, handler)

    def speaks_ueps(self, peer_id: str) -> bool:
        """Whether the connected peer advertised ``ueps/1``."""
        conn = self.transport.connection(peer_id)
        return conn is not None and advertises_ueps(conn.features)

    def peer_counters(self, peer_id: str) -> dict[str, int]:
        """Outcomes of frames from (and sent to) ``peer_id``."""
        c = self._peer_counters.get(peer_id)
        return c.as_dict() if c is not None else ReasonCounters().as_dict()

    def source_of(self, conn: PeerConnection) -> str:
        """The source prefix a connection is charged to (``source_prefix_v4/v6``)."""
        cfg = self.config
        return source_prefix(conn.address, cfg.source_prefix_v4, cfg.source_prefix_v6)

    def session(self, peer_id: str) -> UepsSession | None:
        """The live session with ``peer_id`` (for inspection and tests)."""
        ch = self._channels.get(peer_id)
        return ch.session if ch is not None else None

    async def wait_ready(self, peer_id: str, timeout: float | None = None) -> UepsSession:
        """Wait until the session with ``peer_id`` can carry data; returns it."""
        left = self.threats.refused_for(peer_id)
        if left > 0:
            raise PeerRefusedError(peer_id, left)
        conn = self.transport.connection(peer_id)
        if conn is None:
            raise NotConnectedError(peer_id)
        ch = self._channels.get(peer_id)
        if ch is None or ch.conn is not conn:
            if not advertises_ueps(conn.features):
                raise UepsNotNegotiatedError(peer_id)
            raise UepsSessionError(f"no UEPS session with {peer_id} (connected before attach?)")
        if not ch.ready.is_set():
            deadline = self.config.setup_timeout if timeout is None else timeout
            try:
                await with_timeout(ch.ready.wait(), deadline)
            except TimeoutError:
                raise UepsSessionError(f"no UEPS setup from {peer_id} in {deadline:g} s") from None
        if ch.closed:
            raise UepsSessionError(f"UEPS session with {peer_id} closed")
        return ch.session

    async def send(
        self, peer_id: str, intent_id: int, payload: bytes, *, threat_score: int = 0
    ) -> None:
        """Send one session-bound UEPS frame to a peer that advertised ``ueps/1``.

        Raises :class:`~p2p.transport.NotConnectedError`, :class:`UepsNotNegotiatedError`
        (e.g. a Go peer), :class:`PeerRefusedError`, :class:`UepsSessionError`.
        """
        ch = self._channels.get(peer_id)
        if ch is None or ch.closed or not ch.ready.is_set():  # the fast path skips this
            await self.wait_ready(peer_id)
            ch = self._channels.get(peer_id)
            assert ch is not None
        frame = ch.session.seal(intent_id, payload, threat_score)  # no await until written
        await ch.conn.send_raw(frame)
        ch.counters.add("sent")

    async def close(self) -> None:
        """Detach from the transport (raw-frame hook and gate restored)."""
        self.transport.on_raw_frame(None)
        if self.transport.gate is self._gate:
            self.transport.gate = self._gate.inner
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- connection events (from the gate) ------------------------------------------------
    def _connected(self, peer_id: str) -> None:
        conn = self.transport.connection(peer_id)
        if conn is None:
            return
        old = self._channels.pop(peer_id, None)
        if old is not None:
            old.close()
        left = max(
            self.threats.refused_for(peer_id), self.sources.refused_for(self.source_of(conn))
        )
        if left > 0:
            log.warning("closing connection to %s: refused for %.0f s (UEPS)", peer_id, left)
            self._spawn(conn.close("refused: UEPS threat cool-down"))
            return
        if not advertises_ueps(conn.features):
            # Go's rule for peers without UEPS: every binary frame is tried as SMSG, so junk
            # counts towards ``max_undecryptable_in_a_row`` and closes the connection.
            conn.session.raw_frames_enabled = False
        ch = self._open(conn)
        if ch is not None:
            self._channels[peer_id] = ch

    def _open(self, conn: PeerConnection) -> _Channel | None:
        """A new session on ``conn`` (if it speaks UEPS); our setup frame is sent at once."""
        if not advertises_ueps(conn.features):
            return None
        try:
            # protocol 1.1 (issue 16): the session's own forward-secret UEPS key
            secret = getattr(conn.session, "ueps_key", b"") or (
                self.transport.node_manager.derive_shared_secret(conn.identity.public_key)
            )
        except Exception:
            log.exception("cannot derive the UEPS key for %s", conn.peer_id)
            return None
        session = UepsSession(secret, outbound=conn.outbound)
        ch = _Channel(conn, session, self._counters_for(conn.peer_id))
        frame = ch.session.setup_frame()
        self._spawn(self._send_setup(ch, frame))
        return ch

    def _disconnected(self, peer_id: str) -> None:
        ch = self._channels.pop(peer_id, None)
        if ch is not None:
            ch.close()

    async def _send_setup(self, ch: _Channel, frame: bytes) -> None:
        try:
            await ch.conn.send_raw(frame)
        except Exception as exc:
            log.info("UEPS setup to %s not sent: %r", ch.conn.peer_id, exc)
            ch.close()
            return
        ch.setup_written = True
        ch.update()

    # --- inbound ----------------------------------------------------------------------
    def _on_frame(self, conn: PeerConnection, frame: bytes) -> Awaitable[None] | None:
        if conn.on_probation:
            return None  # the transport holds such frames; never charge a claimed identity
        peer_id = conn.peer_id
        ch = self._channels.get(peer_id)
        if ch is not None and ch.conn is not conn:
            ch = None  # a frame from a connection already replaced: not this session's
        if ch is None:
            counters = self._counters_for(peer_id)
            if self.threats.refused(peer_id):
                counters.add(RejectReason.REFUSED)
            elif not advertises_ueps(conn.features):
                counters.add(RejectReason.NOT_NEGOTIATED)
                conn.session.raw_frames_enabled = False  # from now on tried as SMSG
                _flood.info(
                    "non-SMSG frame",
                    "non-SMSG binary frame from %s, which did not offer ueps/1",
                    peer_id,
                )
            else:
                counters.add(RejectReason.UNBOUND)
            return None
        counters = ch.counters
        if ch.closed:
            counters.add(RejectReason.REFUSED)
            return None
        verdict = ch.session.receive(frame)
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
        if self._record_failure is not None:
            try:
                self._record_failure(peer_id)
            except Exception:
                log.exception("record_failure(%s) failed", peer_id)
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
        other = self._channels.pop(peer_id, None)
        if other is not None:
            other.close()
            conns.add(other.conn)
        ch.close()
        for conn in conns:
            self._spawn(
                conn.graceful_close("UEPS threat threshold exceeded", DISCONNECT_PROTOCOL_ERROR)
            )

    # --- internals ------------------------------------------------------------------
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

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
