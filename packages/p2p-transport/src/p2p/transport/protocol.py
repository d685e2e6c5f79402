"""One peer connection's decisions, sans-I/O: frames in with the time, events out.

A :class:`PeerProtocol` is built from the handshake's :class:`HandshakeResult` (it keeps
the shared secret the handshake derived: nothing recomputes it) and owns everything a
connection decides between frames:

- the :class:`~p2p.transport.session.Session` (decrypt, rate limit, ``ts`` window,
  replay, peer binding, counters);
- probation: an inbound connection is unproven until a fresh frame decrypts (protocol 1.0
  makes the initiator prove nothing); the proof yields :class:`Proven`, then the raw
  frame held while unproven (a UEPS setup frame);
- answering pings (:class:`ReplyDue`), closing on a run of undecryptable frames or on
  rate-limit abuse (:class:`CloseRequested`);
- timers, looked at by :meth:`PeerProtocol.tick`: keepalive ping due (:class:`PingDue`,
  phase spread by :func:`~p2p.transport.keepalive.initial_last_ping`), idle timeout and
  probation expiry (:class:`CloseRequested`), writes that make no progress
  (:class:`WriteStalled`, via :class:`WriteWatch`);
- outbound accounting: sealing (:meth:`PeerProtocol.send_message`, counted), writes in
  flight, the outbound byte cap.

The frames in and out are WebSocket *payloads*: WebSocket framing, sockets and tasks
stay in the I/O shell (:class:`~p2p.transport.connection.PeerConnection`), which feeds
:meth:`PeerProtocol.receive_frame` and acts on the events in order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from p2p.transport import envelope
from p2p.transport.errors import RateLimitExceededError, TooManyUndecryptableError
from p2p.transport.events import (
    PROVEN,
    CloseRequested,
    Dropped,
    Event,
    MessageReceived,
    PingDue,
    Proven,
    RawFrameReceived,
    ReplyDue,
    WriteStalled,
)
from p2p.transport.handshake import PROTOCOL_1_1
from p2p.transport.keepalive import initial_last_ping
from p2p.transport.limits import DropReason
from p2p.transport.messages import DisconnectCode
from p2p.transport.secure_session import SecureSession
from p2p.transport.session import Session

if TYPE_CHECKING:
    from p2p.identity import NodeIdentity
    from p2p.transport.config import TransportConfig
    from p2p.transport.handshake import HandshakeResult
    from p2p.transport.limits import DropCounters, ReplayGuard
    from p2p.transport.messages import Message

__all__ = [
    "FRAME_HEADER_MAX",
    "PROVEN",
    "CloseRequested",
    "Dropped",
    "Event",
    "Events",
    "MessageReceived",
    "PeerProtocol",
    "PingDue",
    "Proven",
    "RawFrameReceived",
    "ReplyDue",
    "WriteStalled",
    "WriteWatch",
]

FRAME_HEADER_MAX = 14
"""Largest WebSocket frame header (what a frame adds to its payload in the write buffer)."""
_PROTOCOL_ERROR: Final = int(DisconnectCode.PROTOCOL_ERROR)
_PING: Final = envelope.PING
Events = tuple[Event, ...]
"""What :meth:`PeerProtocol.receive_frame` and :meth:`PeerProtocol.tick` return, in order."""


_DROPPED: Final = {reason: Dropped(reason) for reason in DropReason}


# --- write progress -------------------------------------------------------------------
class WriteWatch:
    """Sans-I/O: have the bytes waiting on a socket made progress lately?

    Fed snapshots (the transport's ticker looks every fraction of ``send_timeout``): the
    socket's buffered byte count and how many of our sends wait. Progress is a send of ours
    starting from idle or finishing (:meth:`progressed`), nothing waiting, a wait starting
    since the last look, or the buffer shrinking since the last look. Bytes websockets
    wrote itself (pongs, close frames) count as waiting, so a peer that never reads stalls
    even when we never send.
    """

    __slots__ = ("_last_buffered", "_looked_idle", "last_progress")

    def __init__(self, now: float) -> None:
        self.last_progress = now
        self._last_buffered = 0
        self._looked_idle = True

    def progressed(self, now: float) -> None:
        self.last_progress = now

    def stalled(self, buffered: int, writes_pending: int, now: float, timeout: float) -> bool:
        idle = buffered == 0 and writes_pending == 0
        if idle or self._looked_idle or buffered < self._last_buffered:
            self.last_progress = now
        self._looked_idle = idle
        self._last_buffered = buffered
        return not idle and now - self.last_progress > timeout


# --- the protocol object --------------------------------------------------------------
class PeerProtocol:
    """Everything one authenticated connection decides, given frames and the time.

    ``now`` is the monotonic clock (activity, rate limit, timers), ``wall_now`` Unix
    seconds (``ts`` window, replay tables, ping timestamps). ``ping_phase`` in [0, 1)
    places the first keepalive ping within the first ``ping_interval`` (``None``: one
    interval after ``now``).
    """

    __slots__ = (
        "_answer_pings",
        "_config",
        "_secret",
        "_write_watch",
        "connected_at",
        "features",
        "last_ping_sent",
        "outbound",
        "own_id",
        "peer",
        "reported_proven",
        "session",
        "writes_pending",
    )

    def __init__(
        self,
        result: HandshakeResult,
        config: TransportConfig,
        replay: ReplayGuard,
        now: float,
        *,
        outbound: bool,
        own_id: str,
        drops_parent: DropCounters | None = None,
        raw_frames: bool = False,
        ping_phase: float | None = None,
    ) -> None:
        self.peer: NodeIdentity = result.peer
        self.features = result.features
        self.outbound = outbound
        self.own_id = own_id
        self._secret = result.secret
        self._config = config
        self._answer_pings = config.answer_pings
        self.session: Session
        if (
            result.protocol == PROTOCOL_1_1
            and result.send is not None
            and result.receive is not None
        ):
            # protocol 1.1: the Noise transport ciphers; the initiator proved its static key
            # in the third handshake message, so the session is proven from the start
            self.session = SecureSession(
                result.peer,
                result.secret,
                config,
                replay,
                now,
                send=result.send,
                receive=result.receive,
                ueps_key=result.ueps_key,
                drops_parent=drops_parent,
                own_id=own_id,
            )
        else:
            self.session = Session(
                result.peer,
                result.secret,
                config,
                replay,
                now,
                drops_parent=drops_parent,
                own_id=own_id,
                proven=outbound,  # the dialler checked the responder's answer to its challenge
            )
        self.session.raw_frames_enabled = raw_frames
        #: whether :class:`Proven` has been reported (proven from the start: nothing to report)
        self.reported_proven = self.session.proven
        self.connected_at = now
        self.last_ping_sent = (
            now if ping_phase is None else initial_last_ping(now, config.ping_interval, ping_phase)
        )
        self.writes_pending = 0
        self._write_watch = WriteWatch(now)

    def __repr__(self) -> str:  # never show the secret
        direction = "out" if self.outbound else "in"
        return f"<PeerProtocol {self.peer.id} {direction} proven={self.session.proven}>"

    @property
    def shared_secret(self) -> bytes:
        """The handshake's X25519 secret (for a layer above, e.g. a UEPS channel)."""
        return self._secret

    @property
    def proven(self) -> bool:
        return self.session.proven

    # --- inbound ----------------------------------------------------------------------
    def receive_frame(self, data: bytes | str, now: float, wall_now: float) -> Events:
        """Judge one inbound WebSocket data payload; the events to act on, in order."""
        session = self.session
        try:
            verdict = session.receive(data, now, wall_now)
        except TooManyUndecryptableError as exc:
            reason, cause = "too many undecryptable frames", "undecryptable"
            return (CloseRequested(reason, cause, str(exc), _PROTOCOL_ERROR),)
        except RateLimitExceededError as exc:
            reason, cause = "rate limit exceeded", "rate_limit"
            return (CloseRequested(reason, cause, str(exc), _PROTOCOL_ERROR),)
        if verdict is None:
            drop = session.last_drop
            return (_DROPPED[drop],) if drop is not None else ()
        if type(verdict) is MessageReceived:
            message = verdict.message
            ping = self._answer_pings and message.type == _PING
            if self.reported_proven and not ping:
                return (verdict,)  # the hot path: a message on a proven connection
            first = self.prove()
            if ping:
                pong = envelope.pong(message, self.own_id, int(wall_now * 1000))
                return (*first, ReplyDue(pong), verdict)
            return (*first, verdict)
        return (verdict,)  # RawFrameReceived

    def prove(self) -> Events:
        """End probation (a fresh frame decrypted): :class:`Proven`, then the raw frame
        held while unproven, if raw frames are routed. Nothing if already reported."""
        if self.reported_proven:
            return ()
        self.reported_proven = True
        session = self.session
        session.proven = True
        held, session.held_raw = session.held_raw, None
        if held is not None and session.raw_frames_enabled:
            return (PROVEN, RawFrameReceived(held, held=True))
        return (PROVEN,)

    # --- outbound ---------------------------------------------------------------------
    def send_message(self, message: Message) -> bytes:
        """Seal ``message`` into one SMSG frame (a WebSocket binary payload), counted."""
        return self.session.seal(message)

    def disconnect_frame(self, reason: str, code: int) -> bytes:
        """A sealed ``disconnect`` (not counted: it may never be written)."""
        message = envelope.disconnect(self.own_id, self.peer.id, reason, code)
        return self.session.seal_unsent(message)

    def ping(self, now: float, wall_now: float, *, keepalive: bool = True) -> Message:
        """A ``ping`` to send; a keepalive one restarts the keepalive interval."""
        if keepalive:
            self.last_ping_sent = now
        return envelope.ping(self.own_id, self.peer.id, int(wall_now * 1000))

    def would_overflow(self, buffered: int, size: int) -> bool:
        """Would a ``size``-byte payload on top of ``buffered`` waiting bytes pass
        ``max_outbound_bytes``? (An empty buffer always takes one frame.)"""
        return bool(buffered) and (
            buffered + size + FRAME_HEADER_MAX > self._config.max_outbound_bytes
        )

    def write_started(self, now: float) -> None:
        if self.writes_pending == 0:
            self._write_watch.progressed(now)
        self.writes_pending += 1

    def write_finished(self, now: float) -> None:
        self.writes_pending -= 1
        self._write_watch.progressed(now)

    def write_stalled(self, buffered: int, now: float) -> bool:
        """True if bytes have waited ``send_timeout`` without the socket taking any
        (``buffered``: the socket's write buffer, ours and the library's bytes)."""
        return self._write_watch.stalled(
            buffered, self.writes_pending, now, self._config.send_timeout
        )

    # --- timers -----------------------------------------------------------------------
    def tick(self, now: float, buffered: int) -> Events:
        """Look at the timers (the transport's ticker, every fraction of the shortest).

        At most one event: :class:`WriteStalled`, else :class:`CloseRequested` (unproven
        past ``idle_timeout`` since connecting, or silent for ``idle_timeout``), else
        :class:`PingDue` once ``ping_interval`` has passed since the last keepalive ping
        (proven connections only; the transport spreads a crowd's pings over ticks).
        """
        if self.write_stalled(buffered, now):
            return (WriteStalled(now - self._write_watch.last_progress),)
        config = self._config
        idle = config.idle_timeout
        if not self.reported_proven:
            if now - self.connected_at > idle:
                return (CloseRequested("never proved its key", "unproven", "probation expired"),)
            return ()
        silent = now - self.session.last_activity
        if silent > idle:
            return (CloseRequested("idle timeout", "", f"silent for {silent:.1f} s"),)
        if now - self.last_ping_sent >= config.ping_interval:
            return (PingDue(self.last_ping_sent),)
        return ()
