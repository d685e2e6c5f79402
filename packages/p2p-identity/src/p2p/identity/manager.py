"""``NodeManager``: the node's own identity, loaded from and saved to disk.

Behaves like Go's ``NodeManager`` (same files, same formats; ``generate`` overwrites,
``delete`` removes both files) except where the reference loses data or trust silently:
an identity on disk that cannot be used as it is — bad JSON, a key that is not 32 bytes,
one file of the pair missing, ``publicKey``/``id`` not matching the key — raises
:class:`CorruptIdentityError` instead of reading as "no identity" and being replaced.
Passing ``ignore_corrupt=True`` (or ``overwrite_corrupt=True`` to :func:`load_or_create`)
opts in to replacing it; the unusable files are then kept beside the new ones with a
``.corrupt`` suffix rather than destroyed.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path

from p2p.identity.errors import (
    CorruptIdentityError,
    IdentityError,
    IdentityNotInitializedError,
    IdentityStorageError,
    IncompleteIdentityError,
    InconsistentIdentityError,
)
from p2p.identity.keys import KEY_SIZE, KeyPair
from p2p.identity.model import MAX_NAME_LEN, NodeIdentity, NodeRole
from p2p.identity.storage import (
    CONFIG_FILE_MODE,
    KEY_FILE_MODE,
    MAX_CONFIG_SIZE,
    default_config_path,
    default_key_path,
    read_bounded,
    remove_file,
    stage_file,
    warn_if_exposed,
)

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_NODE_NAME", "NodeManager", "load_or_create"]

DEFAULT_NODE_NAME = "lethean-node"
CORRUPT_SUFFIX = ".corrupt"


class NodeManager:
    """Holds the node's key pair and public identity; thread-safe.

    ``key_path`` / ``config_path`` default to the Go node's locations
    (:func:`~p2p.identity.storage.default_key_path`,
    :func:`~p2p.identity.storage.default_config_path`).
    """

    def __init__(
        self,
        key_path: str | os.PathLike[str] | None = None,
        config_path: str | os.PathLike[str] | None = None,
        *,
        ignore_corrupt: bool = False,
    ) -> None:
        self._key_path = Path(key_path) if key_path is not None else default_key_path()
        self._config_path = Path(config_path) if config_path is not None else default_config_path()
        self._lock = threading.RLock()
        self._identity: NodeIdentity | None = None
        self._keypair: KeyPair | None = None
        self._corrupt = False
        try:
            loaded = self._read()
        except CorruptIdentityError as e:
            if not ignore_corrupt:
                raise
            log.warning("ignoring unusable identity, it will be replaced: %s", e)
            self._corrupt = True
            loaded = None
        if loaded is not None:
            self._identity, self._keypair = loaded

    # -- state --------------------------------------------------------------------------

    @property
    def key_path(self) -> Path:
        """Where the raw private key lives."""
        return self._key_path

    @property
    def config_path(self) -> Path:
        """Where node.json lives."""
        return self._config_path

    @property
    def identity(self) -> NodeIdentity | None:
        """The public identity, or ``None`` before one is generated or loaded."""
        return self._identity

    @property
    def keypair(self) -> KeyPair | None:
        """The key pair, or ``None`` before one is generated or loaded."""
        return self._keypair

    @property
    def has_identity(self) -> bool:
        """True once an identity is loaded or generated."""
        return self._identity is not None

    def require_identity(self) -> NodeIdentity:
        """The identity, or :class:`IdentityNotInitializedError`."""
        ident = self._identity
        if ident is None:
            raise IdentityNotInitializedError()
        return ident

    def require_keypair(self) -> KeyPair:
        """The key pair, or :class:`IdentityNotInitializedError`."""
        kp = self._keypair
        if kp is None:
            raise IdentityNotInitializedError()
        return kp

    def derive_shared_secret(self, peer_public_key: str | bytes) -> bytes:
        """The static shared secret with a peer (see :meth:`KeyPair.derive_shared_secret`)."""
        return self.require_keypair().derive_shared_secret(peer_public_key)

    # -- changes ------------------------------------------------------------------------

    def generate(self, name: str, role: NodeRole | str = NodeRole.DUAL) -> NodeIdentity:
        """Create a new key pair and identity, write both files, and use them.

        Overwrites an existing identity, like Go's ``GenerateIdentity``.
        """
        keypair = KeyPair.generate()
        identity = NodeIdentity.create(keypair, name, role)
        with self._lock:
            self._write(identity, keypair)
            self._identity, self._keypair = identity, keypair
            self._corrupt = False
        log.info("generated node identity %s (%s)", identity.id, identity.role)
        return identity

    def delete(self) -> None:
        """Remove both identity files (if present) and forget the identity."""
        with self._lock:
            remove_file(self._key_path)
            remove_file(self._config_path)
            self._identity = None
            self._keypair = None
            self._corrupt = False

    def reload(self) -> NodeIdentity | None:
        """Read the files again (e.g. after another process changed them)."""
        with self._lock:
            loaded = self._read()
            self._identity, self._keypair = loaded if loaded is not None else (None, None)
            return self._identity

    # -- files --------------------------------------------------------------------------

    def _corrupt_error(self, cls: type[CorruptIdentityError], reason: str) -> CorruptIdentityError:
        return cls(reason, self._key_path, self._config_path)

    def _read(self) -> tuple[NodeIdentity, KeyPair] | None:
        raw_json = read_bounded(self._config_path, MAX_CONFIG_SIZE)
        raw_key = read_bounded(self._key_path, KEY_SIZE)
        if raw_json is None and raw_key is None:
            return None
        if raw_json is None:
            raise self._corrupt_error(
                IncompleteIdentityError, "private key present but node.json missing"
            )
        if raw_key is None:
            raise self._corrupt_error(
                IncompleteIdentityError, "node.json present but private key missing"
            )
        if len(raw_key) != KEY_SIZE:
            size = f"{len(raw_key)} bytes" if len(raw_key) <= KEY_SIZE else "too long"
            raise self._corrupt_error(
                CorruptIdentityError, f"private key is {size}, expected {KEY_SIZE}"
            )
        if len(raw_json) > MAX_CONFIG_SIZE:
            raise self._corrupt_error(
                CorruptIdentityError, f"node.json larger than {MAX_CONFIG_SIZE} bytes"
            )
        try:
            identity = NodeIdentity.from_json(raw_json)
        except IdentityError as e:
            raise self._corrupt_error(CorruptIdentityError, f"node.json: {e}") from e
        keypair = KeyPair.from_private_bytes(raw_key)
        if identity.public_key != keypair.public_key_b64:
            raise self._corrupt_error(
                InconsistentIdentityError, "node.json publicKey does not match the private key"
            )
        if identity.id != keypair.node_id:
            raise self._corrupt_error(
                InconsistentIdentityError, "node.json id is not derived from its public key"
            )
        warn_if_exposed(self._key_path)
        return identity, keypair

    def _write(self, identity: NodeIdentity, keypair: KeyPair) -> None:
        key = stage_file(self._key_path, keypair.private_bytes, KEY_FILE_MODE, exact_mode=True)
        try:
            config = stage_file(self._config_path, identity.to_json(), CONFIG_FILE_MODE)
        except IdentityError:
            key.discard()
            raise
        try:
            if self._corrupt:
                self._set_aside_corrupt()
            key.commit()
        except IdentityError:
            key.discard()
            config.discard()
            raise
        config.commit()

    def _set_aside_corrupt(self) -> None:
        """Keep unusable files as ``*.corrupt`` instead of destroying them."""
        for path in (self._key_path, self._config_path):
            aside = path.with_name(path.name + CORRUPT_SUFFIX)
            try:
                os.replace(path, aside)
            except FileNotFoundError:
                continue
            except OSError as e:
                raise IdentityStorageError(
                    f"cannot set aside corrupt file ({e.strerror})", path
                ) from None
            log.warning("moved unusable identity file %s to %s", path, aside)


def _hostname() -> str:
    try:
        name = socket.gethostname()
    except OSError:
        name = ""
    return name[:MAX_NAME_LEN] or DEFAULT_NODE_NAME


def load_or_create(
    key_path: str | os.PathLike[str] | None = None,
    config_path: str | os.PathLike[str] | None = None,
    *,
    name: str | None = None,
    role: NodeRole | str = NodeRole.DUAL,
    overwrite_corrupt: bool = False,
) -> NodeManager:
    """Load the node's identity, or create one (name = host name, role dual) if none exists.

    Files that exist but cannot be used raise :class:`CorruptIdentityError` unless
    ``overwrite_corrupt`` is set, in which case they are set aside and replaced.
    """
    manager = NodeManager(key_path, config_path, ignore_corrupt=overwrite_corrupt)
    if not manager.has_identity:
        manager.generate(name if name is not None else _hostname(), role)
    return manager
