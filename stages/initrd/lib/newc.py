"""The newc cpio header (magic 070701, and 070702 with a data checksum): parse and format.

Parsing is strict, like recent kernels: every field is exactly 8 hex digits,
the name carries its trailing NUL and nothing after it, sizes are bounded.
"""

from __future__ import annotations

import binascii
import stat
import struct
from typing import NamedTuple

MAGIC_NEWC = b"070701"
MAGIC_CRC = b"070702"
MAGIC_ODC = b"070707"
HEADER_LEN = 110
TRAILER = b"TRAILER!!!"
# The kernel skips names longer than PATH_MAX; nothing legitimate is longer.
PATH_MAX = 4096
# A symlink's data is its target; the kernel caps it at PATH_MAX as well.
SYMLINK_MAX = PATH_MAX

_HEX = frozenset(b"0123456789abcdefABCDEF")
_FIELDS_BIN = struct.Struct(">13I")
_FIELDS = ("ino", "mode", "uid", "gid", "nlink", "mtime", "filesize", "devmajor", "devminor",
           "rdevmajor", "rdevminor", "namesize", "check")


class HeaderError(ValueError):
    """A header that is not valid newc; the message says which field and why."""


def pad4(n: int) -> int:
    """Bytes of padding that bring `n` to a multiple of 4."""
    return (4 - n % 4) % 4


class Header(NamedTuple):
    """One newc header with its name (bytes, without the NUL).

    A named tuple rather than a dataclass: `dataclasses` is deferred
    (pipeline/startup.py), and it is built once per entry.
    """

    ino: int
    mode: int
    uid: int
    gid: int
    nlink: int
    mtime: int
    filesize: int
    devmajor: int
    devminor: int
    rdevmajor: int
    rdevminor: int
    namesize: int
    check: int
    name: bytes
    crc: bool = False

    @property
    def is_trailer(self) -> bool:
        return self.name == TRAILER

    @property
    def kind(self) -> str:
        """The file type in ls's words: file, dir, symlink, chr, blk, fifo, sock."""
        return file_kind(self.mode)

    @property
    def link_key(self) -> tuple[int, int, int]:
        """What makes two entries of one archive the same inode."""
        return (self.devmajor, self.devminor, self.ino)


_KINDS = {
    stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
    stat.S_IFCHR: "chr", stat.S_IFBLK: "blk", stat.S_IFIFO: "fifo", stat.S_IFSOCK: "sock",
}


def file_kind(mode: int) -> str:
    """The file type of `mode` as a short word ("?" for an unknown type)."""
    return _KINDS.get(mode & 0o170000, "?")


def parse_fields(raw: bytes) -> tuple[bool, tuple[int, ...]]:
    """Parse the 110-byte header block: (is_crc, the 13 numeric fields).

    Raises HeaderError naming the bad field.
    """
    # The common case in a few C calls: unhexlify takes exactly the 104 hex
    # digits (no sign, space or prefix), which is the strict rule.
    magic = raw[:6]
    if len(raw) >= HEADER_LEN and magic in (MAGIC_NEWC, MAGIC_CRC):
        try:
            return magic == MAGIC_CRC, _FIELDS_BIN.unpack(binascii.unhexlify(raw[6:HEADER_LEN]))
        except binascii.Error:
            pass  # the field by field pass below names the bad one
    return _parse_fields_slowly(raw)


def _parse_fields_slowly(raw: bytes) -> tuple[bool, tuple[int, ...]]:
    if len(raw) < HEADER_LEN:
        raise HeaderError(f"truncated header ({len(raw)} of {HEADER_LEN} bytes)")
    magic = bytes(raw[:6])
    if magic == MAGIC_ODC:
        raise HeaderError("odc (070707) cpio, which the kernel refuses: write it with -H newc")
    if magic not in (MAGIC_NEWC, MAGIC_CRC):
        raise HeaderError(f"bad magic {magic!r} (want 070701 or 070702)")
    values: list[int] = []
    for i, field in enumerate(_FIELDS):
        chunk = raw[6 + 8 * i: 14 + 8 * i]
        if not _HEX.issuperset(chunk):
            raise HeaderError(f"field {field} is not 8 hex digits: {bytes(chunk)!r}")
        values.append(int(chunk, 16))
    return magic == MAGIC_CRC, tuple(values)


def check_name(name_with_nul: bytes) -> bytes:
    """Validate a raw name field (namesize bytes) and return the name without its NUL."""
    if not name_with_nul or name_with_nul[-1] != 0:
        raise HeaderError("name is not terminated by NUL within namesize")
    name = name_with_nul[:-1]
    if b"\0" in name:
        raise HeaderError("name contains a NUL before its end")
    if not name:
        raise HeaderError("empty name")
    return name


def make_header(crc: bool, values: tuple[int, ...], name: bytes) -> Header:
    """Build a Header from parsed fields and the checked name."""
    (ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
     namesize, check) = values
    return Header(ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
                  rdevminor, namesize, check, name, crc)


def format_header(
    *,
    name: bytes,
    ino: int,
    mode: int,
    uid: int = 0,
    gid: int = 0,
    nlink: int = 1,
    mtime: int = 0,
    filesize: int = 0,
    rdevmajor: int = 0,
    rdevminor: int = 0,
    devmajor: int = 0,
    devminor: int = 0,
    check: int = 0,
    crc: bool = False,
    offset: int = 0,
) -> bytes:
    """The header, name, NUL and padding (relative to `offset`) for one newc entry."""
    namesize = len(name) + 1
    values = (ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor,
              rdevminor, namesize, check)
    for field, value in zip(_FIELDS, values, strict=True):
        if not 0 <= value <= 0xFFFFFFFF:
            raise ValueError(f"{name!r}: {field} {value} does not fit in 8 hex digits")
    head = (MAGIC_CRC if crc else MAGIC_NEWC) + b"".join(b"%08X" % v for v in values)
    out = head + name + b"\0"
    return out + b"\0" * pad4(offset + len(out))


def trailer(ino: int = 0, offset: int = 0) -> bytes:
    """The TRAILER!!! entry that ends an archive."""
    return format_header(name=TRAILER, ino=ino, mode=0, nlink=1, offset=offset)
