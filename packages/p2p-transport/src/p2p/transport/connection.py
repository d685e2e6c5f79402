"""One authenticated WebSocket to a peer: frame delivery, sends with deadlines, closing.

The thin I/O shell around a sans-I/O :class:`~p2p.transport.protocol.PeerProtocol`,
which decides everything (decrypt, probation, pongs, closes, timers). Once the handshake
is done, each frame comes from the socket's read callback (:meth:`WebSocket.deliver_to`:
no task wakes per frame), goes to the protocol, and its events are acted on there: a pong
is written at once (``send_nowait``), a close runs as its own task; handlers that are
coroutines run in a small per-connection pool (bounded running count + bounded queue) so
a slow handler never stalls this peer's reads or pongs, and a flood cannot create
unbounded tasks. On Python 3.12+ a handler's task starts eagerly (its first step runs at
once, as its own task): one that finishes without waiting costs no loop iteration.

Memory one connection can hold (TransportConfig "memory and admission"):

- outbound: every byte waiting in the socket's write buffer, ours and the protocol's (pongs
  to WebSocket pings are written without back-pressure), is bounded by ``outbound_limit``
  of the :class:`~p2p.transport.aio.WebSocket` (``max_handshake_outbound_bytes`` until
  the handshake is done, then ``max_outbound_bytes``); past it the connection is closed.
  A write that makes no progress for ``send_timeout`` (the buffer not shrinking) also
  closes it.
- inbound: ``recv_queue_frames`` messages in the socket's queue, plus the wire bytes of
  messages whose async handlers are queued or running, ``max_inflight_bytes``: above it
  delivery pauses (the socket is not read; what the current read still holds waits in the
  socket's queue) until handlers finish (back-pressure; TCP does the rest).
- handlers: while more than ``write_limit`` bytes wait to be sent, queued handlers start
  one at a time (a reply the peer does not read blocks only the handler that built it).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

from p2p.identity import LimitedLogger, safe_text
from p2p.transport.aio import WebSocket, peer_address, with_timeout
from p2p.transport.errors import (
    ConnectionClosedError,
    OutboundOverflowError,
    SendTimeoutError,
)
from p2p.transport.limits import DropReason
from p2p.transport.messages import DisconnectCode
from p2p.transport.protocol import (
    CloseRequested,
    Events,
    MessageReceived,
    PeerProtocol,
    Proven,
    RawFrameReceived,
    ReplyDue,
    WriteWatch,
)
from websockets.exceptions import ConnectionClosed

if TYPE_CHECKING:
    from p2p.identity import NodeIdentity
    from p2p.transport.config import TransportConfig
    from p2p.transport.messages import Message
    from p2p.transport.session import Session

__all__ = [
    "ConnectionClosedError",
    "MessageHandler",
    "OutboundOverflowError",
    "PeerConnection",
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

# ``disconnect`` payload codes as plain ints (the payload's int field writes str(code))
DISCONNECT_NORMAL = int(DisconnectCode.NORMAL)
DISCONNECT_PROTOCOL_ERROR = int(DisconnectCode.PROTOCOL_ERROR)
DISCONNECT_SHUTDOWN = int(DisconnectCode.SHUTDOWN)


def set_outbound_limit(ws: WebSocket, limit: int) -> None:
    """Set the write-buffer cap of ``ws`` (checked after each read; past it: abort)."""
    ws.outbound_limit = limit


def outbound_overflowed(ws: WebSocket) -> bool:
    """Was ``ws`` aborted because bytes it never read piled up past its cap?"""
    return ws.outbound_overflowed


class _Host(Protocol):
    """What a connection needs from its transport (keeps the import one-way)."""

    config: TransportConfig

    def _handlers(self) -> tuple[MessageHandler, ...]: ...
    def _ueps_frame(self, conn: PeerConnection, frame: bytes) -> Awaitable[None] | None: ...
    async def _send_ueps(
        self, conn: PeerConnection, intent_id: int, payload: bytes, threat_score: int
    ) -> None: ...
    def _connection_closed(self, conn: PeerConnection) -> None: ...
    def _connection_proven(self, conn: PeerConnection) -> None: ...
    def _closed_for(self, why: str) -> None: ...
    def _own_id(self) -> str: ...


class PeerConnection:
    """A live, authenticated connection to one peer (inbound or outbound).

    The I/O half of the pair: ``protocol`` (a :class:`PeerProtocol`) decides, this class
    reads, writes, runs handlers and closes.
    """

    def __init__(
        self,
        host: _Host,
        ws: WebSocket,
        protocol: PeerProtocol,
        *,
        address: str,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._host = host
        self._ws = ws
        self.protocol = protocol
        self.address = address
        self._clock = clock
        self._wall = wall_clock
        self._closed = False
        self._done = asyncio.Event()
        self._running = 0
        self._pending: deque[tuple[Coroutine[Any, Any, Any], int]] = deque()
        self._workers: set[asyncio.Task[None]] = set()
        self.close_reason: str | None = None
        self.handler_errors = 0
        self._inflight = 0
        self._delivery_paused = False
        #: the close the protocol asked for while delivering (a task of its own)
        self._close_task: asyncio.Task[None] | None = None
        #: Times delivery paused because handlers pinned over ``max_inflight_bytes``.
        self.read_pauses = 0
        set_outbound_limit(ws, host.config.max_outbound_bytes)
        self._settled = asyncio.Event()  # proven or closed
        if protocol.reported_proven:
            self._settled.set()

    # --- public surface -------------------------------------------------------------
    @property
    def session(self) -> Session:
        """The protocol's :class:`~p2p.transport.session.Session` (counters, drops)."""
        return self.protocol.session

    @property
    def outbound(self) -> bool:
        return self.protocol.outbound

    @property
    def features(self) -> tuple[str, ...]:
        """What the peer advertised in its handshake."""
        return self.protocol.features

    @property
    def connected_at(self) -> float:
        return self.protocol.connected_at

    @property
    def last_ping_sent(self) -> float:
        """Monotonic time of the last keepalive ping (phase of the keepalive interval)."""
        return self.protocol.last_ping_sent

    @last_ping_sent.setter
    def last_ping_sent(self, now: float) -> None:
        self.protocol.last_ping_sent = now

    @property
    def identity(self) -> NodeIdentity:
        """The peer's identity as proven by the handshake."""
        return self.protocol.peer

    @property
    def peer_id(self) -> str:
        return self.protocol.peer.id

    @property
    def shared_secret(self) -> bytes:
        """The handshake's X25519 shared secret with this peer, carried forward (the link's
        SMSG key, the UEPS HMAC key, the deploy-bundle password): nobody derives it again.
        Key material: never log it."""
        return self.protocol.shared_secret

    @property
    def proven(self) -> bool:
        """Whether the peer showed it holds its key: outbound, by answering our challenge;
        inbound, by a fresh frame that decrypted under the shared secret (protocol 1.0 makes
        the initiator prove nothing in the handshake)."""
        return self.protocol.session.proven

    @property
    def on_probation(self) -> bool:
        """An inbound connection that has not proven its key yet: it is nobody's session,
        is not reported to the gate, gets no UEPS channel and can displace nothing."""
        return not self.protocol.session.proven

    async def wait_settled(self) -> None:
        """Wait until the connection is proven or closed."""
        await self._settled.wait()

    @property
    def last_activity(self) -> float:
        """Monotonic time of the last inbound data frame (any frame, as in the reference)."""
        return self.protocol.session.last_activity

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def drops(self) -> dict[str, int]:
        """Frames dropped on this connection, per reason."""
        return self.protocol.session.drops.as_dict()

    @property
    def counters(self) -> dict[str, int]:
        """Traffic and drop counters of this connection."""
        s = self.protocol.session
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
        await self._write(self.protocol.send_message(message))

    async def send_raw(self, frame: bytes) -> None:
        """Write an already-framed binary message (e.g. a UEPS frame) as-is."""
        if self._closed:
            raise ConnectionClosedError(self.peer_id)
        await self._write(frame)

    async def send_ueps(self, intent_id: int, payload: bytes, *, threat_score: int = 0) -> None:
        """Send one session-bound UEPS frame (both sides advertised ``ueps/1``).

        Waits (up to ``UepsConfig.setup_timeout``) for the session's setup exchange, or
        for an inbound connection to prove its key. Raises
        :class:`~p2p.transport.errors.UepsNotNegotiatedError` (e.g. a Go peer),
        :class:`~p2p.transport.errors.PeerRefusedError` (threat cool-down),
        :class:`~p2p.transport.errors.UepsSessionError`, :class:`ConnectionClosedError`;
        ``ValueError`` for the reserved setup intent 0x01.
        """
        if self._closed:
            raise ConnectionClosedError(self.peer_id)
        await self._host._send_ueps(self, intent_id, payload, threat_score)

    async def graceful_close(self, reason: str = "normal", code: int = DISCONNECT_NORMAL) -> None:
        """Send an encrypted ``disconnect`` (best effort, short deadline), then close."""
        if self._closed:
            await self._done.wait()
            return
        try:
            frame = self.protocol.disconnect_frame(reason, code)
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
        self._ws.abort()

    async def wait_closed(self) -> None:
        await self._done.wait()

    def __repr__(self) -> str:
        direction = "out" if self.outbound else "in"
        state = "closed" if self._closed else "open"
        return f"<PeerConnection {self.peer_id} {direction} {self.address} {state}>"

    # --- frame delivery -------------------------------------------------------------
    async def run(self) -> None:
        """Take frames from the socket's read callback until the connection ends; then
        forget it."""
        ws = self._ws
        try:
            ws.deliver_to(self._on_frame)  # what the handshake left queued goes first
            await ws.wait_closed()
            close_task = self._close_task
            if close_task is not None:
                await close_task
                return
            exc = ws.close_exc()
            if exc.sent is not None and exc.sent.code == 1009:
                self.protocol.session.drops.add(DropReason.OVERSIZE)
                log.warning("peer %s sent an oversize message: closed (1009)", self.peer_id)
            else:
                log.debug("connection to %s ended: %s", self.peer_id, exc)
        except asyncio.CancelledError:
            if self._close_task is not None:
                self._close_task.cancel()
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

    def _on_frame(self, data: bytes | str) -> None:
        """One frame from the read callback: to the protocol, then act on its events.
        Never raises (it runs inside the event loop's read callback)."""
        if self._closed or self._close_task is not None:
            return  # nothing that arrives after the end is dispatched
        try:
            for event in self.protocol.receive_frame(data, self._clock(), self._wall()):
                if type(event) is MessageReceived:
                    if not self._closed:  # e.g. refused the moment it proved its key
                        self._dispatch(event.message, event.size)
                elif type(event) is ReplyDue:
                    self._answer_ping(event.message)
                elif type(event) is RawFrameReceived:
                    self._on_raw(event)
                elif type(event) is Proven:
                    self._on_proven()
                elif type(event) is CloseRequested:
                    self._close_task = asyncio.get_running_loop().create_task(
                        self._close_for(event)
                    )
                    return
                # Dropped: the session has counted it; WriteStalled/PingDue come from tick
        except Exception:
            self.handler_errors += 1
            log.exception("frame from %s failed", self.peer_id)
        if self._inflight > self._host.config.max_inflight_bytes and not self._delivery_paused:
            # back-pressure: handlers pin too many of this peer's bytes; stop reading
            self.read_pauses += 1
            self._delivery_paused = True
            self._ws.pause_delivery()

    def _proved(self) -> None:
        """End probation now (the protocol decides whether there is anything to end):
        tell the transport, then hand over the raw frame held while unproven."""
        for event in self.protocol.prove():
            if type(event) is Proven:
                self._on_proven()
            elif type(event) is RawFrameReceived:
                self._on_raw(event)

    def _on_proven(self) -> None:
        self._settled.set()
        self._host._connection_proven(self)

    def _on_raw(self, event: RawFrameReceived) -> None:
        if self._closed:
            return  # e.g. the frame held while unproven, and the connection ended meanwhile
        self._dispatch_raw(event.data)

    async def _close_for(self, event: CloseRequested) -> None:
        """Act on the protocol's verdict that this connection must end."""
        log.warning("%s: disconnecting", event.detail)
        if event.cause:
            self._host._closed_for(event.cause)
        if event.code is None:
            await self.close(event.reason)
        else:
            await self.graceful_close(event.reason, event.code)

    def _answer_ping(self, pong: Message) -> None:
        """Write the pong now, from the read callback (no wait for the write buffer:
        ``max_outbound_bytes`` bounds what piles up)."""
        if self._closed:
            return
        frame = self.protocol.send_message(pong)
        protocol = self.protocol
        buffered = self._buffered()
        if buffered and protocol.would_overflow(buffered, len(frame)):
            limit = self._host.config.max_outbound_bytes
            self.fail_outbound_overflow(buffered, limit)
            log.debug("pong to %s not sent: outbound overflow", self.peer_id)
            return
        now = self._clock()
        protocol.write_started(now)
        try:
            self._ws.send_nowait(frame)
        except ConnectionClosed as exc:
            log.debug("pong to %s not sent: %s", self.peer_id, exc)
        finally:
            protocol.write_finished(now)

    async def send_ping(self, *, keepalive: bool = True) -> None:
        """Send a ``ping``: the keepalive one (the transport's ticker), or with
        ``keepalive=False`` a probe that leaves the keepalive phase alone."""
        await self.send(self.protocol.ping(self._clock(), self._wall(), keepalive=keepalive))

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
        """A raw frame (only routed when ``ueps/1`` was negotiated) goes to the UEPS side."""
        try:
            result = self._host._ueps_frame(self, frame)
        except Exception:
            self.handler_errors += 1
            log.exception("UEPS packet handler failed (peer %s)", self.peer_id)
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
            task = _start_task(self._worker(coro, size))
            if not task.done():  # it suspended (always, without eager start)
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
        if self._delivery_paused and self._inflight <= self._host.config.max_inflight_bytes:
            self._delivery_paused = False
            if not self._closed:
                self._ws.resume_delivery()

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
        return self._ws.write_buffer_size()

    async def _write(self, frame: bytes) -> None:
        # The write deadline is enforced by the transport's ticker (write_stalled), not a
        # timer per send: a send that does not block costs two attribute updates.
        protocol = self.protocol
        buffered = self._buffered()
        if buffered and protocol.would_overflow(buffered, len(frame)):
            # a peer that does not read: queueing more would only grow this process
            limit = self._host.config.max_outbound_bytes
            self.fail_outbound_overflow(buffered, limit)
            raise OutboundOverflowError(self.peer_id, limit)
        protocol.write_started(self._clock())
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
            protocol.write_finished(self._clock())

    def tick(self, now: float) -> Events:
        """The protocol's timer verdicts (:meth:`PeerProtocol.tick`) given this socket's
        write buffer; the transport's ticker acts on them."""
        return self.protocol.tick(now, self._buffered())

    def write_stalled(self, now: float) -> bool:
        """True if bytes have waited ``send_timeout`` seconds without the socket taking any.

        Counts the transport's write buffer, not only our sends: websockets writes pongs
        (and close frames) itself. Progress is one of our writes finishing or the buffer
        shrinking since the previous look (the ticker calls this every fraction of
        ``send_timeout``).
        """
        return self.protocol.write_stalled(self._buffered(), now)

    def drop(self, reason: str) -> None:
        """End the connection at once (no close frame, no ``disconnect``): nothing it has
        sent and nothing still in flight is dispatched after this call."""
        self._mark_closed(reason)
        self.abort()

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
            self._host._connection_closed(self)


async def _await(awaitable: Awaitable[None]) -> None:
    await awaitable


if sys.version_info >= (3, 12):

    def _start_task(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` in a task started eagerly: its first step runs now, inside the
        caller, as that task (``current_task()``, a copied context, exceptions kept in
        the task: asyncio's own eager start). A handler that finishes without waiting
        (the common case: decide, write the reply) costs no loop iteration and is never
        scheduled; one that waits goes on from there as an ordinary task."""
        return asyncio.Task(coro, loop=asyncio.get_running_loop(), eager_start=True)

else:

    def _start_task(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` in a task (first step in the next loop iteration). No eager start
        before 3.12: stepping the coroutine by hand would run it as whatever task is
        current (or none, in the read callback), and whatever it captured before its
        first wait (``asyncio.timeout``, ``TaskGroup``) would later cancel that task
        instead of the handler."""
        return asyncio.get_running_loop().create_task(coro)
