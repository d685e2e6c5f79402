"""The dialling side: TCP (and TLS) from asyncio, the HTTP upgrade from websockets'
sans-I/O :class:`~websockets.client.ClientProtocol`. No redirects, no proxy, no
compression, no ``User-Agent``: the request is the protocol's bare one."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl as ssl_module
from collections.abc import Awaitable, Callable
from typing import Any

from p2p.transport.aio.connection import DEFAULT_COALESCE_LIMIT, DEFAULT_READ_BUFFER, WebSocket
from p2p.transport.aio.timeouts import with_timeout
from websockets.client import ClientProtocol
from websockets.http11 import Response
from websockets.protocol import CONNECTING, OPEN
from websockets.uri import WebSocketURI, parse_uri

__all__ = ["ClientWebSocket", "connect"]

#: websockets' own logger for its client side, looked up once (not per dial)
_WS_LOG = logging.getLogger("websockets.client")


class ClientWebSocket(WebSocket):
    """A dialled socket: in its HTTP upgrade, then a WebSocket."""

    protocol: ClientProtocol

    def __init__(self, protocol: ClientProtocol, **kwargs: Any) -> None:
        super().__init__(protocol, **kwargs)
        self.response: Response | None = None
        self._response_rcvd: asyncio.Future[None] = self._loop.create_future()
        #: written the moment the upgrade succeeds (see ``connect(first_message=...)``)
        self._first_message: str | bytes | None = None

    def _process_handshake_event(self, event: Any) -> None:
        if isinstance(event, Response) and self.response is None:
            self.response = event
            first, self._first_message = self._first_message, None
            protocol = self.protocol
            if first is not None and protocol.state is OPEN and protocol.handshake_exc is None:
                # from this read callback: no wake-up of the dialling task in between
                if isinstance(first, str):
                    protocol.send_text(first.encode())
                else:
                    protocol.send_binary(first)
                self._send_data()
            if not self._response_rcvd.done():
                self._response_rcvd.set_result(None)

    def _on_lost(self) -> None:
        if not self._response_rcvd.done():
            self._response_rcvd.set_result(None)


def _ip_family(host: str) -> int | None:
    """``AF_INET``/``AF_INET6`` when ``host`` is an IP address (no name to resolve)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        socket.inet_pton(family, host)
    except OSError:
        return None  # a name, or a scoped IPv6 address: asyncio's getaddrinfo path
    return family


async def _open_tcp(family: int, address: tuple[str, int]) -> socket.socket:
    """A connected non-blocking TCP socket to an IP address: what ``create_connection``
    does for a host name, without its resolver path and, when the connect completes at
    once (loopback), without waiting a loop turn for it."""
    # proto named: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setblocking(False)
        err = sock.connect_ex(address)
        if err in (errno.EINPROGRESS, errno.EAGAIN):
            try:
                sock.getpeername()  # connected meanwhile (loopback)
                err = 0
            except OSError:
                loop = asyncio.get_running_loop()
                writable: asyncio.Future[None] = loop.create_future()
                loop.add_writer(sock.fileno(), _set_done, writable)
                try:
                    await writable
                finally:
                    loop.remove_writer(sock.fileno())
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise OSError(err, f"Connect call failed {address}")  # asyncio's words
    except BaseException:
        sock.close()
        raise
    return sock


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def connect(
    uri: str | WebSocketURI,
    *,
    open_timeout: float = 10.0,
    close_timeout: float = 10.0,
    max_size: int | None = 2**20,
    max_queue: int = 16,
    write_limit: int = 32 * 1024,
    outbound_limit: int = 64 * 1024,
    ssl: ssl_module.SSLContext | None = None,
    read_buffer_size: int = DEFAULT_READ_BUFFER,
    coalesce_limit: int = DEFAULT_COALESCE_LIMIT,
    first_message: Callable[[], str | bytes] | None = None,
    before_request: Callable[[], Awaitable[None]] | None = None,
    **create_connection_kwargs: Any,
) -> ClientWebSocket:
    """Open ``uri`` (``ws://`` or ``wss://``) and finish the upgrade within ``open_timeout``
    (TCP, TLS and HTTP together: :class:`TimeoutError` past it).

    A refused upgrade raises websockets' :class:`~websockets.exceptions.InvalidStatus`
    (with the response and its body), a malformed one
    :class:`~websockets.exceptions.InvalidHandshake`, a socket error :class:`OSError`.

    ``first_message()``, if given, is called once the HTTP request is written (so its work
    overlaps the server's on the upgrade); what it returns (``str`` as TEXT, bytes as
    BINARY) is written from the read callback that parses a successful 101, before
    ``connect`` returns: the order on the wire stays request, 101, first message, and
    nothing is written if the upgrade fails.

    ``before_request()``, if given, is awaited once TCP (and TLS) is up, before the
    request is built and written (e.g. :meth:`~p2p.transport.aio.pacer.TurnPacer.turn`).

    ``coalesce_limit``: bytes of frames written after the first in one loop turn that
    wait to leave together (0: every frame is written at once; see
    :mod:`p2p.transport.aio.connection`).

    ``uri`` may be given parsed already (a ``WebSocketURI``).
    """
    ws_uri = parse_uri(uri) if isinstance(uri, str) else uri
    if ws_uri.secure and ssl is None:
        ssl = ssl_module.create_default_context()
    protocol = ClientProtocol(ws_uri, max_size=max_size, logger=_WS_LOG)
    ws = ClientWebSocket(
        protocol,
        max_queue=max_queue,
        write_limit=write_limit,
        open_timeout=None,  # the deadline below covers TCP, TLS and the upgrade
        close_timeout=close_timeout,
        outbound_limit=outbound_limit,
        read_buffer_size=read_buffer_size,
        coalesce_limit=coalesce_limit,
    )
    if ssl is not None:
        create_connection_kwargs.setdefault("server_hostname", ws_uri.host)

    async def opening() -> None:
        loop = asyncio.get_running_loop()
        family = (
            None
            if create_connection_kwargs.keys() - {"server_hostname"}
            else _ip_family(ws_uri.host)
        )
        if family is None:
            await loop.create_connection(
                lambda: ws, ws_uri.host, ws_uri.port, ssl=ssl, **create_connection_kwargs
            )
        else:
            sock = await _open_tcp(family, (ws_uri.host, ws_uri.port))
            try:
                await loop.create_connection(
                    lambda: ws, sock=sock, ssl=ssl, **create_connection_kwargs
                )
            except BaseException:
                sock.close()  # asyncio closes what it made a transport of; not before
                raise
        while ws.transport is None:  # uvloop calls connection_made in the next turn
            await asyncio.sleep(0)
        if before_request is not None:
            await before_request()
            if protocol.state is not CONNECTING or ws.transport.is_closing():
                # the server gave up on us meanwhile (e.g. its upgrade timeout)
                raise ConnectionResetError("connection closed before the upgrade request")
        protocol.send_request(protocol.connect())
        ws._send_data()
        if first_message is not None:
            # synchronously after the request: the 101 cannot have been read yet
            ws._first_message = first_message()
        await ws._response_rcvd
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc

    try:
        await with_timeout(opening(), open_timeout)
    except TimeoutError as exc:
        ws.abort()
        raise TimeoutError("timed out during opening handshake") from exc
    except BaseException:
        ws.abort()
        raise
    ws._handshake_finished()
    return ws
