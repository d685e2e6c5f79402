"""Atomic file replacement, the one implementation every p2p package writes files with.

A write goes to a new temp file beside the target (hidden, unique name, created with
``O_CREAT | O_EXCL | O_NOFOLLOW`` and its final mode in one call), is fsynced, renamed over
the target, and the directory is fsynced so the rename survives a crash. A reader sees the
old file or the new one, never a mix. Errors are plain ``OSError``: each package wraps them
in its own error type.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

__all__ = ["fsync_dir", "open_temp", "temp_path", "write_all", "write_atomic"]

_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable. Not possible (nor needed) on Windows."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(target: Path) -> Path:
    """A fresh hidden temp name beside ``target`` (same directory, so the rename is atomic)."""
    return target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"


def open_temp(temp: Path, mode: int, *, exact_mode: bool = False) -> int:
    """Create ``temp`` exclusively with ``mode`` (never wider, even for an instant);
    ``exact_mode`` also sets ``mode`` regardless of the umask. Returns the fd."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_CLOEXEC | _O_NOFOLLOW | _O_BINARY
    fd = os.open(temp, flags, mode)
    if exact_mode and hasattr(os, "fchmod"):
        try:
            os.fchmod(fd, mode)
        except OSError:
            os.close(fd)
            raise
    return fd


def write_all(fd: int, chunks: Iterable[bytes]) -> None:
    """Write every chunk to ``fd`` (short writes retried), then fsync it."""
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]
    os.fsync(fd)


def write_atomic(
    target: Path,
    data: bytes | Iterable[bytes],
    mode: int = 0o644,
    *,
    exact_mode: bool = False,
    dir_mode: int = 0o755,
) -> None:
    """Replace ``target`` with ``data`` (bytes, or chunks streamed as they come) atomically
    and durably; the parent directory is created (``dir_mode``) if missing. On any error
    the temp file is removed and the target is untouched."""
    target.parent.mkdir(mode=dir_mode, parents=True, exist_ok=True)
    temp = temp_path(target)
    fd = open_temp(temp, mode, exact_mode=exact_mode)
    try:
        try:
            write_all(fd, [data] if isinstance(data, bytes) else data)
        finally:
            os.close(fd)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    with contextlib.suppress(OSError):
        fsync_dir(target.parent)
