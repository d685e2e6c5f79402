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

Before any handler runs, the request's capability (`p2p.controller.authz`) is checked
against the policy for the public key the peer proved in the handshake; a refusal is the
protocol's error reply with code 1002 ("unauthorized: ..."). A deploy never replaces an
existing miner type or profile (unless the policy allows it for that controller), stays
within `DeployLimits`, is validated whole before anything is stored, and is extracted to
a temporary directory that is moved into place only when complete. Remote strings are
clipped (`MAX_ECHO` characters) in replies and logged escaped (``%r``) and clipped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import platformdirs
from p2p.controller import bundles
from p2p.controller.authz import Capability, Policy, required_capability, unauthorized_text
from p2p.controller.deploy_guard import (
    DeployLimits,
    DeployRefusedError,
    Usage,
    check_quota,
    miner_usage,
    profile_usage,
)
from p2p.controller.errors import (
    ControllerError,
    WorkerError,
)
from p2p.controller.miners import DeployTarget, MinerManager
from p2p.controller.payloads import (
    DeployAckPayload,
    DeployPayload,
    GetLogsPayload,
    LogsPayload,
    MinerAckPayload,
    MinerStatsItem,
    StartMinerPayload,
    StatsPayload,
    StopMinerPayload,
)
from p2p.controller.profiles import ProfileManager, sanitise_name
from p2p.identity.text import safe_text
from p2p.transport import (
    ErrorCode,
    Message,
    MessageError,
    MessageType,
    Payload,
    PingPayload,
    PongPayload,
    password_for_secret,
)

if TYPE_CHECKING:
    from p2p.identity import NodeIdentity
    from p2p.transport import IdentityProvider, PeerConnection, Transport

log = logging.getLogger(__name__)

__all__ = [
    "ERR_MINER_MANAGER_NOT_CONFIGURED",
    "MAX_ECHO",
    "MAX_LOG_LINES",
    "Worker",
    "WorkerError",
    "clip",
]

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
#: A remote string (miner name, type, profile id, bundle name) is echoed in a reply or a
#: log line clipped to this many characters (a 700 KB `minerName` must not come back).
MAX_ECHO = 128
#: The whole text of an error reply is clipped to this (a backstop over MAX_ECHO).
MAX_ERROR_TEXT = 1024
#: Refusals are logged at warning level once per key per this many seconds (then debug).
REFUSAL_LOG_INTERVAL = 60.0
_MAX_REFUSAL_KEYS = 1024

P = TypeVar("P", bound=Payload)


@dataclasses.dataclass(frozen=True)
class _Caller:
    """Who sent a request: the connection's shared secret and proven public key."""

    secret: bytes | None
    public_key: str


class _Sentinel(ControllerError):
    """An error whose text is sent verbatim (Go sentinel errors)."""


def clip(value: object, limit: int = MAX_ECHO) -> str:
    """`value` as text, at most `limit` characters (an ellipsis marks a cut)."""
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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

    `node_manager` supplies this node's identity (``.identity``); a deploy's password comes
    from the connection's handshake secret (``conn.shared_secret``). `data_dir` is
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
        policy: Policy | None = None,
        limits: DeployLimits | None = None,
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
        #: who may do what; the default grants control to no one
        self.policy = policy if policy is not None else Policy()
        self.limits = limits if limits is not None else DeployLimits()
        #: requests refused by the policy since start
        self.refused = 0
        self._refusal_logged: dict[str, float] = {}
        self._deploy_lock = asyncio.Lock()
        self._handlers: dict[str, Callable[[Message, _Caller], Awaitable[Message]]] = {
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
        self,
        message: Message,
        *,
        shared_secret: bytes | None = None,
        public_key: str | None = None,
    ) -> Message | None:
        """Answer one request; None for messages a worker ignores (pong, responses...).

        `public_key` is the key the sender proved in the handshake: the policy decides by
        it (no key: only what the policy grants everyone). `shared_secret` is the
        connection's secret; only `deploy` needs it.
        """
        handler = self._handlers.get(message.type)
        if handler is None:
            return None
        key = public_key or ""
        capability = required_capability(message.type)
        if capability is not None and not self.policy.allows(key, capability):
            return self._refuse(message, capability, key)
        try:
            return await handler(message, _Caller(shared_secret, key))
        except ControllerError as exc:
            return self._error_reply(message, str(exc))
        except Exception as exc:  # a miner/profile implementation failed unexpectedly
            log.exception("worker handler for %s failed", safe_text(message.type))
            return self._error_reply(message, f"Worker: internal error: {type(exc).__name__}")

    def _refuse(self, message: Message, capability: Capability, key: str) -> Message:
        self.refused += 1
        now = time.monotonic()
        last = self._refusal_logged.get(key)
        if last is None or now - last >= REFUSAL_LOG_INTERVAL:
            if len(self._refusal_logged) >= _MAX_REFUSAL_KEYS:
                self._refusal_logged.clear()
            self._refusal_logged[key] = now
            log.warning(
                "refused %r from key %r (peer %r): %s not granted "
                "(grant it with: p2p-node controllers add KEY)",
                clip(getattr(message.type, "value", message.type), 32),
                clip(key, 64),
                clip(message.from_, 64),
                capability.value,
            )
        else:
            kind = getattr(message.type, "value", message.type)
            log.debug("refused %r from key %r", clip(kind, 32), clip(key, 64))
        identity = self.node_manager.identity
        own = identity.id if identity is not None else message.to
        text = unauthorized_text(capability, key or "(none)")
        return message.error_reply(own, ErrorCode.UNAUTHORIZED, text)

    def _error_reply(self, request: Message, text: str) -> Message:
        identity = self.node_manager.identity
        own = identity.id if identity is not None else request.to
        return request.error_reply(own, ErrorCode.OPERATION_FAILED, clip(text, MAX_ERROR_TEXT))

    async def _ping(self, message: Message, _caller: _Caller) -> Message:
        ping = _parse(message, PingPayload, "handlePing")
        return message.reply(MessageType.PONG, PongPayload(ping.sent_at, _now_ms()))

    async def _get_stats(self, message: Message, _caller: _Caller) -> Message:
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

    async def _start_miner(self, message: Message, _caller: _Caller) -> Message:
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
                raise WorkerError(op, f"profile not found: {clip(req.profile_id)}") from None
        try:
            started = self.miners.start_miner(req.miner_type, config)
            miner = await started if inspect.isawaitable(started) else started
        except Exception as exc:
            log.info("start_miner %s failed: %s", safe_text(req.miner_type), safe_text(exc))
            return message.reply(
                MessageType.MINER_ACK, MinerAckPayload(False, "", clip(exc, MAX_ERROR_TEXT))
            )
        return message.reply(MessageType.MINER_ACK, MinerAckPayload(True, miner.get_name()))

    async def _stop_miner(self, message: Message, _caller: _Caller) -> Message:
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
            log.info("stop_miner %r failed: %r", clip(req.miner_name), clip(exc, 256))
            ack = MinerAckPayload(False, clip(req.miner_name), clip(exc, MAX_ERROR_TEXT))
        return message.reply(MessageType.MINER_ACK, ack)

    async def _get_logs(self, message: Message, _caller: _Caller) -> Message:
        op = "handleGetLogs"
        if self.miners is None:
            raise _Sentinel(ERR_MINER_MANAGER_NOT_CONFIGURED)
        req = _parse(message, GetLogsPayload, op)
        lines = req.lines if 0 < req.lines <= MAX_LOG_LINES else MAX_LOG_LINES
        try:
            miner = self.miners.get_miner(req.miner_name)
        except Exception:
            raise WorkerError(op, f"miner not found: {clip(req.miner_name)}") from None
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

    @property
    def miners_dir(self) -> Path:
        """Where deployed miners live: ``<data_dir>/lethean-desktop/miners/<name>/``."""
        return self.data_dir / "lethean-desktop" / "miners"

    async def _deploy(self, message: Message, caller: _Caller) -> Message:
        op = "handleDeploy"
        req = _parse(message, DeployPayload, op)
        if req.type not in ("profile", "miner", "full"):
            raise WorkerError(op, f"unknown bundle type: {clip(req.type)}")
        try:
            name = sanitise_name(req.name)
        except ControllerError:
            raise WorkerError(op, f"invalid bundle name: {clip(req.name)!r}") from None
        if caller.secret is None:
            raise WorkerError(op, "no shared secret for this connection")
        bundle = bundles.Bundle(bundles.BundleType(req.type), name, req.data or b"", req.checksum)
        password = password_for_secret(caller.secret)
        replace = self.policy.may_replace(caller.public_key)
        # One deploy at a time: the quota check and the move into place must not interleave.
        async with self._deploy_lock:
            if req.type == "profile":
                return await self._deploy_profile(message, bundle, password, name, replace)
            return await self._deploy_miner(message, bundle, password, name, replace)

    def _profile_exists(self, profile_id: str) -> bool:
        if self.profiles is None:
            return False
        try:
            self.profiles.get_profile(profile_id)
        except Exception:
            return False
        return True

    def _check_profile_room(self, profile_id: str, size: int, replace: bool) -> None:
        """Refuse a profile that collides with an existing one or exceeds the quota."""
        exists = self._profile_exists(profile_id)
        if exists and not replace:
            raise DeployRefusedError(
                f"profile {profile_id!r} already exists on this node; a deploy does not "
                "replace it (deploy under another id, or the operator allows replacement)"
            )
        usage = profile_usage(self.profiles)
        if usage is not None:
            check_quota(
                "profile",
                usage,
                Usage(1, size),
                max_count=self.limits.max_profiles,
                max_bytes=self.limits.max_total_profile_bytes,
                replacing=Usage(1, 0) if exists else None,
            )

    async def _deploy_profile(
        self, message: Message, bundle: bundles.Bundle, password: str, name: str, replace: bool
    ) -> Message:
        op = "handleDeploy"
        if self.profiles is None:
            raise WorkerError(op, "profile manager not configured")
        try:
            raw, profile = await asyncio.to_thread(bundles.inspect_profile_bundle, bundle, password)
        except ControllerError as exc:
            raise WorkerError(op, "failed to extract profile bundle", exc) from exc
        if not profile.get("id"):
            profile = {**profile, "id": name}  # deployed under its bundle name
        profile_id = str(profile["id"])
        try:
            self._check_profile_room(profile_id, len(raw), replace)
        except DeployRefusedError as exc:
            raise WorkerError(op, "deploy refused", exc) from exc
        try:
            self.profiles.save_profile(profile)
        except Exception as exc:
            ack = DeployAckPayload(False, name, clip(exc, MAX_ERROR_TEXT))
            return message.reply(MessageType.DEPLOY_ACK, ack)
        log.info("deployed profile %r", profile_id)
        # the ack names what `start_miner --profile` takes: the profile's id (issue 15)
        return message.reply(MessageType.DEPLOY_ACK, DeployAckPayload(True, profile_id))

    def _existing_miner(self, name: str) -> str | None:
        """Why `name` is taken: configured by the operator, deployed before, or None."""
        if (self.miners_dir / name).exists():
            return "deployed earlier"
        types = getattr(self.miners, "types", None)
        if isinstance(types, (list, tuple, set, frozenset)) and name in types:
            return "a miner type configured by the operator"
        return None

    async def _deploy_miner(
        self, message: Message, bundle: bundles.Bundle, password: str, name: str, replace: bool
    ) -> Message:
        op = "handleDeploy"
        taken = self._existing_miner(name)
        if taken is not None and not replace:
            raise WorkerError(
                op,
                f"deploy refused: miner {name!r} already exists on this node ({taken}); "
                "a deploy does not replace it",
            )
        limits = self.limits.extract_limits()
        try:
            contents = await asyncio.to_thread(
                bundles.inspect_miner_bundle, bundle, password, limits=limits
            )
        except ControllerError as exc:
            raise WorkerError(op, "failed to extract miner bundle", exc) from exc
        profile: dict[str, Any] | None = None
        try:
            if contents.profile is not None and self.profiles is not None:
                profile = bundles.validate_profile_json(contents.profile)
                if not profile.get("id"):
                    profile = {**profile, "id": name}
                self._check_profile_room(str(profile["id"]), len(contents.profile), replace)
            root = self.miners_dir
            usage = await asyncio.to_thread(miner_usage, root)
            current = Usage(len(usage), sum(u.bytes for u in usage.values()))
            old = usage.get(name)
            check_quota(
                "miner",
                current,
                Usage(1, contents.total_size),
                max_count=self.limits.max_miners,
                max_bytes=self.limits.max_total_miner_bytes,
                replacing=Usage(1, old.bytes) if old is not None else None,
            )
        except DeployRefusedError as exc:
            raise WorkerError(op, "deploy refused", exc) from exc
        except ControllerError as exc:
            raise WorkerError(op, "invalid profile in miner bundle", exc) from exc
        try:
            miner_path = await asyncio.to_thread(
                _install_miner, bundle, password, root, name, limits
            )
        except ControllerError as exc:
            raise WorkerError(op, "failed to extract miner bundle", exc) from exc
        if isinstance(self.miners, DeployTarget):
            try:
                self.miners.register_binary(name, miner_path)
            except Exception as exc:
                log.warning("deployed miner %s not registered: %s", safe_text(name), safe_text(exc))
        if profile is not None and self.profiles is not None:
            try:
                self.profiles.save_profile(profile)
            except Exception as exc:
                log.warning(
                    "profile of miner bundle %s not saved: %s", safe_text(name), safe_text(exc)
                )
        log.info(
            "deployed miner %s (%d file(s), %d bytes)",
            safe_text(name),
            contents.files,
            contents.total_size,
        )
        return message.reply(MessageType.DEPLOY_ACK, DeployAckPayload(True, name))

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

    async def _serve(self, conn: PeerConnection, message: Message) -> None:
        key = conn.identity.public_key
        async with self._sem:
            secret = None
            if message.type == MessageType.DEPLOY and self.policy.allows(key, Capability.CONTROL):
                secret = conn.shared_secret  # the handshake's, carried forward
            reply = await self.handle(message, shared_secret=secret, public_key=key)
        if reply is None:
            return
        try:
            await conn.send(reply)
        except Exception as exc:
            log.info("reply to %s not sent: %s", safe_text(message.from_), safe_text(exc))

    async def close(self) -> None:
        """Stop serving new requests."""
        self.detach()


def _install_miner(
    bundle: bundles.Bundle, password: str, root: Path, name: str, limits: bundles.ExtractLimits
) -> Path:
    """Extract into a hidden temporary directory beside the target, then move it into place
    (replacing an earlier deploy of `name` only when the caller allowed that). Nothing is
    left behind on failure."""
    root.mkdir(parents=True, exist_ok=True)
    token = os.urandom(6).hex()
    tmp = root / f".deploy-{name}-{token}"
    dest = root / name
    try:
        miner_path, _profile = bundles.extract_miner_bundle(bundle, password, tmp, limits=limits)
        mode = miner_path.stat().st_mode
        if not mode & 0o100:  # tar entries arrive as 0600; a miner must run
            miner_path.chmod(mode | 0o700)
        relative = miner_path.relative_to(tmp)
        if dest.exists() or dest.is_symlink():
            old = root / f".replaced-{name}-{token}"
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest / relative
