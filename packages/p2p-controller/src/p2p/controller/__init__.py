"""p2p.controller: drive remote workers over the Lethean P2P mesh.

The controller asks workers for stats and logs, starts and stops miners, and deploys
profiles and miner binaries as encrypted bundles (`p2p.controller.bundles`).
"""

from __future__ import annotations

from p2p.controller.errors import ControllerError

__all__ = ["ControllerError"]
