"""p2p.controller: drive remote workers over the Lethean P2P mesh.

The controller asks workers for stats and logs, starts and stops miners, and deploys
profiles and miner binaries as encrypted bundles (`p2p.controller.bundles`).
"""

from __future__ import annotations

from p2p.controller._version import __version__
from p2p.controller.authz import Capability, ObserveRule, Policy, PolicyError, required_capability
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
    UnauthorizedError,
    UnexpectedResponseError,
)
from p2p.controller.deploy_guard import DeployLimits
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
    "Capability",
    "ConnectionLostError",
    "Controller",
    "ControllerConfig",
    "ControllerError",
    "DeployFailedError",
    "DeployLimits",
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
    "ObserveRule",
    "PeerNotFoundError",
    "Policy",
    "PolicyError",
    "ProcessMiner",
    "ProcessMinerManager",
    "ProfileError",
    "ProfileManager",
    "ProfileNotFoundError",
    "RegexStats",
    "RequestError",
    "RequestTimeout",
    "UnauthorizedError",
    "UnexpectedResponseError",
    "UnknownMinerTypeError",
    "UnknownPeerError",
    "Worker",
    "WorkerError",
    "__version__",
    "required_capability",
]
