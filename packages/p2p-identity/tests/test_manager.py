"""NodeManager and load_or_create against real files in tmp dirs."""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from p2p.identity import (
    CorruptIdentityError,
    IdentityMismatchError,
    IdentityNotInitializedError,
    IdentityStorageError,
    IncompleteIdentityError,
    InconsistentIdentityError,
    KeyPair,
    NodeIdentity,
    NodeManager,
    NodeRole,
    default_config_path,
    default_key_path,
    load_or_create,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "data" / "node" / "private.key", tmp_path / "config" / "node.json"


@pytest.fixture
def umask0() -> Iterator[None]:
    """The most permissive umask: modes must come from our code, not the environment."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _go_files(golden: dict[str, Any], key: Path, config: Path) -> NodeIdentity:
    """Identity files exactly as the Go node writes them (wire_capture server identity)."""
    srv = golden["wire_capture"]["server_identity"]
    key.parent.mkdir(parents=True, exist_ok=True)
    config.parent.mkdir(parents=True, exist_ok=True)
    key.write_bytes(bytes.fromhex(srv["private_key_hex"]))
    key.chmod(0o600)
    text = (
        f'{{\n  "id": "{srv["id"]}",\n  "name": "node-0",\n  "publicKey": "{srv["publicKey"]}",'
        '\n  "createdAt": "2025-01-02T03:04:05.123456789+02:00",\n  "role": "worker"\n}'
    )
    config.write_text(text)
    return NodeIdentity.from_json(text)


def _snapshot(*files: Path) -> dict[Path, bytes | None]:
    return {f: f.read_bytes() if f.exists() else None for f in files}


def test_no_files_no_identity(paths: tuple[Path, Path]) -> None:
    m = NodeManager(*paths)
    assert not m.has_identity and m.identity is None and m.keypair is None
    with pytest.raises(IdentityNotInitializedError):
        m.require_identity()
    with pytest.raises(IdentityNotInitializedError):
        m.require_keypair()
    assert not paths[0].exists() and not paths[1].exists()  # constructing writes nothing


@posix_only
def test_generate_writes_go_formats(paths: tuple[Path, Path], umask0: None) -> None:
    key, config = paths
    m = NodeManager(key, config)
    ident = m.generate("alpha", NodeRole.CONTROLLER)
    assert m.has_identity and m.identity == ident
    kp = m.require_keypair()
    assert key.read_bytes() == kp.private_bytes and len(kp.private_bytes) == 32
    assert config.read_bytes() == ident.to_json()
    assert _mode(key) == 0o600
    assert _mode(config) == 0o644
    assert _mode(key.parent) == 0o700
    assert (ident.id, ident.public_key) == (kp.node_id, kp.public_key_b64)
    # a second manager loads exactly what was written
    again = NodeManager(key, config)
    assert again.identity == ident
    assert again.require_keypair().private_bytes == kp.private_bytes
    # nothing but the two files is left behind
    assert sorted(p.name for p in key.parent.iterdir()) == ["private.key"]
    assert sorted(p.name for p in config.parent.iterdir()) == ["node.json"]


@posix_only
def test_key_is_0600_from_the_moment_it_exists(
    paths: tuple[Path, Path], umask0: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file that ever holds the key was created 0600: we look at the temp file at the
    instant it is renamed into place, and at every file os.open creates on the way."""
    key, config = paths
    created: list[tuple[str, int]] = []
    renamed: list[tuple[str, int]] = []
    real_open, real_replace = os.open, os.replace

    def spy_open(path: Any, flags: int, mode: int = 0o777, **kw: Any) -> int:
        fd = real_open(path, flags, mode, **kw)
        if flags & os.O_CREAT:
            created.append((os.fspath(path), _mode(Path(os.fspath(path)))))
            assert flags & os.O_EXCL
        return fd

    def spy_replace(src: Any, dst: Any, **kw: Any) -> None:
        renamed.append((os.fspath(dst), _mode(Path(os.fspath(src)))))
        real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "replace", spy_replace)
    NodeManager(key, config).generate("n")
    key_creations = [m for p, m in created if Path(p).name.startswith(".private.key")]
    assert key_creations == [0o600]
    assert (str(key), 0o600) in renamed
    assert (str(config), 0o644) in renamed


@posix_only
def test_writes_are_fsynced_and_renamed(
    paths: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def spy_fsync(fd: int) -> None:
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    NodeManager(*paths).generate("n")
    assert synced.count("file") == 2  # each temp file before its rename
    assert synced.count("dir") == 2  # each directory after its rename


def test_failed_write_leaves_old_identity_intact(
    paths: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    key, config = paths
    m = NodeManager(*paths)
    old = m.generate("old")
    before = _snapshot(key, config)
    real_replace = os.replace

    def failing_replace(src: Any, dst: Any, **kw: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(IdentityStorageError, match="No space left"):
        m.generate("new")
    monkeypatch.setattr(os, "replace", real_replace)
    assert _snapshot(key, config) == before
    assert m.identity == old
    assert NodeManager(*paths).identity == old
    leftovers = [p.name for d in (key.parent, config.parent) for p in d.iterdir()]
    assert sorted(leftovers) == ["node.json", "private.key"]


def test_go_identity_loads_as_is(
    golden: dict[str, Any], paths: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    key, config = paths
    expected = _go_files(golden, key, config)
    before = _snapshot(key, config)
    m = NodeManager(key, config)
    assert m.identity == expected
    assert m.require_identity().created_at.nanosecond == 123456789
    assert m.require_keypair().public_key_b64 == expected.public_key
    assert _snapshot(key, config) == before  # loading never rewrites
    # the wire_capture client derives the same secret with this node as Go did
    client_pub = golden["wire_capture"]["client_identity"]["publicKey"]
    assert m.derive_shared_secret(client_pub).hex() == golden["wire_capture"]["shared_secret_hex"]
    assert load_or_create(key, config).identity == expected
    assert _snapshot(key, config) == before


@posix_only
def test_world_readable_key_is_loaded_with_a_warning(
    golden: dict[str, Any], paths: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    key, config = paths
    _go_files(golden, key, config)
    key.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="p2p.identity"):
        assert NodeManager(key, config).has_identity
    assert any("should be 0600" in r.getMessage() for r in caplog.records)


def _corrupt_cases() -> list[tuple[str, type[CorruptIdentityError]]]:
    return [
        ("bad_json", CorruptIdentityError),
        ("not_an_object", CorruptIdentityError),
        ("bad_timestamp", CorruptIdentityError),
        ("key_31_bytes", CorruptIdentityError),
        ("key_33_bytes", CorruptIdentityError),
        ("key_empty", CorruptIdentityError),
        ("key_missing", IncompleteIdentityError),
        ("json_missing", IncompleteIdentityError),
        ("public_key_mismatch", InconsistentIdentityError),
        ("id_mismatch", InconsistentIdentityError),
        ("empty_object", InconsistentIdentityError),
    ]


def _damage(case: str, key: Path, config: Path) -> None:
    text = config.read_text()
    ident = NodeIdentity.from_json(text)
    if case == "bad_json":
        config.write_text(text[:-5])
    elif case == "not_an_object":
        config.write_text("[1, 2]")
    elif case == "bad_timestamp":
        config.write_text(text.replace(ident.created_at.format(), "yesterday"))
    elif case == "key_31_bytes":
        key.write_bytes(key.read_bytes()[:31])
    elif case == "key_33_bytes":
        key.write_bytes(key.read_bytes() + b"\n")
    elif case == "key_empty":
        key.write_bytes(b"")
    elif case == "key_missing":
        key.unlink()
    elif case == "json_missing":
        config.unlink()
    elif case == "public_key_mismatch":
        config.write_text(text.replace(ident.public_key, KeyPair.generate().public_key_b64))
    elif case == "id_mismatch":
        config.write_text(text.replace(ident.id, "0" * 32))
    elif case == "empty_object":
        config.write_text("{}")
    else:  # pragma: no cover
        raise AssertionError(case)


@pytest.mark.parametrize(("case", "error"), _corrupt_cases())
def test_corrupt_identity_raises_and_is_kept(
    case: str, error: type[CorruptIdentityError], paths: tuple[Path, Path]
) -> None:
    key, config = paths
    NodeManager(key, config).generate("victim")
    _damage(case, key, config)
    before = _snapshot(key, config)
    with pytest.raises(error) as info:
        NodeManager(key, config)
    assert info.value.key_path == key and info.value.config_path == config
    assert str(key) in str(info.value)
    if error is InconsistentIdentityError:
        assert isinstance(info.value, IdentityMismatchError)
    with pytest.raises(error):
        load_or_create(key, config)
    assert _snapshot(key, config) == before  # never silently replaced


@pytest.mark.parametrize(("case", "error"), _corrupt_cases())
def test_overwrite_corrupt_replaces_and_keeps_a_copy(
    case: str, error: type[CorruptIdentityError], paths: tuple[Path, Path]
) -> None:
    key, config = paths
    NodeManager(key, config).generate("victim")
    _damage(case, key, config)
    before = _snapshot(key, config)
    m = load_or_create(key, config, name="fresh", overwrite_corrupt=True)
    assert m.require_identity().name == "fresh"
    assert NodeManager(key, config).identity == m.identity
    for path, data in before.items():
        aside = path.with_name(path.name + ".corrupt")
        assert (aside.read_bytes() if aside.exists() else None) == data
    if os.name == "posix" and before[key] is not None:
        assert _mode(key.with_name("private.key.corrupt")) == 0o600


def test_ignore_corrupt_then_generate(paths: tuple[Path, Path]) -> None:
    key, config = paths
    NodeManager(key, config).generate("victim")
    config.write_text("{not json")
    m = NodeManager(key, config, ignore_corrupt=True)
    assert not m.has_identity
    m.generate("again", "worker")
    assert NodeManager(key, config).require_identity().role is NodeRole.WORKER


def test_load_or_create_creates_once(paths: tuple[Path, Path]) -> None:
    m = load_or_create(*paths)
    ident = m.require_identity()
    assert ident.role is NodeRole.DUAL
    assert ident.name  # the host name, or the reference's fallback
    again = load_or_create(*paths, name="ignored")
    assert again.identity == ident
    assert again.require_keypair().private_bytes == m.require_keypair().private_bytes


def test_generate_overwrites_like_go(paths: tuple[Path, Path]) -> None:
    m = NodeManager(*paths)
    first = m.generate("one")
    second = m.generate("two", NodeRole.WORKER)
    assert first.id != second.id
    assert NodeManager(*paths).identity == second


def test_delete(paths: tuple[Path, Path]) -> None:
    key, config = paths
    m = NodeManager(key, config)
    m.delete()  # nothing there: fine
    m.generate("n")
    m.delete()
    assert not key.exists() and not config.exists()
    assert not m.has_identity and m.keypair is None
    assert not NodeManager(key, config).has_identity
    with pytest.raises(IdentityNotInitializedError):
        m.derive_shared_secret(KeyPair.generate().public_key_b64)


def test_reload_sees_other_writers(paths: tuple[Path, Path]) -> None:
    a, b = NodeManager(*paths), NodeManager(*paths)
    ident = a.generate("n")
    assert b.identity is None
    assert b.reload() == ident


def test_unreadable_paths_are_storage_errors(tmp_path: Path) -> None:
    key = tmp_path / "key-is-a-dir"
    key.mkdir()
    config = tmp_path / "node.json"
    config.write_text("{}")
    with pytest.raises(IdentityStorageError) as info:
        NodeManager(key, config)
    assert info.value.path == key
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(IdentityStorageError, match="Not a directory"):
        NodeManager(blocker / "private.key", blocker / "node.json")
    later = tmp_path / "later"
    m = NodeManager(later / "private.key", later / "node.json")
    later.write_text("x")  # the directory became a file after we looked
    with pytest.raises(IdentityStorageError):
        m.generate("n")
    assert not m.has_identity


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG layout")
def test_default_paths_are_the_go_nodes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "conf"))
    assert default_key_path() == tmp_path / "share" / "lethean-desktop" / "node" / "private.key"
    assert default_config_path() == tmp_path / "conf" / "lethean-desktop" / "node.json"
    m = NodeManager()
    assert (m.key_path, m.config_path) == (default_key_path(), default_config_path())
    m.generate("default-paths")
    assert default_key_path().stat().st_size == 32
    assert NodeIdentity.from_json(default_config_path().read_bytes()) == m.identity
