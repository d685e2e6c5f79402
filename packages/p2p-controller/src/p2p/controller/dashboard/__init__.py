"""A live fleet dashboard in the browser, served by the node itself.

``p2p-node serve --dashboard 9092`` (or a ``[dashboard]`` table in config.toml) starts it
in the node's event loop: the fleet view (every peer, its miners, totals, live), plots of
hashrate and ping over the last hour, and per-worker pages with log tails and actions.
Needs the optional extra: ``pip install 'p2p-controller[dashboard]'`` (aiohttp).

`DashboardConfig` (knobs) imports without aiohttp; `Dashboard` (the server) needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from p2p.controller.dashboard.settings import DashboardConfig, parse_dashboard_address

if TYPE_CHECKING:
    from p2p.controller.dashboard.server import Dashboard

__all__ = ["Dashboard", "DashboardConfig", "DashboardUnavailableError", "parse_dashboard_address"]


class DashboardUnavailableError(ImportError):
    """The optional extra is not installed."""


def __getattr__(name: str) -> Any:
    if name == "Dashboard":
        try:
            from p2p.controller.dashboard.server import Dashboard  # noqa: PLC0415
        except ImportError as exc:
            raise DashboardUnavailableError(
                f"the dashboard needs aiohttp: pip install 'p2p-controller[dashboard]' ({exc})"
            ) from exc
        return Dashboard
    raise AttributeError(name)
