"""Optional Prometheus metrics for `p2p-node serve --metrics HOST:PORT`.

Read-only: one custom collector samples the node's own counters at scrape time
(connections, completed handshakes and rejections by reason, inbound drops by reason,
messages of the open connections, pending requests, known peers): nothing is added to
the hot path.
Needs ``prometheus_client`` (``pip install 'p2p-controller[metrics]'``).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from typing import Any

from p2p.controller.config import NodeConfigError, parse_host_port
from p2p.controller.node import Node

__all__ = ["MetricsServer", "start"]

log = logging.getLogger(__name__)


class MetricsServer:
    """The running exporter; `shutdown()` stops it."""

    def __init__(self, server: Any, thread: Any) -> None:
        self._server = server
        self._thread = thread

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._server.server_port)

    def shutdown(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2.0)


class _NodeCollector:
    def __init__(self, node: Node, core: Any) -> None:
        self._node = node
        self._core = core

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        core = self._core
        node = self._node
        if not node.running:
            return
        transport = node.transport
        conns = transport.connections()
        yield core.GaugeMetricFamily(
            "p2p_connections", "Authenticated peer connections", value=len(conns)
        )
        yield core.GaugeMetricFamily(
            "p2p_pending_handshakes",
            "Inbound handshakes in progress",
            value=transport.pending_handshakes,
        )
        yield core.GaugeMetricFamily(
            "p2p_known_peers", "Peers in the registry", value=len(node.registry)
        )
        yield core.GaugeMetricFamily(
            "p2p_pending_requests",
            "Controller requests waiting for a reply",
            value=node.controller.pending_count,
        )
        if node.gate is not None:
            yield core.CounterMetricFamily(
                "p2p_handshakes_completed",
                "Handshakes that completed (in and out)",
                value=node.gate.handshakes_completed,
            )
        rejected = core.CounterMetricFamily(
            "p2p_handshakes_rejected", "Inbound connections refused, by reason", labels=["reason"]
        )
        for reason, count in sorted(transport.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        drops = core.CounterMetricFamily(
            "p2p_dropped_frames", "Inbound frames dropped, by reason", labels=["reason"]
        )
        for reason, count in sorted(transport.drops.items()):
            drops.add_metric([reason], count)
        yield drops
        traffic = core.GaugeMetricFamily(
            "p2p_connection_messages", "Messages on the open connections", labels=["direction"]
        )
        totals = {"in": 0, "out": 0}
        for conn in conns:
            counters = conn.counters
            totals["in"] += counters.get("messages_in", 0)
            totals["out"] += counters.get("messages_out", 0)
        for direction, count in totals.items():
            traffic.add_metric([direction], count)
        yield traffic


def start(node: Node, address: str) -> MetricsServer:
    """Serve ``/metrics`` for `node` on `address` (a background thread)."""
    host, port = parse_host_port(address, key="metrics")
    try:
        client = importlib.import_module("prometheus_client")
        core = importlib.import_module("prometheus_client.core")
        registry_mod = importlib.import_module("prometheus_client.registry")
    except ImportError:
        raise NodeConfigError(
            "metrics", "needs prometheus_client: pip install 'p2p-controller[metrics]'"
        ) from None
    registry = registry_mod.CollectorRegistry()
    registry.register(_NodeCollector(node, core))
    server, thread = client.start_http_server(port, addr=host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", host, server.server_port)
    return MetricsServer(server, thread)
