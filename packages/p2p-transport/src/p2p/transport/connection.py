"""One authenticated WebSocket to a peer: the read loop, sends with deadlines, closing.

The thin I/O shell around a :class:`~p2p.transport.session.Session`. The read loop only
reads, judges frames and answers pings; handlers that are coroutines run in a small
per-connection pool (bounded running count + bounded queue) so a slow handler never
stalls this peer's reads or pongs, and a flood cannot create unbounded tasks.
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
from p2p.transport import envelope
from p2p.transport.errors import TransportError
from p2p.transport.limits import DropReason
from p2p.transport.session import Delivery, RawFrame, Session, TooManyUndecryptableError
from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

if TYPE_CHECKING:
    from p2p.identity import NodeIdentity
    from p2p.transport.config import TransportConfig
    from p2p.transport.messages import Message

__all__ = [
    "ConnectionClosedError",
    "MessageHandler",
    "PeerConnection",
    "RawFrameHandler",
    "SendTimeoutError",
    "with_timeout",
]

log = logging.getLogger(__name__)
#: repetitive lines: a few per kind and minute, then one summary (issue 13)
_flood = LimitedLogger(log)

MessageHandler = Callable[["PeerConnection", "Message"], "Awaitable[None] | None"]
"""``handler(conn, message)``; may be a plain function or ``async def``."""
RawFrameHandler = Callable[["PeerConnection", bytes], "Awaitable[None] | None"]
"""``handler(conn, frame)`` for binary frames that do not start with ``b"SMSG"``."""

CLOSE_CODE_POLICY = 1008
DISCONNECT_NORMAL = 1000
DISCONNECT_PROTOCOL_ERROR = 1002
DISCONNECT_SHUTDOWN = 1004


class ConnectionClosedError(TransportError):
    """The connection to ``peer_id`` is closed; nothing was sent."""

    def __init__(self, peer_id: str) -> None:
        super().__init__(f"connection to peer {peer_id} is closed")
        self.peer_id = peer_id


class SendTimeoutError(TransportError):
    """A write to ``peer_id`` did not finish within ``timeout`` seconds (connection dropped)."""

    def __init__(self, peer_id: str, timeout: float) -> None:
        super().__init__(f"send to peer {peer_id} timed out after {timeout:g} s")
        self.peer_id = peer_id
        self.timeout = timeout


if sys.version_info >= (3, 11):

    async def with_timeout(awaitable: Awaitable[Any], timeout: float) -> Any:
        """``await awaitable`` with a deadline (raises :class:`TimeoutError`)."""
        async with asyncio.timeout(timeout):
            return await awaitable

else:  # pragma: no cover - 3.10

    async def with_timeout(awaitable: Awaitable[Any], timeout: float) -> Any:
        """``await awaitable`` with a deadline (raises :class:`TimeoutError`)."""
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except asyncio.TimeoutError as exc:
            raise TimeoutError from exc


class _Host(Protocol):
    """What a connection needs from its transport (keeps the import one-way)."""

    config: TransportConfig

    def _handlers(self) -> tuple[MessageHandler, ...]: ...
    def _raw_handler(self) -> RawFrameHandler | None: ...
    def _connection_closed(self, conn: PeerConnection) -> None: ...
    def _connection_proven(self, conn: PeerConnection) -> None: ...
    def _own_id(self) -> str: ...


class PeerConnection:
    """A live, authenticated connection to one peer (inbound or outbound)."""

    def __init__(
        self,
        host: _Host,
        ws: Connection,
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
        self._pending: deque[Coroutine[Any, Any, Any]] = deque()
        self._workers: set[asyncio.Task[None]] = set()
        self.close_reason: str | None = None
        self.handler_errors = 0
        self._writes_pending = 0
        self._write_progress = self.connected_at
        #: An inbound connection for a peer that already has a live one waits here until it
        #: proves it holds the key (its first frame that decrypts): the handshake does not
        #: make the initiator prove anything, so a bare claim must not displace a session.
        self.on_probation = False

    # --- public surface -------------------------------------------------------------
    @property
    def identity(self) -> NodeIdentity:
        """The peer's identity as proven by the handshake."""
        return self.session.peer

    @property
    def peer_id(self) -> str:
        return self.session.peer.id

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
        try:
            while True:
                data = await ws.recv()
                try:
                    verdict = session.receive(data, clock(), wall())
                except TooManyUndecryptableError as exc:
                    log.warning("%s: disconnecting", exc)
                    await self.graceful_close(
                        "too many undecryptable frames", DISCONNECT_PROTOCOL_ERROR
                    )
                    return
                if verdict is None:
                    continue
                if isinstance(verdict, Delivery):
                    if self.on_probation:
                        self._host._connection_proven(self)
                    message = verdict.message
                    if message.type == envelope.PING and answer_pings:
                        await self._answer_ping(message)
                    self._dispatch(message)
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
                self._mark_closed("connection lost")
            if not self._done.is_set():
                self.abort()
                await self._stop_workers()
                self._done.set()

    async def _answer_ping(self, ping: Message) -> None:
        pong = envelope.pong(ping, self._host._own_id(), int(self._wall() * 1000))
        try:
            await self.send(pong)
        except TransportError as exc:
            log.debug("pong to %s not sent: %s", self.peer_id, exc)

    async def send_ping(self) -> None:
        """Send the keepalive ``ping`` (the transport's ticker calls this)."""
        self.last_ping_sent = self._clock()
        ping = envelope.ping(self._host._own_id(), self.peer_id, int(self._wall() * 1000))
        await self.send(ping)

    # --- handler pool ---------------------------------------------------------------
    def _dispatch(self, message: Message) -> None:
        for handler in self._host._handlers():
            try:
                result = handler(self, message)
            except Exception:
                self.handler_errors += 1
                log.exception("message handler failed for %s", safe_text(message.type))
                continue
            if result is not None:
                self._submit(result)

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
            self._submit(result)

    def _submit(self, awaitable: Awaitable[None]) -> None:
        coro = awaitable if asyncio.iscoroutine(awaitable) else _await(awaitable)
        config = self._host.config
        if self._running < config.handler_concurrency:
            self._running += 1
            task = asyncio.get_running_loop().create_task(self._worker(coro))
            self._workers.add(task)
            task.add_done_callback(self._workers.discard)
        elif len(self._pending) < config.handler_queue_size:
            self._pending.append(coro)
        else:
            coro.close()
            self.session.drops.add(DropReason.OVERLOAD)
            _flood.warning(
                "handler queue full", "handler queue full for %s: dropping a message", self.peer_id
            )

    async def _worker(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            while True:
                try:
                    await coro
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.handler_errors += 1
                    log.exception("async message handler failed (peer %s)", self.peer_id)
                if not self._pending:
                    return
                coro = self._pending.popleft()
        finally:
            self._running -= 1

    async def _stop_workers(self) -> None:
        while self._pending:
            self._pending.popleft().close()
        current = asyncio.current_task()
        workers = [t for t in self._workers if t is not current]
        for task in workers:
            task.cancel()
        if workers:
            await asyncio.gather(*workers, return_exceptions=True)

    # --- internals ------------------------------------------------------------------
    async def _write(self, frame: bytes) -> None:
        # The write deadline is enforced by the transport's ticker (write_stalled), not a
        # timer per send: a send that does not block costs two attribute updates.
        if self._writes_pending == 0:
            self._write_progress = self._clock()
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
            self._write_progress = self._clock()

    def write_stalled(self, now: float) -> bool:
        """True if a write has made no progress for ``send_timeout`` seconds."""
        return (
            self._writes_pending > 0 and now - self._write_progress > self._host.config.send_timeout
        )

    def fail_stalled_write(self) -> None:
        """Drop the connection whose writes are stuck (pending sends raise SendTimeoutError)."""
        log.warning("send to %s timed out: dropping the connection", self.peer_id)
        self._mark_closed("send timeout")
        self.abort()

    def _mark_closed(self, reason: str) -> None:
        if not self._closed:
            self._closed = True
            self.close_reason = reason
            self._host._connection_closed(self)


async def _await(awaitable: Awaitable[None]) -> None:
    await awaitable


def peer_address(ws: Connection) -> str:
    """``host:port`` of the remote end (``[v6]:port`` for IPv6)."""
    remote = ws.remote_address
    if not remote:
        return "unknown"
    host, port = remote[0], remote[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
