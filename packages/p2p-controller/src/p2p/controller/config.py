"""Node configuration: where a node keeps its files, and what `serve` runs with.

Pure data and validation, no sockets: `NodePaths` maps one data directory (or the Go
node's default locations) to the identity, peers, allowlist, profile and miner paths;
`NodeConfig` is everything `p2p-node serve` needs, read from a TOML file and overridden by
flags. Every value is checked here, at the boundary, so a typo in a config file fails at
start-up with a sentence naming the key, not later with a traceback.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import importlib
import ipaddress
import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs
from p2p.controller.authz import Policy, PolicyError
from p2p.controller.deploy_guard import DeployLimits, DeployRefusedError
from p2p.controller.errors import NodeConfigError
from p2p.controller.miners import (
    CommonMinerStats,
    JsonFileStats,
    MinerSpec,
    RegexStats,
    StatsSource,
)
from p2p.identity import has_control_chars, safe_text
from p2p.transport import TransportConfig

if TYPE_CHECKING:
    from p2p.controller.dashboard.settings import DashboardConfig

__all__ = [
    "DATA_DIR_ENV",
    "MAX_CONFIG_BYTES",
    "MinerConfig",
    "NodeConfig",
    "NodeConfigError",
    "NodePaths",
    "check_file",
    "load_toml",
    "parse_host_port",
]

#: The environment variable that sets the data directory (same as ``--data-dir``).
DATA_DIR_ENV = "P2P_NODE_DIR"
#: A config file larger than this is refused (it is a few hundred bytes in practice).
MAX_CONFIG_BYTES = 1 << 20
#: Default listen address of `serve`: all interfaces, the reference's port.
DEFAULT_LISTEN = "0.0.0.0:9091"
_AUTH_MODES = ("open", "allowlist")
_LOG_FORMATS = ("text", "json")
_LOG_LEVELS = ("debug", "info", "warning", "error")
_MAX_MINER_TYPES = 256
_MAX_ALLOWLIST = 100_000
DEFAULT_MAX_LEARNED_PEERS = 1_000
_MAX_LEARNED_PEERS = 1_000_000


def parse_host_port(text: str, *, key: str = "listen") -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, ``:port`` or a ``ws://host:port/ws`` URI -> (host, port)."""
    value = text.strip()
    if "://" in value:
        scheme, _, rest = value.partition("://")
        if scheme not in ("ws", "wss"):
            raise NodeConfigError(key, f"unsupported scheme {scheme!r} (use ws:// or wss://)")
        value = rest.split("/", 1)[0]
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or len(port_text) > 5:
        raise NodeConfigError(key, f"expected HOST:PORT, got {text!r}")
    port = int(port_text)
    if port > 65535:
        raise NodeConfigError(key, f"port {port} out of range 0..65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    _check_host(host, key)
    return (host or "0.0.0.0", port)


_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,62})(\.[A-Za-z0-9_-]{1,63})*\.?$"
)


def _check_host(host: str, key: str) -> None:
    """Refuse, without resolving anything, a host that can be neither an IP literal nor a
    DNS name: ``999.1.1.1`` looks like IPv4 and is not one."""
    if not host:
        return
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise NodeConfigError(key, f"{host!r} is not a valid IPv6 address") from None
        return
    if all(part.isdigit() for part in host.split(".")):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise NodeConfigError(key, f"{host!r} is not a valid IPv4 address") from None
        return
    if not _HOST_NAME.match(host):
        raise NodeConfigError(key, f"{host[:80]!r} is not a valid host name or IP address")


def load_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file (tomllib on 3.11+, the ``tomli`` package on 3.10)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise NodeConfigError(str(path), f"cannot read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise NodeConfigError(str(path), f"larger than {MAX_CONFIG_BYTES} bytes")
    name = "tomllib" if sys.version_info >= (3, 11) else "tomli"
    try:
        toml = importlib.import_module(name)
    except ImportError:  # pragma: no cover - 3.10 without tomli
        raise NodeConfigError(
            str(path), "reading TOML on Python 3.10 needs: pip install tomli"
        ) from None
    try:
        text = raw.decode("utf-8")
        doc = toml.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise NodeConfigError(str(path), f"not valid TOML: {exc}") from exc
    if not isinstance(doc, dict):  # pragma: no cover - tomllib always returns a dict
        raise NodeConfigError(str(path), "not a TOML table")
    return doc


@dataclass(frozen=True)
class NodePaths:
    """Where a node's state lives.

    With a data directory everything is under it::

        DIR/node/private.key   DIR/node.json          identity (0600 key)
        DIR/peers.json         DIR/peers.json.allowlist.json
        DIR/profiles/          DIR/miners/            profiles, miner run directories
        DIR/lethean-desktop/miners/<name>             deployed miner binaries
        DIR/config.toml                               read by `serve` when present
        DIR/controllers.json                          keys granted control (CLI-managed)
        DIR/serve.lock                                held by the running `serve` (its pid)

    Without one, the identity and peers are where a Go node keeps them (so a Python node
    and a Go node on one machine share them), and the rest is under the user data dir.
    """

    root: Path | None
    key: Path | None
    identity: Path | None
    peers: Path | None
    profiles: Path
    miners: Path
    worker_data: Path | None
    config: Path | None

    @classmethod
    def for_dir(cls, data_dir: str | os.PathLike[str] | None) -> NodePaths:
        if data_dir is None or str(data_dir) == "":
            base = Path(platformdirs.user_data_dir()) / "lethean-desktop"
            return cls(None, None, None, None, base / "profiles", base / "miners-run", None, None)
        root = Path(data_dir).expanduser()
        return cls(
            root=root,
            key=root / "node" / "private.key",
            identity=root / "node.json",
            peers=root / "peers.json",
            profiles=root / "profiles",
            miners=root / "miners",
            worker_data=root,
            config=root / "config.toml",
        )

    @classmethod
    def from_env(cls, data_dir: str | os.PathLike[str] | None = None) -> NodePaths:
        """`data_dir` if given, else ``$P2P_NODE_DIR``, else the default locations."""
        if data_dir is None:
            data_dir = os.environ.get(DATA_DIR_ENV) or None
        return cls.for_dir(data_dir)

    @property
    def controllers(self) -> Path:
        """The controllers file (`p2p-node controllers add` writes it, `serve` reads it)."""
        return self.profiles.parent / "controllers.json"

    @property
    def allowlist(self) -> Path | None:
        """The allowlist sidecar the registry keeps beside peers.json."""
        if self.peers is None:
            return None
        return self.peers.with_name(self.peers.name + ".allowlist.json")


@dataclass(frozen=True)
class MinerConfig:
    """One ``[miners.<type>]`` table: how to run that miner type as a process."""

    command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    stats_json: str | None = None
    stats_regex: str | None = None
    log_lines: int = 1000
    stop_grace: float = 5.0

    def spec(self) -> MinerSpec:
        """The `ProcessMinerManager` spec (validated there too)."""
        stats: StatsSource
        if self.stats_regex is not None:
            stats = RegexStats(self.stats_regex)
        elif self.stats_json is not None:
            stats = JsonFileStats(self.stats_json)
        else:
            stats = CommonMinerStats()  # xmrig "speed …", "N H/s", "accepted (A/R)"
        return MinerSpec(
            command=list(self.command),
            env=dict(self.env),
            stats=stats,
            log_lines=self.log_lines,
            stop_grace=self.stop_grace,
        )

    @classmethod
    def from_table(cls, miner_type: str, table: object) -> MinerConfig:
        key = f"miners.{miner_type}"
        if not isinstance(table, dict):
            raise NodeConfigError(key, "must be a table")
        unknown = set(table) - {
            "command",
            "env",
            "stats_json",
            "stats_regex",
            "log_lines",
            "stop_grace",
        }
        if unknown:
            raise NodeConfigError(key, f"unknown keys {sorted(unknown)}")
        command = table.get("command")
        if isinstance(command, str):
            # a string is split as a POSIX shell would split it (no shell runs it)
            try:
                command = shlex.split(command)
            except ValueError as exc:
                raise NodeConfigError(
                    f"{key}.command", f"cannot split {command!r}: {exc}"
                ) from None
        if (
            not isinstance(command, list)
            or not command
            or not all(isinstance(a, str) and a for a in command)
        ):
            raise NodeConfigError(f"{key}.command", "must be a non-empty list of strings")
        env = table.get("env", {})
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise NodeConfigError(f"{key}.env", "must be a table of strings")
        stats_json = _opt_str(table, "stats_json", key)
        stats_regex = _opt_str(table, "stats_regex", key)
        if stats_regex is not None:
            try:
                re.compile(stats_regex)
            except re.error as exc:
                raise NodeConfigError(f"{key}.stats_regex", f"bad regex: {exc}") from exc
        log_lines = table.get("log_lines", 1000)
        if (
            isinstance(log_lines, bool)
            or not isinstance(log_lines, int)
            or not (1 <= log_lines <= 100_000)
        ):
            raise NodeConfigError(f"{key}.log_lines", "must be an integer in 1..100000")
        grace = table.get("stop_grace", 5.0)
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) or not (0 <= grace <= 60):
            raise NodeConfigError(f"{key}.stop_grace", "must be seconds in 0..60")
        return cls(tuple(command), dict(env), stats_json, stats_regex, log_lines, float(grace))


def check_file(path: Path | None, key: str) -> Path | None:
    """`path` (a TLS certificate, key or CA bundle) must be a readable file: said at
    load time with the key named, not later as a bare "No such file or directory"."""
    if path is None:
        return None
    if not path.exists():
        raise NodeConfigError(key, f"file {path} does not exist")
    if not path.is_file():
        raise NodeConfigError(key, f"{path} is not a file")
    if not os.access(path, os.R_OK):
        raise NodeConfigError(key, f"file {path} is not readable")
    return path


def _is_public_key(text: str) -> bool:
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def _opt_str(table: Mapping[str, Any], name: str, prefix: str) -> str | None:
    value = table.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 4096:
        raise NodeConfigError(f"{prefix}.{name}" if prefix else name, "must be a non-empty string")
    return value


def _opt_path(table: Mapping[str, Any], name: str, prefix: str = "") -> Path | None:
    value = _opt_str(table, name, prefix)
    return Path(value).expanduser() if value is not None else None


@dataclass(frozen=True)
class NodeConfig:
    """What `p2p-node serve` (and `Node`) run with. Defaults give a working node."""

    listen: str = DEFAULT_LISTEN
    name: str | None = None
    auth_mode: str = "open"
    allowlist: tuple[str, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    profile_dir: Path | None = None
    miners: Mapping[str, MinerConfig] = field(default_factory=dict)
    transport: Mapping[str, Any] = field(default_factory=dict)
    log_level: str = "info"
    log_format: str = "text"
    metrics: str | None = None
    #: ``[authorization]``: keys granted control, who observes, who may replace
    controllers: tuple[str, ...] = ()
    observe: str = "connected"
    allow_replace: tuple[str, ...] = ()
    #: ``[deploy]``: quotas on what deploys may store
    deploy: DeployLimits = field(default_factory=DeployLimits)
    #: peers registered from the network (not added by the operator, not allowlisted)
    #: kept in peers.json; beyond it the lowest-scored, longest-unseen one is evicted
    max_learned_peers: int = DEFAULT_MAX_LEARNED_PEERS
    #: the ``[dashboard]`` table (its presence turns the dashboard on); None: off
    dashboard: DashboardConfig | None = None

    def __post_init__(self) -> None:
        parse_host_port(self.listen)
        if self.auth_mode not in _AUTH_MODES:
            raise NodeConfigError("auth_mode", f"must be one of {', '.join(_AUTH_MODES)}")
        if self.log_format not in _LOG_FORMATS:
            raise NodeConfigError("log_format", f"must be one of {', '.join(_LOG_FORMATS)}")
        if self.log_level not in _LOG_LEVELS:
            raise NodeConfigError("log_level", f"must be one of {', '.join(_LOG_LEVELS)}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise NodeConfigError("tls", "cert and key go together")
        if len(self.allowlist) > _MAX_ALLOWLIST:
            raise NodeConfigError("allowlist", f"more than {_MAX_ALLOWLIST} keys")
        for key in self.allowlist:
            if not _is_public_key(key):
                raise NodeConfigError("allowlist", f"{key[:60]!r} is not a base64 X25519 key")
        if len(self.miners) > _MAX_MINER_TYPES:
            raise NodeConfigError("miners", f"more than {_MAX_MINER_TYPES} miner types")
        if self.name is not None and not (0 < len(self.name) <= 256):
            raise NodeConfigError("name", "must be 1..256 characters")
        if self.name is not None and has_control_chars(self.name):
            raise NodeConfigError("name", f"{safe_text(self.name, 60)} holds control characters")
        if (
            isinstance(self.max_learned_peers, bool)
            or not isinstance(self.max_learned_peers, int)
            or not 0 <= self.max_learned_peers <= _MAX_LEARNED_PEERS
        ):
            raise NodeConfigError("max_learned_peers", f"must be 0..{_MAX_LEARNED_PEERS}")
        if self.metrics is not None:
            parse_host_port(self.metrics, key="metrics")
        try:
            self.policy()
        except PolicyError as exc:
            raise NodeConfigError("authorization", str(exc)) from None
        allowed = {f.name for f in dataclasses.fields(_transport_config_type())}
        bad = set(self.transport) - allowed
        if bad:
            raise NodeConfigError("transport", f"unknown keys {sorted(bad)}")

    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any], *, base: Path | None = None) -> NodeConfig:
        """Build from a parsed TOML document; relative paths are relative to `base`."""
        known = {
            "listen",
            "name",
            "auth_mode",
            "allowlist",
            "tls",
            "profile_dir",
            "miners",
            "transport",
            "log_level",
            "log_format",
            "metrics",
            "authorization",
            "deploy",
            "max_learned_peers",
            "dashboard",
        }
        unknown = set(doc) - known
        if unknown:
            raise NodeConfigError("file", f"unknown keys {sorted(unknown)}")

        def rel(p: Path | None) -> Path | None:
            if p is None or base is None or p.is_absolute():
                return p
            return base / p

        kwargs: dict[str, Any] = {}
        for key in ("listen", "name", "auth_mode", "log_level", "log_format", "metrics"):
            value = _opt_str(doc, key, "")
            if value is not None:
                kwargs[key] = value
        allow = doc.get("allowlist", [])
        if not isinstance(allow, list) or not all(isinstance(k, str) and k for k in allow):
            raise NodeConfigError("allowlist", "must be a list of base64 public keys")
        kwargs["allowlist"] = tuple(allow)
        tls = doc.get("tls", {})
        if not isinstance(tls, dict) or set(tls) - {"cert", "key", "ca"}:
            raise NodeConfigError("tls", "must be a table with cert, key and optionally ca")
        for name in ("cert", "key", "ca"):
            kwargs[f"tls_{name}"] = check_file(rel(_opt_path(tls, name, "tls")), f"tls.{name}")
        kwargs["profile_dir"] = rel(_opt_path(doc, "profile_dir"))
        miners = doc.get("miners", {})
        if not isinstance(miners, dict):
            raise NodeConfigError("miners", "must be a table of [miners.<type>] tables")
        kwargs["miners"] = {t: MinerConfig.from_table(t, m) for t, m in miners.items()}
        transport = doc.get("transport", {})
        if not isinstance(transport, dict):
            raise NodeConfigError("transport", "must be a table")
        kwargs["transport"] = dict(transport)
        try:
            policy = Policy.from_table(doc.get("authorization", {}))
        except PolicyError as exc:
            raise NodeConfigError("authorization", str(exc)) from None
        table = policy.to_table()
        kwargs["controllers"] = tuple(table["controllers"])
        kwargs["observe"] = table["observe"]
        kwargs["allow_replace"] = tuple(table["allow_replace"])
        try:
            kwargs["deploy"] = DeployLimits.from_table(doc.get("deploy", {}))
        except (DeployRefusedError, TypeError) as exc:
            raise NodeConfigError("deploy", str(exc)) from None
        if "max_learned_peers" in doc:
            kwargs["max_learned_peers"] = doc["max_learned_peers"]
        if "dashboard" in doc:
            from p2p.controller.dashboard.settings import DashboardConfig  # noqa: PLC0415

            kwargs["dashboard"] = DashboardConfig.from_table(doc["dashboard"], base=base)
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: Path) -> NodeConfig:
        return cls.from_mapping(load_toml(path), base=path.parent)

    def replace(self, **changes: Any) -> NodeConfig:
        """A copy with the non-None `changes` applied (flags override the file)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def transport_config(self, *, listen: str | None = None) -> Any:
        """The `p2p.transport.TransportConfig` for this node (validated by it)."""
        host, port = parse_host_port(listen if listen is not None else self.listen)
        cfg_type = _transport_config_type()
        fields: dict[str, Any] = dict(self.transport)
        fields.update(listen_host=host, listen_port=port)
        if self.tls_cert is not None:
            fields["tls_cert_path"] = str(self.tls_cert)
            fields["tls_key_path"] = str(self.tls_key)
        if self.tls_ca is not None:
            fields["tls_ca_path"] = str(self.tls_ca)
        fields.pop("listen_addr", None)
        try:
            return cfg_type(**fields)
        except (TypeError, ValueError) as exc:
            raise NodeConfigError("transport", str(exc)) from exc

    def policy(self) -> Policy:
        """The authorization policy of the ``[authorization]`` table (fixed keys only)."""
        return Policy(self.controllers, observe=self.observe, allow_replace=self.allow_replace)

    def miner_specs(self) -> dict[str, MinerSpec]:
        return {t: m.spec() for t, m in self.miners.items()}


def _transport_config_type() -> Any:
    return TransportConfig
