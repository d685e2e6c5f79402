"""Identity files on disk: where they live and how they are read and written.

Same locations and formats as the Go node (IDENTITY.md §6), so a Go install's identity
loads as-is and ours loads in Go: ``private.key`` is the raw 32-byte key, ``node.json`` is
2-space-indented JSON without a trailing newline.

Unlike the reference, every write is atomic (a temp file in the same directory, fsynced,
renamed over the target, then the directory fsynced) and the key's temp file is created
``O_EXCL`` with mode 0600, so the key is never readable by others, not even for an instant.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

import platformdirs
from p2p.identity.atomicfile import fsync_dir, open_temp, temp_path, write_all
from p2p.identity.errors import IdentityStorageError

log = logging.getLogger(__name__)

__all__ = [
    "APP_DIR",
    "KEY_FILE_MODE",
    "MAX_CONFIG_SIZE",
    "StagedFile",
    "default_config_path",
    "default_key_path",
    "read_bounded",
    "remove_file",
    "stage_file",
]

APP_DIR = "lethean-desktop"
KEY_FILE_MODE = 0o600
CONFIG_FILE_MODE = 0o644  # what Go uses (before umask); node.json holds nothing secret
DIR_MODE = 0o700
MAX_CONFIG_SIZE = 64 * 1024

_O_BINARY = getattr(os, "O_BINARY", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def default_key_path() -> Path:
    """``<user data dir>/lethean-desktop/node/private.key`` (Go: ``xdg.DataFile``)."""
    return platformdirs.user_data_path() / APP_DIR / "node" / "private.key"


def default_config_path() -> Path:
    """``<user config dir>/lethean-desktop/node.json`` (Go: ``xdg.ConfigFile``)."""
    return platformdirs.user_config_path() / APP_DIR / "node.json"


def read_bounded(path: Path, limit: int) -> bytes | None:
    """The file's bytes, or ``None`` if it does not exist. Reads at most ``limit + 1``
    bytes, so an oversized file is visible to the caller without being loaded whole."""
    try:
        with open(path, "rb") as f:
            return f.read(limit + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise IdentityStorageError(f"cannot read identity file ({e.strerror})", path) from None


def warn_if_exposed(path: Path) -> None:
    """Log a warning when a private key file is readable by group or others."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            log.warning("private key %s has mode %o; it should be 0600", path, mode)


class StagedFile:
    """A fully written, fsynced temp file waiting to be renamed over its target.

    Staging both identity files before renaming either keeps the window in which only one
    of them is new as small as a rename.
    """

    __slots__ = ("target", "temp")

    def __init__(self, target: Path, temp: Path) -> None:
        self.target = target
        self.temp = temp

    def commit(self) -> None:
        """Atomically replace the target and make the rename durable."""
        try:
            os.replace(self.temp, self.target)
            fsync_dir(self.target.parent)
        except OSError as e:
            self.discard()
            raise IdentityStorageError(
                f"cannot write identity file ({e.strerror})", self.target
            ) from None

    def discard(self) -> None:
        """Remove the temp file (idempotent)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp)


def stage_file(target: Path, data: bytes, mode: int, *, exact_mode: bool = False) -> StagedFile:
    """Write ``data`` to a new temp file beside ``target`` and fsync it.

    The temp file is created with ``O_CREAT | O_EXCL`` and ``mode`` in the same system
    call, so it never exists with wider permissions; ``exact_mode`` also sets ``mode``
    regardless of the umask (for the private key).
    """
    parent = target.parent
    try:
        parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    except OSError as e:
        raise IdentityStorageError(f"cannot create directory ({e.strerror})", parent) from None
    temp = temp_path(target)
    try:
        fd = open_temp(temp, mode, exact_mode=exact_mode)
    except OSError as e:
        raise IdentityStorageError(f"cannot create temp file ({e.strerror})", temp) from None
    staged = StagedFile(target, temp)
    try:
        try:
            write_all(fd, [data])
        finally:
            os.close(fd)
    except OSError as e:
        staged.discard()
        raise IdentityStorageError(f"cannot write temp file ({e.strerror})", temp) from None
    return staged


def remove_file(path: Path) -> bool:
    """Remove ``path`` if present and fsync its directory; True if something was removed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise IdentityStorageError(f"cannot remove identity file ({e.strerror})", path) from None
    with contextlib.suppress(OSError):
        fsync_dir(path.parent)
    return True
