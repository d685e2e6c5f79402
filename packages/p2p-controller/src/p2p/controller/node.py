"""Node: one object that is a whole mesh node (identity, peers, transport, worker, controller).

::

    async with Node("./node-a", listen="127.0.0.1:0") as node:
        peer = await node.add_peer("ws://127.0.0.1:9091/ws")
        print(await node.controller.ping_peer(peer.id))

Start-up order: identity (load or create) -> peer registry (the transport's gate) ->
miner and profile managers -> worker and controller -> one message router -> transport.
Shutdown runs the reverse, every step even if an earlier one failed: the transport says
goodbye to every peer (``disconnect``, code 1004), our miner processes are stopped and
reaped, and the registry writes its pending changes.

Routing (CONTROLLER_WORKER.md §0): the reference's transport has one handler slot, so a Go
node is a controller or a worker. Here a reply (non-empty ``replyTo``) goes to the
controller's pending requests and everything else to the worker, so every Node is both.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from p2p.controller import _gc
from p2p.controller._filesync import RegistryFileSync
from p2p.controller.authz import Capability, Policy, PolicyError
from p2p.controller.config import NodeConfig, NodePaths, parse_host_port
from p2p.controller.controller import Controller, ControllerConfig
from p2p.controller.controllers_file import ControllersFileSync, load_controllers
from p2p.controller.errors import (
    AmbiguousPeerError,
    ControllerError,
    NodeError,
    NodeStateError,
    UnknownPeerError,
)
from p2p.controller.miners import MinerManager, ProcessMinerManager
from p2p.controller.profiles import DirectoryProfileManager, ProfileManager
from p2p.controller.rehab import RehabController
from p2p.controller.worker import Worker
from p2p.identity import NodeIdentity, NodeManager, load_or_create
from p2p.peers import AuthMode, Peer, PeerError, PeerRegistry, validate_peer_name
from p2p.transport import PeerConnection, Transport, TransportConfig, with_ueps
from p2p.ueps import INTENT_REHAB

if TYPE_CHECKING:
    from p2p.transport import Message, PeerDispatcher, PeerPacketHandler, UepsHub

__all__ = [
    "AmbiguousPeerError",
    "Node",
    "NodeError",
    "NodeStateError",
    "UnknownPeerError",
    "peer_address_of",
]

log = logging.getLogger(__name__)

#: Longest PEER reference accepted (an address with a long host name fits).
MAX_PEER_REF = 512
#: Deployed miner directories looked at on start-up.
MAX_DEPLOYED_SCAN = 1024


def peer_address_of(address: str) -> str:
    """The address as the registry (and a Go node) stores it.

    ``ws://host:port/ws`` becomes ``host:port`` (Go dials ``ws://<address>/ws``); anything
    Go could not dial that way (``wss://``, another path) is kept whole.
    """
    text = address.strip()
    if "://" not in text:
        return text
    parts = urlsplit(text)
    if parts.scheme == "ws" and parts.path in ("", "/ws") and not parts.query:
        return parts.netloc
    return text


def _is_address(ref: str) -> bool:
    return "://" in ref or (":" in ref and ref.rpartition(":")[2].isdigit())


class _CountingGate:
    """The registry as the transport's gate, counting completed handshakes (for metrics)."""

    def __init__(self, registry: PeerRegistry) -> None:
        self.registry = registry
        #: handshakes that completed (inbound and outbound) since start
        self.handshakes_completed = 0

    def is_peer_allowed(self, peer_id: str, public_key: str) -> bool:
        return self.registry.is_peer_allowed(peer_id, public_key)

    def is_peer_known(self, peer_id: str, public_key: str) -> bool:
        """Optional gate method: known peers may use the transport's reserved slots."""
        return self.registry.is_peer_known(peer_id, public_key)

    def peer_connected(self, identity: NodeIdentity, address: str) -> None:
        self.handshakes_completed += 1
        self.registry.peer_connected(identity, address)

    def peer_disconnected(self, peer_id: str) -> None:
        self.registry.peer_disconnected(peer_id)

    def record_failure(self, peer_id: str) -> None:
        """Optional gate method: a proven peer broke the UEPS channel's rules (-5 score)."""
        self.registry.record_failure(peer_id)

    def peer_protocol(self, public_key: str) -> str:
        """Optional gate method: "1.1" if the key is pinned to protocol 1.1 (issue 16)."""
        return self.registry.peer_protocol(public_key)

    def peer_protocol_seen(self, public_key: str, protocol: str) -> None:
        """Optional gate method: store the protocol a handshake used (pins 1.1)."""
        self.registry.peer_protocol_seen(public_key, protocol)


@dataclass(frozen=True)
class _Parts:
    node_manager: NodeManager
    registry: PeerRegistry
    transport: Transport
    miners: MinerManager | None
    profiles: ProfileManager | None
    worker: Worker
    controller: Controller


class Node:
    """A running node: ``async with Node(data_dir) as node: ...``.

    `data_dir` (or ``$P2P_NODE_DIR``) holds every file (see `NodePaths`); ``None`` uses
    the Go node's locations. `config` is what `p2p-node serve` reads from TOML; `listen`
    overrides its listen address (``"127.0.0.1:0"`` picks a free port; see `address`).
    `miners` / `profiles` replace the process- and directory-backed managers built from
    the config. ``persist=False`` keeps the peer registry in memory. ``watch_files=True``
    (what `p2p-node serve` uses) adopts peers and allowlist changes that other processes,
    such as `p2p-node peers add`, write to this node's files while it runs.

    Authorization (`p2p.controller.authz`): `controllers` are public keys granted
    ``control`` on top of the config's ``[authorization]`` table and the data dir's
    controllers file; `policy` is the live policy the worker and REHAB consult. With
    ``watch_files=True`` an edit of the controllers file (``p2p-node controllers add``)
    takes effect within `watch_interval` seconds, also for connected controllers.

    `gc_threshold`: while the node runs, the process's ``gc.set_threshold`` (default
    ``(10_000, 20, 100)``, with ``gc.freeze()`` of the start-up heap; restored when the last
    node closes; see ``p2p.controller._gc``). ``None`` leaves the collector alone.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        config: NodeConfig | None = None,
        listen: str | None = None,
        name: str | None = None,
        transport_config: TransportConfig | None = None,
        controller_config: ControllerConfig | None = None,
        miners: MinerManager | None = None,
        profiles: ProfileManager | None = None,
        persist: bool = True,
        watch_files: bool = False,
        watch_interval: float = 2.0,
        controllers: Iterable[str] = (),
        gc_threshold: tuple[int, int, int] | None = _gc.NODE_GC_THRESHOLD,
    ) -> None:
        self.paths = NodePaths.from_env(data_dir)
        self._gc_threshold = gc_threshold
        self._gc_held = False
        self.config = config if config is not None else NodeConfig(listen="127.0.0.1:0")
        if name is not None:
            self.config = self.config.replace(name=name)
        self._listen = listen
        self._transport_config = transport_config
        self._controller_config = controller_config
        self._miners_arg = miners
        self._profiles_arg = profiles
        self._persist = persist
        self._watch_interval = watch_interval if watch_files and persist else None
        self._watcher: asyncio.Task[None] | None = None
        self._sync: RegistryFileSync | None = None
        self._parts: _Parts | None = None
        self._node_id = ""
        self.gate: _CountingGate | None = None
        self._own_miners = False
        self._unsubscribe: Callable[[], None] | None = None
        self._rehab: RehabController | None = None
        self._closed = asyncio.Event()
        self._state = "new"
        self._controllers_sync: ControllersFileSync | None = None
        self._controllers_watcher: asyncio.Task[None] | None = None
        try:
            self._policy = self.config.policy().with_controllers(controllers)
        except PolicyError as exc:
            raise NodeError(f"controllers: {exc}") from None

    @property
    def policy(self) -> Policy:
        """Who may command this node (live: grant/revoke take effect at the next request)."""
        return self._policy

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Load (or create) the identity, open the registry, start listening."""
        if self._state != "new":
            raise NodeStateError(f"node cannot start from state {self._state}")
        self._state = "starting"
        cfg = self.config
        paths = self.paths
        cleanups: list[Callable[[], Awaitable[None]]] = []
        try:
            node_manager = await asyncio.to_thread(
                load_or_create, paths.key, paths.identity, name=cfg.name
            )
            auth = AuthMode.ALLOWLIST if cfg.auth_mode == "allowlist" else AuthMode.OPEN
            registry = await PeerRegistry.open(
                paths.peers,
                auth_mode=auth,
                persist=self._persist,
                max_learned=cfg.max_learned_peers,
            )
            cleanups.append(registry.aclose)
            if registry.load_error is not None:
                log.warning("peers file problem (a copy was kept): %s", registry.load_error)
            for key in cfg.allowlist:
                registry.allow_public_key(key)
            policy = self._policy
            if self._persist:
                try:
                    policy.set_granted(await asyncio.to_thread(load_controllers, paths.controllers))
                except PolicyError as exc:
                    log.warning("controllers file not adopted: %s", exc)
            miners = self._miners_arg
            if miners is None:
                manager = ProcessMinerManager(cfg.miner_specs(), run_dir=paths.miners)
                _register_deployed(manager, paths.worker_data)
                miners = manager
                self._own_miners = True
                cleanups.append(manager.close)
            profiles = self._profiles_arg
            if profiles is None:
                directory = cfg.profile_dir if cfg.profile_dir is not None else paths.profiles
                profiles = DirectoryProfileManager(directory)
            tcfg = self._transport_config
            if tcfg is None:
                tcfg = cfg.transport_config(listen=self._listen)
            elif self._listen is not None:
                host, port = _split_listen(self._listen)
                tcfg = tcfg.replace(listen_host=host, listen_port=port)
            self.gate = _CountingGate(registry)
            # advertise ueps/1 (Go peers ignore it); UEPS violations reach the registry
            # through the gate's record_failure
            tcfg = tcfg.replace(features=with_ueps(tcfg.features))
            if tcfg.protocol_1_1 is None:
                # offer protocol 1.1 (Noise XX) to our own nodes; Go peers ignore it, keep
                # 1.0 ([transport] protocol_1_1 = false turns it off)
                tcfg = tcfg.replace(protocol_1_1=True)
            transport = Transport(node_manager, self.gate, tcfg)
            if miners is not None:
                self._rehab = RehabController(
                    miners, is_authorized=lambda key: policy.allows(key, Capability.CONTROL)
                )
                transport.on_ueps(INTENT_REHAB, self._rehab.handle)
            worker = Worker(
                node_manager,
                None,
                miners,
                profiles,
                data_dir=paths.worker_data,
                policy=policy,
                limits=cfg.deploy,
            )
            controller = Controller(node_manager, registry, transport, self._controller_config)
            cleanups.append(controller.close)
            self._parts = _Parts(
                node_manager, registry, transport, miners, profiles, worker, controller
            )
            # Kept for logs and `id`: the identity files may be deleted while we run.
            self._node_id = node_manager.require_identity().id
            self._unsubscribe = transport.on_message(self._route)
            await transport.start()
            if self._watch_interval is not None:
                sync = RegistryFileSync(
                    registry, interval=self._watch_interval, on_revoke=self._revoked
                )
                self._sync = sync
                self._watcher = asyncio.get_running_loop().create_task(sync.run())
                csync = ControllersFileSync(
                    policy, paths.controllers, interval=self._watch_interval
                )
                csync.poll()  # remember the file's signature as loaded
                self._controllers_sync = csync
                self._controllers_watcher = asyncio.get_running_loop().create_task(csync.run())
        except BaseException:
            for cleanup in reversed(cleanups):
                with contextlib.suppress(Exception):
                    await cleanup()
            self._state = "closed"
            self._closed.set()
            raise
        if self._gc_threshold is not None:
            _gc.acquire(self._gc_threshold)
            self._gc_held = True
        self._state = "running"
        log.info("node %s listening on %s", self.id, self.address)

    async def _revoked(self, keys: frozenset[str]) -> None:
        """Keys another process removed from the allowlist (`p2p-node peers revoke`): with
        ``auth_mode = "allowlist"`` forget their peer records (a record admits its key) and
        drop their live connections, so a revoked peer cannot stay or come back."""
        parts = self._require()
        if parts.registry.auth_mode != AuthMode.ALLOWLIST:
            return
        for peer in parts.registry.peers():
            if peer.public_key in keys:
                with contextlib.suppress(PeerError):
                    parts.registry.remove(peer.id)
        for conn in parts.transport.connections():
            key = conn.identity.public_key
            if key in keys and not parts.registry.is_peer_allowed(conn.peer_id, key):
                log.info("peer %s revoked: dropping its connection", conn.peer_id)
                await conn.graceful_close("revoked")
        await parts.registry.flush()

    async def close(self) -> None:
        """Graceful stop: disconnect peers, stop our miners, flush the registry. Idempotent."""
        if self._state in ("closing", "closed", "new"):
            if self._state == "closing":
                await self._closed.wait()
            self._state = "closed"
            self._closed.set()
            return
        self._state = "closing"
        parts = self._parts
        assert parts is not None
        for watcher in (self._watcher, self._controllers_watcher):
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        if self._sync is not None:
            # what other processes wrote since the last poll wins over our final flush
            try:
                await self._sync.sync_once()
            except Exception:
                log.exception("final sync of the peers files failed")
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("controller", parts.controller.close),
            ("transport", parts.transport.stop),
            ("rehab", self._resume_miners),
            ("worker", parts.worker.close),
        ]
        if self._own_miners:
            close_miners = getattr(parts.miners, "close", None)
            if close_miners is not None:
                steps.append(("miners", close_miners))
        steps.append(("registry", parts.registry.aclose))
        try:
            for what, step in steps:
                try:
                    await step()
                except Exception:
                    log.exception("closing the %s failed", what)
            if self._unsubscribe is not None:
                self._unsubscribe()
        finally:
            if self._gc_held:
                self._gc_held = False
                _gc.release()
            self._state = "closed"
            self._closed.set()
            log.info("node %s stopped", self.id)

    async def _resume_miners(self) -> None:
        """Resume miners REHAB paused (after the transport stopped, before miners stop)."""
        if self._rehab is not None:
            self._rehab.close()

    async def wait_closed(self) -> None:
        """Return once `close` has finished."""
        await self._closed.wait()

    @property
    def running(self) -> bool:
        return self._state == "running"

    # -- routing ---------------------------------------------------------------------------

    def _route(self, conn: PeerConnection, message: Message) -> Awaitable[None] | None:
        """Replies go to the controller, requests to the worker (one place decides)."""
        parts = self._parts
        if parts is None:
            return None
        if message.reply_to:
            # The controller's own subscription delivers it to the waiting request.
            return None
        return parts.worker.on_message(conn, message)

    # -- parts -----------------------------------------------------------------------------

    def _require(self) -> _Parts:
        if self._parts is None:
            raise NodeStateError("node not started: use `async with Node(...)` or start()")
        return self._parts

    @property
    def node_manager(self) -> NodeManager:
        return self._require().node_manager

    @property
    def identity(self) -> NodeIdentity:
        return self._require().node_manager.require_identity()

    @property
    def id(self) -> str:
        """This node's id (as loaded at start; empty before start)."""
        return self._node_id

    @property
    def registry(self) -> PeerRegistry:
        return self._require().registry

    @property
    def transport(self) -> Transport:
        return self._require().transport

    @property
    def controller(self) -> Controller:
        return self._require().controller

    @property
    def worker(self) -> Worker:
        return self._require().worker

    @property
    def miners(self) -> MinerManager | None:
        return self._require().miners

    @property
    def profiles(self) -> ProfileManager | None:
        return self._require().profiles

    @property
    def ueps(self) -> UepsHub:
        """The transport's UEPS side (sessions, counters, the threat breaker)."""
        return self.transport.ueps

    @property
    def rehab(self) -> RehabController | None:
        """The built-in REHAB (0x30) handler on this node's miners (None without miners)."""
        self._require()
        return self._rehab

    @property
    def dispatcher(self) -> PeerDispatcher:
        """The node's one UEPS intent dispatcher (the transport's); see :meth:`on_ueps`."""
        return self.transport.ueps.dispatcher

    def on_ueps(self, intent_id: int, handler: PeerPacketHandler) -> Callable[[], None]:
        """Route UEPS ``intent_id`` to ``handler(conn, packet)``; returns an unregister."""
        return self.transport.on_ueps(intent_id, handler)

    async def send_ueps(
        self, peer_id: str, intent_id: int, payload: bytes, *, threat_score: int = 0
    ) -> None:
        """Send one session-bound UEPS frame to a connected peer that speaks ``ueps/1``."""
        await self.transport.send_ueps(peer_id, intent_id, payload, threat_score=threat_score)

    @property
    def address(self) -> str:
        """``ws://host:port/ws`` (``wss://`` with TLS) that peers dial."""
        transport = self.transport
        scheme = "wss" if transport.config.tls_enabled else "ws"
        return f"{scheme}://{transport.address}{transport.config.ws_path}"

    def info(self) -> dict[str, str]:
        """``{"id", "publicKey", "address"}``: what `p2p-node serve` prints once listening."""
        ident = self.identity
        return {"id": ident.id, "publicKey": ident.public_key, "address": self.address}

    # -- peers -----------------------------------------------------------------------------

    async def add_peer(
        self, address: str, *, public_key: str | None = None, name: str | None = None
    ) -> Peer:
        """Connect to `address`, complete the handshake and store the peer.

        With `public_key` the peer must prove exactly that key (pinning); without, its key
        is trusted on first use and stored, and a later `add_peer` of the same address must
        meet the same key (remove the peer first to accept a new one). The stored address
        is the one dialled.
        """
        if name:
            validate_peer_name(name)
        parts = self._require()
        if public_key is None:
            want = peer_address_of(address)
            keys = {
                p.public_key
                for p in parts.registry.peers()
                if p.public_key and p.address and peer_address_of(p.address) == want
            }
            if len(keys) == 1:
                public_key = keys.pop()  # trust on *first* use: keep the key we know
        conn = await parts.transport.connect(address, expected_public_key=public_key)
        peer_id = conn.peer_id
        ident = conn.identity
        stored = parts.registry.get(peer_id)
        record = stored if stored is not None else Peer(id=peer_id)
        record.public_key = ident.public_key
        record.address = peer_address_of(address)
        record.role = str(getattr(ident.role, "value", ident.role) or "")
        record.name = name or record.name or ident.name
        record.connected = True
        if stored is None:
            parts.registry.add(record)
        else:
            parts.registry.update(record)
            parts.registry.adopt(peer_id)  # the operator added it: no longer a stranger
        await parts.registry.flush()
        got = parts.registry.get(peer_id)
        assert got is not None
        return got

    def resolve_peer(self, ref: str) -> Peer:
        """The known peer named by an id, a unique id prefix, a name, or an address."""
        return resolve_peer(self.registry, ref)

    async def connect(self, ref: str) -> tuple[Peer | None, PeerConnection]:
        """A live connection to the peer `ref` names (a known peer, or any address)."""
        parts = self._require()
        try:
            peer = self.resolve_peer(ref)
        except UnknownPeerError:
            if not _is_address(ref):
                raise
            conn = await parts.transport.connect(ref)
            return parts.registry.get(conn.peer_id), conn
        conn = await parts.controller.connect_to_peer(peer.id)
        return peer, conn


def resolve_peer(peers: PeerRegistry | list[Peer], ref: str) -> Peer:
    """Pick one of `peers` by exact id, exact name, address, or unique id prefix.

    Names: a peer the operator added (or adopted) owns its name; the name of a *learned*
    peer (registered from the network: see `PeerRegistry`) is only that peer's claim.
    So an operator's name always wins, and learned names are used only when no operator
    peer has that name and exactly one learned peer claims it; a name several learned
    peers claim resolves to none of them (AmbiguousPeerError, unless an address or id
    prefix matches). Given a plain list, every peer counts as the operator's.
    """
    learned: frozenset[str] = frozenset()
    if isinstance(peers, PeerRegistry):
        learned = peers.learned_ids()
        peers = peers.peers()
    text = ref.strip()
    if not text or len(text) > MAX_PEER_REF:
        raise UnknownPeerError(ref[:64])
    for p in peers:
        if p.id == text:
            return p
    named = [p for p in peers if p.name and p.name == text]
    given = [p for p in named if p.id not in learned]
    if len(given) == 1:
        return given[0]
    if len(given) > 1:
        raise AmbiguousPeerError(ref, [p.id for p in given])
    if len(named) == 1:
        return named[0]
    claimed = [p.id for p in named]  # several learned peers claim this name: use none
    if _is_address(text):
        want = peer_address_of(text)
        located = [p for p in peers if p.address and peer_address_of(p.address) == want]
        if len(located) == 1:
            return located[0]
        if len(located) > 1:
            raise AmbiguousPeerError(ref, [p.id for p in located])
    prefixed = [p for p in peers if p.id.startswith(text.lower())]
    if len(prefixed) == 1:
        return prefixed[0]
    if len(prefixed) > 1:
        raise AmbiguousPeerError(ref, [p.id for p in prefixed])
    if claimed:
        raise AmbiguousPeerError(ref, claimed)
    raise UnknownPeerError(ref)


def _register_deployed(manager: ProcessMinerManager, data_dir: Path | None) -> None:
    """Make miners deployed in an earlier run startable again (the Worker registers a
    deployed binary only in memory): ``<data_dir>/lethean-desktop/miners/<name>/<file>``
    with exactly one executable file becomes miner type ``<name>``, unless configured."""
    if data_dir is None:
        return
    root = data_dir / "lethean-desktop" / "miners"
    try:
        dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.is_symlink())
    except OSError:
        return
    for d in dirs[:MAX_DEPLOYED_SCAN]:
        if d.name.startswith((".deploy-", ".replaced-")):
            # a deploy interrupted by a crash: never complete, never registered
            shutil.rmtree(d, ignore_errors=True)
            continue
        if d.name.startswith(".") or d.name in manager.types:
            continue
        try:
            files = [
                f
                for f in d.iterdir()
                if f.is_file() and not f.is_symlink() and os.access(f, os.X_OK)
            ]
        except OSError:
            continue
        if len(files) != 1:
            continue
        try:
            manager.register_binary(d.name, files[0])
            log.info("deployed miner %s available (%s)", d.name, files[0])
        except ControllerError as exc:
            log.warning("deployed miner %s not registered: %s", d.name, exc)


def _split_listen(listen: str) -> tuple[str, int]:
    return parse_host_port(listen)
