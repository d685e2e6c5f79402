"""Deploy bundles: Go vectors both ways, round trips, and every extraction defence.

Hostile archives are built here with `tarfile` (an independent tar implementation) and
wrapped in real STIM containers, so each defence is exercised through the public
`extract_miner_bundle` exactly as a worker would meet it.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest
from p2p.controller import _stim, _tar
from p2p.controller.bundles import (
    DEFAULT_LIMITS,
    DEFAULT_TIM_CONFIG,
    MAX_FILE_SIZE,
    ArchiveLimitError,
    Bundle,
    BundleDecryptError,
    BundleError,
    BundleFormatError,
    BundleType,
    ChecksumMismatch,
    ChecksumMismatchError,
    ExtractLimits,
    PasswordRequiredError,
    StimFormatError,
    UnknownBundleTypeError,
    UnsafeArchiveError,
    compute_checksum,
    create_miner_bundle,
    create_profile_bundle,
    create_profile_bundle_unencrypted,
    extract_miner_bundle,
    extract_profile_bundle,
    iter_bundles,
    read_bundle,
    stream_bundle,
    verify_bundle,
)
from p2p.controller.errors import ControllerError
from p2p.transport import trix

PW = "l3CwhNy/RF0aHxGYLk5wffBe1MNCPEqOej6a2h1g5N4="
PROFILE = b'{"id":"p1","name":"Test","minerType":"xmrig","config":{"threads":2}}'


def _cases(golden: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = golden["bundles"]["bundles"]
    return [c for c in cases if kind is None or c["kind"] == kind]


def _case(golden: dict[str, Any], name: str) -> dict[str, Any]:
    (case,) = [c for c in _cases(golden) if c["name"] == name]
    return case


def _tampered(bundle: Bundle) -> Bundle:
    raw = bytearray(bundle.data)
    raw[-1] ^= 1
    return Bundle(bundle.type, bundle.name, bytes(raw), bundle.checksum)


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# --- Go vectors -------------------------------------------------------------------------


def test_every_vector_case_is_known(golden: dict[str, Any]) -> None:
    names = {c["name"] for c in _cases(golden)}
    assert names == {
        "profile_encrypted/shared_secret_b64",
        "profile_encrypted/plain",
        "profile_unencrypted",
        "miner_bundle",
        "profile_fixed_nonce",
    }


def test_vector_stream_json_round_trips_byte_for_byte(golden: dict[str, Any]) -> None:
    for case in _cases(golden):
        bundle = Bundle.from_json(case["bundle_stream_json"])
        assert bundle.to_json() == case["bundle_stream_json"].encode(), case["name"]
        assert verify_bundle(bundle) is True, case["name"]
        if "checksum" in case:
            assert bundle.checksum == case["checksum"]
        if "stim_hex" in case:
            assert bundle.data == bytes.fromhex(case["stim_hex"])
        stream = io.BytesIO(case["bundle_stream_json"].encode())
        assert read_bundle(stream) == bundle


def test_vector_profiles_extract(golden: dict[str, Any]) -> None:
    for case in _cases(golden, "profile"):
        bundle = Bundle.from_json(case["bundle_stream_json"])
        assert bundle.type is BundleType.PROFILE
        out = extract_profile_bundle(bundle, case["password"])
        assert out == case["expected_profile_json"].encode(), case["name"]


def test_vector_encrypted_profiles_reject_wrong_password(golden: dict[str, Any]) -> None:
    cases = [c for c in _cases(golden, "profile") if "stim_hex" in c]
    assert len(cases) == 3
    for case in cases:
        bundle = Bundle.from_json(case["bundle_stream_json"])
        with pytest.raises(BundleDecryptError, match=r"wrong password"):
            extract_profile_bundle(bundle, case["password"] + "x")


def test_vector_tampered_data_fails_checksum(golden: dict[str, Any]) -> None:
    for case in _cases(golden):
        bundle = _tampered(Bundle.from_json(case["bundle_stream_json"]))
        assert verify_bundle(bundle) is False
        with pytest.raises(ChecksumMismatchError, match="checksum mismatch - bundle may be"):
            if case["kind"] == "profile":
                extract_profile_bundle(bundle, case["password"])
            else:
                extract_miner_bundle(bundle, case["password"], "/nonexistent-never-created")
    assert not os.path.exists("/nonexistent-never-created")


def test_vector_stim_container_layout(golden: dict[str, Any]) -> None:
    for case in _cases(golden):
        if "stim_container" not in case:
            continue
        info = case["stim_container"]
        data = bytes.fromhex(case["stim_hex"])
        container = trix.decode(data, b"STIM")
        assert data[4] == info["version"] == 2
        assert data[9 : 9 + info["header_len"]] == info["header_json"].encode()
        payload = container.payload
        assert len(payload) == info["payload_len"]
        size = int.from_bytes(payload[:4], "big")
        assert size == info["config_size"] == container.header["config_size"]
        assert payload[4 : 4 + 24].hex() == info["config_nonce_hex"]
        assert payload[4 + size : 4 + size + 24].hex() == info["rootfs_nonce_hex"]
        assert len(payload) - 4 - size == container.header["rootfs_size"]


def test_vector_fixed_nonce_profile_is_reproduced_exactly(golden: dict[str, Any]) -> None:
    case = _case(golden, "profile_fixed_nonce")
    bundle = create_profile_bundle(
        case["expected_profile_json"].encode(),
        "profile-1",
        case["password"],
        config_nonce=bytes.fromhex(case["nonce_config_hex"]),
        rootfs_nonce=bytes.fromhex(case["nonce_rootfs_hex"]),
    )
    assert bundle.data == bytes.fromhex(case["stim_hex"])
    assert bundle.to_json() == case["bundle_stream_json"].encode()
    config, rootfs = _stim.decode_stim(bundle.data, case["password"])
    assert rootfs == bytes.fromhex(case["rootfs_plaintext_hex"]) == _tar.EMPTY_TAR
    assert config == case["expected_profile_json"].encode()
    header = trix.decode(bundle.data, b"STIM").header
    assert json.dumps(header, separators=(",", ":"), sort_keys=True) == case["header_json"]


def test_vector_unencrypted_profile_is_plain_json(golden: dict[str, Any]) -> None:
    case = _case(golden, "profile_unencrypted")
    expected = case["expected_profile_json"].encode()
    bundle = create_profile_bundle_unencrypted(expected, "profile-plain")
    assert bundle.to_json() == case["bundle_stream_json"].encode()
    assert extract_profile_bundle(bundle, "") == expected
    assert case["tampered_data_error"].endswith("checksum mismatch - bundle may be corrupted")


def test_vector_miner_bundle_extracts_executable(golden: dict[str, Any], tmp_path: Path) -> None:
    case = _case(golden, "miner_bundle")
    bundle = Bundle.from_json(case["bundle_stream_json"])
    assert bundle.type is BundleType.MINER
    miner, profile = extract_miner_bundle(bundle, case["password"], tmp_path / "inst")
    assert miner == tmp_path / "inst" / case["binary_name"]
    assert miner.read_bytes() == bytes.fromhex(case["binary_hex"])
    assert stat.S_IMODE(miner.stat().st_mode) == 0o755
    assert os.access(miner, os.X_OK)
    assert profile == case["expected_profile_json"].encode()
    ref = case["reference_extract"]
    assert sorted(_files(tmp_path / "inst")) == ref["rootfs_entries"]
    assert ref["profile_json"].encode() == profile


def test_vector_miner_bundle_wrong_password(golden: dict[str, Any], tmp_path: Path) -> None:
    case = _case(golden, "miner_bundle")
    bundle = Bundle.from_json(case["bundle_stream_json"])
    with pytest.raises(BundleDecryptError):
        extract_miner_bundle(bundle, case["password"] + "x", tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_our_tar_is_byte_identical_to_go(golden: dict[str, Any]) -> None:
    """The Go miner bundle's rootfs, rebuilt by our writer with the same mtime."""
    case = _case(golden, "miner_bundle")
    _config, rootfs = _stim.decode_stim(bytes.fromhex(case["stim_hex"]), case["password"])
    assert len(rootfs) == case["reference_extract"]["rootfs_tar_len"]
    (entry,) = list(_tar.iter_tar(rootfs, max_entries=10))
    assert (entry.name, entry.mode, entry.typeflag) == ("xmrig", 0o600, b"0")
    ours = _tar.write_tar([("xmrig", bytes.fromhex(case["binary_hex"]))], mtime=entry.mtime)
    assert ours == rootfs


# --- round trips of our own bundles ------------------------------------------------------


def test_profile_bundle_round_trip() -> None:
    bundle = create_profile_bundle(PROFILE, "p1", "pw")
    assert bundle.type is BundleType.PROFILE and bundle.name == "p1"
    assert bundle.checksum == compute_checksum(bundle.data)
    assert bundle.data.startswith(b"STIM\x02")
    header = trix.decode(bundle.data, b"STIM").header
    # config: 24 nonce + len + 16 tag; rootfs: 1024 zero bytes sealed = 1064 (as Go)
    assert header["config_size"] == len(PROFILE) + 40
    assert header["rootfs_size"] == 1064
    assert extract_profile_bundle(bundle, "pw") == PROFILE
    with pytest.raises(BundleDecryptError):
        extract_profile_bundle(bundle, "pW")
    # fresh random nonces per bundle
    assert create_profile_bundle(PROFILE, "p1", "pw").data != bundle.data


def test_empty_password_refused() -> None:
    with pytest.raises(PasswordRequiredError, match="password is required for encryption"):
        create_profile_bundle(PROFILE, "p1", "")


def test_miner_bundle_round_trip(tmp_path: Path) -> None:
    binary = tmp_path / "my-miner"
    binary.write_bytes(b"#!/bin/sh\necho mining\n" + bytes(range(256)))
    bundle = create_miner_bundle(binary, PROFILE, "m1", PW)
    assert bundle.type is BundleType.MINER
    _config, rootfs = _stim.decode_stim(bundle.data, PW)
    # Go layout: one header block, content padded to 512, two zero blocks, no record padding
    assert len(rootfs) == 512 + 512 + 1024
    with tarfile.open(fileobj=io.BytesIO(rootfs)) as tf:
        (member,) = tf.getmembers()
        assert (member.name, member.mode, member.uid, member.uname) == ("my-miner", 0o600, 0, "")
        assert member.isreg()
    miner, profile = extract_miner_bundle(bundle, PW, tmp_path / "out")
    assert miner == tmp_path / "out" / "my-miner"
    assert miner.read_bytes() == binary.read_bytes()
    assert stat.S_IMODE(miner.stat().st_mode) == 0o755
    assert profile == PROFILE


def test_miner_bundle_without_profile_carries_borg_default(tmp_path: Path) -> None:
    binary = tmp_path / "xmrig"
    binary.write_bytes(b"\x7fELF fake")
    bundle = create_miner_bundle(binary, None, "m1", PW, bundle_type=BundleType.FULL)
    assert bundle.type is BundleType.FULL
    config, _rootfs = _stim.decode_stim(bundle.data, PW)
    assert config == DEFAULT_TIM_CONFIG == b'{"Header":{},"Payload":null}'
    miner, profile = extract_miner_bundle(bundle, PW, tmp_path / "out")
    assert profile is None  # not a bogus "profile" for the worker to save
    assert miner.read_bytes() == b"\x7fELF fake"


def test_miner_bundle_refuses_profile_type_and_empty_password(tmp_path: Path) -> None:
    binary = tmp_path / "xmrig"
    binary.write_bytes(b"x")
    with pytest.raises(BundleError):
        create_miner_bundle(binary, None, "m", PW, bundle_type=BundleType.PROFILE)
    with pytest.raises(PasswordRequiredError):
        create_miner_bundle(binary, None, "m", "")


def test_reextracting_overwrites_in_place(tmp_path: Path) -> None:
    binary = tmp_path / "xmrig"
    binary.write_bytes(b"v1")
    extract_miner_bundle(create_miner_bundle(binary, None, "m", PW), PW, tmp_path / "o")
    binary.write_bytes(b"v2")
    miner, _ = extract_miner_bundle(create_miner_bundle(binary, None, "m", PW), PW, tmp_path / "o")
    assert miner.read_bytes() == b"v2"
    assert sorted(os.listdir(tmp_path / "o")) == ["xmrig"]  # no temp files left behind


def test_error_hierarchy() -> None:
    assert ChecksumMismatch is ChecksumMismatchError
    for cls in (
        ChecksumMismatchError,
        BundleDecryptError,
        UnsafeArchiveError,
        ArchiveLimitError,
        StimFormatError,
        BundleFormatError,
        UnknownBundleTypeError,
        PasswordRequiredError,
    ):
        assert issubclass(cls, BundleError)
    assert issubclass(BundleError, ControllerError)
    assert issubclass(ArchiveLimitError, UnsafeArchiveError)


# --- JSON, deploy payload, streams -------------------------------------------------------


def test_to_json_uses_go_html_escaping() -> None:
    bundle = Bundle.create("profile", "<a&b>\u2028é", b"{}")
    assert bundle.to_json() == (
        b'{"type":"profile","name":"\\u003ca\\u0026b\\u003e\\u2028\xc3\xa9",'
        b'"data":"e30=","checksum":"' + compute_checksum(b"{}").encode() + b'"}\n'
    )
    assert Bundle.from_json(bundle.to_json()) == bundle


def test_bundle_field_order() -> None:
    bundle = create_profile_bundle(PROFILE, "p1", "pw")
    assert list(bundle.to_dict()) == ["type", "name", "data", "checksum"]


def test_from_dict_follows_go_decoding() -> None:
    b = Bundle.from_dict({"TYPE": "miner", "Name": "n", "data": None, "extra": 1})
    assert (b.type, b.name, b.data, b.checksum) == (BundleType.MINER, "n", b"", "")
    assert Bundle.from_dict({"type": "full", "data": "e3\r\n0="}).data == b"{}"
    with pytest.raises(UnknownBundleTypeError, match="unknown bundle type: tarball") as info:
        Bundle.from_dict({"type": "tarball"})
    assert info.value.bundle_type == "tarball"
    with pytest.raises(UnknownBundleTypeError):
        Bundle.from_dict({"name": "no type"})
    with pytest.raises(BundleFormatError, match="base64"):
        Bundle.from_dict({"type": "profile", "data": "not base64!"})
    with pytest.raises(BundleFormatError):
        Bundle.from_dict({"type": "profile", "data": 5})
    with pytest.raises(BundleFormatError):
        Bundle.from_dict({"type": "profile", "name": ["x"]})
    with pytest.raises(BundleFormatError):
        Bundle.from_json(b"[1, 2]")
    with pytest.raises(BundleFormatError):
        Bundle.from_json(b'{"type": "profile"')
    with pytest.raises(BundleFormatError):
        Bundle.from_json(b"\xff\xfe")


def test_from_json_ignores_trailing_data_and_bounds_size() -> None:
    line = create_profile_bundle_unencrypted(b"{}", "x").to_json()
    assert Bundle.from_json(line + b"garbage after").name == "x"
    with pytest.raises(BundleFormatError, match="larger than"):
        Bundle.from_json(line, max_size=len(line) - 1)


def test_stream_and_read_json_lines() -> None:
    bundles = [create_profile_bundle(PROFILE, f"p{i}", "pw") for i in range(3)]
    binary = io.BytesIO()
    text = io.StringIO()
    for b in bundles:
        stream_bundle(b, binary)
        stream_bundle(b, text)
    assert binary.getvalue().count(b"\n") == 3
    assert binary.getvalue().decode() == text.getvalue()
    binary.seek(0)
    assert read_bundle(binary) == bundles[0]
    assert list(iter_bundles(binary)) == bundles[1:]
    with pytest.raises(BundleFormatError, match="no bundle"):
        read_bundle(binary)
    text.seek(0)
    assert list(iter_bundles(text)) == bundles


def test_read_bundle_pretty_printed_and_truncated() -> None:
    bundle = create_profile_bundle_unencrypted(b"[]", "pp")
    pretty = json.dumps(bundle.to_dict(), indent=2).encode()
    assert read_bundle(io.BytesIO(b"\n\n" + pretty + b"\n")) == bundle
    with pytest.raises(BundleFormatError, match="truncated"):
        read_bundle(io.BytesIO(pretty[:-3]))
    with pytest.raises(BundleFormatError, match="larger than"):
        read_bundle(io.BytesIO(bundle.to_json()), max_size=20)
    with pytest.raises(BundleFormatError):
        read_bundle(io.BytesIO(b"}{ nope"))


# --- STIM robustness -----------------------------------------------------------------------


def _stim_with_payload(payload: bytes) -> bytes:
    return trix.encode(b"STIM", {"tim": True}, payload)


def test_config_size_overflow_is_bounds_checked() -> None:
    """The reference wraps 4+size in 32 bits and panics; we reject with a typed error."""
    for size in (0xFFFFFFFC, 0xFFFFFFFF, 0x80000000, 100):
        data = _stim_with_payload(size.to_bytes(4, "big") + bytes(60))
        bundle = Bundle.create("profile", "x", data)
        with pytest.raises(StimFormatError, match="invalid stim payload"):
            extract_profile_bundle(bundle, PW)


def test_short_and_malformed_stim() -> None:
    cases = {
        b"": "failed to decode stim",
        b"STIM": "failed to decode stim",
        b"SMSG\x02\x00\x00\x00\x02{}": "failed to decode stim",
        b"STIM\x03\x00\x00\x00\x02{}": "failed to decode stim",
        b"STIM\x02\xff\xff\xff\xff{}": "failed to decode stim",
        b"STIM\x02\x00\x00\x00\x02[]": "failed to decode stim",
        _stim_with_payload(b"\x00\x00"): "invalid stim payload",
    }
    for data, message in cases.items():
        with pytest.raises(StimFormatError, match=message):
            _stim.decode_stim(data, PW)
    # a config part too short for nonce+tag is a decryption failure, not a crash
    with pytest.raises(BundleDecryptError):
        _stim.decode_stim(_stim_with_payload(b"\x00\x00\x00\x05" + bytes(80)), PW)


# --- extraction defences ---------------------------------------------------------------------


def _make_tar(*members: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.USTAR_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, content in members:
            info.size = len(content) if info.isreg() else 0
            tf.addfile(info, io.BytesIO(content) if info.isreg() else None)
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, *, mode: int = 0o600, link: str = "") -> Any:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = link
    return info


def _miner_bundle(rootfs: bytes, config: bytes = PROFILE) -> Bundle:
    return Bundle.create(BundleType.MINER, "hostile", _stim.encode_stim(config, rootfs, PW))


def test_absolute_path_rejected_nothing_written(tmp_path: Path) -> None:
    rootfs = _make_tar((_member("ok"), b"fine"), (_member("/tmp/evil-abs"), b"x"))
    with pytest.raises(UnsafeArchiveError, match="absolute path") as info:
        extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "d")
    assert info.value.entry == "/tmp/evil-abs"
    assert _files(tmp_path) == {}  # validated before anything is written
    assert not os.path.exists("/tmp/evil-abs")


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "..", "./../evil"])
def test_traversal_rejected(tmp_path: Path, name: str) -> None:
    rootfs = _make_tar((_member("miner"), b"bin"), (_member(name), b"x"))
    with pytest.raises(UnsafeArchiveError, match="path traversal attempt"):
        extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "d" / "e")
    assert _files(tmp_path) == {}


def test_dot_names_are_not_files(tmp_path: Path) -> None:
    rootfs = _make_tar((_member("a/.."), b"x"))
    with pytest.raises(UnsafeArchiveError, match="escape"):
        extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "d")


def test_symlinks_and_hardlinks_skipped(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    rootfs = _make_tar(
        (_member("sym", tarfile.SYMTYPE, link=str(outside)), b""),
        (_member("hard", tarfile.LNKTYPE, link="/etc/passwd"), b""),
        (_member("up", tarfile.SYMTYPE, link="../../.."), b""),
        (_member("sym/inside"), b"into a real dir, not through the link"),
        (_member("xmrig", mode=0o755), b"binary"),
    )
    miner, _ = extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "d")
    dest = tmp_path / "d"
    assert miner == dest / "xmrig"
    assert not any(p.is_symlink() for p in dest.rglob("*"))
    assert not (dest / "hard").exists() and not (dest / "up").exists()
    assert (dest / "sym").is_dir() and (dest / "sym" / "inside").is_file()
    assert list(outside.iterdir()) == []


def test_preplanted_symlink_directory_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    rootfs = _make_tar((_member("sub/file"), b"x"))
    with pytest.raises(UnsafeArchiveError, match="path escape attempt"):
        extract_miner_bundle(_miner_bundle(rootfs), PW, dest)
    assert list(outside.iterdir()) == []


def test_preplanted_symlink_file_is_replaced_not_written_through(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_bytes(b"precious")
    dest = tmp_path / "d"
    dest.mkdir()
    (dest / "xmrig").symlink_to(target)
    (dest / "hl").hardlink_to(target)
    rootfs = _make_tar((_member("xmrig"), b"new"), (_member("hl"), b"new too"))
    miner, _ = extract_miner_bundle(_miner_bundle(rootfs), PW, dest)
    assert target.read_bytes() == b"precious"
    assert not miner.is_symlink() and miner.read_bytes() == b"new"
    assert (dest / "hl").read_bytes() == b"new too"


def test_per_file_cap(tmp_path: Path) -> None:
    assert MAX_FILE_SIZE == DEFAULT_LIMITS.max_file_size == 104_857_600
    rootfs = _make_tar((_member("small"), b"a" * 1000), (_member("big"), b"b" * 1001))
    limits = ExtractLimits(max_file_size=1000)
    with pytest.raises(ArchiveLimitError, match="file big exceeds maximum size") as info:
        extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "d", limits=limits)
    assert (info.value.limit, info.value.value, info.value.entry) == (1000, 1001, "big")
    assert _files(tmp_path) == {}
    ok = extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "e")
    assert ok[0].read_bytes() == b"a" * 1000


def test_total_size_cap(tmp_path: Path) -> None:
    rootfs = _make_tar(*[(_member(f"f{i}"), bytes(600)) for i in range(3)])
    limits = ExtractLimits(max_total_size=1500)
    with pytest.raises(ArchiveLimitError, match="total size") as info:
        extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "d", limits=limits)
    assert info.value.value == 1800
    assert _files(tmp_path) == {}


def test_entry_count_cap_counts_skipped_entries(tmp_path: Path) -> None:
    links = [(_member(f"l{i}", tarfile.SYMTYPE, link="x"), b"") for i in range(20)]
    rootfs = _make_tar((_member("xmrig"), b"bin"), *links)
    with pytest.raises(ArchiveLimitError, match="more than 10 entries"):
        extract_miner_bundle(
            _miner_bundle(rootfs), PW, tmp_path / "d", limits=ExtractLimits(max_entries=10)
        )
    assert _files(tmp_path) == {}


def test_size_bomb_header_rejected_before_allocation(tmp_path: Path) -> None:
    """A header claiming 8 GiB over a few bytes of content."""
    info = _member("xmrig")
    info.size = 0o77777777777
    rootfs = info.tobuf(tarfile.USTAR_FORMAT) + b"tiny".ljust(512, b"\0") + bytes(1024)
    with pytest.raises(UnsafeArchiveError, match="claims"):
        extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "d")
    # the same via base-256 (GNU) numbers
    info.size = 1 << 62
    rootfs = info.tobuf(tarfile.GNU_FORMAT) + bytes(1024)
    with pytest.raises(UnsafeArchiveError):
        extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "d")
    assert _files(tmp_path) == {}


def test_decompression_bomb_is_not_decompressed(tmp_path: Path) -> None:
    """STIM has no compression: a gzip'd rootfs is refused as a bad tar, never inflated."""
    big = _make_tar((_member("zeros"), bytes(16 * 1024 * 1024)))
    bomb = gzip.compress(big, compresslevel=9)
    assert len(bomb) < 64 * 1024
    with pytest.raises(UnsafeArchiveError, match="invalid tar header"):
        extract_miner_bundle(_miner_bundle(bomb), PW, tmp_path / "d")
    assert _files(tmp_path) == {}


def test_corrupt_headers_rejected(tmp_path: Path) -> None:
    good = _make_tar((_member("xmrig"), b"bin"), (_member("other"), b"x"))
    bad_sum = bytearray(good)
    bad_sum[0] ^= 1
    after_zero = bytes(512) + good
    truncated = good[:700]
    for rootfs in (bytes(bad_sum), after_zero, truncated, good[:100]):
        with pytest.raises(UnsafeArchiveError):
            extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "d")
    assert _files(tmp_path) == {}


def test_empty_archive_has_no_miner(tmp_path: Path) -> None:
    for rootfs in (_tar.EMPTY_TAR, b""):
        with pytest.raises(BundleFormatError, match="no regular file"):
            extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "d")


def test_special_entries_ignored_and_dirs_implicit(tmp_path: Path) -> None:
    rootfs = _make_tar(
        (_member("fifo", tarfile.FIFOTYPE), b""),
        (_member("dev", tarfile.CHRTYPE), b""),
        (_member("bin", tarfile.DIRTYPE, mode=0o777), b""),
        (_member("bin/sub/xmrig", mode=0o750), b"exe"),
        (_member("bin/README"), b"doc"),
    )
    miner, profile = extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "d")
    dest = tmp_path / "d"
    assert miner == dest / "bin" / "sub" / "xmrig"
    assert _files(dest) == {"bin/README": b"doc", "bin/sub/xmrig": b"exe"}
    assert stat.S_IMODE(miner.stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "bin" / "README").stat().st_mode) == 0o600
    assert stat.S_IMODE((dest / "bin").stat().st_mode) & 0o022 == 0
    assert not (dest / "fifo").exists() and not (dest / "dev").exists()
    assert profile == PROFILE


def test_first_executable_is_the_miner_else_first_file(tmp_path: Path) -> None:
    rootfs = _make_tar((_member("config.txt"), b"c"), (_member("run", mode=0o700), b"r"))
    miner, _ = extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "a")
    assert miner.name == "run"
    rootfs = _make_tar((_member("config.txt"), b"c"), (_member("run"), b"r"))
    miner, _ = extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "b")
    assert miner.name == "config.txt" and os.access(miner, os.X_OK)


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_long_and_unicode_names_from_other_writers(tmp_path: Path, fmt: int) -> None:
    long_name = "d" * 120 + "/" + "m" * 150
    rootfs = _make_tar((_member(long_name), b"long"), (_member("mīner-ü"), b"uni"), fmt=fmt)
    extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "d")
    assert _files(tmp_path / "d") == {long_name: b"long", "mīner-ü": b"uni"}


def test_writer_handles_long_and_unicode_names() -> None:
    names = ["a" * 100, "p" * 120 + "/" + "n" * 90, "x" * 180, "ünï"]
    files = [(n, n.encode() * 3) for n in names]
    archive = _tar_write(files)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
        read = {m.name: tf.extractfile(m).read() for m in tf.getmembers()}  # type: ignore[union-attr]
    assert read == dict(files)
    ours = {
        e.name: archive[e.offset : e.offset + e.size]
        for e in _tar.iter_tar(archive, max_entries=100)
    }
    assert ours == dict(files)
    assert len(archive) % 512 == 0 and archive.endswith(bytes(1024))


def _tar_write(files: list[tuple[str, bytes]]) -> bytes:
    return _tar.write_tar(files, mtime=1_700_000_000)


def test_pax_record_bounds() -> None:
    for bad in (b"5 path=x\n", b"99 path=x\n", b"xx path=x\n", b"8 pathx\n", b"nospace"):
        header = _member("././@PaxHeader", tarfile.XHDTYPE)
        header.size = len(bad)
        archive = header.tobuf(tarfile.USTAR_FORMAT) + bad.ljust(512, b"\0") + bytes(1024)
        with pytest.raises(UnsafeArchiveError):
            list(_tar.iter_tar(archive, max_entries=10))


def test_data_is_base64_std_padded() -> None:
    bundle = Bundle.create("miner", "m", b"\xff\xfe\xfd\x00")
    assert json.loads(bundle.to_json())["data"] == base64.b64encode(b"\xff\xfe\xfd\x00").decode()


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_traversal_hidden_in_long_names_rejected(tmp_path: Path, fmt: int) -> None:
    for name in ("../" + "ü" * 80, "/" + "a" * 150, "x/" * 60 + "../" * 70 + "evil"):
        rootfs = _make_tar((_member("xmrig"), b"bin"), (_member(name), b"x"), fmt=fmt)
        with pytest.raises(UnsafeArchiveError):
            extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "d")
    assert _files(tmp_path) == {}


def test_verify_bundle_with_odd_checksums() -> None:
    bundle = Bundle.create("profile", "x", b"{}")
    for claimed in ("", "é" * 64, bundle.checksum.upper(), bundle.checksum + "0"):
        assert verify_bundle(Bundle(bundle.type, "x", b"{}", claimed)) is False
    assert verify_bundle(bundle) is True


def test_overlong_names_refused(tmp_path: Path) -> None:
    name = "a/" * 3000 + "m"
    rootfs = _make_tar((_member(name), b"x"), fmt=tarfile.PAX_FORMAT)
    with pytest.raises(UnsafeArchiveError, match="name too long"):
        extract_miner_bundle(_miner_bundle(rootfs), PW, tmp_path / "d")
    assert _files(tmp_path) == {}


def test_signed_checksum_headers_accepted() -> None:
    """Old writers summed header bytes as signed chars; Go (and we) accept both sums."""
    archive = bytearray(_make_tar((_member("xmrig"), b"bin")))
    archive[120] = 0xFF  # a high byte in the (unused) gid field
    archive[148:156] = b" " * 8
    signed = sum(b - 256 if b > 127 else b for b in archive[:512])
    archive[148:156] = f"{signed:06o}".encode() + b"\x00 "
    (entry,) = list(_tar.iter_tar(bytes(archive), max_entries=4))
    assert (entry.name, archive[entry.offset : entry.offset + entry.size]) == ("xmrig", b"bin")
    archive[148:156] = f"{signed + 1:06o}".encode() + b"\x00 "
    with pytest.raises(UnsafeArchiveError, match="checksum"):
        list(_tar.iter_tar(bytes(archive), max_entries=4))
