"""Typed errors of p2p.controller.

One base (`ControllerError`) for the whole package; each subsystem hangs its own family under
it. Messages say what went wrong and never carry secrets (passwords, keys, plaintext).
"""

from __future__ import annotations

__all__ = [
    "ArchiveLimitError",
    "BundleDecryptError",
    "BundleError",
    "BundleFormatError",
    "ChecksumMismatch",
    "ChecksumMismatchError",
    "ControllerError",
    "PasswordRequiredError",
    "StimFormatError",
    "UnknownBundleTypeError",
    "UnsafeArchiveError",
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
