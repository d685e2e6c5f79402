"""`p2p-node`: run a Lethean P2P node and drive other nodes from the shell.

Contract other tools rely on (keep it stable):

- ``--data-dir DIR`` / ``$P2P_NODE_DIR`` puts every file under DIR (see `NodePaths`);
- ``identity show --json`` prints the identity JSON (id, name, publicKey, createdAt, role);
- ``serve`` prints one JSON line ``{"id","publicKey","address"}`` once listening (plus
  ``"dashboard": URL`` when the dashboard runs), then serves until SIGTERM/SIGINT;
- ``peers add ADDRESS [--public-key B64] [--name N]`` connects, handshakes (pinned key or
  trust on first use), stores the peer and prints its id;
- ``controllers add|remove|list [PEER|KEY]`` edits who may control this node (the data
  dir's controllers.json, re-read by a running serve); ``serve --controller KEY`` grants
  control for one run;
- ``--json peers list`` gives each peer ``"protocol": "1.0"`` or ``"1.1"`` (1.1: the peer
  completed a protocol 1.1 handshake and is pinned to it); ``peers reset-protocol PEER``
  lifts the pin (stop the node first: a running serve keeps its own copy);
- PEER is an id, a unique id prefix, a name or an address; ``--json`` prints one object;
- exit codes: 0 ok, 1 local failure, 2 usage, 3 peer unreachable/timeout, 4 remote error.

Client commands (ping, stats, miner, logs, deploy, peers add) run a short-lived node with
the data dir's identity, connect to the target, do their one thing and disconnect.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import contextvars
import errno
import json
import logging
import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import shtab
from p2p.controller import _metrics, bundles
from p2p.controller._cli_output import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    classify,
    human_bytes,
    human_duration,
    parse_since,
    print_json,
    short_id,
    shown,
    shown_lines,
    stats_dict,
    stats_text,
    table,
)
from p2p.controller._datalock import DataDirLock, DataDirLockedError
from p2p.controller._version import __version__
from p2p.controller.authz import PolicyError, normalise_key
from p2p.controller.bundles import Bundle
from p2p.controller.config import (
    DATA_DIR_ENV,
    MinerConfig,
    NodeConfig,
    NodeConfigError,
    NodePaths,
    check_file,
    parse_host_port,
)
from p2p.controller.controller import ControllerConfig
from p2p.controller.controllers_file import load_controllers, save_controllers
from p2p.controller.dashboard.launch import choose_config, start_dashboard
from p2p.controller.dashboard.settings import DEFAULT_PORT as DEFAULT_DASHBOARD_PORT
from p2p.controller.demo import run_demo
from p2p.controller.node import Node, resolve_peer
from p2p.controller.profiles import sanitise_name
from p2p.controller.ueps_cli import add_ueps_subcommand, cmd_ueps
from p2p.identity import (
    CorruptIdentityError,
    NodeManager,
    NodeRole,
    has_control_chars,
    load_or_create,
    safe_text,
)
from p2p.peers import Peer, PeerRegistry
from p2p.transport import MAX_BUSY_POLL_US, password_for_secret, run_busy_poll

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)

#: Upper bound of ``--timeout`` and ``--count`` style knobs (validated at the boundary).
MAX_TIMEOUT = 3600.0
MAX_COUNT = 1000
MAX_INPUT_FILE = 100 << 20
_ROLES = ("dual", "worker", "controller")


# --------------------------------------------------------------------------------------------
# Arguments


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0 < value <= MAX_TIMEOUT):
        raise argparse.ArgumentTypeError(f"must be in (0, {MAX_TIMEOUT:g}]")
    return value


def _busy_poll_us(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0 <= value <= MAX_BUSY_POLL_US):
        raise argparse.ArgumentTypeError(f"must be in [0, {MAX_BUSY_POLL_US:g}]")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"must be in 1..{MAX_COUNT}")
    return value


def _own_name(text: str) -> str:
    """A name we set ourselves (node or peer): no control characters, ever."""
    if has_control_chars(text):
        raise argparse.ArgumentTypeError(
            f"{safe_text(text, 60)} holds control characters: use printable text"
        )
    return text


#: Fastest `logs --follow` poll (each poll is one request the worker answers).
MIN_FOLLOW_INTERVAL = 0.2
#: `logs --follow` asks for lines this much older than its last poll and drops the ones
#: it already printed, so a worker clock a little behind ours loses nothing.
FOLLOW_OVERLAP_MS = 5_000


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not MIN_FOLLOW_INTERVAL <= value <= 60:
        raise argparse.ArgumentTypeError(f"must be in {MIN_FOLLOW_INTERVAL:g}..60 seconds")
    return value


def _lines(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("must be in 1..10000")
    return value


class _UsageError(Exception):
    """An argparse usage error, raised instead of printing and exiting so that `main` can
    report it as one sentence, or as ``{"error","hint","exitCode"}`` with ``--json``."""

    def __init__(self, message: str, usage: str, prog: str) -> None:
        super().__init__(message)
        self.usage = usage
        self.prog = prog


#: Set by `main` while it parses: usage errors are raised to it, not printed and exited
#: (a caller of ``build_parser().parse_args`` keeps argparse's own behaviour).
_RAISE_USAGE: contextvars.ContextVar[bool] = contextvars.ContextVar("_RAISE_USAGE", default=False)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse calls this for every usage error
        if _RAISE_USAGE.get():
            raise _UsageError(message, self.format_usage(), self.prog)
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (also used to render the README's CLI tour)."""
    common = _Parser(add_help=False)
    # SUPPRESS: given after the command, these override the global ones; absent, they don't.
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print one JSON object instead of text",
    )
    common.add_argument(
        "--data-dir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help=f"keep identity, peers, profiles, miners under DIR (env {DATA_DIR_ENV})",
    )
    common.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        default=argparse.SUPPRESS,
        help="connect and request timeout (default: the reference's)",
    )
    common.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=argparse.SUPPRESS,
        help="log more (-vv for debug)",
    )

    parser = _Parser(
        prog="p2p-node",
        description="Run a Lethean P2P node, and drive other nodes: ping, stats, miners, "
        "logs, deploy. Start with `p2p-node demo`.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    shtab.add_argument_to(parser, "--print-completion", help="print a bash/zsh completion script")
    parser.add_argument(
        "--data-dir",
        metavar="DIR",
        default=None,
        help=f"keep identity, peers, profiles, miners under DIR (env {DATA_DIR_ENV})",
    )
    parser.add_argument(
        "--json", action="store_true", default=False, help="print one JSON object instead of text"
    )
    parser.add_argument(
        "--timeout",
        type=_positive_float,
        metavar="SECONDS",
        default=None,
        help="connect and request timeout (default: the reference's)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-vv for debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name: str, help_text: str, **kw: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, parents=[common], **kw)

    # identity
    ident = add("identity", "create or show this node's identity")
    isub = ident.add_subparsers(dest="action", metavar="ACTION")
    isub.required = True
    init = isub.add_parser(
        "init", parents=[common], help="create the identity (keeps an existing one)"
    )
    init.add_argument("--name", type=_own_name, help="node name (default: host name)")
    init.add_argument("--role", choices=_ROLES, default="dual")
    init.add_argument("--force", action="store_true", help="replace an existing identity")
    isub.add_parser("show", parents=[common], help="print the identity")

    # serve
    serve = add("serve", "listen, answer as a worker, act as a controller, until SIGTERM")
    serve.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="TOML config (default: DIR/config.toml when present)",
    )
    serve.add_argument(
        "--listen", metavar="HOST:PORT", help="listen address (default 0.0.0.0:9091)"
    )
    serve.add_argument("--name", type=_own_name, help="node name used when the identity is created")
    serve.add_argument("--tls-cert", metavar="FILE", type=Path)
    serve.add_argument("--tls-key", metavar="FILE", type=Path)
    serve.add_argument(
        "--tls-ca", metavar="FILE", type=Path, help="CA bundle trusted when dialling wss:// peers"
    )
    serve.add_argument(
        "--auth",
        choices=("open", "allowlist"),
        dest="auth_mode",
        help="who may connect (default open)",
    )
    serve.add_argument(
        "--allow",
        metavar="PUBLIC_KEY",
        action="append",
        default=[],
        help="allowlist a base64 public key (repeatable)",
    )
    serve.add_argument(
        "--controller",
        metavar="PUBLIC_KEY",
        action="append",
        default=[],
        help="grant control (miners, logs, deploy) to this base64 key for this run (repeatable)",
    )
    serve.add_argument(
        "--miner",
        metavar="TYPE=COMMAND",
        action="append",
        default=[],
        help="run COMMAND (shell words) for miner TYPE (repeatable); its hashrate and shares "
        "are read from xmrig-style output lines unless --miner-stats says how",
    )
    serve.add_argument(
        "--miner-stats",
        metavar="TYPE=REGEX",
        action="append",
        default=[],
        help="read miner TYPE's stats from output lines matching REGEX, with named groups "
        "hashrate, shares, rejected (repeatable; same as stats_regex in config.toml)",
    )
    serve.add_argument(
        "--busy-poll-us",
        type=_busy_poll_us,
        metavar="US",
        default=0.0,
        help="poll up to US microseconds for I/O before the event loop sleeps (0..1000, "
        "default 0: off); on a VM, 100 halves request/response latency for at most US of "
        "CPU per wake-up",
    )
    serve.add_argument("--profile-dir", metavar="DIR", type=Path)
    serve.add_argument("--log-format", choices=("text", "json"))
    serve.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics (needs p2p-controller[metrics])",
    )
    serve.add_argument(
        "--dashboard",
        metavar="[HOST:]PORT",
        help="serve the fleet dashboard (host 127.0.0.1 unless given; needs "
        "p2p-controller[dashboard])",
    )
    serve.add_argument(
        "--dashboard-read-only",
        action="store_true",
        help="the dashboard shows the fleet but offers and accepts no action",
    )

    # peers
    peers = add("peers", "manage known peers and the allowlist")
    psub = peers.add_subparsers(dest="action", metavar="ACTION")
    psub.required = True
    padd = psub.add_parser(
        "add", parents=[common], help="connect, handshake, store the peer and print its id"
    )
    padd.add_argument("address", help="ws://HOST:PORT/ws (or HOST:PORT)")
    padd.add_argument("--public-key", metavar="B64", help="pin this key (else trust on first use)")
    padd.add_argument("--name", type=_own_name, help="a local name to use as PEER")
    psub.add_parser("list", parents=[common], help="known peers and the allowlist")
    prm = psub.add_parser("remove", parents=[common], help="forget a peer")
    prm.add_argument("peer", metavar="PEER")
    pal = psub.add_parser("allow", parents=[common], help="allowlist a peer's key (or a key)")
    pal.add_argument("peer", metavar="PEER|PUBLIC_KEY")
    prv = psub.add_parser("revoke", parents=[common], help="remove a key from the allowlist")
    prv.add_argument("peer", metavar="PEER|PUBLIC_KEY")
    prp = psub.add_parser(
        "reset-protocol",
        parents=[common],
        help="lift a peer's protocol 1.1 pin (1.0 is refused from a pinned peer)",
    )
    prp.add_argument("peer", metavar="PEER")

    ctls = add("controllers", "who may control this node: start/stop miners, logs, deploy")
    csub = ctls.add_subparsers(dest="action", metavar="ACTION")
    csub.required = True
    cadd = csub.add_parser("add", parents=[common], help="grant control to a peer's key (or a key)")
    cadd.add_argument("peer", metavar="PEER|PUBLIC_KEY")
    crm = csub.add_parser("remove", parents=[common], help="withdraw control from a key")
    crm.add_argument("peer", metavar="PEER|PUBLIC_KEY")
    csub.add_parser("list", parents=[common], help="the keys granted control")

    ping = add("ping", "measure the round trip to a peer")
    ping.add_argument("peer", metavar="PEER")
    ping.add_argument("--count", "-c", type=_count, default=1)

    stats = add("stats", "a worker's node, miners and uptime (every known peer by default)")
    stats.add_argument("peer", metavar="PEER", nargs="?")
    stats.add_argument("--all", action="store_true", help="every known peer")

    miner = add("miner", "start or stop a miner on a worker")
    msub = miner.add_subparsers(dest="action", metavar="ACTION")
    msub.required = True
    mstart = msub.add_parser("start", parents=[common], help="start a miner; prints its name")
    mstart.add_argument("peer", metavar="PEER")
    mstart.add_argument("miner_type", metavar="TYPE")
    mstart.add_argument("--profile", metavar="ID", help="a profile stored on the worker")
    mstart.add_argument("--config", metavar="JSON|@FILE", help="the miner's config JSON")
    mstop = msub.add_parser("stop", parents=[common], help="stop a miner")
    mstop.add_argument("peer", metavar="PEER")
    mstop.add_argument("miner_name", metavar="MINER")

    logs = add("logs", "recent output lines of a miner on a worker")
    logs.add_argument("peer", metavar="PEER")
    logs.add_argument("miner_name", metavar="MINER")
    logs.add_argument("--lines", "-n", type=_lines, default=100)
    logs.add_argument("--since", metavar="T", help="Unix ms, ISO time, or an age like 5m")
    logs.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing new lines until Ctrl-C (polls the worker every --interval s)",
    )
    logs.add_argument(
        "--interval",
        type=_interval,
        default=1.0,
        metavar="SECONDS",
        help=f"poll interval of --follow (default 1, {MIN_FOLLOW_INTERVAL:g}..60)",
    )

    bundle = add("bundle", "build deploy bundles encrypted for one peer")
    bsub = bundle.add_subparsers(dest="action", metavar="ACTION")
    bsub.required = True
    bprof = bsub.add_parser("create-profile", parents=[common], help="a profile bundle")
    bprof.add_argument("profile", type=Path, metavar="PROFILE.json")
    bmin = bsub.add_parser("create-miner", parents=[common], help="a miner bundle")
    bmin.add_argument("binary", type=Path, metavar="BINARY")
    bmin.add_argument("--profile", type=Path, metavar="PROFILE.json")
    bmin.add_argument("--type", choices=("miner", "full"), default="miner", dest="bundle_type")
    for b in (bprof, bmin):
        b.add_argument(
            "--peer",
            metavar="PEER",
            help="encrypt for this known peer (its key and ours give the password)",
        )
        b.add_argument("--password", help="encrypt with this password instead")
        b.add_argument("--name", help="bundle name (default: the file name)")
        b.add_argument("-o", "--output", type=Path, metavar="FILE", help="default: stdout")
    bprof.add_argument(
        "--unencrypted", action="store_true", help="plain profile bundle (any peer can read it)"
    )

    deploy = add("deploy", "send a bundle, a profile JSON or a miner binary to a worker")
    deploy.add_argument("peer", metavar="PEER")
    deploy.add_argument("bundle", type=Path, metavar="BUNDLE")
    deploy.add_argument("--name", help="name on the worker (default: the file name)")
    deploy.add_argument(
        "--profile",
        type=Path,
        metavar="PROFILE.json",
        help="with a miner binary: the profile to ship along",
    )

    add_ueps_subcommand(add, common)

    demo = add("demo", "a live three-node mesh on 127.0.0.1, step by step (< 20 s)")
    demo.add_argument("--no-color", action="store_true", help="plain text output")
    demo.add_argument(
        "--dashboard",
        metavar="[HOST:]PORT",
        nargs="?",
        const="",
        help="keep the mesh running with the fleet dashboard open until Ctrl-C "
        "(default 127.0.0.1:9092, or a free port)",
    )
    return parser


# --------------------------------------------------------------------------------------------
# Shared plumbing


class _Ctx:
    """What every command needs: parsed args, paths, output streams."""

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.json: bool = bool(args.json)
        self.paths = NodePaths.from_env(args.data_dir)
        self.timeout: float | None = args.timeout

    def say(self, text: str) -> None:
        """Human output (stdout), skipped with --json."""
        if not self.json:
            self.out.write(shown_lines(text) + "\n")
            self.out.flush()

    def note(self, text: str) -> None:
        """Progress and side remarks (stderr), skipped with --json."""
        if not self.json:
            self.err.write(shown_lines(text) + "\n")
            self.err.flush()

    def emit(self, obj: Any) -> None:
        if self.json:
            print_json(obj, self.out)

    def _has_identity(self) -> bool:
        try:
            return NodeManager(self.paths.key, self.paths.identity).has_identity
        except CorruptIdentityError:
            return True  # not a fresh dir: Node.start reports the corruption

    def base_config(self) -> NodeConfig:
        path = self.paths.config
        if path is not None and path.is_file():
            return NodeConfig.from_file(path)
        return NodeConfig()

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[Node]:
        """A short-lived node with this data dir's identity, listening on loopback only."""
        base = self.base_config()
        # The data dir's TLS settings decide ws:// or wss:// for bare HOST:PORT peers, as in
        # serve; miners, allowlist and metrics are serve's business, not a client's.
        cfg = NodeConfig(
            listen="127.0.0.1:0",
            name=base.name,
            tls_cert=base.tls_cert,
            tls_key=base.tls_key,
            tls_ca=base.tls_ca,
            transport=base.transport,
            profile_dir=base.profile_dir,
            max_learned_peers=base.max_learned_peers,
        )
        tcfg = cfg.transport_config()
        ccfg = None
        if self.timeout is not None:
            t = self.timeout
            tcfg = tcfg.replace(connect_timeout=t, handshake_timeout=t)
            ccfg = ControllerConfig(
                stats_timeout=t,
                miner_timeout=t,
                logs_timeout=t,
                ping_timeout=t,
                deploy_timeout=max(t, 1.0),
                connect_timeout=2 * t,
            )
        fresh = not self._has_identity()
        node = Node(self.args.data_dir, config=cfg, transport_config=tcfg, controller_config=ccfg)
        await node.start()
        if fresh:
            # A mistyped --data-dir would otherwise become a new node silently (issue 15).
            where = self.paths.root if self.paths.root is not None else "the default location"
            self.note(
                f"p2p-node: note: no identity in {shown(str(where), 200)}: created a new one "
                f"(id {node.id}); if you meant an existing node, check --data-dir / "
                f"${DATA_DIR_ENV}"
            )
        try:
            yield node
        finally:
            await node.close()


def _open_registry(paths: NodePaths) -> PeerRegistry:
    return PeerRegistry(paths.peers)


def _peer_json(peer: Peer) -> dict[str, Any]:
    doc = peer.to_dict()
    doc["connected"] = bool(peer.connected)
    doc["protocol"] = _peer_protocol(peer)
    return doc


def _peer_protocol(peer: Peer) -> str:
    """``"1.1"`` for a peer pinned to protocol 1.1, else ``"1.0"`` (Go's, and the default)."""
    return "1.1" if peer.protocol == "1.1" else "1.0"


def _label(peer: Peer | None, peer_id: str) -> str:
    if peer is not None and peer.name:
        return f"{shown(peer.name)} ({short_id(peer_id)})"
    return short_id(peer_id)


def _read_file(path: Path, what: str) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_INPUT_FILE:
            raise CliError(
                f"{what} {path} is larger than {human_bytes(MAX_INPUT_FILE)}", EXIT_USAGE
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise CliError(f"{what} {path} does not exist", EXIT_USAGE) from None
    except IsADirectoryError:
        raise CliError(f"{what} {path} is a directory", EXIT_USAGE) from None


def check_address(text: str, what: str = "address") -> str:
    """A dial address (``ws://HOST:PORT/PATH``, ``wss://…`` or ``HOST:PORT``) checked
    locally, before anything is sent: the scheme, and a port in 1..65535."""
    value = text.strip()
    if "://" in value:
        scheme = value.partition("://")[0].lower()
        if scheme not in ("ws", "wss"):
            raise CliError(
                f"{what} {shown(text, 200)} uses {shown(scheme)}://, not ws:// or wss://",
                EXIT_USAGE,
                "p2p nodes speak WebSocket: give ws://HOST:PORT/ws (wss:// with TLS)",
            )
        try:
            parts = urlsplit(value)
            port = parts.port
            host = parts.hostname
        except ValueError as exc:
            raise CliError(
                f"{what} {shown(text, 200)} is not a valid address ({exc})",
                EXIT_USAGE,
                "give ws://HOST:PORT/ws with a port in 1..65535",
            ) from None
        if not host:
            raise CliError(f"{what} {shown(text, 200)} has no host", EXIT_USAGE)
        if port is not None and port == 0:
            raise CliError(f"{what} {shown(text, 200)} has port 0", EXIT_USAGE)
        return text
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 1 <= int(port_text[:6]) <= 65535:
        raise CliError(
            f"{what} {shown(text, 200)} is not HOST:PORT with a port in 1..65535",
            EXIT_USAGE,
            "give ws://HOST:PORT/ws or HOST:PORT",
        )
    return text


def _looks_like_address(ref: str) -> bool:
    return "://" in ref or (":" in ref and ref.rpartition(":")[2].isdigit())


def _check_public_key(text: str) -> str:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise CliError(
            f"{text[:60]!r} is neither a known peer nor a base64 X25519 public key",
            EXIT_USAGE,
            "run `p2p-node peers list` to see known peers",
        )
    return text


# --------------------------------------------------------------------------------------------
# identity


async def cmd_identity(ctx: _Ctx) -> int:
    paths = ctx.paths
    if ctx.args.action == "init":
        try:
            existed = NodeManager(paths.key, paths.identity).has_identity
        except CorruptIdentityError:
            if not ctx.args.force:
                raise
            existed = True
        if existed and ctx.args.force:
            # unusable files are kept beside the new ones with a .corrupt suffix
            manager = NodeManager(paths.key, paths.identity, ignore_corrupt=True)
            old = manager.identity
            name = ctx.args.name or (old.name if old is not None else None) or "lethean-node"
            manager.generate(name, NodeRole(ctx.args.role))
            ctx.note("replaced the identity with a new key pair")
        else:
            manager = load_or_create(
                paths.key, paths.identity, name=ctx.args.name, role=NodeRole(ctx.args.role)
            )
            if existed:
                ctx.note("an identity already exists (use --force to replace it)")
    else:
        manager = NodeManager(paths.key, paths.identity)
        if not manager.has_identity:
            where = paths.root if paths.root is not None else "the default location"
            raise CliError(
                f"no identity in {where}", EXIT_ERROR, "create one with `p2p-node identity init`"
            )
    ident = manager.require_identity()
    doc = ident.to_dict()
    ctx.emit(doc)
    ctx.say(
        f"id          {ident.id}\nname        {shown(ident.name)}\npublic key  {ident.public_key}\n"
        f"role        {doc.get('role', '')}\ncreated     {doc.get('createdAt', '')}\n"
        f"key file    {manager.key_path}"
    )
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# serve


def _serve_config(ctx: _Ctx) -> NodeConfig:
    a = ctx.args
    cfg = NodeConfig.from_file(a.config) if a.config is not None else ctx.base_config()
    miners = dict(cfg.miners)
    for item in a.miner:
        miner_type, sep, command = item.partition("=")
        if not sep or not miner_type or not command.strip():
            raise NodeConfigError("--miner", f"expected TYPE=COMMAND, got {item!r}")
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise NodeConfigError("--miner", f"bad command {command!r}: {exc}") from exc
        miners[miner_type] = MinerConfig.from_table(miner_type, {"command": argv})
    for item in a.miner_stats:
        miner_type, sep, regex = item.partition("=")
        if not sep or not miner_type or not regex:
            raise NodeConfigError("--miner-stats", f"expected TYPE=REGEX, got {item!r}")
        if miner_type not in miners:
            raise NodeConfigError(
                "--miner-stats", f"no miner type {miner_type!r} (add it with --miner or config)"
            )
        table: dict[str, Any] = {
            "command": list(miners[miner_type].command),
            "env": dict(miners[miner_type].env),
            "stats_regex": regex,
            "log_lines": miners[miner_type].log_lines,
            "stop_grace": miners[miner_type].stop_grace,
        }
        miners[miner_type] = MinerConfig.from_table(miner_type, table)
    check_file(a.tls_cert, "--tls-cert")
    check_file(a.tls_key, "--tls-key")
    check_file(a.tls_ca, "--tls-ca")
    return cfg.replace(
        listen=a.listen,
        name=a.name,
        tls_cert=a.tls_cert,
        tls_key=a.tls_key,
        tls_ca=a.tls_ca,
        auth_mode=a.auth_mode,
        allowlist=(*cfg.allowlist, *a.allow) if a.allow else None,
        profile_dir=a.profile_dir,
        log_format=a.log_format,
        metrics=a.metrics,
        miners=miners,
        controllers=(*cfg.controllers, *a.controller) if a.controller else None,
    )


class _JsonLogFormatter(logging.Formatter):
    """One JSON object per log line: ts, level, logger, msg (structured logs for `serve`)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def _setup_logging(
    verbose: int, *, serve: bool = False, fmt: str = "text", level: str = "info"
) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonLogFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)
    if verbose >= 2:
        root.setLevel(logging.DEBUG)
    elif verbose == 1:
        root.setLevel(logging.INFO)
    elif serve:
        root.setLevel(getattr(logging, level.upper(), logging.INFO))
    else:
        root.setLevel(logging.WARNING)


def _serve_lock_path(paths: NodePaths) -> Path:
    return (paths.root if paths.root is not None else paths.profiles.parent) / "serve.lock"


async def cmd_serve(ctx: _Ctx) -> int:
    cfg = _serve_config(ctx)
    _setup_logging(ctx.args.verbose, serve=True, fmt=cfg.log_format, level=cfg.log_level)
    lock = DataDirLock(_serve_lock_path(ctx.paths))
    try:
        lock.acquire()
    except DataDirLockedError as exc:
        raise CliError(
            str(exc), EXIT_ERROR, "stop it first, or give this node its own --data-dir"
        ) from None
    try:
        return await _serve_locked(ctx, cfg)
    finally:
        lock.release()


async def _serve_locked(ctx: _Ctx, cfg: NodeConfig) -> int:
    node = Node(ctx.args.data_dir, config=cfg, listen=cfg.listen, watch_files=True)
    metrics_server: Any = None
    dashboard: Any = None
    dash_cfg = choose_config(
        cfg.dashboard, ctx.args.dashboard, read_only=ctx.args.dashboard_read_only
    )
    with _stop_on_signals() as stop:
        try:
            try:
                await node.start()
            except OSError as exc:
                if exc.filename is not None:
                    raise
                raise _listen_error("--listen", cfg.listen, exc) from None
            if cfg.metrics is not None:
                try:
                    metrics_server = _metrics.start(node, cfg.metrics)
                except OSError as exc:
                    raise _listen_error("--metrics", cfg.metrics, exc) from None
            info: dict[str, str] = node.info()
            if dash_cfg is not None:
                dashboard = await start_dashboard(node, dash_cfg)
                info["dashboard"] = dashboard.url
                if cfg.log_format == "text":
                    ctx.err.write(f"dashboard: open {dashboard.url}\n")
                    ctx.err.flush()
            # The contract: exactly one JSON line on stdout once listening.
            print_json(info, ctx.out)
            _log_authorization(node)
            log.info(
                "serving as %s (%s); SIGTERM or Ctrl-C stops",
                safe_text(node.identity.name),
                node.id,
            )
            await stop.wait()
            log.info("stopping")
        finally:
            if metrics_server is not None:
                metrics_server.shutdown()
            if dashboard is not None:
                await dashboard.close()
            await node.close()
    return EXIT_OK


def _listen_error(flag: str, address: str, exc: OSError) -> CliError:
    """A failed bind, naming the flag and the address (not a bare "Name or service ...")."""
    what = safe_text(exc.strerror or exc, 120)
    if exc.errno == errno.EADDRINUSE:
        return CliError(
            f"cannot listen on {safe_text(address, 100)} ({flag}): the address is in use",
            EXIT_ERROR,
            f"pick another {flag} port, or stop what uses it",
        )
    if isinstance(exc, socket.gaierror):
        return CliError(
            f"cannot listen on {safe_text(address, 100)} ({flag}): the host does not resolve "
            f"({what})",
            EXIT_USAGE,
            "give an IP address of this machine, 0.0.0.0, or 127.0.0.1",
        )
    return CliError(
        f"cannot listen on {safe_text(address, 100)} ({flag}): {what}",
        EXIT_ERROR,
        f"check {flag}: an address of this machine and a port you may bind",
    )


def _log_authorization(node: Node) -> None:
    """The one start-up line on who may command this node."""
    count = len(node.policy.controllers)
    if count == 0:
        log.warning(
            "authorization: 0 controllers trusted: peers may ping and read stats, no one may "
            "start miners, read logs or deploy; grant one with `p2p-node controllers add "
            "PEER|KEY` (picked up while serving)"
        )
    else:
        log.info(
            "authorization: %d controller%s trusted (control: miners, logs, deploy); "
            "see `p2p-node controllers list`",
            count,
            "" if count == 1 else "s",
        )


# --------------------------------------------------------------------------------------------
# controllers


def _key_of(ctx: _Ctx, ref: str) -> tuple[str, Peer | None]:
    """A PEER's public key, or `ref` itself when it is a key."""
    registry = _open_registry(ctx.paths)
    try:
        try:
            found: Peer | None = resolve_peer(registry.peers(), ref)
        except LookupError:
            found = None
    finally:
        registry.close()
    if found is not None:
        if not found.public_key:
            raise CliError(
                f"peer {found.id} has no known public key",
                EXIT_USAGE,
                "connect to it once with `p2p-node peers add`, or give its key",
            )
        return normalise_key(found.public_key), found
    try:
        return normalise_key(ref), None
    except PolicyError:
        raise CliError(
            f"{ref[:60]!r} is neither a known peer nor a base64 X25519 public key",
            EXIT_USAGE,
            "give the controller's key (`p2p-node identity show` on the controller prints it)",
        ) from None


async def cmd_controllers(ctx: _Ctx) -> int:
    path = ctx.paths.controllers
    try:
        keys = load_controllers(path)
    except PolicyError as exc:
        raise CliError(str(exc), EXIT_ERROR, f"fix or remove {path}") from None
    configured = list(ctx.base_config().controllers)
    action = ctx.args.action
    if action == "list":
        registry = _open_registry(ctx.paths)
        try:
            names = {p.public_key: p for p in registry.peers() if p.public_key}
        finally:
            registry.close()
        rows = [(k, "controllers.json") for k in keys]
        rows += [(k, "config.toml") for k in configured if k not in keys]
        ctx.emit(
            {
                "controllers": [
                    {"publicKey": k, "source": src, "peer": names[k].id if k in names else None}
                    for k, src in rows
                ]
            }
        )
        if not rows:
            ctx.say(
                "no controllers: no one may start miners, read logs or deploy here; "
                "grant one with `p2p-node controllers add PEER|KEY`"
            )
        else:
            shown = [
                (k, _label(names.get(k), names[k].id) if k in names else "-", src)
                for k, src in rows
            ]
            ctx.say(table(("PUBLIC KEY", "PEER", "SOURCE"), shown))
        return EXIT_OK
    key, peer = _key_of(ctx, ctx.args.peer)
    what = f"{_label(peer, peer.id)} ({key})" if peer is not None else key
    if action == "add":
        changed = key not in keys
        if changed:
            save_controllers(path, [*keys, key])
        ctx.emit({"action": "add", "publicKey": key, "peer": peer.id if peer else None})
        ctx.say(f"granted control to {what}" if changed else f"{what} already has control")
        return EXIT_OK
    if key not in keys:
        if key in configured:
            raise CliError(
                f"{key} is granted control by config.toml [authorization]",
                EXIT_USAGE,
                "remove it from the controllers list there",
            )
        raise CliError(f"{key} is not a controller", EXIT_USAGE, "see `p2p-node controllers list`")
    save_controllers(path, [k for k in keys if k != key])
    ctx.emit({"action": "remove", "publicKey": key, "peer": peer.id if peer else None})
    ctx.say(f"withdrew control from {what}")
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# peers


async def cmd_peers(ctx: _Ctx) -> int:
    action = ctx.args.action
    if action == "add":
        return await _peers_add(ctx)
    registry = _open_registry(ctx.paths)
    try:
        if action == "list":
            peers = registry.peers()
            allow = registry.allowed_public_keys()
            learned = registry.learned_ids()
            ctx.emit(
                {
                    "peers": [{**_peer_json(p), "learned": p.id in learned} for p in peers],
                    "allowlist": allow,
                }
            )
            if not peers:
                ctx.say("no peers yet: add one with `p2p-node peers add ws://HOST:PORT/ws`")
            else:
                rows = [
                    (
                        p.id,
                        p.name or "-",
                        p.address or "-",
                        f"{p.ping_ms:.1f} ms" if p.ping_ms else "-",
                        round(p.score, 1),
                        _peer_protocol(p),
                        "yes" if p.public_key in allow else "no",
                        # a learned peer's name is only its own claim (issue 13)
                        "learned" if p.id in learned else "added",
                    )
                    for p in registry.by_score()
                ]
                headers = (
                    "ID",
                    "NAME",
                    "ADDRESS",
                    "PING",
                    "SCORE",
                    "PROTOCOL",
                    "ALLOWED",
                    "ORIGIN",
                )
                ctx.say(table(headers, rows))
                if any(p.protocol == "1.1" for p in peers):
                    ctx.say(
                        "peers on protocol 1.1 are pinned to it (1.0 from or to them is "
                        "refused); `p2p-node peers reset-protocol PEER` lifts a pin"
                    )
            extra = [k for k in allow if k not in {p.public_key for p in peers}]
            if extra:
                ctx.say("allowlisted keys of unknown peers:\n" + "\n".join("  " + k for k in extra))
            return EXIT_OK
        if action == "reset-protocol":
            peer = resolve_peer(registry, ctx.args.peer)
            old = registry.reset_protocol(peer.id)
            await registry.flush()
            ctx.emit({"peer": peer.id, "was": _peer_protocol(peer), "protocol": "1.0"})
            if old == "1.1":
                ctx.say(f"{_label(peer, peer.id)}: protocol 1.1 pin lifted (1.0 accepted again)")
            else:
                ctx.say(f"{_label(peer, peer.id)} was not pinned to protocol 1.1")
            return EXIT_OK
        if action == "remove":
            peer = resolve_peer(registry, ctx.args.peer)
            registry.remove(peer.id)
            ctx.emit({"removed": peer.id})
            ctx.say(f"removed {_label(peer, peer.id)}")
            return EXIT_OK
        # allow / revoke: a PEER or a raw key
        ref = ctx.args.peer
        try:
            found: Peer | None = resolve_peer(registry, ref)
        except LookupError:
            found = None
        if found is not None and not found.public_key:
            raise CliError(
                f"peer {found.id} has no known public key",
                EXIT_USAGE,
                "connect to it once with `p2p-node peers add`",
            )
        key = found.public_key if found is not None else _check_public_key(ref)
        what = _label(found, found.id) if found is not None else key
        if action == "allow":
            registry.allow_public_key(key)
            ctx.emit({"action": action, "publicKey": key, "peer": found.id if found else None})
            ctx.say(f"allowed {what}")
            return EXIT_OK
        # revoke: no longer trusted at all. A peer record admits its key in allowlist mode,
        # so the records holding the key go too; a running serve (allowlist mode) also
        # drops the live connection when it picks the change up.
        registry.revoke_public_key(key)
        forgotten = [p.id for p in registry.peers() if p.public_key == key]
        for pid in forgotten:
            registry.remove(pid)
        await registry.flush()
        ctx.emit(
            {
                "action": action,
                "publicKey": key,
                "peer": found.id if found else None,
                "forgotten": forgotten,
            }
        )
        ctx.say(f"revoked {what}" + (" and forgot its peer record" if forgotten else ""))
        if ctx.base_config().auth_mode != "allowlist":
            ctx.note(
                'note: config.toml does not set auth_mode = "allowlist": a serve in open mode '
                "admits every key (revoke matters with `serve --auth allowlist`)"
            )
        else:
            ctx.note("a running serve drops the peer's connection within 2 s")
        return EXIT_OK
    finally:
        registry.close()


async def _peers_add(ctx: _Ctx) -> int:
    a = ctx.args
    check_address(a.address)
    if a.public_key:
        try:
            normalise_key(a.public_key)
        except PolicyError:
            raise CliError(
                f"--public-key {shown(a.public_key, 60)} is not a base64 X25519 public key "
                "(44 characters)",
                EXIT_USAGE,
                "copy the key from `p2p-node identity show` on that peer, or leave "
                "--public-key out to trust the key on first use",
            ) from None
    async with ctx.client() as node:
        peer = await node.add_peer(a.address, public_key=a.public_key, name=a.name)
    ctx.emit(_peer_json(peer))
    if not ctx.json:
        ctx.out.write(peer.id + "\n")
        trust = "key pinned" if a.public_key else "key trusted on first use"
        ctx.note(f"added {shown(peer.name or 'peer')} at {shown(peer.address, 200)} ({trust})")
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# ping / stats / miner / logs


async def cmd_ping(ctx: _Ctx) -> int:
    samples: list[float] = []
    async with ctx.client() as node:
        peer, conn = await node.connect(ctx.args.peer)
        peer_id = conn.peer_id
        label = _label(peer, peer_id)
        for i in range(ctx.args.count):
            if i:
                await asyncio.sleep(0.5)
            rtt = await node.controller.ping_peer(peer_id)
            samples.append(rtt)
            ctx.say(f"pong from {label}: {rtt:.2f} ms")
    name = peer.name if peer is not None else ""
    ctx.emit(
        {
            "peer": peer_id,
            "name": name,
            "rttMs": sum(samples) / len(samples),
            "samples": [round(s, 3) for s in samples],
        }
    )
    if len(samples) > 1:
        ctx.say(
            f"min/avg/max {min(samples):.2f}/{sum(samples) / len(samples):.2f}/"
            f"{max(samples):.2f} ms"
        )
    return EXIT_OK


async def cmd_stats(ctx: _Ctx) -> int:
    a = ctx.args
    if a.peer and a.all:
        raise CliError("give a PEER or --all, not both", EXIT_USAGE)
    async with ctx.client() as node:
        if a.peer:
            peer, conn = await node.connect(a.peer)
            stats = stats_dict(await node.controller.get_remote_stats(conn.peer_id))
            ctx.emit(stats)
            ctx.say(stats_text(peer.name if peer is not None else "", stats))
            return EXIT_OK
        peers = [p for p in node.registry.peers() if p.address]
        if not peers:
            raise CliError(
                "no peers with an address are known",
                EXIT_USAGE,
                "add one with `p2p-node peers add ws://HOST:PORT/ws`",
            )
        ctx.note(f"asking {len(peers)} peer(s) for stats…")
        errors: dict[str, str] = {}

        async def dial(p: Peer) -> None:
            try:
                await node.controller.connect_to_peer(p.id)
            except Exception as exc:
                errors[p.id] = classify(exc).sentence()

        await asyncio.gather(*(dial(p) for p in peers))
        result = await node.controller.get_all_stats()
        for pid, exc in result.errors.items():
            errors[pid] = classify(exc).sentence()
        got = {pid: stats_dict(s) for pid, s in result.items()}
    ctx.emit({"stats": got, "errors": errors})
    names = {p.id: p for p in peers}
    for pid, s in got.items():
        known = names.get(pid)
        ctx.say(stats_text(known.name if known is not None else "", s))
    for pid, text in errors.items():
        ctx.say(f"{_label(names.get(pid), pid)}: {shown(text, 300)}")
    ctx.note(f"{len(got)} answered, {len(errors)} failed")
    return EXIT_OK if not errors else EXIT_UNREACHABLE


def _config_arg(text: str | None) -> Any:
    if text is None:
        return None
    raw = (
        _read_file(Path(text[1:]), "config file").decode("utf-8", "replace")
        if text.startswith("@")
        else text
    )
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CliError(f"--config is not valid JSON: {exc}", EXIT_USAGE) from exc


async def cmd_miner(ctx: _Ctx) -> int:
    a = ctx.args
    async with ctx.client() as node:
        peer, conn = await node.connect(a.peer)
        label = _label(peer, conn.peer_id)
        if a.action == "start":
            config = _config_arg(a.config)
            if config is None and not a.profile:
                config = {}
            name = await node.controller.start_remote_miner(
                conn.peer_id, a.miner_type, a.profile, config
            )
            ctx.emit({"peer": conn.peer_id, "minerName": name, "started": True})
            ctx.say(f"started miner {shown(name)} on {label}")
            if not ctx.json:
                ctx.note(f"see its output: p2p-node logs {a.peer} {name}")
        else:
            await node.controller.stop_remote_miner(conn.peer_id, a.miner_name)
            ctx.emit({"peer": conn.peer_id, "minerName": a.miner_name, "stopped": True})
            ctx.say(f"stopped miner {shown(a.miner_name)} on {label}")
    return EXIT_OK


async def cmd_logs(ctx: _Ctx) -> int:
    a = ctx.args
    since = parse_since(a.since) if a.since else None
    async with ctx.client() as node:
        _peer, conn = await node.connect(a.peer)
        started_ms = time.time_ns() // 1_000_000
        lines = await node.controller.get_remote_logs(conn.peer_id, a.miner_name, a.lines, since)
        if a.follow:
            for line in lines:
                _print_log_line(ctx, conn.peer_id, a.miner_name, line)
            await _follow_logs(ctx, node, conn.peer_id, a.miner_name, lines, last_ms=started_ms)
            return EXIT_OK
    ctx.emit({"peer": conn.peer_id, "minerName": a.miner_name, "lines": lines})
    for line in lines:
        ctx.say(shown(line, 4096))  # a miner's output line: escaped, one terminal line
    if not lines:
        ctx.note("(no output lines)")
    return EXIT_OK


def _print_log_line(ctx: _Ctx, peer_id: str, miner: str, line: str) -> None:
    """One followed line: escaped and bounded; with --json one object per line."""
    if ctx.json:
        print_json({"peer": peer_id, "minerName": miner, "line": line[:4096]}, ctx.out)
    else:
        ctx.say(shown(line, 4096))


def new_log_lines(printed: list[str], fetched: list[str]) -> list[str]:
    """The lines of `fetched` after the longest overlap of its head with `printed`'s tail
    (polls overlap in time, see FOLLOW_OVERLAP_MS). Pure, so it is tested on its own."""
    for k in range(min(len(printed), len(fetched)), 0, -1):
        if printed[-k:] == fetched[:k]:
            return fetched[k:]
    return fetched


async def _follow_logs(
    ctx: _Ctx, node: Node, peer_id: str, miner: str, printed: list[str], *, last_ms: int
) -> None:
    """`logs --follow`: poll with ``since`` until Ctrl-C (or SIGTERM); bounded memory (the
    tail kept for de-duplication is at most --lines long)."""
    tail = list(printed[-ctx.args.lines :])
    with _stop_on_signals() as stop:
        while not stop.is_set():
            # asyncio.TimeoutError: on 3.10 it is not the builtin TimeoutError
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), ctx.args.interval)
            if stop.is_set():
                break
            now_ms = time.time_ns() // 1_000_000
            since = max(0, last_ms - FOLLOW_OVERLAP_MS)
            fetched = await node.controller.get_remote_logs(peer_id, miner, ctx.args.lines, since)
            last_ms = now_ms
            fresh = new_log_lines(tail, fetched)
            for line in fresh:
                _print_log_line(ctx, peer_id, miner, line)
            tail = (tail + fresh)[-ctx.args.lines :]


# --------------------------------------------------------------------------------------------
# bundles and deploy


def _bundle_password(ctx: _Ctx, peer_ref: str | None, password: str | None) -> str:
    if password:
        return password
    if not peer_ref:
        raise CliError(
            "say who the bundle is for",
            EXIT_USAGE,
            "add --peer PEER (or --password, or --unencrypted for profiles)",
        )
    registry = _open_registry(ctx.paths)
    try:
        peer = resolve_peer(registry, peer_ref)
    finally:
        registry.close()
    if not peer.public_key:
        raise CliError(
            f"peer {peer.id} has no known public key",
            EXIT_USAGE,
            "connect to it once with `p2p-node peers add`",
        )
    manager = NodeManager(ctx.paths.key, ctx.paths.identity)
    if not manager.has_identity:
        raise CliError(
            "no identity to derive the bundle password from",
            EXIT_ERROR,
            "run `p2p-node identity init`",
        )
    return password_for_secret(manager.derive_shared_secret(peer.public_key))


def _write_bundle(ctx: _Ctx, bundle: Bundle, output: Path | None) -> None:
    data = bundle.to_json()
    if output is None:
        ctx.out.write(data.decode("utf-8"))
        ctx.out.flush()
        return
    output.write_bytes(data)
    ctx.emit(
        {
            "path": str(output),
            "type": str(bundle.type),
            "name": bundle.name,
            "checksum": bundle.checksum,
            "bytes": len(bundle.data),
        }
    )
    ctx.say(
        f"wrote {bundle.type} bundle {bundle.name!r} ({human_bytes(len(bundle.data))}) to {output}"
    )


async def cmd_bundle(ctx: _Ctx) -> int:
    a = ctx.args
    if a.action == "create-profile":
        profile = _read_file(a.profile, "profile")
        _check_profile_json(profile, a.profile)
        name = sanitise_name(a.name or a.profile.stem)
        if a.unencrypted:
            bundle = bundles.create_profile_bundle_unencrypted(profile, name)
        else:
            bundle = bundles.create_profile_bundle(
                profile, name, _bundle_password(ctx, a.peer, a.password)
            )
    else:
        if not a.binary.is_file():
            raise CliError(f"miner binary {a.binary} does not exist", EXIT_USAGE)
        profile_json = _read_file(a.profile, "profile") if a.profile else None
        if profile_json is not None:
            _check_profile_json(profile_json, a.profile)
        name = sanitise_name(a.name or a.binary.name)
        bundle = bundles.create_miner_bundle(
            a.binary,
            profile_json,
            name,
            _bundle_password(ctx, a.peer, a.password),
            bundle_type=bundles.BundleType(a.bundle_type),
        )
    _write_bundle(ctx, bundle, a.output)
    return EXIT_OK


def _check_profile_json(raw: bytes, path: Path) -> None:
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise CliError(f"{path} is not valid JSON: {exc}", EXIT_USAGE) from exc
    if not isinstance(doc, dict):
        raise CliError(f"{path} must hold a JSON object", EXIT_USAGE)


def _file_kind(raw: bytes) -> str:
    """'bundle' (Bundle JSON), 'profile' (other JSON) or 'binary'."""
    head = raw.lstrip()[:1]
    if head not in (b"{", b"["):
        return "binary"
    try:
        doc = json.loads(raw)
    except ValueError:
        return "binary"
    if bundles.is_bundle_json(doc):
        return "bundle"
    return "profile"


def _check_deploy_file(kind: str, raw: bytes, path: Path) -> bundles.Bundle | None:
    """Refuse garbage before anything is sent: a Bundle JSON must be well formed with
    `data` matching its `type`, a profile a valid profile object, a binary a program."""
    if kind == "bundle":
        bundle = bundles.Bundle.from_json(raw)
        bundles.check_bundle_shape(bundle)
        return bundle
    if kind == "profile":
        try:
            bundles.validate_profile_json(raw)
        except bundles.BundleError as exc:
            raise CliError(f"{path} is not a profile: {exc}", EXIT_USAGE) from None
        return None
    if raw.lstrip()[:1] in (b"{", b"["):
        raise CliError(
            f"{path} starts like JSON but is not valid JSON (truncated?): refusing to deploy it",
            EXIT_USAGE,
        )
    if not bundles.is_executable_image(raw[:8]):
        raise CliError(
            f"{path} is neither a bundle, a profile JSON nor a program "
            "(no ELF, Mach-O, PE or #! header): refusing to deploy it as a miner",
            EXIT_USAGE,
        )
    return None


def _check_bundle_contents(bundle: bundles.Bundle, password: str) -> str | None:
    """Open the bundle with the password the worker will use; a bundle made with another
    password cannot be checked here and is left to the worker. Returns the id a profile
    bundle's profile is stored under when it can be read."""
    try:
        if bundle.type is bundles.BundleType.PROFILE:
            _raw, profile = bundles.inspect_profile_bundle(bundle, password)
            return _profile_id(profile, bundle.name)
        bundles.inspect_miner_bundle(bundle, password)
    except bundles.BundleDecryptError:
        log.info("bundle %r is not encrypted for this peer: the worker will decide", bundle.name)
    return None


def _profile_id(profile: Any, bundle_name: str) -> str:
    """The id a worker stores a deployed profile under: its ``id``, else the bundle name."""
    if isinstance(profile, dict) and profile.get("id"):
        return str(profile["id"])
    return bundle_name


async def cmd_deploy(ctx: _Ctx) -> int:
    a = ctx.args
    raw = _read_file(a.bundle, "bundle")
    kind = _file_kind(raw)
    prebuilt = _check_deploy_file(kind, raw, a.bundle)
    profile_json = _read_file(a.profile, "profile") if a.profile else None
    if profile_json is not None:
        try:
            bundles.validate_profile_json(profile_json)
        except bundles.BundleError as exc:
            raise CliError(f"{a.profile} is not a profile: {exc}", EXIT_USAGE) from None
    async with ctx.client() as node:
        peer, conn = await node.connect(a.peer)
        label = _label(peer, conn.peer_id)
        stored_as: str | None = None
        if prebuilt is not None:
            bundle = prebuilt
            password = await node.controller.bundle_password(conn.peer_id)
            if a.name:
                bundle = bundles.Bundle(
                    bundle.type, sanitise_name(a.name), bundle.data, bundle.checksum
                )
            stored_as = await asyncio.to_thread(_check_bundle_contents, bundle, password)
        else:
            password = await node.controller.bundle_password(conn.peer_id)
            name = sanitise_name(a.name or (a.bundle.stem if kind == "profile" else a.bundle.name))
            if kind == "profile":
                bundle = bundles.create_profile_bundle(raw, name, password)
                stored_as = _profile_id(json.loads(raw), name)
            else:
                bundle = await asyncio.to_thread(
                    bundles.create_miner_bundle, a.bundle, profile_json, name, password
                )
        size = len(bundle.data)
        ctx.note(
            f"deploying {bundle.type} bundle {bundle.name!r} ({human_bytes(size)}) to {label}…"
        )
        started = time.monotonic()
        acked = await node.controller.deploy(conn.peer_id, bundle)
        took = time.monotonic() - started
    # One name, the one to use later (`miner start --profile NAME`): a profile is stored
    # under its "id" (a worker of this version acks it; older ones ack the bundle name).
    deployed = stored_as or acked or bundle.name
    ctx.emit(
        {
            "peer": conn.peer_id,
            "name": deployed,
            "type": str(bundle.type),
            "bytes": size,
            "success": True,
            "seconds": round(took, 3),
        }
    )
    ctx.say(
        f"deployed {bundle.type} {shown(deployed)!r} to {label} in "
        f"{human_duration(took) if took >= 1 else f'{took * 1000:.0f} ms'}"
    )
    if bundle.type is bundles.BundleType.PROFILE and not ctx.json:
        ctx.note(f"start a miner with it: p2p-node miner start {a.peer} TYPE --profile {deployed}")
    return EXIT_OK


async def cmd_demo(ctx: _Ctx) -> int:
    color = not ctx.args.no_color and ctx.out.isatty()
    if ctx.args.dashboard is None:
        return await run_demo(ctx.out, color=color, as_json=ctx.json)
    dash_cfg = choose_config(None, ctx.args.dashboard or str(DEFAULT_DASHBOARD_PORT))
    with _stop_on_signals() as stop:
        return await run_demo(ctx.out, color=color, as_json=ctx.json, dashboard=dash_cfg, stop=stop)


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[asyncio.Event]:
    """An event that SIGINT (Ctrl-C) or SIGTERM sets while the block runs, so long-running
    commands stop cleanly; the handlers are removed afterwards."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - Windows
            pass
    try:
        yield stop
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _check_args(args: argparse.Namespace) -> None:
    """What argparse cannot check on its own, before any file is written or byte is sent."""
    peer = getattr(args, "peer", None)
    peerless = ("peers", "controllers", "bundle")
    if args.command not in peerless and isinstance(peer, str) and _looks_like_address(peer):
        check_address(peer, "PEER")
    if args.command == "logs" and args.since:
        parse_since(args.since)
    if args.command == "serve":
        for flag, value in (("--listen", args.listen), ("--metrics", args.metrics)):
            if value is not None:
                try:
                    parse_host_port(value, key=flag)
                except NodeConfigError as exc:
                    raise CliError(
                        f"{flag} {shown(value, 100)}: {exc.problem}",
                        EXIT_USAGE,
                        "give HOST:PORT with an IP address of this machine (0.0.0.0 for all)",
                    ) from None


_COMMANDS: dict[str, Callable[[_Ctx], Coroutine[Any, Any, int]]] = {
    "identity": cmd_identity,
    "serve": cmd_serve,
    "peers": cmd_peers,
    "controllers": cmd_controllers,
    "ping": cmd_ping,
    "stats": cmd_stats,
    "miner": cmd_miner,
    "logs": cmd_logs,
    "bundle": cmd_bundle,
    "deploy": cmd_deploy,
    "demo": cmd_demo,
    "ueps": cmd_ueps,
}


# --------------------------------------------------------------------------------------------
# Entry point


def main(
    argv: list[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Run one command; returns the exit code (the console script exits with it)."""
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    token = _RAISE_USAGE.set(True)
    try:
        args = parser.parse_args(words)
    except _UsageError as exc:
        hint = f"see `{exc.prog} --help`"
        if "--json" in words[: words.index("--")] if "--" in words else "--json" in words:
            print_json({"error": str(exc), "hint": hint, "exitCode": EXIT_USAGE}, out)
        else:
            err.write(exc.usage)
        err.write(f"p2p-node: {safe_text(str(exc), 1000)}; {hint}\n")
        err.flush()
        return EXIT_USAGE
    except SystemExit as exc:  # argparse: --help, --version (0)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    finally:
        _RAISE_USAGE.reset(token)
    if args.data_dir is None and os.environ.get(DATA_DIR_ENV):
        args.data_dir = os.environ[DATA_DIR_ENV]
    if args.command != "serve":
        _setup_logging(args.verbose)
    ctx = _Ctx(args, out, err)
    try:
        _check_args(args)
        busy_poll_us = getattr(args, "busy_poll_us", 0.0)
        return run_busy_poll(_COMMANDS[args.command](ctx), busy_poll_us=busy_poll_us)
    except KeyboardInterrupt:
        err.write("p2p-node: interrupted\n")
        return 130
    except BrokenPipeError:  # stdout closed early (`p2p-node demo | head`): not an error
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        return EXIT_OK
    except Exception as exc:
        failure = classify(exc)
        log.debug("command failed", exc_info=True)
        if args.json:
            print_json({"error": str(failure), "hint": failure.hint, "exitCode": failure.code}, out)
        err.write(f"p2p-node: {safe_text(failure.sentence(), 1000)}\n")
        err.flush()
        return failure.code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
