"""The exceptions of p2p.identity: one base, one subclass per thing that can go wrong.

Messages name what was wrong (a path, a length, a field), never key material.

The hierarchy::

    IdentityError
    ├── CorruptIdentityError
    │   ├── IncompleteIdentityError
    │   └── InconsistentIdentityError  (also IdentityMismatchError)
    ├── IdentityFormatError  (also ValueError)
    ├── IdentityMismatchError
    ├── IdentityNotInitializedError
    ├── IdentityStorageError  (also OSError)
    ├── InvalidPrivateKeyError  (also ValueError)
    ├── InvalidPublicKeyError  (also ValueError)
    ├── InvalidSecretError  (also ValueError)
    └── LowOrderPointError
"""

from __future__ import annotations

from pathlib import Path


class IdentityError(Exception):
    """Base class of every error raised by p2p.identity."""


class InvalidPublicKeyError(IdentityError, ValueError):
    """A public key that is not standard padded base64 of exactly 32 bytes."""


class InvalidPrivateKeyError(IdentityError, ValueError):
    """A private key that is not exactly 32 bytes."""


class InvalidSecretError(IdentityError, ValueError):
    """A shared secret that is not exactly 32 bytes."""


class LowOrderPointError(IdentityError):
    """X25519 gave the all-zero output: the peer's key is a low-order point."""


class IdentityFormatError(IdentityError, ValueError):
    """Identity JSON (or a timestamp in it) that the Go node would not accept either."""


class IdentityMismatchError(IdentityError):
    """An identity whose ``id`` is not derived from its ``publicKey``, or whose public key
    does not belong to the private key it is stored with."""


class IdentityNotInitializedError(IdentityError):
    """The node has no identity yet (generate or load one first)."""

    def __init__(self, message: str = "node identity not initialized") -> None:
        super().__init__(message)


class IdentityStorageError(IdentityError, OSError):
    """Reading, writing or removing an identity file failed at the OS level."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(f"{message}: {path}")
        self.path = path


class CorruptIdentityError(IdentityError):
    """Identity files exist on disk but cannot be used as they are (bad JSON, a key that is
    not 32 bytes, one file of the pair missing, or a key/JSON mismatch).

    The Go reference silently replaces such an identity; we refuse, so a damaged file never
    costs a node its key without someone deciding so (``overwrite_corrupt=True``).
    """

    def __init__(self, reason: str, key_path: Path, config_path: Path) -> None:
        super().__init__(f"unusable node identity ({reason}); key={key_path} config={config_path}")
        self.reason = reason
        self.key_path = key_path
        self.config_path = config_path


class IncompleteIdentityError(CorruptIdentityError):
    """Only one of the two identity files (private key, node.json) exists."""


class InconsistentIdentityError(CorruptIdentityError, IdentityMismatchError):
    """node.json's ``publicKey`` or ``id`` does not belong to the stored private key."""
