"""Typed errors of p2p.controller.

One base (`ControllerError`) for the whole package; each subsystem hangs its own family under
it. Messages say what went wrong and never carry secrets (passwords, keys, plaintext).

The hierarchy::

    ControllerError
    ├── BundleError
    │   ├── BundleDecryptError
    │   ├── BundleFormatError
    │   │   └── UnknownBundleTypeError
    │   ├── ChecksumMismatchError
    │   ├── PasswordRequiredError
    │   ├── StimFormatError
    │   └── UnsafeArchiveError
    │       └── ArchiveLimitError
    ├── DeployRefusedError
    ├── MinerError
    │   ├── MinerNotFoundError
    │   └── UnknownMinerTypeError
    ├── NodeConfigError  (also ValueError)
    ├── NodeError
    │   ├── AmbiguousPeerError  (also LookupError)
    │   ├── NodeStateError
    │   └── UnknownPeerError  (also LookupError)
    ├── PolicyError  (also ValueError)
    ├── ProfileError
    │   └── ProfileNotFoundError
    ├── RehabError
    ├── RequestError
    │   ├── ConnectionLostError
    │   ├── DeployFailedError
    │   ├── MinerCommandError
    │   ├── PeerNotFoundError
    │   ├── UnauthorizedError
    │   └── UnexpectedResponseError
    └── WorkerError

    (alias: ChecksumMismatch = ChecksumMismatchError)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from p2p.controller.authz import Capability

__all__ = [
    "AmbiguousPeerError",
    "ArchiveLimitError",
    "BundleDecryptError",
    "BundleError",
    "BundleFormatError",
    "ChecksumMismatch",
    "ChecksumMismatchError",
    "ConnectionLostError",
    "ControllerError",
    "DeployFailedError",
    "DeployRefusedError",
    "MinerCommandError",
    "MinerError",
    "MinerNotFoundError",
    "NodeConfigError",
    "NodeError",
    "NodeStateError",
    "PasswordRequiredError",
    "PeerNotFoundError",
    "PolicyError",
    "ProfileError",
    "ProfileNotFoundError",
    "RehabError",
    "RequestError",
    "StimFormatError",
    "UnauthorizedError",
    "UnexpectedResponseError",
    "UnknownBundleTypeError",
    "UnknownMinerTypeError",
    "UnknownPeerError",
    "UnsafeArchiveError",
    "WorkerError",
]


class ControllerError(Exception):
    """Base of every error raised by p2p.controller."""


# --- deploy bundles (p2p.controller.bundles) -------------------------------------------------


class BundleError(ControllerError):
    """A deploy bundle could not be built, parsed, verified, decrypted or extracted."""


class BundleFormatError(BundleError):
    """The Bundle JSON (or deploy payload) is malformed, too large or incomplete."""


class UnknownBundleTypeError(BundleFormatError):
    """The bundle's `type` is not profile, miner or full."""

    def __init__(self, bundle_type: object) -> None:
        self.bundle_type = bundle_type
        super().__init__(f"unknown bundle type: {bundle_type}")


class ChecksumMismatchError(BundleError):
    """SHA-256 of the bundle data differs from its `checksum` (corrupted or tampered)."""

    def __init__(self, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__("checksum mismatch - bundle may be corrupted")


#: Short name used in the issue text.
ChecksumMismatch = ChecksumMismatchError


class PasswordRequiredError(BundleError):
    """An encrypted bundle was requested with an empty password."""

    def __init__(self) -> None:
        super().__init__("password is required for encryption")


class StimFormatError(BundleError):
    """The bundle data is not a well-formed STIM container (framing, header or payload)."""


class BundleDecryptError(BundleError):
    """A STIM part failed authentication: wrong password or tampered ciphertext."""


class UnsafeArchiveError(BundleError):
    """The bundle's tar archive is hostile or malformed (traversal, escape, bad header)."""

    def __init__(self, message: str, *, entry: str | None = None) -> None:
        self.entry = entry
        super().__init__(message)


class ArchiveLimitError(UnsafeArchiveError):
    """The archive exceeds a configured bound (file size, total size or entry count)."""

    def __init__(self, message: str, *, limit: int, value: int, entry: str | None = None) -> None:
        self.limit = limit
        self.value = value
        super().__init__(message, entry=entry)


class RequestError(ControllerError):
    """A request to a remote peer could not be completed."""

    def __init__(self, message: str, *, peer_id: str = "") -> None:
        super().__init__(message)
        self.peer_id = peer_id


class PeerNotFoundError(RequestError):
    """The peer is neither connected nor in the registry."""

    def __init__(self, peer_id: str) -> None:
        super().__init__(f"peer not found: {peer_id}", peer_id=peer_id)


class ConnectionLostError(RequestError):
    """The connection dropped while the request was in flight."""

    def __init__(self, peer_id: str) -> None:
        super().__init__(f"connection to {peer_id} lost before the reply", peer_id=peer_id)


class UnauthorizedError(RequestError):
    """The worker refused the request (error 1002): our key lacks the capability.

    ``str()`` is one sentence naming the key the worker's operator must authorize.
    """

    def __init__(
        self,
        peer_id: str,
        public_key: str,
        capability: Capability,
        *,
        peer_name: str = "",
        remote_message: str = "",
    ) -> None:
        who = f"{peer_name[:64]} ({peer_id[:12]})" if peer_name else peer_id[:12] or "the worker"
        from p2p.controller.authz import Capability  # noqa: PLC0415 (authz imports errors)

        verb = "control" if capability is Capability.CONTROL else "observe"
        super().__init__(
            f"{who} refused: this controller is not authorized to {verb} it; "
            f"on the worker run: p2p-node controllers add {public_key}",
            peer_id=peer_id,
        )
        self.public_key = public_key
        self.capability = capability
        self.peer_name = peer_name
        self.remote_message = remote_message


class UnexpectedResponseError(RequestError):
    """The reply has the wrong type or an unparseable payload."""


class MinerCommandError(RequestError):
    """The worker acknowledged a start/stop with ``success: false``."""


class DeployFailedError(RequestError):
    """The worker acknowledged a deploy with ``success: false``."""


class WorkerError(ControllerError):
    """A request failed; ``str()`` is the Go-style text sent back in the error reply."""

    def __init__(self, op: str, msg: str, cause: BaseException | str | None = None) -> None:
        text = f"Worker.{op}: {msg}"
        if cause is not None and str(cause):
            text += f": {cause}"
        super().__init__(text)


class ProfileError(ControllerError):
    """A profile could not be read or written."""


class ProfileNotFoundError(ProfileError):
    """No profile with that id exists."""

    def __init__(self, profile_id: str) -> None:
        super().__init__(f"profile not found: {profile_id}")
        self.profile_id = profile_id


class RehabError(ControllerError):
    """A REHAB payload that is not one of the documented commands."""


class MinerError(ControllerError):
    """A miner could not be started, stopped or inspected."""


class MinerNotFoundError(MinerError):
    """No miner with that name is known to the manager."""

    def __init__(self, name: str) -> None:
        super().__init__(f"miner not found: {name}")
        self.name = name


class UnknownMinerTypeError(MinerError):
    """No command line is configured (or deployed) for that miner type."""

    #: Types listed in the message at most (the reply is bounded; names are clipped too).
    MAX_LISTED = 20

    def __init__(self, miner_type: str, known: Sequence[str] = ()) -> None:
        text = f"unknown miner type: {miner_type}"
        if known:
            listed = ", ".join(t[:40] for t in list(known)[: self.MAX_LISTED])
            more = " …" if len(known) > self.MAX_LISTED else ""
            text += f" (this worker knows: {listed}{more})"
        else:
            text += " (this worker has no miner types configured)"
        super().__init__(text)
        self.miner_type = miner_type
        self.known = tuple(known)


class NodeError(ControllerError):
    """A Node operation failed (lifecycle, peer lookup)."""


class NodeStateError(NodeError):
    """The node is not running (not started yet, or already closed)."""


class DeployRefusedError(ControllerError):
    """A deploy would replace something or exceed a quota; nothing was written."""


class PolicyError(ControllerError, ValueError):
    """A policy value (a key, the observe rule, a config table) is malformed."""


class NodeConfigError(ControllerError, ValueError):
    """A configuration value (file key or flag) is missing, malformed or out of range."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"config {key}: {problem}")
        self.key = key
        self.problem = problem


class UnknownPeerError(NodeError, LookupError):
    """No known peer matches the given id, id prefix, name or address."""

    def __init__(self, ref: str) -> None:
        super().__init__(f"no known peer matches {ref!r}")
        self.ref = ref


class AmbiguousPeerError(NodeError, LookupError):
    """Several peers match a prefix or name; `candidates` holds their ids."""

    def __init__(self, ref: str, candidates: list[str]) -> None:
        shown = ", ".join(c[:16] for c in candidates[:5])
        super().__init__(f"{ref!r} matches {len(candidates)} peers ({shown})")
        self.ref = ref
        self.candidates = candidates
