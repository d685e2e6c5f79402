"""What `p2p-node serve --dashboard` and `p2p-node demo --dashboard` share: pick the
config (flags over the ``[dashboard]`` table) and start the server, with a clear sentence
when the optional extra is missing or the port is taken."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING

from p2p.controller._cli_output import EXIT_ERROR, CliError
from p2p.controller.dashboard.settings import DashboardConfig

if TYPE_CHECKING:
    from p2p.controller.dashboard.server import Dashboard
    from p2p.controller.node import Node

__all__ = ["choose_config", "start_dashboard"]


def choose_config(
    table: DashboardConfig | None, address: str | None, *, read_only: bool = False
) -> DashboardConfig | None:
    """The dashboard to run, or None: ``--dashboard`` turns it on (its address wins over
    the table's), and so does a ``[dashboard]`` table; ``--dashboard-read-only`` makes it
    read-only."""
    if table is None and address is None:
        return None
    cfg = table if table is not None else DashboardConfig()
    if address is not None:
        cfg = cfg.with_address(address)
    if read_only:
        cfg = cfg.replace(read_only=True)
    return cfg


async def start_dashboard(
    node: Node, config: DashboardConfig, *, fall_back_to_free_port: bool = False
) -> Dashboard:
    """Start the dashboard of a running node (CliError if it cannot)."""
    try:
        from p2p.controller.dashboard.server import Dashboard  # noqa: PLC0415
    except ImportError as exc:
        raise CliError(
            f"the dashboard needs aiohttp, which is not installed ({exc})",
            EXIT_ERROR,
            "pip install 'p2p-controller[dashboard]'",
        ) from None
    dash = Dashboard(node, config)
    try:
        await dash.start()
    except OSError as exc:
        if not (fall_back_to_free_port and exc.errno == errno.EADDRINUSE):
            raise CliError(
                f"the dashboard cannot listen on {config.host}:{config.port}: {exc.strerror}",
                EXIT_ERROR,
                "pick another port with --dashboard [HOST:]PORT",
            ) from None
        dash = Dashboard(node, config.replace(port=0))
        await dash.start()
    return dash
