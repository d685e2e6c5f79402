"""What a deploy may add: quotas, and no replacing what the operator set up.

Sans-I/O rules (`DeployLimits`, `check_quota`) plus the two measurements they need
(`miner_usage` of the deployed-miners directory, `profile_usage` of a profile store).
A deploy is refused (never renamed, never half-written) when:

- its miner name is an existing miner type (configured by the operator, or deployed
  before), or its profile id an existing profile, unless the policy lets that controller
  replace (``[authorization] allow_replace``);
- it would take the node past a quota below.

Config representation, the ``[deploy]`` table of config.toml (defaults shown)::

    [deploy]
    max_miners = 8                     # deployed miners kept on disk
    max_miner_bytes = 67108864         # one miner bundle's files (64 MiB)
    max_total_miner_bytes = 268435456  # all deployed miners (256 MiB)
    max_miner_files = 64               # files in one miner bundle
    max_profiles = 64                  # profiles in the store after a deploy
    max_total_profile_bytes = 4194304  # the profile store (4 MiB)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from p2p.controller.bundles import MAX_FILE_SIZE, ExtractLimits
from p2p.controller.errors import (
    DeployRefusedError,
)

__all__ = [
    "DeployLimits",
    "DeployRefusedError",
    "Usage",
    "check_quota",
    "miner_usage",
    "profile_usage",
]

#: Directory entries looked at when measuring (more means the quota is exceeded anyway).
MAX_SCAN = 100_000


@dataclass(frozen=True, slots=True)
class DeployLimits:
    """Quotas on what deploys may store (see the module docstring for the defaults)."""

    max_miners: int = 8
    max_miner_bytes: int = 64 << 20
    max_total_miner_bytes: int = 256 << 20
    max_miner_files: int = 64
    max_profiles: int = 64
    max_total_profile_bytes: int = 4 << 20

    def __post_init__(self) -> None:
        bounds = {
            "max_miners": (0, 10_000),
            "max_miner_bytes": (0, MAX_FILE_SIZE * 10),
            "max_total_miner_bytes": (0, 1 << 40),
            "max_miner_files": (1, 10_000),
            "max_profiles": (0, 100_000),
            "max_total_profile_bytes": (0, 1 << 34),
        }
        for name, (low, high) in bounds.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise DeployRefusedError(f"deploy.{name} must be an integer in {low}..{high}")

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> DeployLimits:
        if not isinstance(table, Mapping):
            raise DeployRefusedError("[deploy] must be a table")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(table) - known
        if unknown:
            raise DeployRefusedError(f"[deploy] unknown keys {sorted(unknown)}")
        return cls(**dict(table))

    def extract_limits(self) -> ExtractLimits:
        """The archive bounds of one miner bundle."""
        return ExtractLimits(
            max_file_size=min(self.max_miner_bytes, MAX_FILE_SIZE),
            max_total_size=self.max_miner_bytes,
            max_entries=self.max_miner_files * 2 + 16,  # meta headers and skipped links too
        )


@dataclass(frozen=True, slots=True)
class Usage:
    """How many items, and their bytes."""

    count: int = 0
    bytes: int = 0


def check_quota(
    what: str,
    current: Usage,
    adding: Usage,
    *,
    max_count: int,
    max_bytes: int,
    replacing: Usage | None = None,
) -> None:
    """Refuse (`DeployRefusedError`) if `current` - `replacing` + `adding` exceeds a bound."""
    gone = replacing or Usage()
    count = current.count - gone.count + adding.count
    size = current.bytes - gone.bytes + adding.bytes
    if count > max_count:
        raise DeployRefusedError(
            f"quota exceeded: {count} deployed {what}s, limit {max_count} "
            f"(the worker's [deploy] max_{what}s)"
        )
    if size > max_bytes:
        raise DeployRefusedError(
            f"quota exceeded: deployed {what}s would take {size} bytes, limit {max_bytes}"
        )


def _tree_usage(root: Path) -> Usage:
    files = total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            files += 1
            if files > MAX_SCAN:
                return Usage(files, total)
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return Usage(files, total)


def miner_usage(miners_dir: Path) -> dict[str, Usage]:
    """Deployed miners under `miners_dir`: name -> (files, bytes). Hidden entries (our temp
    directories) are skipped."""
    out: dict[str, Usage] = {}
    try:
        entries = list(os.scandir(miners_dir))
    except OSError:
        return out
    for entry in entries[:MAX_SCAN]:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        out[entry.name] = _tree_usage(Path(entry.path))
    return out


def profile_usage(profiles: object) -> Usage | None:
    """(profiles, bytes) of a store that can say (``directory``-backed); None otherwise."""
    directory = getattr(profiles, "directory", None)
    if not isinstance(directory, Path):
        return None
    count = total = 0
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return Usage()
    for entry in entries[:MAX_SCAN]:
        if entry.name.endswith(".json") and not entry.name.startswith("."):
            count += 1
            try:
                total += entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue
    return Usage(count, total)
