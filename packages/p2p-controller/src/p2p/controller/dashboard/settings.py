"""The dashboard's knobs: the ``[dashboard]`` table of config.toml and ``--dashboard``.

Pure data and validation (no aiohttp import), so `NodeConfig` can check the table at
start-up and the CLI can parse ``[HOST:]PORT`` without the optional extra installed.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from p2p.controller.config import NodeConfigError, parse_host_port

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DashboardConfig",
    "is_loopback",
    "parse_dashboard_address",
]

#: The dashboard binds to loopback unless told otherwise.
DEFAULT_HOST = "127.0.0.1"
#: Next to the node's 9091.
DEFAULT_PORT = 9092
#: Most points one ring buffer series holds (bounds memory whatever the knobs say).
MAX_POINTS = 100_000

_KEYS = {
    "listen",
    "read_only",
    "sample_interval",
    "history",
    "max_peers",
    "max_upload",
    "log_lines",
    "max_streams",
    "dial_interval",
    "tls_cert",
    "tls_key",
}


def parse_dashboard_address(text: str, *, key: str = "dashboard") -> tuple[str, int]:
    """``PORT``, ``:PORT`` or ``HOST:PORT``; a missing host is 127.0.0.1 (never all
    interfaces by accident)."""
    value = text.strip()
    if value.isdigit():
        value = f"{DEFAULT_HOST}:{value}"
    elif value.startswith(":"):
        value = DEFAULT_HOST + value
    if "://" in value:
        raise NodeConfigError(key, f"expected [HOST:]PORT, got {text!r}")
    return parse_host_port(value, key=key)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _number(table: Mapping[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = table.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NodeConfigError(f"dashboard.{name}", "must be a number")
    f = float(value)
    if not (math.isfinite(f) and low <= f <= high):
        raise NodeConfigError(f"dashboard.{name}", f"must be in {low:g}..{high:g}, got {value!r}")
    return f


@dataclass(frozen=True)
class DashboardConfig:
    """Everything the dashboard runs with; the defaults are documented in the README."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    #: Hide and refuse every action (start/stop/deploy): a wall screen.
    read_only: bool = False
    #: Seconds between two `get_all_stats` + ping rounds.
    sample_interval: float = 5.0
    #: Seconds of history the ring buffer keeps (points = history / sample_interval).
    history: float = 3600.0
    #: Peers whose series are kept; more are shown live but not plotted.
    max_peers: int = 256
    #: Largest uploaded profile JSON, bytes.
    max_upload: int = 256 * 1024
    #: Log lines asked per tail request.
    log_lines: int = 200
    #: Live-update streams (browser tabs) open at once.
    max_streams: int = 32
    #: Seconds between dial attempts to a known peer that is not connected (0: never dial).
    dial_interval: float = 30.0
    tls_cert: Path | None = None
    tls_key: Path | None = None

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise NodeConfigError("dashboard.tls", "cert and key go together")
        if not 0 <= self.port <= 65535:
            raise NodeConfigError("dashboard.listen", f"port {self.port} out of range")
        if not 0.2 <= self.sample_interval <= 3600:
            raise NodeConfigError("dashboard.sample_interval", "must be in 0.2..3600 seconds")
        if not self.sample_interval <= self.history <= 7 * 86400:
            raise NodeConfigError("dashboard.history", "must be in sample_interval..604800 s")
        if self.points > MAX_POINTS:
            raise NodeConfigError(
                "dashboard.history",
                f"history / sample_interval is {self.points} points, more than {MAX_POINTS}",
            )
        if not 1 <= self.max_peers <= 10_000:
            raise NodeConfigError("dashboard.max_peers", "must be in 1..10000")
        if not 1024 <= self.max_upload <= 16 << 20:
            raise NodeConfigError("dashboard.max_upload", "must be in 1024..16777216 bytes")
        if not 1 <= self.log_lines <= 10_000:
            raise NodeConfigError("dashboard.log_lines", "must be in 1..10000")
        if not 1 <= self.max_streams <= 1024:
            raise NodeConfigError("dashboard.max_streams", "must be in 1..1024")
        if not 0 <= self.dial_interval <= 86400:
            raise NodeConfigError("dashboard.dial_interval", "must be in 0..86400 seconds")

    @property
    def points(self) -> int:
        """Ring buffer capacity: one point per sample over `history`, plus one."""
        return math.ceil(self.history / self.sample_interval) + 1

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def insecure_warning(self) -> str | None:
        """The warning to print when the dashboard is reachable from the network in clear."""
        if self.loopback or self.tls:
            return None
        return (
            f"the dashboard listens on {self.host} without TLS: its token and every page "
            "cross the network in clear; bind it to 127.0.0.1 (the default) or set "
            "[dashboard] tls_cert and tls_key"
        )

    def with_address(self, text: str) -> DashboardConfig:
        host, port = parse_dashboard_address(text)
        return replace(self, host=host, port=port)

    def replace(self, **changes: Any) -> DashboardConfig:
        return replace(self, **changes)

    @classmethod
    def from_table(cls, table: object, *, base: Path | None = None) -> DashboardConfig:
        """The ``[dashboard]`` table; relative TLS paths are relative to `base`."""
        if not isinstance(table, Mapping):
            raise NodeConfigError("dashboard", "must be a table")
        unknown = set(table) - _KEYS
        if unknown:
            raise NodeConfigError("dashboard", f"unknown keys {sorted(unknown)}")
        kw: dict[str, Any] = {}
        listen = table.get("listen")
        if listen is not None:
            if isinstance(listen, int) and not isinstance(listen, bool):
                listen = str(listen)
            if not isinstance(listen, str):
                raise NodeConfigError("dashboard.listen", "must be a string [HOST:]PORT")
            kw["host"], kw["port"] = parse_dashboard_address(listen, key="dashboard.listen")
        read_only = table.get("read_only", False)
        if not isinstance(read_only, bool):
            raise NodeConfigError("dashboard.read_only", "must be true or false")
        kw["read_only"] = read_only
        kw["sample_interval"] = _number(table, "sample_interval", 5.0, 0.2, 3600)
        kw["history"] = _number(table, "history", 3600.0, 0.2, 7 * 86400)
        kw["dial_interval"] = _number(table, "dial_interval", 30.0, 0, 86400)
        for name, default in (
            ("max_peers", 256),
            ("max_upload", 256 * 1024),
            ("log_lines", 200),
            ("max_streams", 32),
        ):
            value = table.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int):
                raise NodeConfigError(f"dashboard.{name}", "must be a whole number")
            kw[name] = value
        for name in ("tls_cert", "tls_key"):
            value = table.get(name)
            if value is None:
                continue
            if not isinstance(value, str) or not value:
                raise NodeConfigError(f"dashboard.{name}", "must be a file path")
            path = Path(value).expanduser()
            kw[name] = base / path if base is not None and not path.is_absolute() else path
        return cls(**kw)
