"""Deploy bundles: profiles and miner binaries shipped to workers, compatible with go-p2p.

A bundle is `{type, name, data, checksum}`; `data` is either raw profile JSON (unencrypted
profile bundles) or a STIM container (TRIX `STIM` + XChaCha20-Poly1305 under
K = SHA-256(password)) holding a config blob and a tar "rootfs". The checksum is an unkeyed
SHA-256 of `data`: it catches corruption, not forgery; the STIM AEAD is what authenticates.

What we keep from the reference (BUNDLES.md): the JSON and STIM byte layouts, Go-identical
tar archives, the extraction defences (absolute paths, `..` traversal, escapes, symlinks and
hard links skipped, 100 MiB per file). What we fix: the `config_size` overflow that panics Go
is bounds-checked; total size and entry count are capped; nothing is written unless the whole
archive validates; files are opened beneath the destination without following symlinks and
replaced by rename (a pre-planted link is never written through); the miner binary stays
executable (Go loses the exec bit); a miner bundle built without a profile reports `None`
instead of Borg's placeholder config.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import enum
import hashlib
import hmac
import io
import json
import logging
import os
import posixpath
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from p2p.controller import _stim, _tar
from p2p.controller.errors import (
    ArchiveLimitError,
    BundleDecryptError,
    BundleError,
    BundleFormatError,
    ChecksumMismatch,
    ChecksumMismatchError,
    PasswordRequiredError,
    StimFormatError,
    UnknownBundleTypeError,
    UnsafeArchiveError,
)
from p2p.identity.gojson import GoFields, go_quote
from p2p.identity.text import safe_text

__all__ = [
    "DEFAULT_LIMITS",
    "DEFAULT_TIM_CONFIG",
    "MAX_BUNDLE_JSON_SIZE",
    "MAX_FILE_SIZE",
    "MAX_NAME_LENGTH",
    "ArchiveLimitError",
    "Bundle",
    "BundleDecryptError",
    "BundleError",
    "BundleFormatError",
    "BundleType",
    "ChecksumMismatch",
    "ChecksumMismatchError",
    "ExtractLimits",
    "MinerBundleContents",
    "PasswordRequiredError",
    "StimFormatError",
    "UnknownBundleTypeError",
    "UnsafeArchiveError",
    "check_bundle_shape",
    "compute_checksum",
    "create_miner_bundle",
    "create_profile_bundle",
    "create_profile_bundle_unencrypted",
    "extract_miner_bundle",
    "extract_profile_bundle",
    "inspect_miner_bundle",
    "inspect_profile_bundle",
    "is_bundle_json",
    "is_executable_image",
    "iter_bundles",
    "read_bundle",
    "stream_bundle",
    "validate_profile_json",
    "verify_bundle",
]

log = logging.getLogger(__name__)

#: Go's per-file extraction cap (`ExtractMinerBundle`), 100 MiB.
MAX_FILE_SIZE = 100 * 1024 * 1024
#: Bound on one Bundle JSON document read from bytes or a stream (base64 of a 100 MiB file
#: plus slack). Deploy messages are far smaller (one WebSocket message, ≤ 1 MiB).
MAX_BUNDLE_JSON_SIZE = 256 * 1024 * 1024
#: Longest entry name extracted (Linux PATH_MAX); longer PAX / GNU names are refused.
MAX_NAME_LENGTH = 4096
#: Borg's `tim.New()` config: what a Go miner bundle built without a profile carries.
DEFAULT_TIM_CONFIG = b'{"Header":{},"Payload":null}'


class BundleType(str, enum.Enum):
    """What a bundle deploys. `miner` and `full` extract identically."""

    PROFILE = "profile"
    MINER = "miner"
    FULL = "full"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class ExtractLimits:
    """Bounds applied to an archive before anything is written (security parameters).

    `max_file_size`: one regular file (Go's 100 MiB). `max_total_size`: all regular files
    together. `max_entries`: every tar header, including skipped links and meta headers.
    """

    max_file_size: int = MAX_FILE_SIZE
    max_total_size: int = 256 * 1024 * 1024
    max_entries: int = 10_000

    def __post_init__(self) -> None:
        for field in ("max_file_size", "max_total_size", "max_entries"):
            if getattr(self, field) < 0:
                raise ValueError(f"{field} must be >= 0")


DEFAULT_LIMITS = ExtractLimits()


def _decode_data(value: object) -> bytes:
    """Go's []byte JSON decoding: std base64 with padding (CR/LF ignored), null → empty."""
    if value is None:
        return b""
    if not isinstance(value, str):
        raise BundleFormatError("bundle data must be a base64 string")
    try:
        raw = value.replace("\r", "").replace("\n", "").encode("ascii")
        return base64.b64decode(raw, validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise BundleFormatError(f"bundle data is not valid base64: {exc}") from None


def _string_field(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BundleFormatError(f"bundle {key} must be a string")
    return value


_BUNDLE_FIELDS: GoFields[str] = GoFields((n, n) for n in ("type", "name", "data", "checksum"))
"""Go `Bundle`'s JSON names in struct order: `_BUNDLE_FIELDS[key]` is the one a key fills."""


class _JsonObject(dict[str, Any]):
    """A decoded JSON object that also keeps its members in document order, duplicates
    included (Go lets the last of them win, whatever their case)."""

    __slots__ = ("members",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__(pairs)
        self.members = pairs


_DECODER = json.JSONDecoder(object_pairs_hook=_JsonObject)


def is_bundle_json(doc: object) -> bool:
    """Whether a decoded JSON value is a Bundle JSON object: keys that Go decodes into its
    `type`, `data` and `checksum` fields are all present."""
    if not isinstance(doc, Mapping):
        return False
    return {_BUNDLE_FIELDS[k] for k in doc if isinstance(k, str)} >= {"type", "data", "checksum"}


def compute_checksum(data: bytes) -> str:
    """The bundle checksum: lowercase hex SHA-256 of the data bytes."""
    return hashlib.sha256(data).hexdigest()


@dataclass(slots=True)
class Bundle:
    """A deploy bundle: the unit `deploy` carries and `StreamBundle` writes."""

    type: BundleType
    name: str
    data: bytes
    checksum: str

    @classmethod
    def create(cls, bundle_type: BundleType | str, name: str, data: bytes) -> Bundle:
        """A bundle around `data` with its checksum computed."""
        return cls(_bundle_type(bundle_type), name, bytes(data), compute_checksum(data))

    # JSON -------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> Bundle:
        """From a decoded JSON object: Bundle JSON or a `deploy` payload (key order is free).

        Like Go, keys match as `GoFields` says (the last duplicate wins: in document order
        when `obj` came from `from_json`/`read_bundle`, in dict order otherwise), unknown
        keys are ignored, missing fields are empty and `null` changes no string; an unknown
        `type` is `UnknownBundleTypeError`.
        """
        if not isinstance(obj, Mapping):
            raise BundleFormatError("bundle must be a JSON object")
        fields: dict[str, Any] = {}
        for key, value in obj.members if isinstance(obj, _JsonObject) else obj.items():
            name = _BUNDLE_FIELDS[key] if isinstance(key, str) else None
            if name is None or (value is None and name != "data"):
                continue  # Go: null leaves a string as it was and makes a []byte empty
            fields[name] = value
        raw_type = fields.get("type")
        if not isinstance(raw_type, str):
            raise UnknownBundleTypeError("" if raw_type is None else raw_type)
        return cls(
            type=_bundle_type(raw_type),
            name=_string_field(fields, "name"),
            data=_decode_data(fields.get("data")),
            checksum=_string_field(fields, "checksum"),
        )

    @classmethod
    def from_json(cls, data: str | bytes, *, max_size: int = MAX_BUNDLE_JSON_SIZE) -> Bundle:
        """Parse the first JSON value of `data` (trailing data ignored, as Go's ReadBundle)."""
        if len(data) > max_size:
            raise BundleFormatError(f"bundle JSON larger than {max_size} bytes")
        if isinstance(data, (bytes, bytearray, memoryview)):
            try:
                text = bytes(data).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BundleFormatError(f"bundle JSON is not UTF-8: {exc}") from None
        else:
            text = data
        stripped = text.lstrip(" \t\r\n")
        try:
            obj, _end = _DECODER.raw_decode(stripped)
        except json.JSONDecodeError as exc:
            raise BundleFormatError(f"invalid bundle JSON: {exc}") from None
        except RecursionError:
            raise BundleFormatError("invalid bundle JSON: nested too deeply") from None
        return cls.from_dict(obj)

    def to_dict(self) -> dict[str, str]:
        """Bundle JSON fields in the reference's struct order: type, name, data, checksum."""
        return {
            "type": self.type.value,
            "name": self.name,
            "data": base64.b64encode(self.data).decode("ascii"),
            "checksum": self.checksum,
        }

    def to_json(self) -> bytes:
        """StreamBundle bytes: Go `json.Encoder` output (HTML escaping on) plus a newline."""
        return self._encode(self.to_dict())

    @staticmethod
    def _encode(fields: Mapping[str, str]) -> bytes:
        body = ",".join(f"{go_quote(k)}:{go_quote(v)}" for k, v in fields.items())
        return ("{" + body + "}\n").encode("utf-8")


def _bundle_type(value: BundleType | str) -> BundleType:
    try:
        return BundleType(value)
    except ValueError:
        raise UnknownBundleTypeError(value) from None


def verify_bundle(bundle: Bundle) -> bool:
    """True iff `checksum` is the SHA-256 of `data` (integrity only: anyone can recompute it)."""
    claimed = bundle.checksum.encode("utf-8", "surrogatepass")
    return hmac.compare_digest(compute_checksum(bundle.data).encode("ascii"), claimed)


def _check(bundle: Bundle) -> None:
    if not verify_bundle(bundle):
        raise ChecksumMismatchError(bundle.checksum, compute_checksum(bundle.data))


# --- streams ------------------------------------------------------------------------------


def stream_bundle(bundle: Bundle, fileobj: IO[bytes] | IO[str]) -> None:
    """Write the bundle as one JSON line (Go's StreamBundle); text or binary file objects."""
    data = bundle.to_json()
    if isinstance(fileobj, io.TextIOBase):
        fileobj.write(data.decode("utf-8"))
    else:
        fileobj.write(data)  # type: ignore[arg-type]


def _read_value(fileobj: IO[bytes] | IO[str], max_size: int) -> Bundle | None:
    buf = ""
    while True:
        line = fileobj.readline(max_size - len(buf) + 1)
        text = line.decode("utf-8", "strict") if isinstance(line, bytes) else line
        if not text:
            if buf.strip():
                raise BundleFormatError("truncated bundle JSON at end of stream")
            return None
        buf += text
        if len(buf) > max_size:
            raise BundleFormatError(f"bundle JSON larger than {max_size} bytes")
        if not buf.strip():
            buf = ""
            continue
        try:
            obj, _end = _DECODER.raw_decode(buf.lstrip(" \t\r\n"))
        except RecursionError:
            raise BundleFormatError("invalid bundle JSON: nested too deeply") from None
        except json.JSONDecodeError:
            if buf.endswith("\n"):
                continue  # a multi-line (pretty-printed) value: read on
            raise BundleFormatError("invalid or truncated bundle JSON") from None
        return Bundle.from_dict(obj)


def read_bundle(fileobj: IO[bytes] | IO[str], *, max_size: int = MAX_BUNDLE_JSON_SIZE) -> Bundle:
    """Read the next bundle from a JSON-lines stream (Go's ReadBundle: first JSON value)."""
    try:
        bundle = _read_value(fileobj, max_size)
    except UnicodeDecodeError as exc:
        raise BundleFormatError(f"bundle JSON is not UTF-8: {exc}") from None
    if bundle is None:
        raise BundleFormatError("no bundle in stream")
    return bundle


def iter_bundles(
    fileobj: IO[bytes] | IO[str], *, max_size: int = MAX_BUNDLE_JSON_SIZE
) -> Iterator[Bundle]:
    """Every bundle of a JSON-lines stream, in order."""
    while True:
        try:
            bundle = _read_value(fileobj, max_size)
        except UnicodeDecodeError as exc:
            raise BundleFormatError(f"bundle JSON is not UTF-8: {exc}") from None
        if bundle is None:
            return
        yield bundle


# --- creation -----------------------------------------------------------------------------


def create_profile_bundle(
    profile_json: bytes,
    name: str,
    password: str,
    *,
    config_nonce: bytes | None = None,
    rootfs_nonce: bytes | None = None,
) -> Bundle:
    """An encrypted profile bundle: STIM with the profile as config and an empty rootfs.

    The worker decrypts with base64(shared secret of the connection), so that is the
    password to use for a deploy. Fixed nonces are for reproducible tests only.
    """
    if not password:
        raise PasswordRequiredError()
    data = _stim.encode_stim(
        bytes(profile_json),
        _tar.EMPTY_TAR,
        password,
        config_nonce=config_nonce,
        rootfs_nonce=rootfs_nonce,
    )
    return Bundle.create(BundleType.PROFILE, name, data)


def create_profile_bundle_unencrypted(profile_json: bytes, name: str) -> Bundle:
    """A plain profile bundle (data = the JSON itself), accepted by Go's extractor."""
    return Bundle.create(BundleType.PROFILE, name, bytes(profile_json))


def create_miner_bundle(
    miner_path: str | os.PathLike[str],
    profile_json: bytes | None,
    name: str,
    password: str,
    *,
    bundle_type: BundleType = BundleType.MINER,
    mtime: int | None = None,
) -> Bundle:
    """An encrypted miner bundle: the binary as the single tar entry, the profile as config.

    The archive is what Go writes (entry `basename(miner_path)`, mode 0600); without a
    profile the config is Borg's default. Binaries over 100 MiB are refused: no reference
    node would extract them.
    """
    if not password:
        raise PasswordRequiredError()
    if bundle_type is BundleType.PROFILE:
        raise BundleError("a miner bundle must be of type miner or full")
    path = Path(miner_path)
    with path.open("rb") as fh:
        binary = fh.read(MAX_FILE_SIZE + 1)
    if len(binary) > MAX_FILE_SIZE:
        raise ArchiveLimitError(
            f"file {path.name} exceeds maximum size",
            limit=MAX_FILE_SIZE,
            value=len(binary),
            entry=path.name,
        )
    stamp = int(time.time()) if mtime is None else mtime
    rootfs = _tar.write_tar([(path.name, binary)], mtime=stamp)
    config = DEFAULT_TIM_CONFIG if profile_json is None else bytes(profile_json)
    data = _stim.encode_stim(config, rootfs, password)
    return Bundle.create(bundle_type, name, data)


# --- extraction ---------------------------------------------------------------------------


def extract_profile_bundle(bundle: Bundle, password: str) -> bytes:
    """The profile JSON of a bundle: checksum first; raw JSON as-is, else STIM config."""
    _check(bundle)
    data = bundle.data
    if data[:1] in (b"{", b"["):
        return data
    config, _rootfs = _stim.decode_stim(data, password)
    return config


def _plan_path(name: str) -> list[str]:
    """Validated path components of a regular file's name, relative to the destination."""
    if len(name) > MAX_NAME_LENGTH or "\x00" in name:
        raise UnsafeArchiveError(
            f"invalid tar entry: {name[:64]}...: name too long or NUL in name", entry=name
        )
    if name.startswith("/"):
        raise UnsafeArchiveError(f"invalid tar entry: {name}: absolute path", entry=name)
    clean = posixpath.normpath(name)
    if clean == ".." or clean.startswith("../"):
        raise UnsafeArchiveError(f"invalid tar entry: {name}: path traversal attempt", entry=name)
    if clean in ("", "."):
        raise UnsafeArchiveError(f"invalid tar entry: {name}: path escape attempt", entry=name)
    return clean.split("/")


@dataclass(frozen=True, slots=True)
class _Planned:
    parts: list[str]
    entry: _tar.TarEntry


def _plan(rootfs: bytes, limits: ExtractLimits) -> list[_Planned]:
    """Validate the whole archive before a byte is written; keep regular files only."""
    plan: list[_Planned] = []
    total = 0
    for entry in _tar.iter_tar(rootfs, max_entries=limits.max_entries):
        if entry.is_link:
            log.info("bundle: skipping link entry %s", safe_text(entry.name))
            continue
        if entry.is_dir:
            continue  # Go's DataNode keeps no directories; parents are made on demand
        if not entry.is_regular:
            log.info(
                "bundle: ignoring special entry %s (type %r)", safe_text(entry.name), entry.typeflag
            )
            continue
        if entry.name.endswith("/"):
            continue
        parts = _plan_path(entry.name)
        if entry.size > limits.max_file_size:
            raise ArchiveLimitError(
                f"file {entry.name} exceeds maximum size",
                limit=limits.max_file_size,
                value=entry.size,
                entry=entry.name,
            )
        total += entry.size
        if total > limits.max_total_size:
            raise ArchiveLimitError(
                f"archive exceeds maximum total size of {limits.max_total_size} bytes",
                limit=limits.max_total_size,
                value=total,
                entry=entry.name,
            )
        plan.append(_Planned(parts, entry))
    return plan


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _open_dir_beneath(root_fd: int, parts: list[str], name: str) -> int:
    """Open (creating, 0755) the directory `parts` under root_fd, never following a link."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            try:
                nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise UnsafeArchiveError(
                    f"invalid tar entry: {name}: path escape attempt ({exc.strerror})",
                    entry=name,
                ) from None
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_beneath(root_fd: int, parts: list[str], content: memoryview, mode: int) -> None:
    """Write a file as temp + rename in its directory: a planted link is replaced, not followed."""
    name = "/".join(parts)
    dir_fd = _open_dir_beneath(root_fd, parts[:-1], name)
    try:
        tmp = f".{parts[-1][:64]}.{os.urandom(6).hex()}.part"
        fd = os.open(tmp, _FILE_FLAGS, 0o600, dir_fd=dir_fd)
        try:
            try:
                view = content
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            try:
                os.replace(tmp, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError as exc:
                raise UnsafeArchiveError(
                    f"invalid tar entry: {name}: cannot replace existing path ({exc.strerror})",
                    entry=name,
                ) from None
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
    finally:
        os.close(dir_fd)


def _extract_rootfs(rootfs: bytes, dest_dir: Path, limits: ExtractLimits) -> Path | None:
    plan = _plan(rootfs, limits)
    if not {os.open, os.mkdir, os.rename, os.unlink} <= os.supports_dir_fd:
        raise BundleError("safe extraction needs dir_fd support (POSIX)")
    miner = next((p for p in plan if p.entry.mode & 0o111), plan[0] if plan else None)
    dest_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
    root_fd = os.open(dest_dir, _DIR_FLAGS & ~os.O_NOFOLLOW)
    view = memoryview(rootfs)
    try:
        for item in plan:
            entry = item.entry
            executable = item is miner or bool(entry.mode & 0o111)
            content = view[entry.offset : entry.offset + entry.size]
            try:
                _write_beneath(root_fd, item.parts, content, 0o755 if executable else 0o600)
            except OSError as exc:
                raise BundleError(f"cannot write {entry.name}: {exc.strerror}") from None
    finally:
        os.close(root_fd)
    if miner is None:
        return None
    return dest_dir.joinpath(*miner.parts)


#: How a miner binary starts: ELF, a ``#!`` script, Mach-O (thin, fat), PE/COFF.
_EXECUTABLE_MAGIC = (
    b"\x7fELF",
    b"#!",
    b"\xfe\xed\xfa\xce",
    b"\xfe\xed\xfa\xcf",
    b"\xce\xfa\xed\xfe",
    b"\xcf\xfa\xed\xfe",
    b"\xca\xfe\xba\xbe",
    b"MZ",
)
#: Largest profile JSON accepted in a bundle (the worker's profile store has the same cap).
MAX_PROFILE_JSON = 1 << 20


def is_executable_image(head: bytes) -> bool:
    """Does a file starting with `head` look like a program (not random bytes)?"""
    return any(head.startswith(magic) for magic in _EXECUTABLE_MAGIC)


def validate_profile_json(raw: bytes) -> dict[str, Any]:
    """The profile object in `raw`, or `BundleFormatError` saying what is wrong.

    A profile is a JSON object; ``id`` (if present) is one safe name, ``name`` and
    ``minerType`` (if present) are strings. That is what a worker stores and starts with.
    """
    if len(raw) > MAX_PROFILE_JSON:
        raise BundleFormatError(f"profile larger than {MAX_PROFILE_JSON} bytes")
    if raw == DEFAULT_TIM_CONFIG:
        raise BundleFormatError("bundle carries no profile (an empty STIM config)")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleFormatError(f"profile is not valid JSON: {str(exc)[:80]}") from None
    if not isinstance(doc, dict):
        raise BundleFormatError("profile must be a JSON object")
    profile_id = doc.get("id")
    if profile_id not in (None, "") and (
        not isinstance(profile_id, str) or not _safe_id(profile_id)
    ):
        raise BundleFormatError(f"profile id {str(profile_id)[:64]!r} is not a safe name")
    for key in ("name", "minerType"):
        if key in doc and not isinstance(doc[key], str):
            raise BundleFormatError(f"profile {key} must be a string")
    return doc


def _safe_id(text: str) -> bool:
    return (
        0 < len(text) <= 128
        and text[0].isascii()
        and text[0].isalnum()
        and all(c.isascii() and (c.isalnum() or c in "._-") for c in text)
    )


def check_bundle_shape(bundle: Bundle) -> None:
    """What can be checked without the password: the checksum, and that `data` is what
    the `type` says (a profile: JSON object or STIM; a miner: STIM). `BundleError` if not."""
    _check(bundle)
    data = bundle.data
    if bundle.type is BundleType.PROFILE and data[:1] in (b"{", b"["):
        validate_profile_json(data)
        return
    try:
        _stim.check_framing(data)
    except StimFormatError as exc:
        kind = (
            "a STIM container or profile JSON"
            if bundle.type is BundleType.PROFILE
            else ("a STIM container")
        )
        raise BundleFormatError(f"{bundle.type} bundle data is not {kind}: {exc}") from None


def inspect_profile_bundle(bundle: Bundle, password: str) -> tuple[bytes, dict[str, Any]]:
    """The profile JSON of a profile bundle and its validated object: checksum, raw JSON
    or STIM, a STIM that carries no files (else it is a miner bundle labelled profile)."""
    if bundle.type is not BundleType.PROFILE:
        raise BundleFormatError(f"a {bundle.type} bundle is not a profile bundle")
    _check(bundle)
    data = bundle.data
    if data[:1] in (b"{", b"["):
        return data, validate_profile_json(data)
    config, rootfs = _stim.decode_stim(data, password)
    if _plan(rootfs, ExtractLimits(max_entries=64)):
        raise BundleFormatError("profile bundle carries files (is it a miner bundle?)")
    return config, validate_profile_json(config)


@dataclass(frozen=True, slots=True)
class MinerBundleContents:
    """What a miner bundle holds, validated, before anything is written."""

    #: the bundled profile JSON (validated), or None
    profile: bytes | None
    #: the entry that becomes the miner binary
    miner_entry: str
    #: regular files and their total size
    files: int
    total_size: int


def inspect_miner_bundle(
    bundle: Bundle, password: str, *, limits: ExtractLimits = DEFAULT_LIMITS
) -> MinerBundleContents:
    """Decrypt and validate a miner/full bundle without writing: the archive passes the
    extraction defences within `limits`, holds a regular file that is a program (ELF,
    Mach-O, PE or a ``#!`` script), and its profile (if any) is a valid profile."""
    if bundle.type is BundleType.PROFILE:
        raise BundleFormatError("a profile bundle is not a miner bundle")
    _check(bundle)
    config, rootfs = _stim.decode_stim(bundle.data, password)
    plan = _plan(rootfs, limits)
    if not plan:
        raise BundleFormatError("miner bundle contains no regular file (is it a profile?)")
    miner = next((p for p in plan if p.entry.mode & 0o111), plan[0])
    head = rootfs[miner.entry.offset : miner.entry.offset + min(miner.entry.size, 8)]
    if not is_executable_image(head):
        raise BundleFormatError(
            f"miner file {miner.entry.name[:64]!r} is not a program "
            "(no ELF, Mach-O, PE or #! header)"
        )
    profile = None if config in (b"", DEFAULT_TIM_CONFIG) else config
    if profile is not None:
        validate_profile_json(profile)
    return MinerBundleContents(
        profile, "/".join(miner.parts), len(plan), sum(p.entry.size for p in plan)
    )


def extract_miner_bundle(
    bundle: Bundle,
    password: str,
    dest_dir: str | os.PathLike[str],
    *,
    limits: ExtractLimits = DEFAULT_LIMITS,
) -> tuple[Path, bytes | None]:
    """Decrypt a miner/full bundle and install its files under `dest_dir`.

    Returns `(miner_path, profile_json)`. The miner is the first regular file with an
    execute bit, else the first regular file (Go bundles carry exactly one file, at mode
    0600); it is left at mode 0755. `profile_json` is None when the bundle carries no
    profile (empty config, or Borg's default placeholder). Nothing is written unless the
    whole archive passes the checks in `limits`; an archive without a regular file is an
    error (Go would "succeed" with an empty miner path).
    """
    _check(bundle)
    config, rootfs = _stim.decode_stim(bundle.data, password)
    dest = Path(os.path.abspath(os.fspath(dest_dir)))
    miner = _extract_rootfs(rootfs, dest, limits)
    if miner is None:
        raise BundleFormatError("miner bundle contains no regular file")
    profile = None if config in (b"", DEFAULT_TIM_CONFIG) else config
    log.info("bundle %s extracted to %s (miner %s)", safe_text(bundle.name), dest, miner.name)
    return miner, profile
