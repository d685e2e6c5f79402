"""One WebSocket over one asyncio transport: websockets' sans-I/O protocol, driven by us.

:class:`WebSocket` is an :class:`asyncio.BufferedProtocol`: the event loop reads into one
reusable buffer (``read_buffer_size``; one per thread, shared by every connection of its
event loop: the protocol's reader copies what it keeps before the loop reads again, so an
idle connection holds no read buffer), the bytes go to ``protocol.receive_data``, the
events come out of ``events_received`` and whatever the protocol wants written (our
frames, its pongs and close frames) from ``data_to_send``.
Nothing else runs per message: no task, no lock, no timer.

Fast data path (when the ``p2p.ueps`` extension is built; ``_codec`` is ``None`` otherwise
and everything goes through websockets exactly as described above): once the connection is
OPEN and websockets' parser sits at a frame boundary, each read is scanned by the
extension's ``ws_scan``. Every *simple* frame (one whole BINARY message: FIN=1, RSV=0,
masked iff it comes from a client, at most the protocol's current frame limit) goes
straight to the queue; every other complete frame (ping, pong, close, TEXT, fragments,
bad RSV bits, a BINARY while a fragmented message is open) is handed to
``protocol.receive_data`` alone and whole, so websockets' parser stays at a frame boundary
and does what it always did (pongs, the close handshake, 1002/1007 failures, reassembly).
A frame websockets rejects from its header alone (unknown opcode, wrong mask bit, declared
length above the limit: 1002/1009) is handed over together with everything after it, and
the fast path ends for good; so it does once the state leaves OPEN (a close sent or
received, a failure), with any carried bytes handed over first, and on EOF. The tail of
an incomplete frame is carried in our own buffer until it is complete (what websockets'
reader would have held). :meth:`WebSocket.send` builds a frame with ``ws_frame`` and writes it
itself while OPEN (a client masks each frame with 4 fresh bytes of
:func:`~p2p.transport._random.random_bytes`, the pooled ``os.urandom``). websockets' debug
logging of frames (``protocol.debug``) and any negotiated extension keep the slow path.

Writes of one loop turn go out together (:class:`_Coalescer`, on the fast path): the first frame a
connection writes in a turn goes to the socket at once, as before (a lone message, a
reply, a round trip: no added latency); the frames that follow it in the same turn are
joined and written when the turn ends, or as soon as ``coalesce_limit`` bytes wait.
Frames written while the frames of one read are delivered (replies to what it held, when
it held more than one) are joined and written when they all have been. A
burst of small messages then costs one ``send`` syscall per ~16 KiB instead of one per
frame (on loopback that syscall was a quarter of a sender's time). Whatever writes
bypass it (the protocol's pongs and close frames, :meth:`WebSocket.abort`) flushes what
waits first, so bytes leave in the order they were written; the waiting bytes count in
:meth:`WebSocket.write_buffer_size`.

Bounds (what one peer can make this process hold):

- inbound: at most ``max_queue`` messages wait for :meth:`WebSocket.recv`; past it the
  socket stops being read (``pause_reading``) until the queue falls to a quarter, so TCP
  pushes back. One read can add at most ``read_buffer_size`` bytes of frames on top.
  On the fast path the same test runs after the simple frames of each read are queued.
  Once a sink is registered (:meth:`WebSocket.deliver_to`) each message goes to it from
  the read callback instead, and nothing waits here; while the sink has paused delivery
  (:meth:`WebSocket.pause_delivery`) the socket is not read and the rest of the current
  read waits in the same queue, under the same bound, in order.
- partial frames: one incomplete frame, at most the frame limit (``max_size``) plus a
  14-byte header, is held between reads (by websockets' reader, or by our carry buffer on
  the fast path, which may briefly hold one more read on top while it is completed); a
  frame declaring more is refused from its header (1009), unread.
- outbound: at most ``coalesce_limit`` bytes wait to be joined (above).
  :meth:`WebSocket.send` waits while the write buffer is above ``write_limit``
  (the transport's high-water mark, low-water a quarter). Bytes the protocol writes by
  itself (pongs to pings) have no such wait: after each read, a write buffer above
  ``outbound_limit`` aborts the connection and sets :attr:`WebSocket.outbound_overflowed`
  (both paths: the fast send path writes through the same transport and the same wait).
- time: an opening handshake that is not done in ``open_timeout``, or a closing one not done
  in ``close_timeout`` (from the moment the protocol expects the TCP close), aborts.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from types import ModuleType
from typing import Any, cast

from p2p.transport._native import native, speedups
from p2p.transport._random import random_bytes
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.frames import Frame, Opcode
from websockets.protocol import CLIENT, CLOSED, OPEN, Protocol, State
from websockets.streams import StreamReader

__all__ = ["DEFAULT_COALESCE_LIMIT", "DEFAULT_READ_BUFFER", "WebSocket", "peer_address"]

log = logging.getLogger(__name__)

DEFAULT_READ_BUFFER = 64 * 1024
"""Bytes of the one read buffer each connection owns (the loop reads at most this much)."""

DEFAULT_COALESCE_LIMIT = 16 * 1024
"""Bytes of frames written after the first in one loop turn that may wait to be joined."""


_local = threading.local()


def _load_codec() -> ModuleType | None:
    """The ``p2p.ueps`` extension when it is built and knows the WebSocket frame codec."""
    if native("ws_scan") is None:  # no extension, or a build older than the codec
        return None
    return speedups()


_codec: ModuleType | None = _load_codec()
"""The frame codec of the fast data path, or ``None``: websockets' path only. A connection
takes it when it is made (tests set this to ``None`` to force the websockets path)."""

_AT_EOF = StreamReader.at_eof.__code__
"""What websockets' parser waits in between frames (``reader.at_eof()``)."""

# receive fast path: waiting to start, on, off for good
_RX_WAIT, _RX_ON, _RX_OFF = 0, 1, 2
_SCAN_MORE = 1
_SCAN_OTHER = 2
_SCAN_REJECT = 3


class _FastPath:
    """A connection's fast-path state (one slotted object: a single instance attribute)."""

    __slots__ = ("carry", "codec", "masked", "need", "out", "rx")

    def __init__(self, codec: ModuleType) -> None:
        self.codec: Any = codec
        #: joins the frames of one turn after the first (``None``: every frame at once)
        self.out: _Coalescer | None = None
        self.rx = _RX_WAIT
        #: the incomplete frame held between reads (it starts at a frame boundary)
        self.carry: bytearray | None = None
        #: bytes ``carry`` must reach before a scan can complete its frame
        self.need = 0
        #: frames we receive must be masked (we are the server)
        self.masked = False


class _Turn:
    """The end of the current loop turn, for every coalescer of one event loop: one
    callback per turn, however many connections wrote in it."""

    __slots__ = ("__weakref__", "armed", "context", "loop", "scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.armed: list[_Coalescer] = []
        self.scheduled = False
        #: what :meth:`end` runs in (it reads no context variable: no copy per turn;
        #: one per loop, as a context cannot be entered by two threads at once)
        self.context = contextvars.Context()

    def end(self) -> None:
        self.scheduled = False
        armed, self.armed = self.armed, []
        for out in armed:
            try:
                out.end_turn()
            except Exception as exc:  # one connection's socket must not stall the rest
                peer = out.transport.get_extra_info("peername")
                log.debug("%r: write failed: %r", peer, exc)
                out.discard()
                out.transport.abort()


def _turn(loop: asyncio.AbstractEventLoop) -> _Turn:
    """``loop``'s turn (one running loop per thread: kept per thread). The thread keeps
    only a weak reference: the coalescers of the loop's connections (and a scheduled
    ``end``) hold the turn, so a finished loop is freed with its last connection."""
    ref: weakref.ref[_Turn] | None = getattr(_local, "turn", None)
    turn = ref() if ref is not None else None
    if turn is None or turn.loop is not loop:
        turn = _Turn(loop)
        _local.turn = weakref.ref(turn)
    return turn


class _Coalescer:
    """Joins the frames one connection writes in one loop turn after the first.

    ``armed`` means a frame went out this turn (or a read is being handled) and
    :meth:`end_turn` will run: later frames wait in ``pending`` (at most ``limit`` bytes)
    and leave in one write. It holds the transport, not the WebSocket (no reference
    cycle: a closed connection is freed without waiting for the garbage collector).
    """

    __slots__ = ("armed", "limit", "pending", "size", "transport", "turn")

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int) -> None:
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # on connect
        self.limit = limit
        self.turn = _turn(loop)
        self.armed = False
        self.pending: list[bytes] = []
        self.size = 0

    def write(self, frame: bytes) -> None:
        if self.armed:
            self.pending.append(frame)
            self.size += len(frame)
            if self.size >= self.limit:
                self.flush()
            return
        self.transport.write(frame)
        self.armed = True
        turn = self.turn
        turn.armed.append(self)
        if not turn.scheduled:
            turn.scheduled = True
            turn.loop.call_soon(turn.end, context=turn.context)

    def end_turn(self) -> None:
        """The turn (or the delivery of one read) is over: what waits leaves now."""
        self.armed = False
        if self.pending:
            self.flush()

    def flush(self) -> None:
        """Hand what waits to the transport (one write)."""
        pending = self.pending
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self.size = 0
        self.transport.write(data)

    def discard(self) -> None:
        self.pending.clear()
        self.size = 0


def _known_protocol(protocol: Protocol) -> bool:
    """The websockets Protocol has the state the fast path reads (websockets >= 15 has)."""
    return all(
        hasattr(protocol, name)
        for name in ("current_size", "max_message_size", "max_fragment_size", "parser")
    ) and isinstance(protocol.reader, StreamReader)


def _at_frame_boundary(protocol: Protocol) -> bool:
    """websockets' parser has consumed whole frames only (nothing held, none begun)."""
    if protocol.reader.buffer:
        return False
    waiting_in = protocol.parser  # follow ``yield from`` down to the innermost generator
    for _ in range(8):
        inner = getattr(waiting_in, "gi_yieldfrom", None)
        if inner is None:
            break
        waiting_in = inner
    return getattr(waiting_in, "gi_code", None) is _AT_EOF


def _read_buffer(size: int) -> memoryview:
    """This thread's read buffer of ``size`` bytes (made once)."""
    buffers: dict[int, memoryview] | None = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    view = buffers.get(size)
    if view is None:
        view = buffers[size] = memoryview(bytearray(size))
    return view


class WebSocket(asyncio.BufferedProtocol):
    """The connection object the transport talks to (either side; see ``server``/``client``).

    ``recv``/``send``/``close``/``drain``/``wait_closed``/``transport``/``remote_address``
    keep the shape of websockets' asyncio connection, so the code above it did not change;
    a closed connection raises websockets' :class:`~websockets.exceptions.ConnectionClosed`
    (``exc.sent.code == 1009`` when the peer's message was too big).
    """

    def __init__(
        self,
        protocol: Protocol,
        *,
        max_queue: int = 16,
        write_limit: int = 32 * 1024,
        open_timeout: float | None = 10.0,
        close_timeout: float = 10.0,
        outbound_limit: int = 64 * 1024,
        read_buffer_size: int = DEFAULT_READ_BUFFER,
        coalesce_limit: int = DEFAULT_COALESCE_LIMIT,
    ) -> None:
        self.protocol = protocol
        self.max_queue = max_queue
        self.write_limit = write_limit
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        #: write-buffer cap checked after each read (pongs the protocol queued itself)
        self.outbound_limit = outbound_limit
        #: set when that cap was exceeded and the connection aborted
        self.outbound_overflowed = False
        self.transport: asyncio.Transport = None  # type: ignore[assignment]  # set on connect
        self.remote_address: Any = None
        self._view = _read_buffer(read_buffer_size)
        self._queue: deque[bytes | str] = deque()
        self._reading_paused = False
        self._recv_waiter: asyncio.Future[None] | None = None
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self._writing_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._close_deadline_set = False
        self._loop = asyncio.get_running_loop()
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._connection_exc: BaseException | None = None
        #: where messages go once registered (``deliver_to``), instead of the queue
        self._sink: Callable[[bytes | str], None] | None = None
        self._sink_paused = False
        self._delivering = False
        # one attribute (instance dicts past ~30 keys stop sharing keys: +1.3 KiB each)
        self._fast = _FastPath(_codec) if _codec is not None else None
        if self._fast is not None and coalesce_limit > 0:
            self._fast.out = _Coalescer(self._loop, coalesce_limit)

    # --- asyncio.BufferedProtocol -----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's are not asyncio.Transport subclasses)
        self.transport = stream = cast(asyncio.Transport, transport)
        self.remote_address = stream.get_extra_info("peername")
        stream.set_write_buffer_limits(high=self.write_limit)
        fast = self._fast
        if fast is not None and fast.out is not None:
            fast.out.transport = stream
        if self.open_timeout is not None:
            self._timer = self._loop.call_later(self.open_timeout, self._expire, "opening")
        if fast is not None and fast.rx == _RX_WAIT:
            self._rx_start(fast)  # a protocol made OPEN (no upgrade on this connection)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        protocol = self.protocol
        view = self._view[:nbytes]
        fast = self._fast
        if fast is not None and fast.rx == _RX_ON:
            if protocol.state is OPEN:
                self._receive_fast(fast, view)
                self._check_outbound()
                return
            self._rx_stop(fast)  # closing: websockets takes the carried bytes, then the rest
        # the protocol's reader copies what it keeps: the buffer is free again at once
        # (get_buffer and buffer_updated run back to back in one loop callback)
        self._feed(view)
        if fast is not None and fast.rx == _RX_WAIT:
            self._rx_start(fast)
        self._check_outbound()

    def _feed(self, data: bytes | bytearray | memoryview) -> None:
        """websockets' path: the bytes to its parser, its events to us, its writes out."""
        protocol = self.protocol
        protocol.receive_data(data)  # type: ignore[arg-type]
        events = protocol.events_received()
        self._send_data()
        if not self._close_deadline_set and protocol.close_expected():
            self._start_close_timer()
        if events:
            self._process_events(events)

    def _check_outbound(self) -> None:
        if not self.outbound_overflowed:
            buffered = self.write_buffer_size()
            if buffered > self.outbound_limit:
                self.outbound_overflowed = True
                log.warning(
                    "%s: %d bytes waiting to be written (limit %d): closing",
                    peer_address(self),
                    buffered,
                    self.outbound_limit,
                )
                self.transport.abort()

    # --- fast data path ---------------------------------------------------------------
    def _rx_start(self, fast: _FastPath) -> None:
        """Start the fast path once websockets is OPEN and between frames (it may have
        been handed the first frames together with the upgrade)."""
        protocol = self.protocol
        state = protocol.state
        if state is not OPEN:
            if state > OPEN:
                fast.rx = _RX_OFF
            return
        if protocol.extensions or protocol.debug or not _known_protocol(protocol):
            fast.rx = _RX_OFF
            return
        if protocol.current_size is None and _at_frame_boundary(protocol):
            fast.rx = _RX_ON
            fast.masked = protocol.side is not CLIENT

    def _rx_stop(self, fast: _FastPath) -> None:
        """End the fast path for good: websockets gets the carried bytes (an incomplete
        frame: no event comes of it) and, from now on, every read."""
        fast.rx = _RX_OFF
        carry, fast.carry = fast.carry, None
        if carry and not self.protocol.reader.eof:
            self._feed(carry)

    def _receive_fast(self, fast: _FastPath, view: memoryview) -> None:
        carry = fast.carry
        data: bytearray | memoryview
        if carry is not None:
            carry += view
            if len(carry) < fast.need:
                return
            data = carry
        else:
            data = view
        protocol = self.protocol
        queue = self._queue
        scan = fast.codec.ws_scan
        masked = fast.masked
        end = len(data)
        pos = 0
        why = size = 0
        while True:
            current = protocol.current_size
            limit = protocol.max_message_size
            if current is not None and limit is not None:
                limit -= current
            fragment = protocol.max_fragment_size
            if fragment is not None:
                limit = fragment if limit is None else min(limit, fragment)
            if limit is None:  # no frame limit: nothing bounds a carry, websockets' path
                why = _SCAN_REJECT
                break
            payloads, pos, why, size = scan(data, pos, masked, limit, current is None)
            if payloads is not None:
                sink = self._sink
                if sink is not None and not queue:
                    out = fast.out
                    if len(payloads) > 1 and out is not None and not out.armed:
                        # replies to these leave together once they are delivered (a
                        # lone frame's reply goes at once: it is a round trip's path)
                        out.armed = True
                        try:
                            self._deliver(sink, payloads)
                        finally:
                            out.end_turn()
                    else:
                        self._deliver(sink, payloads)
                else:
                    queue.extend(payloads)
                    if len(queue) > self.max_queue and not self._reading_paused:
                        self._reading_paused = True
                        self.transport.pause_reading()
                    self._wake_recv()
            if why != _SCAN_OTHER:
                break
            # one whole frame that is not ours: websockets decides, at a frame boundary
            self._feed(data[pos : pos + size])
            pos += size
            if protocol.state is not OPEN:
                why = _SCAN_REJECT  # closing or failed: websockets has the rest
                break
        if why == _SCAN_REJECT:
            fast.rx = _RX_OFF
            fast.carry = None
            if pos < end:
                self._feed(data[pos:])
        elif why == _SCAN_MORE:
            if data is carry:
                del carry[:pos]
            else:
                fast.carry = bytearray(data[pos:])
            fast.need = size
        else:
            fast.carry = None

    def _deliver(self, sink: Callable[[bytes | str], None], payloads: list[bytes]) -> None:
        """One read's simple frames to the sink, in order; once it pauses the rest wait."""
        for i, payload in enumerate(payloads):
            if self._sink_paused:  # the sink stopped: the rest waits in order
                self._queue.extend(payloads[i:])
                break
            sink(payload)

    def eof_received(self) -> bool | None:
        fast = self._fast
        if fast is not None and fast.rx == _RX_ON:
            self._rx_stop(fast)
        self.protocol.receive_eof()
        self._send_data()
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        fast = self._fast
        if fast is not None and fast.out is not None:
            fast.out.discard()  # nowhere to go
        if fast is not None and fast.rx == _RX_ON:
            self._rx_stop(fast)
        self.protocol.receive_eof()  # idempotent; the protocol is CLOSED after it
        if self._connection_exc is None:
            self._connection_exc = exc
        self._cancel_timer()
        if not self._lost.done():
            self._lost.set_result(None)
        self._wake_recv()
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._on_lost()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    # --- what subclasses hook ---------------------------------------------------------
    def _process_handshake_event(self, event: Any) -> None:
        raise NotImplementedError

    def _on_lost(self) -> None:
        """Called once the TCP connection is gone (subclasses wake their handshake)."""

    # --- events -----------------------------------------------------------------------
    def _process_events(self, events: list[Any]) -> None:
        queue = self._queue
        for event in events:
            if not isinstance(event, Frame):
                self._process_handshake_event(event)
                continue
            opcode = event.opcode
            data = cast(bytes, event.data)  # the parser builds bytes
            if opcode is Opcode.BINARY or opcode is Opcode.TEXT:
                if not event.fin:
                    self._fragments = [data]
                    self._fragment_text = opcode is Opcode.TEXT
                    continue
                message: bytes | str | None = data if opcode is Opcode.BINARY else self._text(data)
            elif opcode is Opcode.CONT:
                self._fragments.append(data)
                if not event.fin:
                    continue
                whole = b"".join(self._fragments)
                self._fragments = []
                message = self._text(whole) if self._fragment_text else whole
            else:
                continue  # ping (the protocol queued the pong), pong, close
            if message is None:
                break  # invalid UTF-8: the connection is failing, the rest is discarded
            sink = self._sink
            if sink is not None and not self._sink_paused and not queue:
                sink(message)
                continue
            queue.append(message)
            if len(queue) > self.max_queue and not self._reading_paused:
                self._reading_paused = True
                self.transport.pause_reading()
        self._wake_recv()

    def _text(self, data: bytes) -> str | None:
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            self.protocol.fail(1007, f"{exc.reason} at position {exc.start}")
            self._send_data()
            if not self._close_deadline_set:
                self._start_close_timer()
            return None

    def _wake_recv(self) -> None:
        waiter = self._recv_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- application side -------------------------------------------------------------
    @property
    def state(self) -> State:
        return self.protocol.state

    async def recv(self) -> bytes | str:
        """The next message: ``bytes`` (BINARY) or ``str`` (TEXT), in order.

        Raises :class:`~websockets.exceptions.ConnectionClosed` once the queue is empty
        and the TCP connection is gone. One reader at a time.
        """
        queue = self._queue
        while not queue:
            if self._lost.done():
                raise self._close_exc()
            if self._recv_waiter is not None:
                raise RuntimeError("another coroutine is already waiting in recv()")
            waiter = self._loop.create_future()
            self._recv_waiter = waiter
            try:
                await waiter
            finally:
                self._recv_waiter = None
        message = queue.popleft()
        if self._reading_paused and len(queue) <= self.max_queue // 4:
            self._reading_paused = False
            if not self._lost.done():
                self.transport.resume_reading()
        return message

    def deliver_to(self, sink: Callable[[bytes | str], None]) -> None:
        """From now on hand each message to ``sink(message)`` from the read callback, in
        order, instead of queueing it for :meth:`recv` (no task is woken per message).

        The messages already queued go first, now. ``sink`` must not raise (an exception
        would end the connection from inside the event loop's read callback). Whoever
        registers it stops calling :meth:`recv`: it would wait until the connection ends.
        """
        if self._recv_waiter is not None:
            raise RuntimeError("a coroutine is waiting in recv()")
        self._sink = sink
        self._drain_to_sink()

    def pause_delivery(self) -> None:
        """The sink takes no more messages for now: stop reading the socket (TCP pushes
        back); what the current read still holds waits in the queue, in order."""
        self._sink_paused = True
        if not self._reading_paused:
            self._reading_paused = True
            if not self._lost.done():
                self.transport.pause_reading()

    def resume_delivery(self) -> None:
        """The sink takes messages again: the queued ones first, then reads resume."""
        self._sink_paused = False
        if not self._delivering:
            self._drain_to_sink()

    def _drain_to_sink(self) -> None:
        queue = self._queue
        self._delivering = True
        try:
            while queue and not self._sink_paused:
                sink = self._sink
                if sink is None:  # pragma: no cover - a sink is never unregistered
                    break
                sink(queue.popleft())
        finally:
            self._delivering = False
        if self._reading_paused and not self._sink_paused and len(queue) <= self.max_queue // 4:
            self._reading_paused = False
            if not self._lost.done():
                self.transport.resume_reading()

    def close_exc(self) -> ConnectionClosed:
        """Why the connection ended (what :meth:`recv` raises once it is gone)."""
        return self._close_exc()

    def send_nowait(self, message: bytes | bytearray | memoryview) -> None:
        """Write one BINARY message now, without waiting for the write buffer to drain
        (what the caller writes this way is bounded by ``outbound_limit``, checked after
        each read). Raises ConnectionClosed if not open."""
        protocol = self.protocol
        if protocol.state is not OPEN:
            if not self._close_deadline_set and not self._lost.done():
                self._start_close_timer()
            raise self._close_exc()
        self._write_message(message)

    async def send(self, message: bytes | bytearray | memoryview | str) -> None:
        """Write one message (``str`` as TEXT, bytes as BINARY); waits while the write
        buffer is above ``write_limit``. Raises ConnectionClosed if not open."""
        protocol = self.protocol
        if protocol.state is not OPEN:
            await self._wait_lost_then_raise()
        self._write_message(message)
        if self._writing_paused:
            await self.drain()
            if self._lost.done():
                raise self._close_exc()

    def _write_message(self, message: bytes | bytearray | memoryview | str) -> None:
        protocol = self.protocol
        fast = self._fast
        if (
            fast is not None
            and not protocol.extensions
            and not protocol.debug
            and not protocol.expect_continuation_frame
        ):
            # our own frame (what send_binary/send_text would write, with its own mask)
            mask = random_bytes(4) if protocol.side is CLIENT else None
            if isinstance(message, str):
                frame = fast.codec.ws_frame(1, message.encode(), mask)
            else:
                frame = fast.codec.ws_frame(2, message, mask)
            out = fast.out
            if out is None:
                self.transport.write(frame)
            else:
                out.write(frame)
        elif isinstance(message, str):
            protocol.send_text(message.encode())
            self._send_data()
        else:
            protocol.send_binary(message)
            self._send_data()

    async def drain(self) -> None:
        """Wait until the write buffer is below its low-water mark (or the socket is gone)."""
        if not self._writing_paused or self._lost.done():
            return
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        try:
            await waiter
        finally:
            self._drain_waiters.remove(waiter)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """The closing handshake: send a close frame, wait up to ``close_timeout`` for the
        TCP connection to end, then abort. Idempotent."""
        protocol = self.protocol
        if protocol.state is OPEN:
            protocol.send_close(code, reason)
            self._send_data()
            if not self._close_deadline_set:
                self._start_close_timer()
        elif protocol.state is not CLOSED and not self._close_deadline_set:
            # still in the opening handshake, or closing without a deadline yet
            self._start_close_timer()
        await asyncio.shield(self._lost)

    async def wait_closed(self) -> None:
        """Wait until the TCP connection is gone."""
        await asyncio.shield(self._lost)

    def abort(self) -> None:
        """Drop the TCP connection at once (no close frame). Frames waiting to be joined
        are offered to the socket first, as they would have been had they not waited."""
        if self.transport is not None:
            out = self._coalescer()
            if out is not None and out.pending and not self.transport.is_closing():
                out.flush()
            self.transport.abort()

    def write_buffer_size(self) -> int:
        """Bytes written and not yet taken by the socket (the transport's buffer and the
        frames waiting to be joined)."""
        transport = self.transport
        if transport is None:
            return 0
        fast = self._fast
        if fast is not None and fast.out is not None:
            return transport.get_write_buffer_size() + fast.out.size
        return transport.get_write_buffer_size()

    def _coalescer(self) -> _Coalescer | None:
        fast = self._fast
        return fast.out if fast is not None else None

    # --- internals --------------------------------------------------------------------
    def _send_data(self) -> None:
        transport = self.transport
        out = self._coalescer()
        if out is not None and out.pending:
            out.flush()  # the protocol's bytes go after ours
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                with contextlib.suppress(OSError):  # the socket died meanwhile
                    transport.write_eof()
            else:
                transport.close()

    async def _wait_lost_then_raise(self) -> None:
        if not self._close_deadline_set and not self._lost.done():
            self._start_close_timer()
        await asyncio.shield(self._lost)
        raise self._close_exc()

    def _close_exc(self) -> ConnectionClosed:
        if self.protocol.state is not CLOSED:  # not ended yet (send_nowait), or lost early
            return ConnectionClosedError(None, None)
        exc = self.protocol.close_exc
        if self._connection_exc is not None:
            exc.__cause__ = self._connection_exc
        return exc

    def _start_close_timer(self) -> None:
        """From now on the TCP connection must end within ``close_timeout`` (replaces the
        opening deadline: a refused upgrade or a failed one ends sooner)."""
        self._close_deadline_set = True
        self._cancel_timer()
        self._timer = self._loop.call_later(self.close_timeout, self._expire, "closing")

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _handshake_finished(self) -> None:
        """The opening handshake ended: its deadline no longer applies."""
        if not self._close_deadline_set:
            self._cancel_timer()
            if self.protocol.close_expected():
                self._start_close_timer()

    def _expire(self, what: str) -> None:
        self._timer = None
        if not self._lost.done():
            log.debug("%s: %s handshake timed out: aborting", peer_address(self), what)
            if self._connection_exc is None:
                self._connection_exc = TimeoutError(f"timed out during {what} handshake")
            self.transport.abort()


def peer_address(ws: Any) -> str:
    """``host:port`` of the remote end (``[v6]:port`` for IPv6)."""
    remote = ws.remote_address
    if not remote:
        return "unknown"
    host, port = remote[0], remote[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
