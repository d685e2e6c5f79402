"""The live WebSocket transport: listen, dial, handshake, then encrypted messages.

A thin asyncio shell over the sans-I/O pieces (``handshake``, ``session``, ``limits``);
sockets and WebSocket framing live in :mod:`p2p.transport.aio` (websockets' sans-I/O
protocol driven by our own asyncio protocol). Admission (path and origin here; pending-handshake,
per-prefix and MaxConns budgets in the sans-I/O :class:`~p2p.transport.admission.Admission`)
is decided synchronously in ``process_request`` and right after the hello, so
check-and-reserve is atomic.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import os
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from p2p.identity import LimitedLogger, safe_text
from p2p.transport import envelope
from p2p.transport.admission import Admission, AdmissionLimits, Refuse
from p2p.transport.aio import ClientWebSocket, Server, ServerWebSocket, WebSocket, reserve_fd_table
from p2p.transport.aio import connect as ws_connect
from p2p.transport.aio import serve as ws_serve
from p2p.transport.aio.pacer import TurnPacer
from p2p.transport.config import TransportConfig
from p2p.transport.connection import (
    DISCONNECT_NORMAL,
    DISCONNECT_SHUTDOWN,
    MessageHandler,
    PeerConnection,
    outbound_overflowed,
    peer_address,
    with_timeout,
)
from p2p.transport.errors import (
    ConnectError,
    NotConnectedError,
    NotRunningError,
    PeerRefusedError,
    UepsNotEnabledError,
)
from p2p.transport.gate import OpenGate, PeerGate
from p2p.transport.handshake import (
    PROTOCOL_1_1,
    HandshakeError,
    HandshakeInitiator,
    HandshakeResponder,
    HandshakeResult,
    ResponderDecision,
    offers_1_1,
)
from p2p.transport.keepalive import due_pings, ping_budget
from p2p.transport.limits import DropCounters, ReplayGuard
from p2p.transport.messages import HandshakeAckPayload
from p2p.transport.protocol import CloseRequested, Events, PeerProtocol, PingDue, WriteStalled
from p2p.transport.secure_session import SecureSession
from p2p.transport.ueps_channel import UepsConfig
from p2p.transport.ueps_service import PeerPacketHandler, UepsHub
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.http11 import Request, Response
from websockets.uri import WebSocketURI, parse_uri

if TYPE_CHECKING:
    from p2p.identity import NodeIdentity
    from p2p.transport.messages import Message

__all__ = [
    "BroadcastResult",
    "ConnectError",
    "IdentityProvider",
    "NotConnectedError",
    "NotRunningError",
    "Transport",
]

log = logging.getLogger(__name__)
#: repetitive lines: a few per kind and minute, then one summary (issue 13)
_flood = LimitedLogger(log)

ALLOWED_ORIGIN_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
MAX_RUN_PINS = 65_536
"""Protocol 1.1 pins kept in memory for one run (about 100 bytes each); past it the oldest
go (a pinned peer in the registry stays pinned there)."""
REPLAY_SWEEP_INTERVAL = 10.0
"""Seconds between sweeps of expired replay ids (each check also expires lazily)."""
FD_HEADROOM = 64
"""Descriptors reserved at start beyond the connection budgets (listeners, files, logs)."""


class IdentityProvider(Protocol):
    """What the transport needs from ``p2p.identity.NodeManager``."""

    @property
    def identity(self) -> NodeIdentity | None: ...

    def derive_shared_secret(self, peer_public_key: str) -> bytes: ...

    # Optional, looked up with getattr: ``keypair.private_bytes`` (the raw X25519 identity
    # key) is the Noise static key of protocol 1.1; without it the node speaks only 1.0.


@dataclass(frozen=True, slots=True)
class BroadcastResult:
    """Per-peer outcome of :meth:`Transport.broadcast`."""

    sent: tuple[str, ...]
    failed: dict[str, BaseException]

    @property
    def ok(self) -> bool:
        return not self.failed


class Transport:
    """A node's WebSocket endpoint and its set of authenticated peer connections."""

    def __init__(
        self,
        node_manager: IdentityProvider,
        gate: PeerGate | None = None,
        config: TransportConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        ueps_config: UepsConfig | None = None,
    ) -> None:
        self.node_manager = node_manager
        self.gate: PeerGate = gate if gate is not None else OpenGate()
        self.config = config if config is not None else TransportConfig()
        self._clock = clock
        self._wall = wall_clock
        cfg = self.config
        #: replay protection per peer public key, shared by all of a peer's connections
        self.dedup = ReplayGuard.from_config(cfg)
        self.drop_counters = DropCounters()
        self._conns: dict[str, PeerConnection] = {}
        #: inbound connections that have not proven their key yet (an ordered set)
        self._probation: dict[PeerConnection, None] = {}
        self._pending: set[ServerWebSocket] = set()
        self.admission = Admission(AdmissionLimits.from_config(cfg))
        #: shares each loop turn between this transport's handshake steps (both ways)
        self.pacer = TurnPacer(cfg.handshake_turn_budget)
        self._subscribers: tuple[MessageHandler, ...] = ()
        #: session-bound UEPS with peers that advertised ``ueps/1`` (see :meth:`on_ueps`)
        self.ueps = UepsHub(self, config=ueps_config, clock=clock)
        self._server: Server | None = None
        self._client_ssl_context: ssl.SSLContext | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._keepalive: asyncio.Task[None] | None = None
        self._state = "new"
        self._stopped = asyncio.Event()
        self.rejected: dict[str, int] = {
            "max_conns": 0,
            "origin": 0,
            "path": 0,
            "ip_concurrent": 0,
            "ip_rate": 0,
            "handshake": 0,
            "pending_full": 0,
            "evicted": 0,
            "reserved": 0,
            "prefix_conns": 0,
            "outbound_overflow": 0,
            "outbound_full": 0,
        }
        #: protocol 1.1 pins of this run (public keys that spoke 1.1: 1.0 refused), oldest
        #: first, at most MAX_RUN_PINS (the registry keeps the pins of known peers for good)
        self._run_pins: dict[str, None] = {}
        #: connections closed by the transport, per cause
        self.closed_for: dict[str, int] = {"undecryptable": 0, "rate_limit": 0, "unproven": 0}

    # --- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        """Listen on ``config.listen_host:listen_port`` (port 0 picks one; see :attr:`port`)."""
        if self._state != "new":
            raise NotRunningError(f"transport cannot start from state {self._state}")
        self._own_identity()  # fail early without an identity
        cfg = self.config
        # one descriptor per connection, pending handshake and listener: grow the table
        # now, not in a socket() call mid-fleet (see p2p.transport.aio.fdtable)
        reserve_fd_table(
            cfg.max_conns + cfg.max_outbound_conns + cfg.max_pending_handshakes + FD_HEADROOM
        )
        self._server = await ws_serve(
            self._serve,
            cfg.listen_host,
            cfg.listen_port,
            process_request=self._admit,
            ssl=self._server_ssl(),
            open_timeout=cfg.handshake_timeout,
            close_timeout=cfg.close_timeout,
            max_size=cfg.handshake_size_limit,
            max_queue=cfg.recv_queue_frames,
            write_limit=cfg.write_limit,
            outbound_limit=cfg.max_handshake_outbound_bytes,
        )
        self._keepalive = asyncio.get_running_loop().create_task(self._keepalive_loop())
        self._state = "running"
        log.info("transport listening on %s", self.address)

    async def stop(self) -> None:
        """Send ``disconnect`` (1004 "server shutdown") to every peer, close, wait. Idempotent."""
        if self._state in ("stopping", "stopped"):
            if self._state == "stopping":
                await self._stopped.wait()
            return
        self._state = "stopping"
        try:
            if self._server is not None:
                self._server.close()
            conns = list(self._conns.values()) + list(self._probation)
            await asyncio.gather(
                *(c.graceful_close("server shutdown", DISCONNECT_SHUTDOWN) for c in conns),
                return_exceptions=True,
            )
            for ws in list(self._pending):
                ws.abort()
            if self._keepalive is not None:
                self._keepalive.cancel()
            tasks = [t for t in self._tasks if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(
                *tasks, *([self._keepalive] if self._keepalive else []), return_exceptions=True
            )
            if self._server is not None:
                await self._server.wait_closed()
        finally:
            self._state = "stopped"
            self._stopped.set()
            log.info("transport stopped")

    async def __aenter__(self) -> Transport:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._state == "running"

    @property
    def port(self) -> int:
        """The bound TCP port (after :meth:`start`)."""
        if self._server is None:
            raise NotRunningError("transport not started")
        sockets = self._server.sockets
        return int(sockets[0].getsockname()[1])

    @property
    def address(self) -> str:
        """``host:port`` others can dial (``127.0.0.1`` when listening on all interfaces)."""
        host = self.config.listen_host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    # --- subscribers ----------------------------------------------------------------
    def on_message(self, handler: MessageHandler) -> Callable[[], None]:
        """Subscribe ``handler(conn, message)`` (sync or async); returns an unsubscribe."""
        self._subscribers = (*self._subscribers, handler)

        def unsubscribe() -> None:
            self._subscribers = tuple(h for h in self._subscribers if h is not handler)

        return unsubscribe

    def on_ueps(self, intent_id: int, handler: PeerPacketHandler) -> Callable[[], None]:
        """Route UEPS packets of ``intent_id`` to ``handler(conn, packet)`` (sync or async,
        one handler per intent, run in the connection's bounded handler pool); returns an
        unregister.

        Packets come only on session-bound channels: both handshakes advertised ``ueps/1``
        (``TransportConfig(features=with_ueps())``) and the connection is proven. Raises
        :class:`~p2p.transport.errors.UepsNotEnabledError` if this transport does not
        advertise ``ueps/1``.
        """
        if not self.ueps.enabled:
            raise UepsNotEnabledError(
                "transport config does not advertise ueps/1 (use features=with_ueps())"
            )
        dispatcher = self.ueps.dispatcher
        dispatcher.register(intent_id, handler)

        def unregister() -> None:
            if dispatcher.handlers().get(intent_id) is handler:
                dispatcher.unregister(intent_id)

        return unregister

    async def send_ueps(
        self, peer_id: str, intent_id: int, payload: bytes, *, threat_score: int = 0
    ) -> None:
        """``conn.send_ueps(...)`` on the peer's connection (see :meth:`send` for the wait
        on an unproven one). Raises :class:`~p2p.transport.errors.PeerRefusedError` for a
        peer in its threat cool-down, :class:`NotConnectedError`, and what
        :meth:`PeerConnection.send_ueps` raises."""
        left = self.ueps.threats.refused_for(peer_id)
        if left > 0:
            raise PeerRefusedError(peer_id, left)
        conn = self._conns.get(peer_id)
        if conn is None:
            conn = await self._wait_proven(peer_id)
        await conn.send_ueps(intent_id, payload, threat_score=threat_score)

    # --- connections ----------------------------------------------------------------
    def connection(self, peer_id: str) -> PeerConnection | None:
        return self._conns.get(peer_id)

    def connections(self) -> list[PeerConnection]:
        return list(self._conns.values())

    @property
    def connected_peers(self) -> list[str]:
        return list(self._conns)

    @property
    def pending_handshakes(self) -> int:
        """Inbound sockets admitted and still in their handshake."""
        self._sweep_pending()
        return self.admission.pending

    def _sweep_pending(self) -> None:
        """Forget admitted sockets that died before their handler ran (e.g. websockets
        refused the upgrade after ``process_request`` let it through)."""
        for dead in [p for p in self._pending if p.transport.is_closing()]:
            self._pending.discard(dead)
            self.admission.closed(dead)

    def unproven_connections(self) -> list[PeerConnection]:
        """Inbound connections that have not proven their key yet (nobody's session)."""
        return list(self._probation)

    @property
    def drops(self) -> dict[str, int]:
        """Dropped inbound frames over all connections (ever), per reason."""
        return self.drop_counters.as_dict()

    async def connect(
        self, address: str, *, expected_public_key: str | None = None
    ) -> PeerConnection:
        """Dial ``address`` (``host:port`` or a ``ws://``/``wss://`` URI) and handshake.

        With ``expected_public_key`` the peer must answer with exactly that key.
        """
        await self.pacer.turn()  # a fleet's dials start a few per loop turn
        self._require_running()
        cfg = self.config
        ws_uri = self._ws_uri_for(address)
        own = self._own_identity()
        initiator = HandshakeInitiator(
            own,
            self.node_manager.derive_shared_secret,
            expected_public_key=expected_public_key,
            features=cfg.features,
            **self._protocol_1_1_options(),
        )
        dial = _Dial()
        verdict = self.admission.dial_requested(dial)
        if isinstance(verdict, Refuse):
            self.rejected[verdict.counter] += 1
            raise ConnectError(address, verdict.reason)
        try:
            ws, result = await self._dial(address, ws_uri, initiator)
        except BaseException:
            self.admission.closed(dial)
            raise
        self.admission.outbound_established(dial, _remote_ip(ws))
        conn = self._establish(ws, result, outbound=True, dialled=address)
        self._note_protocol(result)  # after _establish: the gate has the peer's record now
        task = asyncio.get_running_loop().create_task(self._run_outbound(conn, ws, dial))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return conn

    async def _dial(
        self,
        address: str,
        uri: WebSocketURI,
        initiator: HandshakeInitiator,
    ) -> tuple[ClientWebSocket, HandshakeResult]:
        """TCP, HTTP upgrade and handshake of one dial; every failure is a ConnectError
        that says why (HTTP status and body, errno, timeout, handshake reason)."""
        cfg = self.config
        try:
            ws = await ws_connect(
                uri,
                open_timeout=cfg.connect_timeout,
                close_timeout=cfg.close_timeout,
                max_size=cfg.max_message_size,
                max_queue=cfg.recv_queue_frames,
                write_limit=cfg.write_limit,
                outbound_limit=cfg.max_handshake_outbound_bytes,
                ssl=self._client_ssl(uri.secure),
                # built while the peer answers the upgrade, written the moment its 101 is
                # read (the order on the wire is Go's: request, 101, hello)
                first_message=lambda: envelope.to_text(initiator.hello()),
                before_request=self.pacer.turn,
            )
        except InvalidStatus as exc:
            raise ConnectError(address, connect_failure_reason(exc)) from exc
        except (OSError, InvalidHandshake, TimeoutError, asyncio.TimeoutError) as exc:
            raise ConnectError(
                address, connect_failure_reason(exc, timeout=cfg.connect_timeout)
            ) from exc
        try:
            result = await with_timeout(
                _ack_exchange(ws, initiator, self.pacer), cfg.handshake_timeout
            )
        except (HandshakeError, TimeoutError, ConnectionClosed) as exc:
            ws.abort()
            reason = (
                exc.reason
                if isinstance(exc, HandshakeError)
                else connect_failure_reason(exc, timeout=cfg.handshake_timeout)
            )
            raise ConnectError(address, f"handshake failed: {reason}") from exc
        except BaseException:
            ws.abort()
            raise
        if not self.running:
            ws.abort()
            raise NotRunningError("transport stopped during connect")
        return ws, result

    async def send(self, peer_id: str, message: Message) -> None:
        """Send ``message`` to a connected peer (raises :class:`NotConnectedError`).

        A peer whose only connection has just arrived and not proven its key yet (we probe
        it at once) is waited for, up to ``handshake_timeout``.
        """
        conn = self._conns.get(peer_id)
        if conn is None:
            conn = await self._wait_proven(peer_id)
        await conn.send(message)

    async def _wait_proven(self, peer_id: str) -> PeerConnection:
        waiting = [c for c in self._probation if c.peer_id == peer_id]
        if waiting:
            tasks = [asyncio.ensure_future(c.wait_settled()) for c in waiting]
            try:
                await asyncio.wait(tasks, timeout=self.config.handshake_timeout)
            finally:
                for task in tasks:
                    task.cancel()
        conn = self._conns.get(peer_id)
        if conn is None:
            raise NotConnectedError(peer_id)
        return conn

    async def broadcast(self, message: Message, *, timeout: float | None = None) -> BroadcastResult:
        """Send to every connected peer except ``message.from`` concurrently.

        Each peer gets its own deadline (``timeout`` or ``config.broadcast_timeout``); the
        result lists who got it and why the others did not.
        """
        sender = envelope.sender(message)
        targets = [c for pid, c in self._conns.items() if pid != sender]
        deadline = self.config.broadcast_timeout if timeout is None else timeout

        async def one(conn: PeerConnection) -> None:
            await with_timeout(conn.send(message), deadline)

        outcomes = await asyncio.gather(*(one(c) for c in targets), return_exceptions=True)
        sent: list[str] = []
        failed: dict[str, BaseException] = {}
        for conn, outcome in zip(targets, outcomes, strict=False):
            if isinstance(outcome, BaseException):
                failed[conn.peer_id] = outcome
                log.info("broadcast to %s failed: %r", conn.peer_id, outcome)
            else:
                sent.append(conn.peer_id)
        return BroadcastResult(tuple(sent), failed)

    async def disconnect(self, peer_id: str, reason: str = "normal", code: int = 1000) -> None:
        """Gracefully close the connection to ``peer_id`` if there is one."""
        conn = self._conns.get(peer_id)
        if conn is not None:
            await conn.graceful_close(reason, code)

    # --- hooks used by PeerConnection -------------------------------------------------
    def _handlers(self) -> tuple[MessageHandler, ...]:
        return self._subscribers

    def _ueps_frame(self, conn: PeerConnection, frame: bytes) -> Awaitable[None] | None:
        """A raw frame of a proven connection that negotiated ``ueps/1``."""
        return self.ueps.frame(conn, frame)

    async def _send_ueps(
        self, conn: PeerConnection, intent_id: int, payload: bytes, threat_score: int
    ) -> None:
        await self.ueps.send(conn, intent_id, payload, threat_score)

    def _own_id(self) -> str:
        return self._own_identity().id

    def _closed_for(self, why: str) -> None:
        self.closed_for[why] = self.closed_for.get(why, 0) + 1

    def _connection_closed(self, conn: PeerConnection) -> None:
        if conn in self._probation:
            # an unproven connection ends alone: it was nobody's session, nothing inherits
            del self._probation[conn]
            return
        self.ueps.closed(conn)
        if self._conns.get(conn.peer_id) is conn:
            del self._conns[conn.peer_id]
            try:
                self.gate.peer_disconnected(conn.peer_id)
            except Exception:
                log.exception("gate.peer_disconnected failed")

    def _connection_proven(self, conn: PeerConnection) -> None:
        if conn in self._probation:
            del self._probation[conn]
            if not conn.closed:
                self._promote(conn, "")

    def _promote(self, conn: PeerConnection, dialled: str) -> None:
        """Make the proven ``conn`` the peer's connection, closing any older one, and only
        now tell the gate: the registry hears of nobody who has not shown their key. A peer
        (or source prefix) in its UEPS threat cool-down is closed instead."""
        if not self.ueps.admits(conn):
            # at once: what it sent with its proof is never dispatched, no reply can leave
            conn.drop("refused: UEPS threat cool-down")
            return
        old = self._conns.get(conn.peer_id)
        self._conns[conn.peer_id] = conn
        if old is not None and old is not conn:
            log.info("new connection for %s replaces the old one", conn.peer_id)
            self._spawn(old.graceful_close("replaced by a newer connection", DISCONNECT_NORMAL))
        try:
            # the address one can dial back: known for outbound, unknown ("") for inbound
            self.gate.peer_connected(conn.identity, dialled)
        except Exception:
            log.exception("gate.peer_connected failed")
        direction = "out" if conn.outbound else "in"
        log.info("peer %s connected (%s, %s)", conn.peer_id, direction, conn.address)
        self.ueps.proven(conn)

    # --- server side ----------------------------------------------------------------
    def _admit(self, ws: ServerWebSocket, request: Request) -> Response | None:
        """Path, origin, per-IP and MaxConns admission: synchronous, hence atomic."""
        cfg = self.config
        if self._state != "running":
            return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "Shutting down\n")
        if urlsplit(request.path).path != cfg.ws_path:
            self.rejected["path"] += 1
            return ws.respond(HTTPStatus.NOT_FOUND, "404 page not found\n")
        origin = request.headers.get("Origin")
        if origin is not None and not _origin_allowed(origin):
            self.rejected["origin"] += 1
            return ws.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")
        self._sweep_pending()
        verdict = self.admission.upgrade_requested(ws, _remote_ip(ws), self._clock())
        if isinstance(verdict, Refuse):
            self.rejected[verdict.counter] += 1
            if verdict.counter == "max_conns":
                _flood.warning(
                    "max_conns", "rejecting connection: max_conns %d reached", cfg.max_conns
                )
            return ws.respond(HTTPStatus(verdict.status), verdict.body)
        for victim in verdict.evict:
            # its slot went to this newcomer (admission rule 3); its _serve sees the close
            self.rejected["evicted"] += 1
            if isinstance(victim, ServerWebSocket):
                self._pending.discard(victim)
                victim.abort()
        self._pending.add(ws)
        return None

    async def _serve(self, ws: ServerWebSocket) -> None:
        try:
            conn = await self._handshake_inbound(ws)
            self._pending.discard(ws)
            if conn is not None:
                await conn.run()
        finally:
            self._pending.discard(ws)
            self.admission.closed(ws)

    async def _handshake_inbound(self, ws: ServerWebSocket) -> PeerConnection | None:
        """The handshake of one upgraded inbound socket; the connection, or ``None`` (the
        socket is then aborted). One deadline, ``handshake_timeout``, covers all of it:
        the hello, the ack being written and protocol 1.1's third message."""
        cfg = self.config
        try:
            own = self._own_identity()
            responder = HandshakeResponder(
                own,
                self.node_manager.derive_shared_secret,
                self._is_allowed,
                features=cfg.features,
                **self._protocol_1_1_options(),
            )
            decision = await with_timeout(
                self._hello_exchange(ws, own, responder), cfg.handshake_timeout
            )
        except (TimeoutError, ConnectionClosed) as exc:
            self.rejected["handshake"] += 1
            if outbound_overflowed(ws):
                self.rejected["outbound_overflow"] += 1  # it never read what we wrote
            _flood.info(
                "handshake failed", "inbound handshake from %s failed: %r", peer_address(ws), exc
            )
            ws.abort()
            return None
        if decision is None:  # refused by admission: the reject ack went out
            ws.abort()  # bare close after the reject ack, as Go does
            return None
        if decision.result is None:
            self.rejected["handshake"] += 1
            _flood.info(
                "handshake refused",
                "inbound handshake from %s refused: %s",
                peer_address(ws),
                safe_text(decision.error.reason if decision.error else "?"),
            )
            ws.abort()  # bare close after the reject ack, as Go does
            return None
        if self._state != "running":
            ws.abort()
            return None
        result = decision.result
        conn = self._establish(ws, result, outbound=False)
        self._note_protocol(result)  # after _establish: a 1.1 peer is registered by now
        if conn.on_probation:
            # The initiator has proved nothing yet (protocol 1.0): probe it with a ping,
            # which an honest peer (Go or ours) answers with a pong at once. Written here,
            # in this task (a fresh socket's buffer takes it without waiting), not in one
            # of its own; a write that does wait is the ticker's (write_stalled).
            await _quiet(conn.send_ping(keepalive=False))
        return conn

    async def _hello_exchange(
        self, ws: ServerWebSocket, own: NodeIdentity, responder: HandshakeResponder
    ) -> ResponderDecision | None:
        """Hello in, verdict, ack (or reject ack) out, then 1.1's third message; ``None``
        when admission refused the peer after its hello (a reject ack was written)."""
        cfg = self.config
        hello = await ws.recv()
        await self.pacer.turn()
        decision = responder.receive_hello(hello)
        reply = decision.reply
        peer = decision.peer if decision.error is None else None
        if peer is not None:
            verdict = self.admission.handshake_done(
                ws,
                known=self._is_known(peer),
                duplicate=peer.id in self._conns
                or any(c.peer_id == peer.id for c in self._probation),
            )
            if isinstance(verdict, Refuse):
                self.rejected[verdict.counter] += 1
                _flood.info(
                    "admission refused",
                    "inbound peer %s from %s refused: %s",
                    peer.id,
                    peer_address(ws),
                    verdict.counter,
                )
                await ws.send(_reject_ack(own, peer.id, verdict.reason))
                return None
            # lift the handshake size cap before the peer can react to our ack (1.1:
            # only after its third message, which is a handshake message too)
            if not decision.awaiting_finish:
                ws.protocol.max_message_size = cfg.max_message_size
        if reply is not None:
            await ws.send(envelope.to_text(reply))
        if decision.awaiting_finish:
            # protocol 1.1: the initiator proves its static key in the third message
            finish = await ws.recv()
            await self.pacer.turn()
            decision = responder.receive_finish(finish)
        return decision

    # --- protocol 1.1 (issue 16) ------------------------------------------------------
    def _static_key(self) -> bytes | None:
        """The raw X25519 identity key (the Noise static key), if the provider exposes it."""
        keypair = getattr(self.node_manager, "keypair", None)
        raw = getattr(keypair, "private_bytes", None)
        return raw if isinstance(raw, bytes) and len(raw) == 32 else None

    def _protocol_1_1_options(self) -> dict[str, Any]:
        """Handshake machine options for protocol 1.1 (offered iff ``p2p/1.1`` in features)."""
        if not offers_1_1(self.config.features):
            return {}
        return {
            "static_key": self._static_key(),
            "require_1_1": self.config.require_1_1,
            "pinned": self.is_pinned_1_1,
        }

    @property
    def pinned_1_1(self) -> frozenset[str]:
        """Public keys pinned to protocol 1.1 during this run."""
        return frozenset(self._run_pins)

    @property
    def protocols(self) -> dict[str, str]:
        """The protocol ("1.0" or "1.1") of each connected peer's connection, by peer id."""
        return {
            pid: PROTOCOL_1_1 if isinstance(c.session, SecureSession) else "1.0"
            for pid, c in self._conns.items()
        }

    def is_pinned_1_1(self, public_key: str) -> bool:
        """Has this key spoken 1.1 with us (this run, or per the gate's registry)? Then a
        1.0 handshake from or to it is refused (no downgrade)."""
        if public_key in self._run_pins:
            return True
        probe = getattr(self.gate, "peer_protocol", None)
        if probe is None:
            return False
        try:
            return bool(probe(public_key) == PROTOCOL_1_1)
        except Exception:
            log.exception("gate.peer_protocol failed")
            return False

    def _note_protocol(self, result: HandshakeResult) -> None:
        """Remember a 1.1 peer (pin it) and tell the gate which protocol the peer spoke."""
        if result.protocol == PROTOCOL_1_1:
            pins = self._run_pins
            pins.pop(result.peer.public_key, None)
            pins[result.peer.public_key] = None
            while len(pins) > MAX_RUN_PINS:  # bounded: each costs a full 1.1 handshake
                del pins[next(iter(pins))]
        record = getattr(self.gate, "peer_protocol_seen", None)
        if record is not None:
            try:
                record(result.peer.public_key, result.protocol)
            except Exception:
                log.exception("gate.peer_protocol_seen failed")

    def reset_protocol_pin(self, public_key: str) -> None:
        """Forget this run's 1.1 pin of ``public_key`` (the registry's is reset there)."""
        self._run_pins.pop(public_key, None)

    def _is_known(self, peer: NodeIdentity) -> bool:
        """Does the gate know this (claimed) identity? Optional gate method ``is_peer_known``;
        without it nobody is known and the reserve serves only our own dials."""
        probe = getattr(self.gate, "is_peer_known", None)
        if probe is None:
            return False
        try:
            return bool(probe(peer.id, peer.public_key))
        except Exception:
            log.exception("gate.is_peer_known failed")
            return False

    def _is_allowed(self, peer_id: str, public_key: str) -> bool:
        if self.ueps.refuses(peer_id):  # the threat breaker's cool-down comes first
            return False
        try:
            return bool(self.gate.is_peer_allowed(peer_id, public_key))
        except Exception:
            log.exception("gate.is_peer_allowed failed; refusing %s", peer_id)
            return False

    # --- shared ---------------------------------------------------------------------
    def _establish(
        self,
        ws: WebSocket,
        result: HandshakeResult,
        *,
        outbound: bool,
        dialled: str = "",
    ) -> PeerConnection:
        """Hand the handshake's result (peer, shared secret, features, 1.1 ciphers) to a
        new protocol object and its I/O shell; outbound is proven, so is an inbound 1.1
        connection (the initiator proved its static key in the third handshake message);
        inbound 1.0 starts on probation."""
        ws.protocol.max_message_size = self.config.max_message_size
        protocol = PeerProtocol(
            result,
            self.config,
            self.dedup,
            self._clock(),
            outbound=outbound,
            own_id=self._own_id(),
            drops_parent=self.drop_counters,
            # raw (non-SMSG) frames are UEPS only when both sides advertised ueps/1; from
            # any other peer they are tried as SMSG, as Go does (decided here, once)
            raw_frames=self.ueps.negotiated(result.features),
            # spread keepalive pings of connections made together over the interval
            ping_phase=random.random(),
        )
        peer = result.peer
        address = peer_address(ws)
        conn = PeerConnection(
            self, ws, protocol, address=address, clock=self._clock, wall_clock=self._wall
        )
        if conn.proven:
            self._promote(conn, dialled)
            return conn
        # Inbound: the initiator has proved nothing yet (protocol 1.0). The connection is
        # nobody's session until a fresh frame decrypts (the caller probes it with a ping).
        self._probation[conn] = None
        log.info(
            "inbound connection claiming %s (%s) unproven until it shows its key", peer.id, address
        )
        return conn

    async def _run_outbound(
        self, conn: PeerConnection, ws: ClientWebSocket, dial: Hashable
    ) -> None:
        try:
            await conn.run()
        finally:
            self.admission.closed(dial)
            if ws.transport is not None and not ws.transport.is_closing():
                await conn.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _keepalive_loop(self) -> None:
        """One ticker for all connections: ping the quiet ones, drop the silent ones."""
        cfg = self.config
        tick = min(cfg.ping_interval, cfg.pong_timeout, cfg.send_timeout) / 4
        last_sweep = self._clock()
        while True:
            await asyncio.sleep(tick)
            now = self._clock()
            if now - last_sweep >= REPLAY_SWEEP_INTERVAL:
                last_sweep = now
                self.dedup.sweep(self._wall())
            for conn in list(self._probation):
                self._act_on_tick(conn, conn.tick(now))
            live = 0
            due: list[tuple[PeerConnection, float]] = []
            for conn in list(self._conns.values()):
                events = conn.tick(now)
                if self._act_on_tick(conn, events):
                    live += 1
                    due.extend((conn, e.last_sent) for e in events if isinstance(e, PingDue))
            # a tick pings at most twice the steady rate, the most overdue first
            budget = ping_budget(live, tick, cfg.ping_interval)
            for conn in due_pings(due, now, cfg.ping_interval, budget):
                conn.last_ping_sent = now
                self._spawn(_quiet(conn.send_ping()))

    def _act_on_tick(self, conn: PeerConnection, events: Events) -> bool:
        """Carry out what ``conn``'s protocol decided on a tick; False if it is closing."""
        for event in events:
            if isinstance(event, WriteStalled):
                conn.fail_stalled_write()
                return False
            if isinstance(event, CloseRequested):
                if event.cause == "unproven":
                    log.info("unproven connection claiming %s expired: closing", conn.peer_id)
                else:
                    log.info("peer %s %s: dropping", conn.peer_id, event.detail)
                if event.cause:
                    self._closed_for(event.cause)
                self._spawn(conn.close(event.reason))
                return False
        return True

    def _own_identity(self) -> NodeIdentity:
        identity = self.node_manager.identity
        if identity is None:
            raise NotRunningError("node identity not initialized")
        return identity

    def _require_running(self) -> None:
        if self._state != "running":
            raise NotRunningError(f"transport is {self._state}")

    def _ws_uri_for(self, address: str) -> WebSocketURI:
        """``address`` as the URI to dial; a :class:`ConnectError` for one that is not
        (a bad port or IPv6 literal, another scheme): never urllib's ``ValueError``."""
        cfg = self.config
        return _dial_uri(address, cfg.ws_path, bool(cfg.tls_cert_path or cfg.tls_ca_path))

    def _server_ssl(self) -> ssl.SSLContext | None:
        cfg = self.config
        if not cfg.tls_enabled:
            return None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
        assert cfg.tls_cert_path is not None and cfg.tls_key_path is not None
        ctx.load_cert_chain(cfg.tls_cert_path, cfg.tls_key_path)
        return ctx

    def _client_ssl(self, secure: bool) -> ssl.SSLContext | None:
        """One client context per transport: building one loads the CA file (or the
        system's CAs) again, milliseconds per dial."""
        if not secure:
            return None
        ctx = self._client_ssl_context
        if ctx is None:
            ctx = ssl.create_default_context(cafile=self.config.tls_ca_path)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            self._client_ssl_context = ctx
        return ctx


@functools.lru_cache(maxsize=4096)
def _dial_uri(address: str, ws_path: str, tls: bool) -> WebSocketURI:
    """The parsed URI of a dial (cached: a controller redials the same addresses, and
    urllib + websockets' parser cost ~15 µs a dial on the handshake's critical path;
    a failure is not cached)."""
    try:
        if "://" in address:
            parts = urlsplit(address)
            if parts.scheme not in ("ws", "wss"):
                raise ConnectError(address, f"unsupported scheme {parts.scheme!r}")
            uri = address if parts.path else f"{address.rstrip('/')}{ws_path}"
        else:
            uri = f"{'wss' if tls else 'ws'}://{address}{ws_path}"
        return parse_uri(uri)
    except (InvalidURI, ValueError) as exc:
        raise ConnectError(address, f"not a usable address: {safe_text(str(exc))}") from None


async def _ack_exchange(
    ws: ClientWebSocket, initiator: HandshakeInitiator, pacer: TurnPacer
) -> HandshakeResult:
    """The dialler's half after the upgrade (its hello went out with the 101): the ack in,
    then protocol 1.1's third message out before any traffic ("-> s, se"). The step that
    judges the ack (and, back in ``connect``, establishes the connection) waits its turn."""
    ack = await ws.recv()
    await pacer.turn()
    result = initiator.receive_ack(ack)
    if initiator.finish is not None:
        await ws.send(envelope.to_text(initiator.finish))
    return result


async def _quiet(coro: Any) -> None:
    try:
        await coro
    except Exception as exc:
        log.debug("keepalive ping failed: %r", exc)


def _origin_allowed(origin: str) -> bool:
    """Go's rule: the Origin's hostname is exactly localhost, 127.0.0.1 or ::1."""
    try:
        host = urlsplit(origin).hostname
    except ValueError:
        return False
    return host in ALLOWED_ORIGIN_HOSTS


def _reject_ack(own: NodeIdentity, peer_id: str, reason: str) -> str:
    """A ``handshake_ack`` with ``accepted: false`` (the shape Go's reject acks have)."""
    message = envelope.new_message(envelope.HANDSHAKE_ACK, own.id, peer_id, None)
    message.payload = HandshakeAckPayload(own, b"", False, reason).to_json().decode("utf-8")
    return envelope.to_text(message)


def _remote_ip(ws: WebSocket) -> str:
    remote = ws.remote_address
    return str(remote[0]) if remote else "unknown"


class _Dial:
    """The admission key of one outbound dial (it exists before its socket does)."""

    __slots__ = ()


_MAX_REASON_BODY = 120


def connect_failure_reason(exc: BaseException, *, timeout: float | None = None) -> str:
    """Why a dial failed, for :class:`ConnectError`: the HTTP status and (escaped,
    truncated) body of a refused upgrade, the errno name and text of a socket error
    (``ECONNREFUSED``, ``EMFILE``, ...), or what timed out. Remote text is data: escaped."""
    if isinstance(exc, InvalidStatus):
        response = exc.response
        body = bytes(response.body or b"").decode("utf-8", "replace").strip()
        text = f"HTTP {response.status_code}"
        if body:
            text += f" {safe_text(body[:_MAX_REASON_BODY])}"
        return text
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return f"timed out after {timeout:g} s" if timeout is not None else "timed out"
    if isinstance(exc, socket.gaierror):  # its errno is an EAI_* code, not an errno
        detail = exc.strerror or str(exc)
        return f"cannot resolve the host name: {safe_text(detail[:_MAX_REASON_BODY])}"
    if isinstance(exc, OSError):
        if exc.errno is not None:
            name = errno.errorcode.get(exc.errno, str(exc.errno))
            return f"{name} ({os.strerror(exc.errno)})"
        return f"{type(exc).__name__}: {safe_text(str(exc)[:_MAX_REASON_BODY]) or 'no detail'}"
    if isinstance(exc, ConnectionClosed):
        return f"connection closed ({safe_text(str(exc)[:_MAX_REASON_BODY])})"
    detail = safe_text(str(exc)[:_MAX_REASON_BODY])
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
