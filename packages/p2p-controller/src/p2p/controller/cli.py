"""`p2p-node`: run a Lethean P2P node and drive other nodes from the shell.

Contract other tools rely on (keep it stable):

- ``--data-dir DIR`` / ``$P2P_NODE_DIR`` puts every file under DIR (see `NodePaths`);
- ``identity show --json`` prints the identity JSON (id, name, publicKey, createdAt, role);
- ``serve`` prints one JSON line ``{"id","publicKey","address"}`` once listening, then
  serves until SIGTERM/SIGINT;
- ``peers add ADDRESS [--public-key B64] [--name N]`` connects, handshakes (pinned key or
  trust on first use), stores the peer and prints its id;
- ``controllers add|remove|list [PEER|KEY]`` edits who may control this node (the data
  dir's controllers.json, re-read by a running serve); ``serve --controller KEY`` grants
  control for one run;
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
import json
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any, TextIO

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
from p2p.controller._version import __version__
from p2p.controller.authz import PolicyError, normalise_key
from p2p.controller.bundles import Bundle
from p2p.controller.config import (
    DATA_DIR_ENV,
    MinerConfig,
    NodeConfig,
    NodeConfigError,
    NodePaths,
)
from p2p.controller.controller import ControllerConfig
from p2p.controller.controllers_file import load_controllers, save_controllers
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
from p2p.transport import password_for_secret

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


def _lines(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("must be in 1..10000")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (also used to render the README's CLI tour)."""
    common = argparse.ArgumentParser(add_help=False)
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

    parser = argparse.ArgumentParser(
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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
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
        help="run COMMAND (shell words) for miner TYPE (repeatable)",
    )
    serve.add_argument("--profile-dir", metavar="DIR", type=Path)
    serve.add_argument("--log-format", choices=("text", "json"))
    serve.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help="serve Prometheus metrics (needs p2p-controller[metrics])",
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
        node = Node(self.args.data_dir, config=cfg, transport_config=tcfg, controller_config=ccfg)
        await node.start()
        try:
            yield node
        finally:
            await node.close()


def _open_registry(paths: NodePaths) -> PeerRegistry:
    return PeerRegistry(paths.peers)


def _peer_json(peer: Peer) -> dict[str, Any]:
    doc = peer.to_dict()
    doc["connected"] = bool(peer.connected)
    return doc


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


async def cmd_serve(ctx: _Ctx) -> int:
    cfg = _serve_config(ctx)
    _setup_logging(ctx.args.verbose, serve=True, fmt=cfg.log_format, level=cfg.log_level)
    node = Node(ctx.args.data_dir, config=cfg, listen=cfg.listen, watch_files=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            pass
    metrics_server: Any = None
    try:
        await node.start()
        if cfg.metrics is not None:
            metrics_server = _metrics.start(node, cfg.metrics)
        # The contract: exactly one JSON line on stdout once listening.
        print_json(node.info(), ctx.out)
        _log_authorization(node)
        log.info(
            "serving as %s (%s); SIGTERM or Ctrl-C stops", safe_text(node.identity.name), node.id
        )
        await stop.wait()
        log.info("stopping")
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        if metrics_server is not None:
            metrics_server.shutdown()
        await node.close()
    return EXIT_OK


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
                        "yes" if p.public_key in allow else "no",
                        # a learned peer's name is only its own claim (issue 13)
                        "learned" if p.id in learned else "added",
                    )
                    for p in registry.by_score()
                ]
                headers = ("ID", "NAME", "ADDRESS", "PING", "SCORE", "ALLOWED", "ORIGIN")
                ctx.say(table(headers, rows))
            extra = [k for k in allow if k not in {p.public_key for p in peers}]
            if extra:
                ctx.say("allowlisted keys of unknown peers:\n" + "\n".join("  " + k for k in extra))
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
        if action == "allow":
            registry.allow_public_key(key)
        else:
            registry.revoke_public_key(key)
        ctx.emit({"action": action, "publicKey": key, "peer": found.id if found else None})
        what = _label(found, found.id) if found is not None else key
        ctx.say(f"{'allowed' if action == 'allow' else 'revoked'} {what}")
        return EXIT_OK
    finally:
        registry.close()


async def _peers_add(ctx: _Ctx) -> int:
    a = ctx.args
    if a.public_key:
        _check_public_key(a.public_key)
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
        lines = await node.controller.get_remote_logs(conn.peer_id, a.miner_name, a.lines, since)
    ctx.emit({"peer": conn.peer_id, "minerName": a.miner_name, "lines": lines})
    for line in lines:
        ctx.say(shown(line, 4096))  # a miner's output line: escaped, one terminal line
    if not lines:
        ctx.note("(no output lines)")
    return EXIT_OK


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
    if isinstance(doc, dict) and {k.lower() for k in doc} >= {"type", "data", "checksum"}:
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


def _check_bundle_contents(bundle: bundles.Bundle, password: str) -> None:
    """Open the bundle with the password the worker will use; a bundle made with another
    password cannot be checked here and is left to the worker."""
    try:
        if bundle.type is bundles.BundleType.PROFILE:
            bundles.inspect_profile_bundle(bundle, password)
        else:
            bundles.inspect_miner_bundle(bundle, password)
    except bundles.BundleDecryptError:
        log.info("bundle %r is not encrypted for this peer: the worker will decide", bundle.name)


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
        if prebuilt is not None:
            bundle = prebuilt
            password = await node.controller.bundle_password(conn.peer_id)
            await asyncio.to_thread(_check_bundle_contents, bundle, password)
            if a.name:
                bundle = bundles.Bundle(
                    bundle.type, sanitise_name(a.name), bundle.data, bundle.checksum
                )
        else:
            password = await node.controller.bundle_password(conn.peer_id)
            name = sanitise_name(a.name or (a.bundle.stem if kind == "profile" else a.bundle.name))
            if kind == "profile":
                bundle = bundles.create_profile_bundle(raw, name, password)
            else:
                bundle = await asyncio.to_thread(
                    bundles.create_miner_bundle, a.bundle, profile_json, name, password
                )
        size = len(bundle.data)
        ctx.note(
            f"deploying {bundle.type} bundle {bundle.name!r} ({human_bytes(size)}) to {label}…"
        )
        started = time.monotonic()
        deployed = await node.controller.deploy(conn.peer_id, bundle)
        took = time.monotonic() - started
    ctx.emit(
        {
            "peer": conn.peer_id,
            "name": deployed or bundle.name,
            "type": str(bundle.type),
            "bytes": size,
            "success": True,
            "seconds": round(took, 3),
        }
    )
    ctx.say(
        f"deployed {bundle.type} {shown(deployed or bundle.name)!r} to {label} in "
        f"{human_duration(took) if took >= 1 else f'{took * 1000:.0f} ms'}"
    )
    return EXIT_OK


async def cmd_demo(ctx: _Ctx) -> int:
    return await run_demo(ctx.out, color=not ctx.args.no_color and ctx.out.isatty())


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
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    if args.data_dir is None and os.environ.get(DATA_DIR_ENV):
        args.data_dir = os.environ[DATA_DIR_ENV]
    if args.command != "serve":
        _setup_logging(args.verbose)
    ctx = _Ctx(args, out, err)
    try:
        return asyncio.run(_COMMANDS[args.command](ctx))
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
