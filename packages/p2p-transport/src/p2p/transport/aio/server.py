"""The listening side: TCP (and TLS) from asyncio, the HTTP upgrade from websockets'
sans-I/O :class:`~websockets.server.ServerProtocol`, admission from our hook.

The hook (``process_request``) runs synchronously in the read callback that completed the
request, before anything else can happen on the loop: check-and-reserve is atomic. It
returns ``None`` to accept (websockets builds the 101) or a response (e.g.
``ws.respond(503, "...")``) to refuse. Once the upgrade is done the handler coroutine runs
in its own task; when it returns, the connection is closed.
"""

from __future__ import annotations

import asyncio
import http
import logging
import ssl as ssl_module
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from p2p.transport.aio.connection import (
    DEFAULT_COALESCE_LIMIT,
    DEFAULT_READ_BUFFER,
    WebSocket,
    peer_address,
)
from websockets.http11 import Request, Response
from websockets.protocol import CONNECTING, OPEN
from websockets.server import ServerProtocol

__all__ = ["Handler", "ProcessRequest", "Server", "ServerWebSocket", "serve"]

log = logging.getLogger(__name__)
#: websockets' own logger for its server side, looked up once (not per connection)
_WS_LOG = logging.getLogger("websockets.server")

ProcessRequest = Callable[["ServerWebSocket", Request], "Response | None"]
"""``hook(ws, request)``: ``None`` accepts the upgrade, a response refuses it."""
Handler = Callable[["ServerWebSocket"], Awaitable[None]]
"""``handler(ws)``: runs once the upgrade is done; the connection closes when it returns."""


class ServerWebSocket(WebSocket):
    """An accepted socket: in its HTTP upgrade, then a WebSocket."""

    protocol: ServerProtocol

    def __init__(self, server: Server, protocol: ServerProtocol, **kwargs: Any) -> None:
        super().__init__(protocol, **kwargs)
        self._server = server
        self.request: Request | None = None
        self.response: Response | None = None

    def respond(self, status: int, text: str) -> Response:
        """A plain-text HTTP response refusing the upgrade (for the admission hook)."""
        return self.protocol.reject(status, text)

    def _process_handshake_event(self, event: Any) -> None:
        if isinstance(event, Request) and self.request is None:
            self.request = event
            self._server._upgrade(self, event)

    def _on_lost(self) -> None:
        self._server._connections.discard(self)


class Server:
    """What :func:`serve` returns: the listening sockets and the connections' tasks."""

    def __init__(
        self,
        handler: Handler,
        process_request: ProcessRequest | None,
        *,
        max_size: int | None,
        connection_kwargs: dict[str, Any],
    ) -> None:
        self._handler = handler
        self._process_request = process_request
        self._max_size = max_size
        self._connection_kwargs = connection_kwargs
        self._server: asyncio.Server | None = None
        self._closing = False
        #: every accepted socket until its TCP connection ends
        self._connections: set[ServerWebSocket] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def _factory(self) -> ServerWebSocket:
        # no extensions (no compression), no subprotocols, no origin check (the hook does it)
        protocol = ServerProtocol(max_size=self._max_size, logger=_WS_LOG)
        ws = ServerWebSocket(self, protocol, **self._connection_kwargs)
        self._connections.add(ws)
        return ws

    def _upgrade(self, ws: ServerWebSocket, request: Request) -> None:
        protocol = ws.protocol
        response: Response | None = None
        if self._process_request is not None:
            try:
                response = self._process_request(ws, request)
            except Exception as exc:
                protocol.handshake_exc = exc
                log.exception("process_request failed")
                response = protocol.reject(
                    http.HTTPStatus.INTERNAL_SERVER_ERROR,
                    "Failed to open a WebSocket connection.\n"
                    "See server log for more information.\n",
                )
        if response is None:
            response = protocol.accept(request)
        if self._closing and response.status_code == http.HTTPStatus.SWITCHING_PROTOCOLS:
            response = protocol.reject(
                http.HTTPStatus.SERVICE_UNAVAILABLE, "Server is shutting down.\n"
            )
        ws.response = response
        if protocol.state is not CONNECTING:  # pragma: no cover - the hook aborted it
            return
        protocol.send_response(response)
        ws._send_data()
        ws._handshake_finished()
        if protocol.state is OPEN:
            task = asyncio.get_running_loop().create_task(self._run(ws))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, ws: ServerWebSocket) -> None:
        try:
            await self._handler(ws)
        except Exception:
            log.exception("connection handler failed (%s)", peer_address(ws))
        finally:
            await ws.close()

    @property
    def sockets(self) -> tuple[Any, ...]:
        return tuple(self._server.sockets) if self._server is not None else ()

    def close(self) -> None:
        """Stop listening; abort sockets still in their HTTP upgrade. Upgraded connections
        are left to their handlers (:meth:`wait_closed` waits for those)."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for ws in list(self._connections):
            if ws.protocol.state is CONNECTING and ws.transport is not None:
                ws.transport.abort()

    async def wait_closed(self) -> None:
        """Wait until every handler has returned and the listening socket is closed."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None and sys.version_info < (3, 12):
            await self._server.wait_closed()


async def serve(
    handler: Handler,
    host: str | None,
    port: int,
    *,
    process_request: ProcessRequest | None = None,
    ssl: ssl_module.SSLContext | None = None,
    open_timeout: float = 10.0,
    close_timeout: float = 10.0,
    max_size: int | None = 2**20,
    max_queue: int = 16,
    write_limit: int = 32 * 1024,
    outbound_limit: int = 64 * 1024,
    read_buffer_size: int = DEFAULT_READ_BUFFER,
    coalesce_limit: int = DEFAULT_COALESCE_LIMIT,
) -> Server:
    """Listen on ``host:port``; every upgraded connection runs ``handler(ws)``.

    ``open_timeout`` bounds the TLS handshake and, separately, the HTTP upgrade;
    ``max_size`` is the protocol's message cap until someone lifts
    ``ws.protocol.max_message_size``; ``outbound_limit`` the write-buffer cap until
    changed on the connection.
    """
    server = Server(
        handler,
        process_request,
        max_size=max_size,
        connection_kwargs={
            "max_queue": max_queue,
            "write_limit": write_limit,
            "open_timeout": open_timeout,
            "close_timeout": close_timeout,
            "outbound_limit": outbound_limit,
            "read_buffer_size": read_buffer_size,
            "coalesce_limit": coalesce_limit,
        },
    )
    kwargs: dict[str, Any] = {}
    if ssl is not None:
        kwargs["ssl"] = ssl
        kwargs["ssl_handshake_timeout"] = open_timeout
        if sys.version_info >= (3, 11):
            kwargs["ssl_shutdown_timeout"] = close_timeout
    loop = asyncio.get_running_loop()
    server._server = await loop.create_server(server._factory, host, port, **kwargs)
    return server
