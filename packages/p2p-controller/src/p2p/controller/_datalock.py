"""One `serve` per data directory: an exclusive ``fcntl`` lock on ``DIR/serve.lock``.

Two nodes on one identity and one peers.json would fight over the files and answer as the
same peer id; the second `serve` refuses at start-up, naming the pid that holds the lock.
The lock is released by the kernel when the process exits, so a crash leaves no stale lock.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

__all__ = ["DataDirLock", "DataDirLockedError"]

#: Bytes read back from a lock file (a pid and a newline).
_MAX_PID_TEXT = 32


class DataDirLockedError(Exception):
    """Another process holds the data directory's lock."""

    def __init__(self, path: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "another process"
        super().__init__(f"{path.parent} is in use by another p2p-node serve ({who})")
        self.path = path
        self.pid = pid


class DataDirLock:
    """``with DataDirLock(path):`` holds the lock (and writes our pid into the file)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DataDirLockedError(self.path, self._holder()) from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def _holder(self) -> int | None:
        try:
            text = self.path.read_bytes()[:_MAX_PID_TEXT].decode("ascii", "replace").strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
