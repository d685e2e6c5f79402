"""Tar archives the way Go's `archive/tar` writes and reads them, sans I/O.

Why not `tarfile`: it pads archives to 10 KiB records (Go does not, and bundle sizes show up
in the STIM header), it has a history of hangs and ReDoS on hostile headers, and it silently
ends an archive at the first bad header. This module writes Go-identical USTAR bytes for the
archives bundles carry (one regular file per entry, mode 0600, no directory entries, two zero
blocks, no record padding) and parses untrusted archives held in memory with every length
checked against the bytes actually present. It never touches the file system: extraction
policy lives in `p2p.controller.bundles`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from p2p.controller.errors import ArchiveLimitError, UnsafeArchiveError

__all__ = [
    "BLOCK_SIZE",
    "EMPTY_TAR",
    "TarEntry",
    "iter_tar",
    "write_tar",
]

log = logging.getLogger(__name__)

BLOCK_SIZE = 512
#: An archive with no entries, as Go writes it: the two-block trailer and nothing else.
EMPTY_TAR = bytes(2 * BLOCK_SIZE)
_ZERO_BLOCK = bytes(BLOCK_SIZE)

# Type flags (POSIX / GNU).
REGULAR = b"0"
REGULAR_LEGACY = b"\x00"
HARDLINK = b"1"
SYMLINK = b"2"
DIRECTORY = b"5"
PAX_HEADER = b"x"
PAX_GLOBAL = b"g"
GNU_LONGNAME = b"L"
GNU_LONGLINK = b"K"
_HEADER_ONLY = {HARDLINK, SYMLINK, b"3", b"4", DIRECTORY, b"6"}

#: Bound on one PAX / GNU long-name record: real ones are a few hundred bytes.
MAX_META_SIZE = 1 << 20

_USTAR_MAGIC = b"ustar\x0000"
_GNU_MAGIC = b"ustar  \x00"
_MAX_OCTAL_11 = 0o77777777777


@dataclass(frozen=True, slots=True)
class TarEntry:
    """One archive member: its header fields and where its content lies in the archive."""

    name: str
    typeflag: bytes
    mode: int
    size: int
    mtime: int
    linkname: str
    offset: int

    @property
    def is_regular(self) -> bool:
        """Regular file as Go reports it (legacy `\\0` too, unless the name ends in /)."""
        if self.typeflag == REGULAR:
            return True
        return self.typeflag == REGULAR_LEGACY and not self.name.endswith("/")

    @property
    def is_dir(self) -> bool:
        return self.typeflag == DIRECTORY or (
            self.typeflag == REGULAR_LEGACY and self.name.endswith("/")
        )

    @property
    def is_link(self) -> bool:
        """Symbolic or hard link."""
        return self.typeflag in (SYMLINK, HARDLINK)


# --- writing ----------------------------------------------------------------------------------


def _octal(value: int, width: int) -> bytes:
    """Go's formatOctal: zero-padded octal digits filling width-1 bytes, then NUL."""
    digits = f"{value:o}".encode("ascii")
    if len(digits) > width - 1:
        raise ValueError(f"value {value} does not fit a {width}-byte tar field")
    return digits.rjust(width - 1, b"0") + b"\x00"


def _field(raw: bytes, width: int) -> bytes:
    return raw[:width].ljust(width, b"\x00")


def _header(
    name: bytes, prefix: bytes, *, mode: int, size: int, mtime: int, typeflag: bytes
) -> bytes:
    """A USTAR header block, field for field as Go's `Writer.writeUSTARHeader` fills it."""
    block = bytearray(BLOCK_SIZE)
    block[0:100] = _field(name, 100)
    block[100:108] = _octal(mode, 8)
    block[108:116] = _octal(0, 8)  # uid
    block[116:124] = _octal(0, 8)  # gid
    block[124:136] = _octal(size, 12)
    block[136:148] = _octal(min(max(mtime, 0), _MAX_OCTAL_11), 12)
    block[148:156] = b" " * 8  # checksum placeholder
    block[156:157] = typeflag
    block[257:265] = _USTAR_MAGIC
    block[329:337] = _octal(0, 8)  # devmajor
    block[337:345] = _octal(0, 8)  # devminor
    block[345:500] = _field(prefix, 155)
    checksum = sum(block)
    block[148:155] = _octal(checksum, 7)  # six digits, NUL, and the placeholder's last space
    return bytes(block)


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    """(prefix, name) fitting USTAR's 155 + 100 bytes: Go's splitUSTARPath."""
    if len(name) <= 100:
        return b"", name
    length = len(name)
    if length > 156:
        length = 156
    elif name.endswith(b"/"):
        length -= 1
    i = name.rfind(b"/", 0, length)
    suffix = len(name) - i - 1
    if i <= 0 or suffix > 100 or suffix == 0 or i > 155:
        return None
    return name[:i], name[i + 1 :]


def _pax_record(key: str, value: str) -> bytes:
    """One `"<len> key=value\\n"` record; the length counts its own digits."""
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode("ascii") + body


def _to_ascii(raw: bytes) -> bytes:
    """Go's toASCII for fallback header names: non-ASCII bytes dropped."""
    return bytes(b for b in raw if b < 0x80)


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK_SIZE)


def write_tar(files: Iterable[tuple[str, bytes]], *, mtime: int, mode: int = 0o600) -> bytes:
    """Archive `(name, content)` pairs exactly as Borg's DataNode.ToTar does through Go.

    One regular-file entry per pair (uid/gid 0, empty user/group names), no directory
    entries, a two-block trailer and no padding to a record size. ASCII names that fit USTAR
    produce Go-identical bytes; other names get a PAX `path` record, which Go reads.
    """
    out: list[bytes] = []
    for name, content in files:
        raw = name.encode("utf-8", "surrogateescape")
        split = _split_ustar(raw) if raw.isascii() else None
        if split is None:
            records = _pax_record("path", name)
            short = raw.rsplit(b"/", 1)[-1]
            pax_name = (b"PaxHeaders.0/" + _to_ascii(short))[:100]
            out.append(
                _header(
                    pax_name, b"", mode=mode, size=len(records), mtime=mtime, typeflag=PAX_HEADER
                )
            )
            out.append(_pad(records))
            split = (b"", _to_ascii(raw)[:100])
        prefix, short_name = split
        out.append(
            _header(short_name, prefix, mode=mode, size=len(content), mtime=mtime, typeflag=REGULAR)
        )
        out.append(_pad(content))
    out.append(EMPTY_TAR)
    return b"".join(out)


# --- reading ----------------------------------------------------------------------------------


def _cstr(raw: bytes) -> bytes:
    end = raw.find(b"\x00")
    return raw if end < 0 else raw[:end]


def _number(raw: bytes, what: str) -> int:
    """Go's parseNumeric: base-256 when the top bit is set, else space/NUL-trimmed octal."""
    if raw and raw[0] & 0x80:
        if raw[0] & 0x40:
            raise UnsafeArchiveError(f"invalid tar header: negative {what}")
        value = raw[0] & 0x3F
        for byte in raw[1:]:
            value = (value << 8) | byte
        return value
    text = raw.strip(b" \x00")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise UnsafeArchiveError(f"invalid tar header: bad {what} field") from None


def _checksum_ok(block: bytes) -> bool:
    stored = _number(block[148:156], "checksum")
    blank = block[:148] + b" " * 8 + block[156:]
    unsigned = sum(blank)
    if stored == unsigned:
        return True
    high = sum(1 for b in blank if b > 127)  # signed sum, as some old writers made it
    return stored == unsigned - 256 * high


def _parse_pax(data: bytes) -> dict[str, str]:
    """PAX extended-header records (`"<len> key=value\\n"`), strictly checked."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            raise UnsafeArchiveError("invalid tar header: bad PAX record")
        try:
            length = int(data[pos:space].decode("ascii"), 10)
        except ValueError:
            raise UnsafeArchiveError("invalid tar header: bad PAX record length") from None
        end = pos + length
        if length <= space - pos + 1 or end > len(data) or data[end - 1 : end] != b"\n":
            raise UnsafeArchiveError("invalid tar header: bad PAX record length")
        key, eq, value = data[space + 1 : end - 1].partition(b"=")
        if not eq:
            raise UnsafeArchiveError("invalid tar header: bad PAX record")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos = end
    return records


def iter_tar(data: bytes, *, max_entries: int) -> Iterator[TarEntry]:
    """Yield the members of an in-memory archive, Go-reader semantics, bounded.

    Every header block counts towards `max_entries` (including PAX / GNU meta headers, so a
    flood of those cannot spin the parser). Sizes are checked against the bytes present
    before anything is sliced; a bad checksum, a truncated member or a non-zero block after
    a zero block is an `UnsafeArchiveError`, as it is an error in Go.
    """
    pos = 0
    total = len(data)
    headers = 0
    pax: dict[str, str] = {}
    long_name: str | None = None
    long_link: str | None = None
    while True:
        if pos == total:
            return  # Go accepts an archive that ends at a header boundary without a trailer
        if total - pos < BLOCK_SIZE:
            raise UnsafeArchiveError("invalid tar archive: truncated header")
        block = data[pos : pos + BLOCK_SIZE]
        if block == _ZERO_BLOCK:
            nxt = data[pos + BLOCK_SIZE : pos + 2 * BLOCK_SIZE]
            if not nxt or nxt == _ZERO_BLOCK:
                return
            if len(nxt) < BLOCK_SIZE:
                raise UnsafeArchiveError("invalid tar archive: truncated trailer")
            raise UnsafeArchiveError("invalid tar header: data after a zero block")
        headers += 1
        if headers > max_entries:
            raise ArchiveLimitError(
                f"archive has more than {max_entries} entries", limit=max_entries, value=headers
            )
        if not _checksum_ok(block):
            raise UnsafeArchiveError("invalid tar header: checksum mismatch")
        typeflag = block[156:157]
        magic = block[257:265]
        name_raw = _cstr(block[0:100])
        if magic[:6] == b"ustar\x00":
            prefix = _cstr(block[345:500])
            if prefix:
                name_raw = prefix + b"/" + name_raw
        mode = _number(block[100:108], "mode")
        size = _number(block[124:136], "size")
        mtime = _number(block[136:148], "mtime")
        linkname = _cstr(block[157:257]).decode("utf-8", "surrogateescape")
        name = name_raw.decode("utf-8", "surrogateescape")
        if typeflag in _HEADER_ONLY:
            size = 0
        if "size" in pax and typeflag not in _HEADER_ONLY:
            try:
                size = int(pax["size"], 10)
            except ValueError:
                raise UnsafeArchiveError("invalid tar header: bad PAX size") from None
            if size < 0:
                raise UnsafeArchiveError("invalid tar header: negative PAX size")
        start = pos + BLOCK_SIZE
        padded = size + (-size % BLOCK_SIZE)
        if padded > total - start:
            raise UnsafeArchiveError(
                f"invalid tar archive: entry claims {size} bytes, {total - start} present",
                entry=name,
            )
        pos = start + padded
        if typeflag in (PAX_HEADER, PAX_GLOBAL, GNU_LONGNAME, GNU_LONGLINK):
            if size > MAX_META_SIZE:
                raise ArchiveLimitError(
                    "tar extended header too large", limit=MAX_META_SIZE, value=size
                )
            meta = data[start : start + size]
            if typeflag == PAX_HEADER:
                pax = _parse_pax(meta)
            elif typeflag == GNU_LONGNAME:
                long_name = _cstr(meta).decode("utf-8", "surrogateescape")
            elif typeflag == GNU_LONGLINK:
                long_link = _cstr(meta).decode("utf-8", "surrogateescape")
            else:
                _parse_pax(meta)  # validated, then ignored (as Go does for our purposes)
            continue
        if long_name is not None:
            name = long_name
        if long_link is not None:
            linkname = long_link
        name = pax.get("path", name)
        linkname = pax.get("linkpath", linkname)
        pax, long_name, long_link = {}, None, None
        yield TarEntry(
            name=name,
            typeflag=typeflag,
            mode=mode,
            size=size,
            mtime=mtime,
            linkname=linkname,
            offset=start,
        )
