"""One authenticated WebSocket to a peer: the read loop, sends with deadlines, closing.

The thin I/O shell around a :class:`~p2p.transport.session.Session`. The read loop only
reads, judges frames and answers pings; handlers that are coroutines run in a small
per-connection pool (bounded running count + bounded queue) so a slow handler never
stalls this peer's reads or pongs, and a flood cannot create unbounded tasks.

Memory one connection can hold (TransportConfig "memory and admission"):

- outbound: every byte waiting in the socket's write buffer, ours and the protocol's (pongs
  to WebSocket pings are written without back-pressure), is bounded by ``outbound_limit``
  of the :class:`~p2p.transport.aio.WebSocket` (``max_handshake_outbound_bytes`` until
  the handshake is done, then ``max_outbound_bytes``); past it the connection is closed.
  A write that makes no progress for ``send_timeout`` (the buffer not shrinking) also
  closes it.
- inbound: ``recv_queue_frames`` messages in the socket's queue, plus the wire bytes of
  messages whose async handlers are queued or running, ``max_inflight_bytes``: above it
  the read loop stops reading until handlers finish (back-pressure; TCP does the rest).
- handlers: while more than ``write_limit`` bytes wait to be sent, queued handlers start
  one at a time (a reply the peer does not read blocks only the handler that built it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from p2p.identity import LimitedLogger, safe_text
from p2p.transport import envelope
from p2p.transport.aio import WebSocket, peer_address, with_timeout
from p2p.transport.errors import (
    ConnectionClosedError,
    OutboundOverflowError,
    SendTimeoutError,
    TransportError,
)
from p2p.transport.limits import DropReason
from p2p.transport.messages import DisconnectCode
from p2p.transport.session import (
    Delivery,
    RateLimitExceededError,
    RawFrame,
    Session,
    TooManyUndecryptableError,
)
from websockets.exceptions import ConnectionClosed

if TYPE_CHECKING:
    from p2p.identity import NodeIdentity
    from p2p.transport.config import TransportConfig
    from p2p.transport.messages import Message

__all__ = [
    "ConnectionClosedError",
    "MessageHandler",
    "OutboundOverflowError",
    "PeerConnection",
    "RawFrameHandler",
    "SendTimeoutError",
    "WriteWatch",
    "outbound_overflowed",
    "peer_address",
    "set_outbound_limit",
    "with_timeout",
]

log = logging.getLogger(__name__)
#: repetitive lines: a few per kind and minute, then one summary (issue 13)
_flood = LimitedLogger(log)

MessageHandler = Callable[["PeerConnection", "Message"], "Awaitable[None] | None"]
"""``handler(conn, message)``; may be a plain function or ``async def``."""
RawFrameHandler = Callable[["PeerConnection", bytes], "Awaitable[None] | None"]
"""``handler(conn, frame)`` for binary frames that do not start with ``b"SMSG"``."""

# ``disconnect`` payload codes as plain ints (the payload's int field writes str(code))
DISCONNECT_NORMAL = int(DisconnectCode.NORMAL)
DISCONNECT_PROTOCOL_ERROR = int(DisconnectCode.PROTOCOL_ERROR)
DISCONNECT_SHUTDOWN = int(DisconnectCode.SHUTDOWN)
FRAME_HEADER_MAX = 14
"""Largest WebSocket frame header (what a frame adds to its payload in the write buffer)."""


def set_outbound_limit(ws: WebSocket, limit: int) -> None:
    """Set the write-buffer cap of ``ws`` (checked after each read; past it: abort)."""
    ws.outbound_limit = limit


def outbound_overflowed(ws: WebSocket) -> bool:
    """Was ``ws`` aborted because bytes it never read piled up past its cap?"""
    return ws.outbound_overflowed


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


class _Host(Protocol):
    """What a connection needs from its transport (keeps the import one-way)."""

    config: TransportConfig

    def _handlers(self) -> tuple[MessageHandler, ...]: ...
    def _raw_handler(self) -> RawFrameHandler | None: ...
    def _connection_closed(self, conn: PeerConnection) -> None: ...
    def _connection_proven(self, conn: PeerConnection) -> None: ...
    def _closed_for(self, why: str) -> None: ...
    def _own_id(self) -> str: ...


class PeerConnection:
    """A live, authenticated connection to one peer (inbound or outbound)."""

    def __init__(
        self,
        host: _Host,
        ws: WebSocket,
        session: Session,
        *,
        address: str,
        outbound: bool,
        features: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._host = host
        self._ws = ws
        self.session = session
        self.address = address
        self.outbound = outbound
        self.features = features
        self._clock = clock
        self._wall = wall_clock
        self.connected_at = clock()
        self.last_ping_sent = self.connected_at
        self._closed = False
        self._done = asyncio.Event()
        self._running = 0
        self._pending: deque[tuple[Coroutine[Any, Any, Any], int]] = deque()
        self._workers: set[asyncio.Task[None]] = set()
        self.close_reason: str | None = None
        self.handler_errors = 0
        self._writes_pending = 0
        self._write_watch = WriteWatch(self.connected_at)
        self._inflight = 0
        self._inflight_room = asyncio.Event()
        self._inflight_room.set()
        #: Times the read loop paused because handlers pinned over ``max_inflight_bytes``.
        self.read_pauses = 0
        set_outbound_limit(ws, host.config.max_outbound_bytes)
        self._settled = asyncio.Event()  # proven or closed
        if session.proven:
            self._settled.set()

    # --- public surface -------------------------------------------------------------
    @property
    def identity(self) -> NodeIdentity:
        """The peer's identity as proven by the handshake."""
        return self.session.peer

    @property
    def peer_id(self) -> str:
        return self.session.peer.id

    @property
    def proven(self) -> bool:
        """Whether the peer showed it holds its key: outbound, by answering our challenge;
        inbound, by a fresh frame that decrypted under the shared secret (protocol 1.0 makes
        the initiator prove nothing in the handshake)."""
        return self.session.proven

    @property
    def on_probation(self) -> bool:
        """An inbound connection that has not proven its key yet: it is nobody's session,
        is not reported to the gate, gets no UEPS channel and can displace nothing."""
        return not self.session.proven

    async def wait_settled(self) -> None:
        """Wait until the connection is proven or closed."""
        await self._settled.wait()

    @property
    def last_activity(self) -> float:
        """Monotonic time of the last inbound data frame (any frame, as in the reference)."""
        return self.session.last_activity

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def drops(self) -> dict[str, int]:
        """Frames dropped on this connection, per reason."""
        return self.session.drops.as_dict()

    @property
    def counters(self) -> dict[str, int]:
        """Traffic and drop counters of this connection."""
        s = self.session
        return {
            "frames_in": s.frames_in,
            "messages_in": s.messages_in,
            "messages_out": s.messages_out,
            "bytes_in": s.bytes_in,
            "bytes_out": s.bytes_out,
            "handler_errors": self.handler_errors,
            "read_pauses": self.read_pauses,
            "inflight_bytes": self._inflight,
            "outbound_buffered": self._buffered(),
            **{f"dropped_{k}": v for k, v in s.drops.as_dict().items()},
        }

    async def send(self, message: Message) -> None:
        """Encrypt and write ``message`` (one BINARY frame) within ``send_timeout``."""
        if self._closed:
            raise ConnectionClosedError(self.peer_id)
        await self._write(self.session.seal(message))

    async def send_raw(self, frame: bytes) -> None:
        """Write an already-framed binary message (e.g. a UEPS frame) as-is."""
        if self._closed:
            raise ConnectionClosedError(self.peer_id)
        await self._write(frame)

    async def graceful_close(self, reason: str = "normal", code: int = DISCONNECT_NORMAL) -> None:
        """Send an encrypted ``disconnect`` (best effort, short deadline), then close."""
        if self._closed:
            await self._done.wait()
            return
        own = self._host._own_id()
        try:
            frame = self.session.seal_unsent(envelope.disconnect(own, self.peer_id, reason, code))
            await with_timeout(self._ws.send(frame), self._host.config.close_timeout)
        except Exception as exc:  # best effort: the peer may already be gone
            log.debug("disconnect to %s not sent: %r", self.peer_id, exc)
        await self.close(reason)

    async def close(self, reason: str = "closed") -> None:
        """Close the socket (no ``disconnect`` message) and forget the connection."""
        if self._closed:
            await self._done.wait()
            return
        self._mark_closed(reason)
        try:
            await with_timeout(self._ws.close(), self._host.config.close_timeout)
        except Exception:
            self.abort()
        await self._stop_workers()
        self._done.set()

    def abort(self) -> None:
        """Drop the TCP connection at once (no close frame)."""
        transport = self._ws.transport
        if transport is not None:
            transport.abort()

    async def wait_closed(self) -> None:
        await self._done.wait()

    def __repr__(self) -> str:
        direction = "out" if self.outbound else "in"
        state = "closed" if self._closed else "open"
        return f"<PeerConnection {self.peer_id} {direction} {self.address} {state}>"

    # --- read loop ------------------------------------------------------------------
    async def run(self) -> None:
        """Read frames until the connection ends; then forget it."""
        ws = self._ws
        session = self.session
        clock, wall = self._clock, self._wall
        answer_pings = self._host.config.answer_pings
        inflight_budget = self._host.config.max_inflight_bytes
        try:
            while True:
                if self._inflight > inflight_budget:
                    # back-pressure: handlers pin too many of this peer's bytes; stop reading
                    # (websockets then stops after recv_queue_frames, then TCP pushes back)
                    self.read_pauses += 1
                    self._inflight_room.clear()
                    await self._inflight_room.wait()
                    if self._closed:
                        # closed while paused: let the close finish, the finally stops handlers
                        await ws.wait_closed()
                        return
                data = await ws.recv()
                was_proven = session.proven
                try:
                    verdict = session.receive(data, clock(), wall())
                except TooManyUndecryptableError as exc:
                    log.warning("%s: disconnecting", exc)
                    self._host._closed_for("undecryptable")
                    await self.graceful_close(
                        "too many undecryptable frames", DISCONNECT_PROTOCOL_ERROR
                    )
                    return
                except RateLimitExceededError as exc:
                    log.warning("%s: disconnecting", exc)
                    self._host._closed_for("rate_limit")
                    await self.graceful_close("rate limit exceeded", DISCONNECT_PROTOCOL_ERROR)
                    return
                if verdict is None:
                    continue
                if isinstance(verdict, Delivery):
                    if not was_proven:
                        self._proved()
                    message = verdict.message
                    if message.type == envelope.PING and answer_pings:
                        await self._answer_ping(message)
                    self._dispatch(message, len(data))
                elif isinstance(verdict, RawFrame):
                    self._dispatch_raw(verdict.data)
        except ConnectionClosed as exc:
            if exc.sent is not None and exc.sent.code == 1009:
                session.drops.add(DropReason.OVERSIZE)
                log.warning("peer %s sent an oversize message: closed (1009)", self.peer_id)
            else:
                log.debug("connection to %s ended: %s", self.peer_id, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("read loop of %s failed", self.peer_id)
        finally:
            if not self._closed:
                overflow = outbound_overflowed(ws)
                self._mark_closed("outbound overflow" if overflow else "connection lost")
            if not self._done.is_set():
                self.abort()
                await self._stop_workers()
                self._done.set()

    def _proved(self) -> None:
        """The first proving frame arrived: tell the transport, then hand over the raw
        frame held while unproven (a UEPS setup frame), now that a channel can exist."""
        self._settled.set()
        self._host._connection_proven(self)
        held, self.session.held_raw = self.session.held_raw, None
        if held is not None and not self._closed and self.session.raw_frames_enabled:
            self._dispatch_raw(held)

    async def _answer_ping(self, ping: Message) -> None:
        pong = envelope.pong(ping, self._host._own_id(), int(self._wall() * 1000))
        try:
            await self.send(pong)
        except TransportError as exc:
            log.debug("pong to %s not sent: %s", self.peer_id, exc)

    async def send_ping(self, *, keepalive: bool = True) -> None:
        """Send a ``ping``: the keepalive one (the transport's ticker), or with
        ``keepalive=False`` a probe that leaves the keepalive phase alone."""
        if keepalive:
            self.last_ping_sent = self._clock()
        ping = envelope.ping(self._host._own_id(), self.peer_id, int(self._wall() * 1000))
        await self.send(ping)

    # --- handler pool ---------------------------------------------------------------
    def _dispatch(self, message: Message, size: int) -> None:
        for handler in self._host._handlers():
            try:
                result = handler(self, message)
            except Exception:
                self.handler_errors += 1
                log.exception("message handler failed for %s", safe_text(message.type))
                continue
            if result is not None:
                self._submit(result, size)

    def _dispatch_raw(self, frame: bytes) -> None:
        handler = self._host._raw_handler()
        if handler is None:
            self.session.drops.add(DropReason.UNROUTABLE)
            return
        try:
            result = handler(self, frame)
        except Exception:
            self.handler_errors += 1
            log.exception("raw frame handler failed")
            return
        if result is not None:
            self._submit(result, len(frame))

    def _submit(self, awaitable: Awaitable[None], size: int) -> None:
        """Run ``awaitable`` in the pool, charging ``size`` wire bytes until it finishes."""
        coro = awaitable if asyncio.iscoroutine(awaitable) else _await(awaitable)
        config = self._host.config
        if self._running < config.handler_concurrency and (
            self._running == 0 or not self._output_congested()
        ):
            self._running += 1
            self._inflight += size
            task = asyncio.get_running_loop().create_task(self._worker(coro, size))
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
        elif len(self._pending) < config.handler_queue_size:
            self._inflight += size
            self._pending.append((coro, size))
        else:
            coro.close()
            self.session.drops.add(DropReason.OVERLOAD)
            _flood.warning(
                "handler queue full", "handler queue full for %s: dropping a message", self.peer_id
            )

    async def _worker(self, coro: Coroutine[Any, Any, Any], size: int) -> None:
        try:
            while True:
                try:
                    await coro
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.handler_errors += 1
                    log.exception("async message handler failed (peer %s)", self.peer_id)
                finally:
                    self._release(size)
                    size = 0
                if self._pending and self._output_congested():
                    # the peer is not reading our replies: run its handlers one at a time,
                    # so only one of them holds a reply it cannot deliver
                    await self._ws.drain()
                if not self._pending:
                    return
                coro, size = self._pending.popleft()
        finally:
            self._release(size)
            self._running -= 1

    def _release(self, size: int) -> None:
        self._inflight -= size
        if self._inflight <= self._host.config.max_inflight_bytes:
            self._inflight_room.set()

    async def _stop_workers(self) -> None:
        while self._pending:
            coro, size = self._pending.popleft()
            coro.close()
            self._release(size)
        current = asyncio.current_task()
        workers = [t for t in self._workers if t is not current]
        for task in workers:
            task.cancel()
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)

    # --- internals ------------------------------------------------------------------
    def _output_congested(self) -> bool:
        """More than ``write_limit`` bytes wait in the socket's buffer (sends would block)."""
        return self._buffered() > self._host.config.write_limit

    def _buffered(self) -> int:
        transport = self._ws.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    async def _write(self, frame: bytes) -> None:
        # The write deadline is enforced by the transport's ticker (write_stalled), not a
        # timer per send: a send that does not block costs two attribute updates.
        buffered = self._buffered()
        limit = self._host.config.max_outbound_bytes
        if buffered and buffered + len(frame) + FRAME_HEADER_MAX > limit:
            # a peer that does not read: queueing more would only grow this process
            self.fail_outbound_overflow(buffered, limit)
            raise OutboundOverflowError(self.peer_id, limit)
        if self._writes_pending == 0:
            self._write_watch.progressed(self._clock())
        self._writes_pending += 1
        try:
            await self._ws.send(frame)
        except ConnectionClosed as exc:
            if self.close_reason == "send timeout":
                raise SendTimeoutError(self.peer_id, self._host.config.send_timeout) from exc
            raise ConnectionClosedError(self.peer_id) from exc
        else:
            if self._closed and self.close_reason == "send timeout":
                # aborted while waiting to drain: the frame may never have left
                raise SendTimeoutError(self.peer_id, self._host.config.send_timeout)
        finally:
            self._writes_pending -= 1
            self._write_watch.progressed(self._clock())

    def write_stalled(self, now: float) -> bool:
        """True if bytes have waited ``send_timeout`` seconds without the socket taking any.

        Counts the transport's write buffer, not only our sends: websockets writes pongs
        (and close frames) itself. Progress is one of our writes finishing or the buffer
        shrinking since the previous look (the ticker calls this every fraction of
        ``send_timeout``).
        """
        return self._write_watch.stalled(
            self._buffered(), self._writes_pending, now, self._host.config.send_timeout
        )

    def fail_outbound_overflow(self, buffered: int, limit: int) -> None:
        """Drop the connection whose peer lets more than ``limit`` bytes pile up."""
        log.warning(
            "%d bytes waiting to be sent to %s (limit %d): dropping the connection",
            buffered,
            self.peer_id,
            limit,
        )
        self._mark_closed("outbound overflow")
        self.abort()

    def fail_stalled_write(self) -> None:
        """Drop the connection whose writes are stuck (pending sends raise SendTimeoutError)."""
        log.warning("send to %s timed out: dropping the connection", self.peer_id)
        self._mark_closed("send timeout")
        self.abort()

    def _mark_closed(self, reason: str) -> None:
        if not self._closed:
            self._closed = True
            self.close_reason = reason
            self._settled.set()
            self._inflight_room.set()  # a read loop paused on handlers must see the close
            self._host._connection_closed(self)


async def _await(awaitable: Awaitable[None]) -> None:
    await awaitable
