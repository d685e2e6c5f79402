"""The fast WebSocket data path of :class:`p2p.transport.aio.WebSocket` (the extension's
frame codec) against websockets' own parser.

Differential: one byte stream, delivered in arbitrary chunks through the fast path, must
give what websockets alone gives when each frame arrives on its own (today's path; with
whole frames per read its outcome does not depend on the chunking): the same messages in
the same order, the same frames written back (pongs, close), the same close codes and the
same failure. The connection under test owns a real asyncio transport over a real socket
pair; the test plays the event loop's reading side (``get_buffer``/``buffer_updated``,
exactly what the loop calls) so it chooses every read boundary, and reads what the
connection writes from the other end of the pair. End to end: real sockets on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from p2p.transport.aio import Server, ServerWebSocket, WebSocket, connect
from p2p.transport.aio import connection as aio_connection
from pytest_p2p.transport_fixtures import eventually, parked_server
from pytest_p2p.wsframes import rfc6455_frame
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame
from websockets.protocol import CLIENT, OPEN, SERVER, Protocol, Side
from websockets.streams import StreamReader

pytestmark = pytest.mark.skipif(
    aio_connection._codec is None, reason="the p2p.ueps extension is not built"
)

MAX_SIZE = 2048
CODEC = aio_connection._codec


# --- frames, built by hand (including the ones websockets refuses to build) -------------


def raw_frame(
    opcode: int,
    payload: bytes,
    *,
    masked: bool,
    fin: bool = True,
    rsv: int = 0,
    mask: bytes = b"\x5a\xa5\x0f\xf0",
) -> bytes:
    return rfc6455_frame(opcode, payload, mask if masked else None, fin=fin, rsv=rsv)


@dataclass(frozen=True)
class Spec:
    """One frame of a test stream; ``wrong_mask`` flips the mask bit the side expects."""

    opcode: int
    payload: bytes
    fin: bool = True
    rsv: int = 0
    wrong_mask: bool = False

    def encode(self, receiver: Side, mask: bytes) -> bytes:
        masked = (receiver is SERVER) != self.wrong_mask
        return raw_frame(
            self.opcode, self.payload, masked=masked, fin=self.fin, rsv=self.rsv, mask=mask
        )


def binary(payload: bytes) -> Spec:
    return Spec(2, payload)


def close(code: int = 1000, reason: bytes = b"") -> Spec:
    return Spec(8, struct.pack("!H", code) + reason)


# --- the harness -------------------------------------------------------------------------


@dataclass
class Outcome:
    messages: list[bytes | str]
    written: list[tuple[int, bytes]]  # frames the connection wrote (opcode, payload)
    eof_sent: bool
    state: str
    close_sent: int | None
    close_rcvd: int | None
    parser_exc: str | None
    final_code: int | None = field(default=None)


def _parse_written(data: bytes, side: Side) -> list[tuple[int, bytes]]:
    """The frames ``side`` wrote, parsed by websockets as the other end would."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    out: list[tuple[int, bytes]] = []
    while reader.buffer:
        parser = Frame.parse(reader.read_exact, mask=side is CLIENT, max_size=None)
        try:
            while True:
                next(parser)
        except StopIteration as done:
            frame = done.value
            out.append((int(frame.opcode), bytes(frame.data)))
    return out


def _drain(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


class _Harness(WebSocket):
    def _process_handshake_event(self, event: Any) -> None:  # pragma: no cover - no upgrade
        raise AssertionError(event)


async def run_stream(
    chunks: list[bytes],
    side: Side,
    *,
    fast: bool,
    max_size: int = MAX_SIZE,
    eof: bool = True,
) -> Outcome:
    """Deliver ``chunks`` as successive reads to a connection on ``side`` (OPEN)."""
    saved = aio_connection._codec
    aio_connection._codec = CODEC if fast else None
    try:
        ws = _Harness(Protocol(side, max_size=max_size), max_queue=1 << 20, close_timeout=5)
    finally:
        aio_connection._codec = saved
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await loop.connect_accepted_socket(lambda: ws, ours)
        ws.transport.pause_reading()  # the test is the reader
        assert (ws._fast.rx == aio_connection._RX_ON) if fast else ws._fast is None
        written = b""
        for chunk in chunks:
            for start in range(0, len(chunk), 65536):
                part = chunk[start : start + 65536]
                buf = ws.get_buffer(len(part))
                buf[: len(part)] = part
                ws.buffer_updated(len(part))
            written += _drain(theirs)
        if eof:
            ws.eof_received()
        written += _drain(theirs)
        messages = list(ws._queue)
        p = ws.protocol
        exc = p.parser_exc
        return Outcome(
            messages=messages,
            written=_parse_written(written, side),
            eof_sent=p.eof_sent,
            state=p.state.name,
            close_sent=p.close_sent.code if p.close_sent else None,
            close_rcvd=p.close_rcvd.code if p.close_rcvd else None,
            parser_exc=None if exc is None else f"{type(exc).__name__}: {exc}",
            final_code=p.close_code,
        )
    finally:
        ws.transport.abort()
        theirs.close()
        await asyncio.sleep(0)


def encode(specs: list[Spec], side: Side) -> list[bytes]:
    return [s.encode(side, os.urandom(4)) for s in specs]


def chunked(stream: bytes, cuts: list[int]) -> list[bytes]:
    edges = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    return [stream[a:b] for a, b in itertools.pairwise(edges)]


async def differential(
    specs: list[Spec], side: Side, cuts: list[int], *, max_size: int = MAX_SIZE
) -> Outcome:
    frames = encode(specs, side)
    stream = b"".join(frames)
    reference = await run_stream(frames, side, fast=False, max_size=max_size)
    got = await run_stream(chunked(stream, cuts), side, fast=True, max_size=max_size)
    assert got == reference, f"chunks at {cuts}"
    return reference


# --- streams ---------------------------------------------------------------------------

TEXTS = ["", "ascii", "naïve ☃ 😀"]

simple = st.binary(max_size=300).map(binary)
big = st.sampled_from([125, 126, 127, 1000, MAX_SIZE - 1, MAX_SIZE]).map(
    lambda n: binary(os.urandom(n))
)
control = st.one_of(
    st.binary(max_size=125).map(lambda p: Spec(9, p)),
    st.binary(max_size=125).map(lambda p: Spec(10, p)),
)
text = st.sampled_from(TEXTS).map(lambda t: Spec(1, t.encode()))
bad_text = st.sampled_from([b"\xff", b"ab\xc3", b"\xed\xa0\x80"]).map(lambda p: Spec(1, p))
closing = st.sampled_from([1000, 1001, 3000, 4999]).map(close)
odd = st.one_of(
    st.sampled_from([1, 2, 4]).map(lambda r: Spec(2, b"rsv", rsv=r)),
    st.just(Spec(3, b"")),  # unknown opcode
    st.just(Spec(2, b"mask", wrong_mask=True)),
    st.just(binary(b"x" * (MAX_SIZE + 1))),  # oversize
    st.just(Spec(9, b"p" * 126)),  # control frame too long
    st.just(Spec(9, b"p", fin=False)),  # fragmented control frame
    st.just(Spec(0, b"stray continuation")),
    st.just(Spec(8, b"\x03")),  # malformed close
)


@st.composite
def fragmented(draw: st.DrawFn) -> list[Spec]:
    opcode = draw(st.sampled_from([1, 2]))
    parts = draw(st.lists(st.binary(max_size=40), min_size=2, max_size=4))
    if opcode == 1:
        whole = draw(st.sampled_from([*TEXTS, "é" * 20])).encode()
        cut = sorted(draw(st.lists(st.integers(0, len(whole)), min_size=1, max_size=3)))
        parts = [whole[a:b] for a, b in zip([0, *cut], [*cut, len(whole)], strict=False)]
    specs = [Spec(opcode, parts[0], fin=False)]
    for i, part in enumerate(parts[1:], 1):
        if draw(st.booleans()):
            specs.append(draw(control))  # control frames may come between fragments
        specs.append(Spec(0, part, fin=i == len(parts) - 1))
    return specs


one = st.one_of(
    simple.map(lambda s: [s]),
    big.map(lambda s: [s]),
    control.map(lambda s: [s]),
    text.map(lambda s: [s]),
    fragmented(),
)
rare = st.one_of(bad_text, closing, odd).map(lambda s: [s])
streams = st.lists(st.one_of(one, one, one, rare), max_size=12).map(
    lambda groups: [s for g in groups for s in g]
)


# --- differential tests --------------------------------------------------------------


@pytest.fixture(params=[SERVER, CLIENT], ids=["server", "client"])
def side(request: pytest.FixtureRequest) -> Side:
    return Side(request.param)


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(specs=streams, cuts=st.lists(st.integers(0, 1 << 16), max_size=8))
def test_any_stream_in_any_chunks_matches_websockets(
    side: Side, specs: list[Spec], cuts: list[int]
) -> None:
    asyncio.run(differential(specs, side, cuts))


MIXED = [
    binary(b"first"),
    Spec(9, b"are you there"),
    binary(b""),
    Spec(1, "ünïcode".encode()),
    Spec(2, b"frag-", fin=False),
    Spec(10, b"unsolicited"),
    Spec(0, b"ment", fin=True),
    binary(os.urandom(200)),
    binary(os.urandom(MAX_SIZE)),
    binary(b"last"),
    close(1000, b"bye"),
    binary(b"after close: never delivered"),
]


async def test_every_split_point_of_a_mixed_stream(side: Side) -> None:
    frames = encode(MIXED, side)
    stream = b"".join(frames)
    reference = await run_stream(frames, side, fast=False)
    assert [m if isinstance(m, str) else m[:6] for m in reference.messages][:4] == [
        b"first",
        b"",
        "ünïcode",
        b"frag-m",
    ]
    assert (9, b"are you there") not in reference.written
    assert (10, b"are you there") in reference.written  # the ping was answered
    assert reference.close_rcvd == 1000 and reference.final_code == 1000
    for cut in range(len(stream) + 1):
        got = await run_stream([stream[:cut], stream[cut:]], side, fast=True)
        assert got == reference, f"split at {cut}"
    # and in one-byte reads
    got = await run_stream([stream[i : i + 1] for i in range(len(stream))], side, fast=True)
    assert got == reference


async def test_today_path_in_chunks_agrees_with_the_frame_by_frame_reference(
    side: Side,
) -> None:
    """The reference (one frame per read) is what websockets gives for any chunking."""
    frames = encode(MIXED, side)
    stream = b"".join(frames)
    reference = await run_stream(frames, side, fast=False)
    for cut in range(0, len(stream) + 1, 7):
        assert await run_stream([stream[:cut], stream[cut:]], side, fast=False) == reference


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (Spec(1, b"\xff\xfe"), 1007),
        (Spec(2, b"unmasked/masked", wrong_mask=True), 1002),
        (binary(b"z" * (MAX_SIZE + 1)), 1009),
        (Spec(2, b"rsv", rsv=4), 1002),
        (Spec(3, b""), 1002),
        (Spec(0, b"stray"), 1002),
    ],
)
async def test_failures_close_with_websockets_code(side: Side, bad: Spec, code: int) -> None:
    specs = [binary(b"before"), bad, binary(b"after"), Spec(9, b"late ping")]
    frames = encode(specs, side)
    stream = b"".join(frames)
    for cuts in ([], [3], [len(frames[0]) + 1], [len(frames[0]) + len(frames[1]) + 2]):
        out = await differential(specs, side, cuts)
        assert out.messages == [b"before"]
        assert out.close_sent == code
        assert (10, b"late ping") not in out.written
    # and the oversize frame is refused from its header: the payload never needs to arrive
    if bad.payload == b"z" * (MAX_SIZE + 1):
        got = await run_stream([stream[: len(frames[0]) + 4]], side, fast=True, eof=False)
        assert got.close_sent == 1009


async def test_close_from_our_side_hands_the_rest_to_websockets(side: Side) -> None:
    """After we sent a close websockets still delivers data frames until the peer's
    close; the fast path must step aside with its carried bytes intact."""
    saved = aio_connection._codec
    ws = _Harness(Protocol(side, max_size=MAX_SIZE), max_queue=100)
    assert aio_connection._codec is saved
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        await loop.connect_accepted_socket(lambda: ws, ours)
        ws.transport.pause_reading()
        assert ws._fast is not None and ws._fast.rx == aio_connection._RX_ON
        frames = encode([binary(b"a"), binary(b"b" * 300), close(1000), binary(b"c")], side)
        stream = b"".join(frames)
        cut = len(frames[0]) + 10  # inside the second frame

        def read(data: bytes) -> None:
            buf = ws.get_buffer(len(data))
            buf[: len(data)] = data
            ws.buffer_updated(len(data))

        read(stream[:cut])
        assert ws._fast.carry is not None and len(ws._fast.carry) == 10
        closing = asyncio.ensure_future(ws.close())
        await asyncio.sleep(0)
        assert ws.protocol.state.name == "CLOSING"
        read(stream[cut:])
        assert ws._fast.rx == aio_connection._RX_OFF
        assert list(ws._queue) == [b"a", b"b" * 300]
        assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1000
        ws.transport.abort()
        await asyncio.wait_for(closing, 5)
    finally:
        ws.transport.abort()
        theirs.close()


async def test_eof_inside_a_carried_frame_is_1006_as_before(side: Side) -> None:
    frames = encode([binary(b"whole"), binary(b"y" * 500)], side)
    stream = b"".join(frames)
    for cut in (len(frames[0]) + 1, len(frames[0]) + 3, len(stream) - 1):
        ref = await run_stream([stream[:cut]], side, fast=False)
        got = await run_stream([stream[:cut]], side, fast=True)
        assert got == ref
        assert got.messages == [b"whole"] and got.final_code == 1006


async def test_a_lifted_limit_applies_to_the_next_read(side: Side) -> None:
    frames = encode([binary(b"q" * (MAX_SIZE + 10))], side)
    got = await run_stream(frames, side, fast=True, max_size=MAX_SIZE + 10)
    assert got.messages == [b"q" * (MAX_SIZE + 10)]


# --- real sockets on 127.0.0.1 -----------------------------------------------------------


def on_fast_path(ws: WebSocket) -> bool:
    return ws._fast is not None and ws._fast.rx == aio_connection._RX_ON


Accepted = asyncio.Queue[ServerWebSocket]


@pytest.fixture
async def server() -> AsyncIterator[tuple[Server, Accepted, str]]:
    async with parked_server(
        open_timeout=5.0, close_timeout=1.0, max_size=1 << 20, max_queue=4
    ) as parked:
        yield parked


async def test_end_to_end_both_directions_on_the_fast_path(server: Any) -> None:
    _, accepted, uri = server
    client = await connect(uri, close_timeout=1.0, max_size=1 << 20)
    ws = await asyncio.wait_for(accepted.get(), 5)
    sizes = [0, 1, 125, 126, 4000, 65535, 65536, 200_000, 1 << 20]
    payloads = [os.urandom(n) for n in sizes]

    async def pump(a: WebSocket, b: WebSocket) -> None:
        async def reader() -> list[bytes | str]:
            return [await b.recv() for _ in range(len(payloads) + 1)]

        task = asyncio.ensure_future(reader())
        for p in payloads:
            await a.send(p)
        await a.send("and text ☃")
        assert await asyncio.wait_for(task, 30) == [*payloads, "and text ☃"]

    await pump(client, ws)
    await pump(ws, client)
    assert on_fast_path(client) and on_fast_path(ws)
    # control frames still go through websockets, in the middle of the fast path
    pong = await asyncio.wait_for(_ping(client, b"hello?"), 5)
    assert pong == b"hello?"
    await client.close()
    with pytest.raises(ConnectionClosed) as info:
        await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1000


async def _ping(ws: WebSocket, payload: bytes) -> bytes:
    """Send a ping through websockets and wait for its pong event."""
    got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    original = ws._process_events

    def spy(events: list[Any]) -> None:
        for e in events:
            if isinstance(e, Frame) and e.opcode == 10 and not got.done():
                got.set_result(bytes(e.data))
        original(events)

    ws._process_events = spy  # type: ignore[method-assign]
    ws.protocol.send_ping(payload)
    ws._send_data()
    try:
        return await got
    finally:
        del ws._process_events


async def test_max_queue_pauses_reading_on_the_fast_path(server: Any) -> None:
    _, accepted, uri = server
    client = await connect(uri, close_timeout=1.0, write_limit=1 << 16)
    ws = await asyncio.wait_for(accepted.get(), 5)
    n = 400
    sender = asyncio.ensure_future(_send_many(client, n))
    await eventually(lambda: ws._reading_paused, timeout=10)
    assert on_fast_path(ws)
    # paused: the queue holds max_queue plus at most one read, the rest waits in TCP
    assert len(ws._queue) <= ws.max_queue + 65536 // 6
    got = [await ws.recv() for _ in range(n)]
    assert got == [i.to_bytes(4, "big") for i in range(n)]
    await asyncio.wait_for(sender, 10)
    await client.close()


async def _send_many(ws: WebSocket, n: int) -> None:
    for i in range(n):
        await ws.send(i.to_bytes(4, "big"))


@pytest.fixture
def no_codec() -> Iterator[None]:
    saved = aio_connection._codec
    aio_connection._codec = None
    try:
        yield
    finally:
        aio_connection._codec = saved


async def test_without_the_codec_websockets_does_everything(server: Any, no_codec: None) -> None:
    _, accepted, uri = server
    client = await connect(uri, close_timeout=1.0)
    ws = await asyncio.wait_for(accepted.get(), 5)
    await client.send(b"x" * 70_000)
    await ws.send("back")
    assert await ws.recv() == b"x" * 70_000
    assert await client.recv() == "back"
    assert ws._fast is None and client._fast is None
    await client.close()


async def test_fast_and_websockets_ends_talk_to_each_other(server: Any) -> None:
    """A client whose frames websockets makes and parses against a fast server."""
    _, accepted, uri = server
    client = await connect(uri, close_timeout=1.0)
    assert client._fast is not None
    client._rx_stop(client._fast)  # nothing received since the upgrade: websockets parses
    client._fast = None  # and frames
    ws = await asyncio.wait_for(accepted.get(), 5)
    for p in (b"", b"a" * 126, os.urandom(70_000)):
        await client.send(p)
        assert await ws.recv() == p
        await ws.send(p)
        assert await client.recv() == p
    assert on_fast_path(ws) and client._fast is None
    await ws.close()
    assert client.protocol.state.name == "CLOSED" or await _closed(client)


async def _closed(ws: WebSocket) -> bool:
    await asyncio.wait_for(ws.wait_closed(), 5)
    return ws.protocol.state is not OPEN


async def test_frames_in_the_same_read_as_the_upgrade_response() -> None:
    """A server may write its first frames right behind the 101: websockets parses those
    (with the response) and the fast path starts only once its parser is between frames."""
    from p2p.transport.aio import ClientWebSocket
    from websockets.client import ClientProtocol
    from websockets.uri import parse_uri
    from websockets.utils import accept_key

    frames = encode([binary(b"one"), Spec(9, b"hi"), binary(b"two" * 100), binary(b"3")], CLIENT)
    mid_frame_with_nothing_buffered = 0
    for cut in range(1, sum(map(len, frames)) + 1):
        protocol = ClientProtocol(parse_uri("ws://127.0.0.1/"), max_size=MAX_SIZE)
        request = protocol.connect()
        ws = ClientWebSocket(protocol, close_timeout=5)
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda ws=ws: ws, ours)
            ws.transport.pause_reading()
            protocol.send_request(request)
            ws._send_data()
            response = (
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                + accept_key(request.headers["Sec-WebSocket-Key"]).encode()
                + b"\r\n\r\n"
            )
            stream = response + b"".join(frames)
            for part in (stream[: len(response) + cut], stream[len(response) + cut :]):
                buf = ws.get_buffer(len(part))
                buf[: len(part)] = part
                ws.buffer_updated(len(part))
                if not protocol.reader.buffer and not on_fast_path(ws):
                    mid_frame_with_nothing_buffered += 1  # a header read, the rest not yet
            assert ws.response is not None and ws.protocol.state is OPEN
            assert list(ws._queue) == [b"one", b"two" * 100, b"3"], cut
            assert (10, b"hi") in _parse_written(_drain(theirs).split(b"\r\n\r\n", 1)[1], CLIENT)
            assert on_fast_path(ws)  # every read here ends on a frame boundary
        finally:
            ws.transport.abort()
            theirs.close()
            await asyncio.sleep(0)
    assert mid_frame_with_nothing_buffered  # the boundary test is more than an empty buffer
