"""The Controller: requests to remote workers, correlated by ``replyTo``.

Each request registers a future under its message id, is sent, and waits for the reply with
the reference's per-operation timeout (CONTROLLER_WORKER.md §1). Differences from go-p2p,
all invisible on the wire:
- a reply is accepted only from the peer the request went to (others are logged, dropped);
- delivering a reply and timing out cannot race (one event loop; a done future is skipped);
- when the connection to a peer drops, its pending requests fail at once with
  `ConnectionLostError` instead of waiting for their timeout;
- concurrent auto-connects to one peer share one handshake;
- `get_all_stats` is bounded and reports per-peer errors next to the results.

A `get_all_stats` round is the controller's per-peer hot path with a fleet: it runs
`max_concurrent_stats` worker tasks pulling peers from one queue (not a task per peer),
and one timer (`_Deadlines`) for every request of the round instead of one per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from p2p.controller.authz import Capability, required_capability
from p2p.controller.bundles import Bundle
from p2p.controller.errors import (
    ConnectionLostError,
    ControllerError,
    DeployFailedError,
    MinerCommandError,
    PeerNotFoundError,
    RequestError,
    UnauthorizedError,
    UnexpectedResponseError,
)
from p2p.controller.payloads import (
    DeployAckPayload,
    DeployPayload,
    GetLogsPayload,
    LogsPayload,
    MinerAckPayload,
    StartMinerPayload,
    StatsPayload,
    StopMinerPayload,
)
from p2p.identity.text import safe_text
from p2p.transport import (
    ErrorCode,
    Message,
    MessageError,
    MessageType,
    Payload,
    PingPayload,
    ProtocolError,
    ResponseError,
    password_for_secret,
    validate_response,
    with_timeout,
)

if TYPE_CHECKING:
    from p2p.peers import PeerRegistry
    from p2p.transport import IdentityProvider, PeerConnection, Transport

log = logging.getLogger(__name__)

P = TypeVar("P", bound=Payload)
A = TypeVar("A", MinerAckPayload, DeployAckPayload)
"""The acknowledgements with ``success``/``error``."""

#: Envelope JSON, escaping and SMSG framing around a deploy payload (measured: ~300 bytes).
_ENVELOPE_MARGIN = 1024

__all__ = [
    "AllStats",
    "ConnectionLostError",
    "Controller",
    "ControllerConfig",
    "DeployFailedError",
    "MinerCommandError",
    "PeerNotFoundError",
    "RequestError",
    "RequestTimeout",
    "UnauthorizedError",
    "UnexpectedResponseError",
]


class RequestTimeout(RequestError, TimeoutError):
    """No reply within the operation's timeout (the peer's timeout count was bumped)."""

    def __init__(self, peer_id: str, request_type: str, timeout: float) -> None:
        super().__init__(
            f"request timeout ({request_type} to {peer_id} after {timeout:g} s)", peer_id=peer_id
        )
        self.request_type = request_type
        self.timeout = timeout


def _bounded(name: str, value: float, low: float, high: float) -> None:
    if not (math.isfinite(value) and low < value <= high):
        raise ValueError(f"{name} must be in ({low:g}, {high:g}], got {value!r}")


@dataclass(frozen=True)
class ControllerConfig:
    """Timeouts (seconds) and bounds. Defaults are the reference's."""

    stats_timeout: float = 10.0
    miner_timeout: float = 30.0
    logs_timeout: float = 10.0
    ping_timeout: float = 5.0
    #: The reference has no deploy call; a ~1 MiB bundle over a slow link needs a while.
    deploy_timeout: float = 60.0
    #: Auto-connect: upgrade (10 s) + handshake (10 s), before the request timer starts.
    connect_timeout: float = 20.0
    #: Concurrent requests of one `get_all_stats`.
    max_concurrent_stats: int = 32
    #: Requests in flight at once (beyond that new requests fail fast).
    max_pending: int = 100_000

    def __post_init__(self) -> None:
        for name in (
            "stats_timeout",
            "miner_timeout",
            "logs_timeout",
            "ping_timeout",
            "deploy_timeout",
            "connect_timeout",
        ):
            _bounded(name, getattr(self, name), 0.0, 3600.0)
        if not 1 <= self.max_concurrent_stats <= 4096:
            raise ValueError("max_concurrent_stats must be in 1..4096")
        if not 1 <= self.max_pending <= 10_000_000:
            raise ValueError("max_pending must be in 1..10000000")


@dataclass
class AllStats(Mapping[str, StatsPayload]):
    """`get_all_stats` result: a mapping peer id -> stats payload, plus `errors`.

    Iterating gives the peers that answered (as the reference's map does); `errors` holds
    the exception of every connected peer that did not.
    """

    stats: dict[str, StatsPayload] = field(default_factory=dict)
    errors: dict[str, Exception] = field(default_factory=dict)

    def __getitem__(self, key: str) -> StatsPayload:
        return self.stats[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.stats)

    def __len__(self) -> int:
        return len(self.stats)


@dataclass(slots=True)
class _Pending:
    peer_id: str
    conn_key: int
    future: asyncio.Future[Message]


_CLOCK_RESOLUTION = time.get_clock_info("monotonic").resolution


class _RoundTimeout(TimeoutError):
    """Set on a round request's future by `_Deadlines` (never raised to callers)."""


class _Deadlines:
    """One timer for a batch of requests with the same timeout (a `get_all_stats` round).

    Requests are added as they are sent, so their deadlines come in order: the earliest
    still waiting is always at the front, and one timer handle armed for it replaces a
    timer per request. An expired request's future gets `_RoundTimeout`; done
    futures are dropped from the front as they are passed.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self._timeout = timeout
        self._queue: deque[tuple[float, asyncio.Future[Message]]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def timeout(self) -> float:
        return self._timeout

    def __len__(self) -> int:
        """Entries held (done ones included until they reach the front)."""
        return len(self._queue)

    def add(self, future: asyncio.Future[Message]) -> None:
        """`future` fails with `_RoundTimeout` `timeout` seconds from now unless done first."""
        queue = self._queue
        while queue and queue[0][1].done():
            queue.popleft()
        when = self._loop.time() + self._timeout
        queue.append((when, future))
        if self._timer is None:
            self._timer = self._loop.call_at(when, self._expire)

    def _expire(self) -> None:
        self._timer = None
        queue = self._queue
        now = self._loop.time() + _CLOCK_RESOLUTION  # the loop may run a timer that early
        while queue:
            when, future = queue[0]
            if future.done():
                queue.popleft()
            elif when <= now:
                queue.popleft()
                future.set_exception(_RoundTimeout())
            else:
                self._timer = self._loop.call_at(when, self._expire)
                return

    def close(self) -> None:
        """Cancel the timer and forget every entry (their owners clean up themselves)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._queue.clear()


class Controller:
    """Drives remote workers: stats, miners, logs, ping, deploy.

    `registry` is a `p2p.peers.PeerRegistry` (peer lookup for auto-connect, timeouts and
    ping metrics); `transport` a started `p2p.transport.Transport`. The controller
    subscribes to the transport for replies (messages with ``replyTo``).
    """

    def __init__(
        self,
        node_manager: IdentityProvider,
        registry: PeerRegistry,
        transport: Transport,
        config: ControllerConfig | None = None,
    ) -> None:
        self.node_manager = node_manager
        self.registry = registry
        self.transport = transport
        self.config = config or ControllerConfig()
        self._pending: dict[str, _Pending] = {}
        self._by_conn: dict[int, set[str]] = {}
        self._watched: dict[int, asyncio.Task[None]] = {}
        self._connecting: dict[str, asyncio.Task[PeerConnection]] = {}
        self._unsubscribe = transport.on_message(self.on_message)

    # -- plumbing --------------------------------------------------------------------------

    def _own_id(self) -> str:
        identity = self.node_manager.identity
        if identity is None:
            raise ControllerError("node: node identity not initialized")
        return str(identity.id)

    @property
    def pending_count(self) -> int:
        """Requests currently waiting for a reply."""
        return len(self._pending)

    def on_message(self, conn: PeerConnection, message: Message) -> None:
        """Transport callback: hand a reply to the request waiting for it."""
        reply_to = message.reply_to
        if not reply_to:
            return
        entry = self._pending.get(reply_to)
        if entry is None:
            log.debug("reply %s to an unknown or finished request", safe_text(reply_to))
            return
        sender = conn.peer_id
        if sender != entry.peer_id:
            log.warning(
                "reply to %s came from %s, not %s: ignored",
                safe_text(reply_to),
                sender,
                entry.peer_id,
            )
            return
        self._forget(reply_to)
        if not entry.future.done():
            entry.future.set_result(message)

    def _forget(self, msg_id: str) -> None:
        entry = self._pending.pop(msg_id, None)
        if entry is not None:
            ids = self._by_conn.get(entry.conn_key)
            if ids is not None:
                ids.discard(msg_id)
                if not ids:
                    del self._by_conn[entry.conn_key]

    def _watch(self, conn: PeerConnection) -> None:
        """Fail this connection's pending requests as soon as it closes."""
        key = id(conn)
        if key in self._watched:
            return
        self._watched[key] = asyncio.get_running_loop().create_task(self._watcher(conn, key))

    async def _watcher(self, conn: PeerConnection, key: int) -> None:
        """Requests sent on a connection cannot be answered once it is gone."""
        try:
            await conn.wait_closed()
        finally:
            self._watched.pop(key, None)
        for msg_id in list(self._by_conn.get(key, ())):
            entry = self._pending.get(msg_id)
            self._forget(msg_id)
            if entry is not None and not entry.future.done():
                entry.future.set_exception(ConnectionLostError(conn.peer_id))

    async def _connection(self, peer_id: str) -> PeerConnection:
        """The live connection to `peer_id`, connecting via the registry if needed."""
        conn = self.transport.connection(peer_id)
        if conn is not None and not conn.closed:
            return conn
        task = self._connecting.get(peer_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._dial(peer_id))
            self._connecting[peer_id] = task
            task.add_done_callback(lambda t: self._dialled(peer_id, t))
        return await asyncio.shield(task)

    def _dialled(self, peer_id: str, task: asyncio.Task[PeerConnection]) -> None:
        if self._connecting.get(peer_id) is task:
            del self._connecting[peer_id]
        if not task.cancelled():
            task.exception()  # retrieved: every waiter gets it through the shield

    async def _dial(self, peer_id: str) -> PeerConnection:
        peer = self.registry.get(peer_id)
        if peer is None:
            raise PeerNotFoundError(peer_id)
        if not peer.address:
            raise RequestError(f"peer {peer_id} has no address", peer_id=peer_id)
        connect = self.transport.connect(peer.address, expected_public_key=peer.public_key or None)
        try:
            conn: PeerConnection = await with_timeout(connect, self.config.connect_timeout)
        except TimeoutError:
            raise RequestError(f"connect to {peer_id} timed out", peer_id=peer_id) from None
        except Exception as exc:
            raise RequestError(f"connect to {peer_id} failed: {exc}", peer_id=peer_id) from exc
        if conn.peer_id != peer_id:
            log.info("peer %s answered as %s", peer_id, conn.peer_id)
        return conn

    async def _request(
        self,
        peer_id: str,
        msg_type: MessageType,
        payload: Payload | None,
        expected: MessageType,
        timeout: float,
    ) -> Message:
        if len(self._pending) >= self.config.max_pending:
            raise RequestError("too many requests in flight", peer_id=peer_id)
        conn = await self._connection(peer_id)
        message, future = self._register(conn, msg_type, payload)
        msg_id = message.id
        try:
            try:
                await conn.send(message)
            except Exception as exc:
                raise RequestError(f"failed to send message: {exc}", peer_id=peer_id) from exc
            try:
                reply: Message = await with_timeout(future, timeout)
            except TimeoutError:
                self._record_timeout(peer_id)
                raise RequestTimeout(peer_id, msg_type, timeout) from None
        finally:
            self._forget(msg_id)
            if not future.done():
                future.cancel()
        self._check_reply(reply, expected, conn, msg_type, peer_id)
        return reply

    def _register(
        self, conn: PeerConnection, msg_type: MessageType, payload: Payload | None
    ) -> tuple[Message, asyncio.Future[Message]]:
        """Build a request to `conn`'s peer and register the future its reply resolves."""
        target = conn.peer_id
        message = Message.new(msg_type, self._own_id(), target, payload)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        key = id(conn)
        self._pending[message.id] = _Pending(target, key, future)
        ids = self._by_conn.get(key)
        if ids is None:
            self._by_conn[key] = {message.id}
        else:
            ids.add(message.id)
        if key not in self._watched:
            self._watch(conn)
        return message, future

    def _check_reply(
        self,
        reply: Message,
        expected: MessageType,
        conn: PeerConnection,
        msg_type: MessageType,
        peer_id: str,
    ) -> None:
        """`validate_response`, with the errors the controller raises for it."""
        target = conn.peer_id
        try:
            validate_response(reply, expected)
        except ResponseError as exc:
            raise UnexpectedResponseError(str(exc), peer_id=peer_id) from None
        except ProtocolError as exc:
            if exc.code != ErrorCode.UNAUTHORIZED:
                raise
            identity = self.node_manager.identity
            raise UnauthorizedError(
                target,
                identity.public_key if identity is not None else "",
                required_capability(msg_type) or Capability.CONTROL,
                peer_name=str(getattr(conn.identity, "name", "") or ""),
                remote_message=exc.message[:256],
            ) from None

    def _record_timeout(self, peer_id: str) -> None:
        try:
            self.registry.record_timeout(peer_id)
        except Exception as exc:  # the peer may have been removed meanwhile
            log.debug("record_timeout(%s): %s", peer_id, exc)

    # -- operations ------------------------------------------------------------------------

    @staticmethod
    def _payload(reply: Message, cls: type[P], peer_id: str) -> P:
        try:
            return reply.parse_payload(cls)
        except MessageError as exc:
            raise UnexpectedResponseError(
                f"failed to parse {reply.type} payload: {exc}", peer_id=peer_id
            ) from None

    async def _acknowledged(
        self,
        peer_id: str,
        msg_type: MessageType,
        payload: Payload,
        ack: tuple[MessageType, type[A]],
        *,
        timeout: float,
        refused: tuple[type[RequestError], str],
    ) -> A:
        """A command the worker acknowledges (``miner_ack``, ``deploy_ack``): the ack, or
        ``refused``'s error ("<what> failed: <its error>") when it says ``success: false``."""
        ack_type, ack_cls = ack
        reply = await self._request(peer_id, msg_type, payload, ack_type, timeout)
        parsed = self._payload(reply, ack_cls, peer_id)
        if not parsed.success:
            error_cls, what = refused
            raise error_cls(f"{what} failed: {parsed.error}", peer_id=peer_id)
        return parsed

    async def get_remote_stats(self, peer_id: str) -> StatsPayload:
        """The worker's `stats` payload (node id/name, miners, uptime)."""
        reply = await self._request(
            peer_id, MessageType.GET_STATS, None, MessageType.STATS, self.config.stats_timeout
        )
        return self._payload(reply, StatsPayload, peer_id)

    async def start_remote_miner(
        self,
        peer_id: str,
        miner_type: str,
        profile_id: str | None = None,
        config: Any = None,
    ) -> str:
        """Start a miner on the worker; returns its name.

        `config` (any JSON value) overrides the profile named by `profile_id`.
        """
        if not miner_type:
            raise ControllerError("miner type is required")
        raw_config = None
        if config is not None:
            try:
                raw_config = json.dumps(config, separators=(",", ":"), ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                raise ControllerError(f"config is not JSON: {exc}") from None
        started = await self._acknowledged(
            peer_id,
            MessageType.START_MINER,
            StartMinerPayload(miner_type, profile_id or "", raw_config),
            (MessageType.MINER_ACK, MinerAckPayload),
            timeout=self.config.miner_timeout,
            refused=(MinerCommandError, "miner start"),
        )
        return started.miner_name

    async def stop_remote_miner(self, peer_id: str, miner_name: str) -> None:
        """Stop a miner on the worker."""
        await self._acknowledged(
            peer_id,
            MessageType.STOP_MINER,
            StopMinerPayload(miner_name),
            (MessageType.MINER_ACK, MinerAckPayload),
            timeout=self.config.miner_timeout,
            refused=(MinerCommandError, "miner stop"),
        )

    async def get_remote_logs(
        self,
        peer_id: str,
        miner_name: str,
        lines: int,
        since: datetime | int | None = None,
    ) -> list[str]:
        """Up to `lines` recent output lines of a remote miner (only those after `since`).

        `since` is a datetime or Unix milliseconds (0/None: no limit).
        """
        since_ms = int(since.timestamp() * 1000) if isinstance(since, datetime) else since
        payload = GetLogsPayload(miner_name, int(lines), max(0, int(since_ms or 0)))
        reply = await self._request(
            peer_id, MessageType.GET_LOGS, payload, MessageType.LOGS, self.config.logs_timeout
        )
        return self._payload(reply, LogsPayload, peer_id).lines or []

    async def get_all_stats(self) -> AllStats:
        """Stats of every connected peer, fetched concurrently (at most
        `max_concurrent_stats` requests in flight), each with `stats_timeout`."""
        peers = self.registry.connected_ids()
        result = AllStats()
        if not peers:
            return result
        loop = asyncio.get_running_loop()
        deadlines = _Deadlines(loop, self.config.stats_timeout)
        queue = iter(peers)  # shared: each round worker takes the next peer
        workers = [
            loop.create_task(self._stats_worker(queue, result, deadlines))
            for _ in range(min(self.config.max_concurrent_stats, len(peers)))
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            # an unexpected error in one worker ends the round: the others must not wait
            # on requests the closed timer no longer bounds
            for task in workers:
                task.cancel()
            deadlines.close()
        return result

    async def _stats_worker(
        self, queue: Iterable[str], result: AllStats, deadlines: _Deadlines
    ) -> None:
        """One of a round's workers: stats of the next peer, until none is left."""
        for pid in queue:
            try:
                result.stats[pid] = await self._round_stats(pid, deadlines)
            except (ControllerError, ProtocolError, OSError) as exc:
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("stats of %s failed: %s", pid, safe_text(exc))
                result.errors[pid] = exc

    async def _round_stats(self, peer_id: str, deadlines: _Deadlines) -> StatsPayload:
        """`get_remote_stats` within a round: the same checks, errors and registry updates,
        with the round's timer instead of one per request."""
        if len(self._pending) >= self.config.max_pending:
            raise RequestError("too many requests in flight", peer_id=peer_id)
        conn = self.transport.connection(peer_id)
        if conn is None or conn.closed:
            return await self.get_remote_stats(peer_id)  # auto-connect, as a single request
        message, future = self._register(conn, MessageType.GET_STATS, None)
        msg_id = message.id
        try:
            try:
                await conn.send(message)
            except Exception as exc:
                raise RequestError(f"failed to send message: {exc}", peer_id=peer_id) from exc
            deadlines.add(future)
            try:
                reply = await future
            except _RoundTimeout:
                self._record_timeout(peer_id)
                raise RequestTimeout(peer_id, MessageType.GET_STATS, deadlines.timeout) from None
        finally:
            self._forget(msg_id)
            if not future.done():
                future.cancel()
        self._check_reply(reply, MessageType.STATS, conn, MessageType.GET_STATS, peer_id)
        return self._payload(reply, StatsPayload, peer_id)

    async def ping_peer(self, peer_id: str) -> float:
        """Round-trip time in milliseconds; stored as the peer's ping metric.

        Measured from just before the ping is built until the pong is delivered, as the
        reference does, but after any auto-connect (which the reference counts too).
        """
        await self._connection(peer_id)
        start = time.monotonic()
        await self._request(
            peer_id,
            MessageType.PING,
            PingPayload(time.time_ns() // 1_000_000),
            MessageType.PONG,
            self.config.ping_timeout,
        )
        rtt_ms = (time.monotonic() - start) * 1000.0
        peer = self.registry.get(peer_id)
        if peer is not None:
            try:
                self.registry.update_metrics(peer_id, rtt_ms, peer.geo_km, peer.hops)
            except Exception as exc:  # removed meanwhile
                log.debug("ping metric of %s not stored: %s", peer_id, safe_text(exc))
        return rtt_ms

    async def connect_to_peer(self, peer_id: str) -> PeerConnection:
        """Connect to a registered peer (no-op if connected); returns the connection."""
        return await self._connection(peer_id)

    async def disconnect_from_peer(self, peer_id: str) -> None:
        """Close the connection to `peer_id` (pending requests to it fail at once)."""
        conn = self.transport.connection(peer_id)
        if conn is None:
            raise RequestError(f"peer {peer_id} not connected", peer_id=peer_id)
        await conn.close()

    async def deploy(self, peer_id: str, bundle: Bundle) -> str:
        """Send a bundle; returns the name the worker deployed it under.

        Encrypted bundles must be made with ``await controller.bundle_password(peer_id)``.
        """
        payload = DeployPayload(bundle.type.value, bundle.data, bundle.checksum, bundle.name)
        size = len(payload.to_json()) + _ENVELOPE_MARGIN
        limit = self.transport.config.max_message_size
        if size > limit:
            # Sent anyway, the worker would close the connection (1009) and drop every
            # request on it; the reference has the same ~750 KB ceiling on bundle data.
            raise RequestError(
                f"bundle too large for one message: ~{size} bytes, limit {limit}", peer_id=peer_id
            )
        deployed = await self._acknowledged(
            peer_id,
            MessageType.DEPLOY,
            payload,
            (MessageType.DEPLOY_ACK, DeployAckPayload),
            timeout=self.config.deploy_timeout,
            refused=(DeployFailedError, "deploy"),
        )
        return deployed.name

    async def bundle_password(self, peer_id: str) -> str:
        """The password a worker decrypts our bundles with: base64(shared secret)."""
        conn = await self._connection(peer_id)
        return password_for_secret(conn.shared_secret)  # the handshake's, carried forward

    async def close(self) -> None:
        """Unsubscribe and fail whatever is still pending."""
        self._unsubscribe()
        for msg_id, entry in list(self._pending.items()):
            self._forget(msg_id)
            if not entry.future.done():
                entry.future.set_exception(RequestError("controller closed", peer_id=entry.peer_id))
        tasks = [*self._watched.values(), *self._connecting.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
