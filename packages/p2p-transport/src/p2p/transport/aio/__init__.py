"""The I/O shell: asyncio sockets driving websockets' sans-I/O protocol objects.

Nothing above this package touches a socket. :func:`serve` and :func:`connect` give
:class:`WebSocket` objects (``recv``/``send``/``close``/``drain``/``wait_closed``), whose
bounds are documented in :mod:`p2p.transport.aio.connection`.
"""

from p2p.transport.aio.client import ClientWebSocket, connect
from p2p.transport.aio.connection import (
    DEFAULT_COALESCE_LIMIT,
    DEFAULT_READ_BUFFER,
    WebSocket,
    peer_address,
)
from p2p.transport.aio.fdtable import reserve_fd_table
from p2p.transport.aio.server import Handler, ProcessRequest, Server, ServerWebSocket, serve
from p2p.transport.aio.timeouts import with_timeout

__all__ = [
    "DEFAULT_COALESCE_LIMIT",
    "DEFAULT_READ_BUFFER",
    "ClientWebSocket",
    "Handler",
    "ProcessRequest",
    "Server",
    "ServerWebSocket",
    "WebSocket",
    "connect",
    "peer_address",
    "reserve_fd_table",
    "serve",
    "with_timeout",
]
