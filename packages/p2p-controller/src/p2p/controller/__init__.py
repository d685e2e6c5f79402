"""p2p.controller: drive remote workers over the Lethean P2P mesh.

The controller asks workers for stats and logs, starts and stops miners, and deploys
profiles and miner binaries as encrypted bundles (`p2p.controller.bundles`).
"""

from __future__ import annotations

from p2p.controller._version import __version__
from p2p.controller.config import NodeConfig, NodeConfigError, NodePaths
from p2p.controller.controller import (
    AllStats,
    ConnectionLostError,
    Controller,
    ControllerConfig,
    DeployFailedError,
    MinerCommandError,
    PeerNotFoundError,
    RequestError,
    RequestTimeout,
    UnexpectedResponseError,
)
from p2p.controller.errors import ControllerError
from p2p.controller.miners import (
    JsonFileStats,
    MinerError,
    MinerInstance,
    MinerManager,
    MinerNotFoundError,
    MinerSpec,
    ProcessMiner,
    ProcessMinerManager,
    RegexStats,
    UnknownMinerTypeError,
)
from p2p.controller.node import (
    AmbiguousPeerError,
    Node,
    NodeError,
    NodeStateError,
    UnknownPeerError,
)
from p2p.controller.profiles import (
    DirectoryProfileManager,
    ProfileError,
    ProfileManager,
    ProfileNotFoundError,
)
from p2p.controller.worker import Worker, WorkerError

__all__ = [
    "AllStats",
    "AmbiguousPeerError",
    "ConnectionLostError",
    "Controller",
    "ControllerConfig",
    "ControllerError",
    "DeployFailedError",
    "DirectoryProfileManager",
    "JsonFileStats",
    "MinerCommandError",
    "MinerError",
    "MinerInstance",
    "MinerManager",
    "MinerNotFoundError",
    "MinerSpec",
    "Node",
    "NodeConfig",
    "NodeConfigError",
    "NodeError",
    "NodePaths",
    "NodeStateError",
    "PeerNotFoundError",
    "ProcessMiner",
    "ProcessMinerManager",
    "ProfileError",
    "ProfileManager",
    "ProfileNotFoundError",
    "RegexStats",
    "RequestError",
    "RequestTimeout",
    "UnexpectedResponseError",
    "UnknownMinerTypeError",
    "UnknownPeerError",
    "Worker",
    "WorkerError",
    "__version__",
]
