"""The Worker: answers a controller's requests (CONTROLLER_WORKER.md §2-3).

`Worker.handle(message, shared_secret=...)` is the whole protocol: a request in, the reply
(or None) out, no sockets. `attach(transport)` is the thin shell: it subscribes to the
transport, whose per-connection handler pool runs each request concurrently, bounded here
by one semaphore over all peers (the reference runs handlers inline in the read loop, so one
slow deploy stalls that peer), and sends the reply on the connection it came from.

Replies, error codes and error texts are the reference's, with its bugs fixed:
- a deploy `name` must be one safe path component (the reference lets ``../`` escape);
- ``"config": null`` falls back to the profile instead of starting with a null config;
- numeric stats decoded from JSON (floats) are reported, not skipped;
- an extracted miner binary is made executable and registered as a runnable miner type;
- a miner bundle built without a profile does not save Borg's default config as a profile.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import inspect
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import platformdirs
from p2p.controller import bundles
from p2p.controller.errors import ControllerError
from p2p.controller.miners import DeployTarget, MinerManager
from p2p.controller.profiles import ProfileManager, sanitise_name
from p2p.identity.text import safe_text
from p2p.transport.errors import MessageError
from p2p.transport.messages import (
    DeployAckPayload,
    DeployPayload,
    ErrorCode,
    GetLogsPayload,
    LogsPayload,
    Message,
    MessageType,
    MinerAckPayload,
    MinerStatsItem,
    Payload,
    PingPayload,
    PongPayload,
    StartMinerPayload,
    StatsPayload,
    StopMinerPayload,
)

if TYPE_CHECKING:
    from p2p.identity import NodeIdentity
    from p2p.transport import PeerConnection, Transport
    from p2p.transport.transport import IdentityProvider

log = logging.getLogger(__name__)

__all__ = ["ERR_MINER_MANAGER_NOT_CONFIGURED", "MAX_LOG_LINES", "Worker", "WorkerError"]

#: go-p2p ErrMinerManagerNotConfigured, sent verbatim.
ERR_MINER_MANAGER_NOT_CONFIGURED = "node: miner manager not configured"
#: go-p2p ErrIdentityNotInitialized.
ERR_IDENTITY_NOT_INITIALIZED = "node: node identity not initialized"
#: get_logs: `lines` outside 1..MAX_LOG_LINES means MAX_LOG_LINES (reference behaviour).
MAX_LOG_LINES = 10_000
#: A `logs` reply keeps the newest lines whose JSON fits this budget, so it stays well under
#: the 1 MiB WebSocket message limit (10 000 long lines would not; the peer would drop it).
MAX_LOGS_REPLY_BYTES = 768 * 1024
#: Requests of all peers handled at once (each connection also bounds its own queue).
DEFAULT_MAX_CONCURRENT = 16
_INT64_MAX = 2**63 - 1

P = TypeVar("P", bound=Payload)


class WorkerError(ControllerError):
    """A request failed; ``str()`` is the Go-style text sent back in the error reply."""

    def __init__(self, op: str, msg: str, cause: BaseException | str | None = None) -> None:
        text = f"Worker.{op}: {msg}"
        if cause is not None and str(cause):
            text += f": {cause}"
        super().__init__(text)


class _Sentinel(ControllerError):
    """An error whose text is sent verbatim (Go sentinel errors)."""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _as_int(value: Any) -> int | None:
    """A JSON integer, or an integral float within int64 (JSON numbers often decode so)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if abs(value) <= _INT64_MAX else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value) if abs(value) <= _INT64_MAX else None
    return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def _parse(message: Message, cls: type[P], op: str) -> P:
    """The request payload decoded with Go's rules (null/absent = zero value)."""
    try:
        return message.parse_payload(cls)
    except MessageError as exc:
        raise WorkerError(op, "invalid payload", exc) from exc


def _newest_within(lines: list[str], budget: int) -> list[str]:
    """The newest `lines` whose JSON encoding (plus commas) fits in `budget` bytes."""
    used = 0
    for i in range(len(lines) - 1, -1, -1):
        used += len(json.dumps(lines[i], ensure_ascii=False).encode("utf-8")) + 1
        if used > budget:
            return lines[i + 1 :]
    return lines


def _stats_mapping(stats: Any) -> Mapping[str, Any] | None:
    if isinstance(stats, Mapping):
        return stats
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        return dataclasses.asdict(stats)
    return None


class Worker:
    """Serves ping, get_stats, start_miner, stop_miner, get_logs and deploy.

    `node_manager` supplies this node's identity (``.identity``) and the shared secret with
    a peer (``.derive_shared_secret(public_key)``, for deploy passwords). `data_dir` is
    where deployed miners go (``<data_dir>/lethean-desktop/miners/<name>``); it defaults to
    the XDG data home, like the reference.
    """

    def __init__(
        self,
        node_manager: IdentityProvider,
        transport: Transport | None = None,
        miners: MinerManager | None = None,
        profiles: ProfileManager | None = None,
        *,
        data_dir: Path | str | None = None,
        max_concurrent: int = DEFAULT_MAX_CONCURRENT,
    ) -> None:
        if not 1 <= max_concurrent <= 1024:
            raise ValueError("max_concurrent must be in 1..1024")
        self.node_manager = node_manager
        self.miners = miners
        self.profiles = profiles
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._started = time.monotonic()
        self._sem = asyncio.Semaphore(max_concurrent)
        self._unsubscribe: Callable[[], None] | None = None
        self._handlers: dict[str, Callable[[Message, bytes | None], Awaitable[Message]]] = {
            MessageType.PING: self._ping,
            MessageType.GET_STATS: self._get_stats,
            MessageType.START_MINER: self._start_miner,
            MessageType.STOP_MINER: self._stop_miner,
            MessageType.GET_LOGS: self._get_logs,
            MessageType.DEPLOY: self._deploy,
        }
        if transport is not None:
            self.attach(transport)

    # -- identity --------------------------------------------------------------------------

    def _identity(self) -> NodeIdentity:
        identity = self.node_manager.identity
        if identity is None:
            raise _Sentinel(ERR_IDENTITY_NOT_INITIALIZED)
        return identity

    @property
    def data_dir(self) -> Path:
        if self._data_dir is None:
            self._data_dir = Path(platformdirs.user_data_dir())
        return self._data_dir

    @property
    def uptime(self) -> int:
        """Whole seconds since this Worker was created (what `stats` reports)."""
        return int(time.monotonic() - self._started)

    # -- sans-I/O core ---------------------------------------------------------------------

    async def handle(
        self, message: Message, *, shared_secret: bytes | None = None
    ) -> Message | None:
        """Answer one request; None for messages a worker ignores (pong, responses...).

        `shared_secret` is the connection's secret; only `deploy` needs it.
        """
        handler = self._handlers.get(message.type)
        if handler is None:
            return None
        try:
            return await handler(message, shared_secret)
        except ControllerError as exc:
            return self._error_reply(message, str(exc))
        except Exception as exc:  # a miner/profile implementation failed unexpectedly
            log.exception("worker handler for %s failed", safe_text(message.type))
            return self._error_reply(message, f"Worker: internal error: {type(exc).__name__}")

    def _error_reply(self, request: Message, text: str) -> Message:
        identity = self.node_manager.identity
        own = identity.id if identity is not None else request.to
        return request.error_reply(own, ErrorCode.OPERATION_FAILED, text)

    async def _ping(self, message: Message, _secret: bytes | None) -> Message:
        ping = _parse(message, PingPayload, "handlePing")
        return message.reply(MessageType.PONG, PongPayload(ping.sent_at, _now_ms()))

    async def _get_stats(self, message: Message, _secret: bytes | None) -> Message:
        identity = self._identity()
        miners: list[MinerStatsItem] = []
        if self.miners is not None:
            for miner in self.miners.list_miners():
                try:
                    item = self._miner_item(miner.get_name(), miner.get_type(), miner.get_stats())
                except Exception as exc:
                    log.debug("skipping miner in stats: %s", exc)
                    continue
                miners.append(item)
        stats = StatsPayload(identity.id, identity.name, miners, self.uptime)
        return message.reply(MessageType.STATS, stats)

    @staticmethod
    def _miner_item(name: str, miner_type: str, stats: Any) -> MinerStatsItem:
        item = MinerStatsItem(name=name, type=miner_type)
        mapping = _stats_mapping(stats)
        if mapping is None:
            return item
        hashrate = _as_float(mapping.get("hashrate"))
        if hashrate is not None:
            item.hashrate = hashrate
        for key in ("shares", "rejected", "uptime"):
            value = _as_int(mapping.get(key))
            if value is not None:
                setattr(item, key, value)
        for key in ("pool", "algorithm"):
            value = mapping.get(key)
            if isinstance(value, str):
                setattr(item, key, value)
        return item

    async def _start_miner(self, message: Message, _secret: bytes | None) -> Message:
        op = "handleStartMiner"
        if self.miners is None:
            raise _Sentinel(ERR_MINER_MANAGER_NOT_CONFIGURED)
        req = _parse(message, StartMinerPayload, op)
        if not req.miner_type:
            raise WorkerError(op, "miner type is required")
        config: Any = None
        if req.config is not None and req.config != "null":
            config = req.config_value()
        else:  # absent or null: the profile decides
            if self.profiles is None:
                raise WorkerError(op, "no config provided and no profile manager configured")
            try:
                config = self.profiles.get_profile(req.profile_id)
            except Exception:
                raise WorkerError(op, f"profile not found: {req.profile_id}") from None
        try:
            started = self.miners.start_miner(req.miner_type, config)
            miner = await started if inspect.isawaitable(started) else started
        except Exception as exc:
            log.info("start_miner %s failed: %s", safe_text(req.miner_type), safe_text(exc))
            return message.reply(MessageType.MINER_ACK, MinerAckPayload(False, "", str(exc)))
        return message.reply(MessageType.MINER_ACK, MinerAckPayload(True, miner.get_name()))

    async def _stop_miner(self, message: Message, _secret: bytes | None) -> Message:
        op = "handleStopMiner"
        if self.miners is None:
            raise _Sentinel(ERR_MINER_MANAGER_NOT_CONFIGURED)
        req = _parse(message, StopMinerPayload, op)
        ack = MinerAckPayload(True, req.miner_name)
        try:
            stopped = self.miners.stop_miner(req.miner_name)
            if inspect.isawaitable(stopped):
                await stopped
        except Exception as exc:
            ack = MinerAckPayload(False, req.miner_name, str(exc))
        return message.reply(MessageType.MINER_ACK, ack)

    async def _get_logs(self, message: Message, _secret: bytes | None) -> Message:
        op = "handleGetLogs"
        if self.miners is None:
            raise _Sentinel(ERR_MINER_MANAGER_NOT_CONFIGURED)
        req = _parse(message, GetLogsPayload, op)
        lines = req.lines if 0 < req.lines <= MAX_LOG_LINES else MAX_LOG_LINES
        try:
            miner = self.miners.get_miner(req.miner_name)
        except Exception:
            raise WorkerError(op, f"miner not found: {req.miner_name}") from None
        since = None
        if req.since > 0:
            try:
                since = datetime.fromtimestamp(req.since / 1000, tz=timezone.utc)
            except (OverflowError, OSError, ValueError):
                since = datetime.max.replace(tzinfo=timezone.utc)  # beyond any log line
        history = list(miner.get_console_history_since(lines, since))[-lines:]
        kept = _newest_within(history, MAX_LOGS_REPLY_BYTES)
        has_more = len(history) >= lines or len(kept) < len(history)
        return message.reply(MessageType.LOGS, LogsPayload(req.miner_name, kept, has_more))

    # -- deploy ----------------------------------------------------------------------------

    async def _deploy(self, message: Message, secret: bytes | None) -> Message:
        op = "handleDeploy"
        req = _parse(message, DeployPayload, op)
        if req.type not in ("profile", "miner", "full"):
            raise WorkerError(op, f"unknown bundle type: {req.type}")
        try:
            name = sanitise_name(req.name)
        except ControllerError:
            raise WorkerError(op, f"invalid bundle name: {req.name!r}") from None
        if secret is None:
            raise WorkerError(op, "no shared secret for this connection")
        bundle = bundles.Bundle(bundles.BundleType(req.type), name, req.data or b"", req.checksum)
        password = base64.b64encode(secret).decode("ascii")
        if req.type == "profile":
            return await self._deploy_profile(message, bundle, password, name)
        return await self._deploy_miner(message, bundle, password, name)

    async def _deploy_profile(
        self, message: Message, bundle: bundles.Bundle, password: str, name: str
    ) -> Message:
        op = "handleDeploy"
        if self.profiles is None:
            raise WorkerError(op, "profile manager not configured")
        try:
            raw = await asyncio.to_thread(bundles.extract_profile_bundle, bundle, password)
        except ControllerError as exc:
            raise WorkerError(op, "failed to extract profile bundle", exc) from exc
        try:
            profile = json.loads(raw)
        except ValueError as exc:
            raise WorkerError(op, "invalid profile JSON", exc) from exc
        if isinstance(profile, dict) and not profile.get("id"):
            profile = {**profile, "id": name}  # deployed under its bundle name
        try:
            self.profiles.save_profile(profile)
        except Exception as exc:
            return message.reply(MessageType.DEPLOY_ACK, DeployAckPayload(False, name, str(exc)))
        return message.reply(MessageType.DEPLOY_ACK, DeployAckPayload(True, name))

    async def _deploy_miner(
        self, message: Message, bundle: bundles.Bundle, password: str, name: str
    ) -> Message:
        op = "handleDeploy"
        dest = self.data_dir / "lethean-desktop" / "miners" / name
        try:
            miner_path, profile_json = await asyncio.to_thread(
                bundles.extract_miner_bundle, bundle, password, dest
            )
        except ControllerError as exc:
            raise WorkerError(op, "failed to extract miner bundle", exc) from exc
        mode = miner_path.stat().st_mode
        if not mode & 0o100:  # tar entries arrive as 0600; a miner must run
            miner_path.chmod(mode | 0o700)
        if isinstance(self.miners, DeployTarget):
            try:
                self.miners.register_binary(name, miner_path)
            except Exception as exc:
                log.warning("deployed miner %s not registered: %s", safe_text(name), safe_text(exc))
        if profile_json is not None and self.profiles is not None:
            self._save_bundled_profile(profile_json, name)
        return message.reply(MessageType.DEPLOY_ACK, DeployAckPayload(True, name))

    def _save_bundled_profile(self, profile_json: bytes, name: str) -> None:
        assert self.profiles is not None
        try:
            profile = json.loads(profile_json)
        except ValueError as exc:
            log.warning(
                "miner bundle %s has an invalid profile: %s", safe_text(name), safe_text(exc)
            )
            return
        if isinstance(profile, dict) and not profile.get("id"):
            profile = {**profile, "id": name}
        try:
            self.profiles.save_profile(profile)
        except Exception as exc:
            log.warning("profile of miner bundle %s not saved: %s", safe_text(name), safe_text(exc))

    # -- transport shell -------------------------------------------------------------------

    def attach(self, transport: Transport) -> None:
        """Serve requests arriving on `transport` (replaces an earlier attachment)."""
        self.detach()
        self._unsubscribe = transport.on_message(self.on_message)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = None

    def on_message(self, conn: PeerConnection, message: Message) -> Awaitable[None] | None:
        """Transport callback: a coroutine for requests (the connection runs it in its
        bounded handler pool), None for everything else.

        ``ping`` is skipped here because the transport answers every ping itself (a
        second pong would only be dropped by the controller).
        """
        if message.type == MessageType.PING or message.type not in self._handlers:
            return None
        return self._serve(conn, message)

    def _secret_for(self, conn: PeerConnection) -> bytes | None:
        try:
            return bytes(self.node_manager.derive_shared_secret(conn.identity.public_key))
        except Exception as exc:
            log.warning("no shared secret for %s: %s", conn.peer_id, safe_text(exc))
            return None

    async def _serve(self, conn: PeerConnection, message: Message) -> None:
        async with self._sem:
            secret = self._secret_for(conn) if message.type == MessageType.DEPLOY else None
            reply = await self.handle(message, shared_secret=secret)
        if reply is None:
            return
        try:
            await conn.send(reply)
        except Exception as exc:
            log.info("reply to %s not sent: %s", safe_text(message.from_), safe_text(exc))

    async def close(self) -> None:
        """Stop serving new requests."""
        self.detach()
