"""p2p.identity.atomicfile: the one atomic, durable file replacement (real files, tmp dirs)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from p2p.identity.atomicfile import write_atomic


def test_replaces_the_target_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.json"
    write_atomic(target, b"one")
    write_atomic(target, [b"t", b"w", b"o"])
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.json"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_mode_is_the_files_mode(tmp_path: Path) -> None:
    target = tmp_path / "key"
    write_atomic(target, b"k", 0o600, exact_mode=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f"
    write_atomic(target, b"old")

    def chunks() -> Iterator[bytes]:
        yield b"new, half"
        raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        write_atomic(target, chunks())
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
