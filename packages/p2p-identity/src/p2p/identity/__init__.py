"""Node identity for the Lethean P2P mesh, compatible with the Go reference (go-p2p).

- :class:`KeyPair`: X25519 keys; :func:`node_id_from_public_key`; the static shared
  secret ``SHA-256(X25519(...))`` via :meth:`KeyPair.derive_shared_secret`.
- :func:`generate_challenge`, :func:`sign_challenge`, :func:`verify_challenge`: the
  HMAC-SHA256 challenge-response of the handshake.
- :class:`NodeIdentity` / :class:`NodeRole`: the public identity, JSON exactly as Go's;
  :func:`check_identity_binding` refuses an ``id`` not derived from its key.
- :class:`NodeManager` / :func:`load_or_create`: the identity files, in the Go node's
  locations, written atomically with the key 0600 from the start.
- :class:`GoTime`: RFC 3339 timestamps with nanoseconds and offset kept.
- :func:`safe_text`: how every package shows a string from the network in logs and
  terminals; :class:`LimitedLogger`: per-key budgets for repetitive log lines.
"""

from __future__ import annotations

from p2p.identity._version import __version__
from p2p.identity.challenge import (
    CHALLENGE_SIZE,
    SECRET_SIZE,
    generate_challenge,
    sign_challenge,
    verify_challenge,
)
from p2p.identity.errors import (
    CorruptIdentityError,
    IdentityError,
    IdentityFormatError,
    IdentityMismatchError,
    IdentityNotInitializedError,
    IdentityStorageError,
    IncompleteIdentityError,
    InconsistentIdentityError,
    InvalidPrivateKeyError,
    InvalidPublicKeyError,
    InvalidSecretError,
    LowOrderPointError,
)
from p2p.identity.gotime import GoTime
from p2p.identity.keys import (
    KEY_SIZE,
    KeyPair,
    decode_public_key,
    encode_public_key,
    node_id_from_public_key,
)
from p2p.identity.loglimit import LimitedLogger, LogLimiter
from p2p.identity.manager import NodeManager, load_or_create
from p2p.identity.model import NodeIdentity, NodeRole, check_identity_binding
from p2p.identity.storage import default_config_path, default_key_path
from p2p.identity.text import DEFAULT_TEXT_LIMIT, has_control_chars, safe_text

__all__ = [
    "CHALLENGE_SIZE",
    "DEFAULT_TEXT_LIMIT",
    "KEY_SIZE",
    "SECRET_SIZE",
    "CorruptIdentityError",
    "GoTime",
    "IdentityError",
    "IdentityFormatError",
    "IdentityMismatchError",
    "IdentityNotInitializedError",
    "IdentityStorageError",
    "IncompleteIdentityError",
    "InconsistentIdentityError",
    "InvalidPrivateKeyError",
    "InvalidPublicKeyError",
    "InvalidSecretError",
    "KeyPair",
    "LimitedLogger",
    "LogLimiter",
    "LowOrderPointError",
    "NodeIdentity",
    "NodeManager",
    "NodeRole",
    "__version__",
    "check_identity_binding",
    "decode_public_key",
    "default_config_path",
    "default_key_path",
    "encode_public_key",
    "generate_challenge",
    "has_control_chars",
    "load_or_create",
    "node_id_from_public_key",
    "safe_text",
    "sign_challenge",
    "verify_challenge",
]
