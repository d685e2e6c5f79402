"""Profiles: the ProfileManager protocol and a directory-backed store.

A profile is any JSON value a miner is started with. `DirectoryProfileManager` keeps one
``<id>.json`` file per profile, written atomically (temp file, fsync, rename, directory
fsync), with the id restricted to a single safe path component so that a profile id sent
by a peer can never name a file outside the directory.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from p2p.controller.errors import (
    ProfileError,
    ProfileNotFoundError,
)
from p2p.identity.atomicfile import write_atomic
from p2p.identity.text import safe_text

log = logging.getLogger(__name__)

__all__ = [
    "DirectoryProfileManager",
    "ProfileError",
    "ProfileManager",
    "ProfileNotFoundError",
    "sanitise_name",
]

#: Largest profile file accepted (a peer can deploy profiles).
MAX_PROFILE_BYTES = 1 << 20
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@runtime_checkable
class ProfileManager(Protocol):
    """Profile storage the Worker uses (go-p2p node/worker.go ProfileManager)."""

    def get_profile(self, profile_id: str) -> Any:
        """The profile's JSON value; raises (any exception) when it does not exist."""
        ...

    def save_profile(self, profile: Any) -> object:
        """Store `profile` (any return value is ignored); raises on failure."""
        ...


def sanitise_name(name: str) -> str:
    """Return `name` if it is one safe path component, else raise ProfileError.

    Safe = 1..128 of ``[A-Za-z0-9._-]``, starting with a letter or digit (so never ``.``,
    ``..`` or a hidden file), no separators.
    """
    if not isinstance(name, str) or not _ID_RE.match(name):
        raise ProfileError(f"invalid name: {name!r}")
    return name


def _atomic_write(path: Path, data: bytes) -> None:
    write_atomic(path, data, 0o600)


class DirectoryProfileManager:
    """Profiles as ``<directory>/<id>.json``.

    The id of a saved profile is its ``"id"`` field; a JSON object without one gets a fresh
    UUID as ``"id"``. Non-object profiles cannot be saved (they have no id).
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, profile_id: str) -> Path:
        return self.directory / f"{sanitise_name(profile_id)}.json"

    def get_profile(self, profile_id: str) -> Any:
        try:
            path = self._path(profile_id)
        except ProfileError:
            raise ProfileNotFoundError(str(profile_id)) from None
        try:
            with open(path, "rb") as fh:
                raw = fh.read(MAX_PROFILE_BYTES + 1)
        except FileNotFoundError:
            raise ProfileNotFoundError(profile_id) from None
        if len(raw) > MAX_PROFILE_BYTES:
            raise ProfileError(f"profile too large: {profile_id}")
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ProfileError(f"profile {profile_id} is not valid JSON: {exc}") from exc

    def save_profile(self, profile: Any) -> str:
        """Store `profile`; returns its id."""
        if not isinstance(profile, dict):
            raise ProfileError("a profile must be a JSON object")
        profile_id = profile.get("id")
        if not profile_id:
            profile = {**profile, "id": str(uuid.uuid4())}
            profile_id = profile["id"]
        if not isinstance(profile_id, str):
            raise ProfileError("profile id must be a string")
        data = json.dumps(profile, indent=2, ensure_ascii=False).encode("utf-8")
        if len(data) > MAX_PROFILE_BYTES:
            raise ProfileError(f"profile too large: {len(data)} bytes")
        _atomic_write(self._path(profile_id), data)
        log.info("saved profile %s", safe_text(profile_id))
        return profile_id

    def list_profiles(self) -> list[str]:
        """Ids of the stored profiles, sorted."""
        return sorted(
            p.stem for p in self.directory.glob("*.json") if _ID_RE.match(p.stem) is not None
        )

    def delete_profile(self, profile_id: str) -> None:
        try:
            self._path(profile_id).unlink()
        except FileNotFoundError:
            raise ProfileNotFoundError(profile_id) from None
