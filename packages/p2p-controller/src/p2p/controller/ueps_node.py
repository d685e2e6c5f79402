"""Everything UEPS a node owns, in one object: the channel, its dispatcher, REHAB.

``Node`` builds one right after its ``Transport`` (before ``start``/any connect) and
closes it after the transport stops and *before* its miners are stopped, so paused miners
are resumed and can exit on SIGTERM::

    tcfg = enable_ueps(tcfg)
    transport = Transport(node_manager, registry, tcfg)
    ueps = NodeUeps(transport, miners=miners, record_failure=registry.record_failure)
    ...
    await node.send_ueps(peer_id, INTENT_COMPUTE, b"job", threat_score=0)
    node.dispatcher.register(INTENT_COMPUTE, handler)   # handler(conn, packet)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from p2p.controller.rehab import RehabController
from p2p.transport import FailureRecorder, PeerDispatcher, UepsConfig, UepsService, with_ueps
from p2p.ueps import INTENT_REHAB

if TYPE_CHECKING:
    from p2p.controller.miners import MinerManager
    from p2p.transport import Transport, TransportConfig

__all__ = ["NodeUeps", "enable_ueps"]

log = logging.getLogger(__name__)


def enable_ueps(config: TransportConfig) -> TransportConfig:
    """``config`` advertising ``ueps/1`` in the handshake (Go peers ignore it)."""
    return config.replace(features=with_ueps(config.features))


class NodeUeps:
    """The UEPS channel over a node's transport, with the built-in REHAB intent."""

    def __init__(
        self,
        transport: Transport,
        *,
        miners: MinerManager | None = None,
        record_failure: FailureRecorder | None = None,
        config: UepsConfig | None = None,
        rehab_authorized: Callable[[str], bool] | None = None,
    ) -> None:
        self.service = UepsService(transport, config=config, record_failure=record_failure)
        self.rehab: RehabController | None = None
        if miners is not None:
            self.rehab = RehabController(miners, is_authorized=rehab_authorized)
            self.service.register(INTENT_REHAB, self.rehab.handle)

    @property
    def dispatcher(self) -> PeerDispatcher:
        """Register intent handlers here: ``handler(conn, packet)``, sync or async."""
        return self.service.dispatcher

    async def send(
        self, peer_id: str, intent_id: int, payload: bytes, *, threat_score: int = 0
    ) -> None:
        """One session-bound UEPS frame to a connected peer that advertised ``ueps/1``."""
        await self.service.send(peer_id, intent_id, payload, threat_score=threat_score)

    async def close(self) -> None:
        """Resume paused miners, detach from the transport. Idempotent."""
        if self.rehab is not None:
            self.rehab.close()
        await self.service.close()
