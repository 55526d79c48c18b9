"""Walk an initrd image the way the kernel does: every part, every entry, as a stream.

An image is any sequence of uncompressed newc archives and compressed members
(each holding one or more archives), with zero padding between them. The
walk never stops at the first TRAILER!!!, checks every header strictly and
reads each entry's data in bounded chunks, so memory stays flat.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator
from typing import BinaryIO, NamedTuple

from respin.pipeline.errors import ConfigError, InputError
from respin.stages.initrd.lib import newc
from respin.stages.initrd.lib.codecs import MemberInfo, decode, detect
from respin.stages.initrd.lib.newc import Header, HeaderError
from respin.stages.initrd.lib.stream import Budget, DataError, Prefetch, Stream

# Decompressed bytes allowed per image before it counts as a bomb; real images
# are well under 1 GiB, and --max-size raises it.
DEFAULT_MAX_SIZE = 4 << 30
# Entries allowed per image before it counts as an entry-count bomb (a few megabytes of xz
# can hold millions of empty files, each an inode on disk and a record in memory). Real
# initrds hold a few thousand entries (dracut, mkinitramfs) up to ~100,000 (a live system's
# whole root); ten times that is no real image. --max-entries raises it.
DEFAULT_MAX_ENTRIES = 1_000_000

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str | None) -> int:
    """A byte count like 512M or 4G (binary units); ConfigError when malformed."""
    if text is None:
        return DEFAULT_MAX_SIZE
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)i?b?\s*", text.lower())
    if not m or int(m.group(1)) == 0:
        raise ConfigError(f"--max-size {text!r}: want a positive size such as 512M or 4G")
    return int(m.group(1)) * _UNITS[m.group(2)]


def parse_count(value: str | int | None) -> int:
    """An entry bound (`--max-entries`, or the stages' `max_entries`); ConfigError when it is
    not a positive whole number."""
    if value is None:
        return DEFAULT_MAX_ENTRIES
    text = str(value).strip().replace("_", "")
    if not text.isdigit() or not text.isascii() or int(text) == 0:
        raise ConfigError(f"--max-entries {str(value)!r}: want a positive whole number such as 2000000")
    return int(text)


class Part:
    """One uncompressed archive or one compressed member of the image (filled in
    as the walk goes; a plain class, see Header)."""

    __slots__ = ("archives", "compression", "detail", "dict_size", "end", "entries", "formats", "index",
                 "level", "offset", "size")

    def __init__(self, index: int, offset: int, compression: str = "none", detail: str = "") -> None:
        self.index = index
        self.offset = offset
        self.compression = compression
        self.detail = detail
        self.end = 0
        self.archives = 0
        self.entries = 0
        self.size = 0
        self.formats: set[str] = set()
        # What a repack of this part should use (codecs.MemberInfo says how it is told).
        self.level: int | None = None
        self.dict_size: int | None = None

    def __repr__(self) -> str:
        return (f"Part(index={self.index}, offset={self.offset}, compression={self.compression!r}, "
                f"end={self.end}, entries={self.entries}, size={self.size})")

    @property
    def format(self) -> str:
        """newc, crc, or both when the part mixes them."""
        return "+".join(sorted(self.formats)) or "empty"


class Entry(NamedTuple):
    """One archive member: its header, and where it sits.

    `archive` numbers TRAILER-terminated archives across the image; hardlinks
    (same dev and ino) only join within one archive.
    """

    header: Header
    part: int
    archive: int
    offset: int

    @property
    def name(self) -> bytes:
        return self.header.name

    @property
    def kind(self) -> str:
        return self.header.kind

    @property
    def size(self) -> int:
        return self.header.filesize


class ImageReader:
    """Reads one image. Iterate `entries()`; while an entry is current, `chunks()` or
    `read_all()` give its data (anything left unread is skipped when the walk moves on).

    `parts` fills in as the walk goes; it is complete once `entries()` is exhausted.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_size: int = DEFAULT_MAX_SIZE,
                 max_entries: int = DEFAULT_MAX_ENTRIES, prefetch: bool = True) -> None:
        # A str, not a Path: pathlib is deferred (pipeline/startup.py).
        self.path = os.fspath(path)
        # Decompress on a worker thread: a gain when the consumer does real work per
        # byte (extracting, summing); a walk over headers alone gains nothing from it
        # and loses to the hand-offs on a busy machine.
        self.prefetch = prefetch
        self.budget = Budget(max_size)
        self.max_entries = max_entries
        self.count = 0
        self.parts: list[Part] = []
        self.warnings: list[str] = []
        self._stream: Stream | None = None
        self._left = 0
        self._crc: int | None = None
        self._current: Entry | None = None
        self._where = ""

    # --- public -------------------------------------------------------------

    def entries(self) -> Iterator[Entry]:
        """Every entry of every part, in image order (TRAILER!!! entries not included)."""
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - closed in finally, generator-scoped
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read: {exc.strerror}") from None
        try:
            yield from self._walk(fh)
        finally:
            fh.close()

    def chunks(self) -> Iterator[bytes]:
        """The current entry's data in bounded chunks."""
        while self._left > 0:
            chunk = self._take(self._left)
            yield chunk

    def read_all(self, limit: int) -> bytes:
        """The current entry's whole data, which must be at most `limit` bytes."""
        if self._left > limit:
            raise self._error(f"entry data of {self._left} bytes is over the {limit}-byte limit")
        return b"".join(self.chunks())

    def summary(self) -> list[Part]:
        """Walk the whole image (if not done yet) and return its parts."""
        for _ in self.entries():
            pass
        return self.parts

    # --- walk ---------------------------------------------------------------

    def _error(self, message: str) -> InputError:
        return InputError(f"{self.path}: {self._where}{message}")

    def _walk(self, fh: BinaryIO) -> Iterator[Entry]:
        top = Stream.from_file(fh)
        archive = 0
        while True:
            top.skip_zeros()
            if top.at_end():
                break
            offset = top.pos
            head = top.peek(8)
            part = Part(index=len(self.parts), offset=offset)
            self.parts.append(part)
            if head[:1] == b"0":
                self._where = f"part {part.index} (uncompressed, offset {offset}): "
                if offset % 4:
                    raise self._error("cpio archive starts at an offset that is not a multiple of 4")
                archive = yield from self._archive(top, part, archive, base=offset)
                part.size = top.pos - offset
                if not part.entries and not part.archives:
                    raise self._error("empty archive")
            else:
                name = detect(head)
                if name is None:
                    raise InputError(
                        f"{self.path}: offset {offset}: neither zero padding, a cpio archive nor a "
                        f"known compressed member (starts with {head[:8].hex(' ')})")
                part.compression = name
                self._where = f"part {part.index} ({name}, offset {offset}): "
                info = MemberInfo(name)
                try:
                    # The member decompresses in a worker thread while its entries are
                    # parsed here; `top` is used by the worker alone until it is done.
                    chunks = self._budgeted(decode(name, top, info), part)
                    if not self.prefetch:
                        archive = yield from self._member(Stream.from_chunks(chunks), part, archive)
                    else:
                        with Prefetch(chunks) as ahead:
                            inner = Stream.from_chunks(iter(ahead))
                            archive = yield from self._member(inner, part, archive)
                except DataError as exc:
                    raise self._error(str(exc)) from None
                part.detail, part.level, part.dict_size = info.detail, info.level, info.dict_size
            part.end = top.pos
        if not self.parts:
            raise InputError(f"{self.path}: empty image (no archive in it)")

    def _budgeted(self, chunks: Iterator[bytes], part: Part) -> Iterator[bytes]:
        for chunk in chunks:
            self.budget.take(len(chunk))
            part.size += len(chunk)
            yield chunk

    def _member(self, inner: Stream, part: Part, archive: int) -> Generator[Entry, None, int]:
        """All archives inside one compressed member, zero padding between them allowed."""
        while True:
            inner.skip_zeros()
            if inner.at_end():
                break
            if inner.peek(1) != b"0":
                raise self._error(f"junk within the compressed data at decompressed offset {inner.pos}")
            if inner.pos % 4:
                raise self._error(f"broken padding before the archive at decompressed offset {inner.pos}")
            archive = yield from self._archive(inner, part, archive, base=0)
        if not part.archives:
            raise self._error("compressed member holds no cpio archive")
        return archive

    def _archive(self, s: Stream, part: Part, archive: int, base: int) -> Generator[Entry, None, int]:
        """One archive, up to and including its TRAILER!!!; returns the next archive number."""
        first = True
        formats = part.formats
        while True:
            hoff = s.pos - base
            read = self._header(s, hoff, first)
            if read is None:
                self.warnings.append(f"{self.path}: part {part.index}: archive ends without TRAILER!!!")
                break
            first = False
            header, crc = read
            name, filesize = header.name, header.filesize
            if name == newc.TRAILER:
                if filesize:
                    raise self._error(f"TRAILER!!! at offset {hoff} has {filesize} bytes of data")
                part.archives += 1
                return archive + 1
            kind = header.kind
            if kind != "file":
                self._check_entry(header, name)
            formats.add("crc" if crc else "newc")
            self.count += 1
            if self.count > self.max_entries:
                # Before the entry is handed on: no consumer keeps more than the bound.
                raise InputError(f"{self.path}: more than {self.max_entries} entries (real initrds "
                                 "hold up to ~100000: an entry-count bomb?); --max-entries (the "
                                 "initrd-extract stage's max_entries) raises the bound")
            part.entries += 1
            entry = Entry(header, part.index, archive, hoff)
            self._stream, self._left, self._current = s, filesize, entry
            # Like the kernel and GNU cpio, only regular files carry a sum.
            self._crc = 0 if crc and kind == "file" else None
            yield entry
            self._rest_of_entry(s, header)
            self._current = None
        part.archives += 1
        return archive + 1

    def _header(self, s: Stream, hoff: int, first: bool) -> tuple[Header, bool] | None:
        """The next entry's header and whether it is a crc one; None where the archive simply
        ends (not at its first header)."""
        header_len = newc.HEADER_LEN
        raw = s.read(header_len)
        if not raw and not first:
            return None
        try:
            crc, values = newc.parse_fields(raw)
            namesize = values[11]
            if namesize > newc.PATH_MAX + 1:
                raise HeaderError(f"namesize {namesize} is over PATH_MAX ({newc.PATH_MAX})")
            if namesize < 2:
                raise HeaderError(f"namesize {namesize} leaves no room for a name and its NUL")
            # The name and the padding after it in one read.
            padded = namesize + (-(header_len + namesize) & 3)
            name_raw = s.read(padded)
            if len(name_raw) < namesize:
                raise HeaderError("truncated name")
            name = newc.check_name(name_raw[:namesize])
            header = newc.make_header(crc, values, name)
        except HeaderError as exc:
            raise self._error(f"entry at offset {hoff}: {exc}") from None
        if len(name_raw) < padded:
            raise self._error(f"entry '{_label(name)}': truncated after its name")
        return header, bool(crc)

    def _rest_of_entry(self, s: Stream, header: Header) -> None:
        """Past what the consumer left unread of the entry's data, and its padding; a crc
        entry's data is summed and checked on the way."""
        filesize = header.filesize
        dpad = -filesize & 3
        if self._crc is None:
            # Whatever the consumer left unread, and the padding, skipped in one go.
            want = self._left + dpad
            if want:
                try:
                    got = s.skip(want)
                except DataError as exc:
                    raise self._error(str(exc)) from None
                if got < want:
                    if got < self._left:
                        self._left -= got
                        self._take(self._left)  # raises: the data is truncated
                    raise self._error(f"entry '{_label(header.name)}': truncated padding after its data")
            self._left = 0
            return
        # Whatever the consumer left unread is still summed, then checked.
        while self._left > 0:
            self._take(self._left)
        if self._crc != header.check:
            raise self._error(f"entry '{_label(header.name)}': crc sum {self._crc:08x} does not match "
                              f"the header's {header.check:08x}")
        if len(s.read(dpad)) < dpad and filesize:
            raise self._error(f"entry '{_label(header.name)}': truncated padding after its data")

    def _check_entry(self, h: Header, name: bytes) -> None:
        kind = h.kind
        label = _label(name)
        if kind == "?":
            raise self._error(f"entry '{label}': unknown file type in mode {h.mode:o}")
        if kind == "symlink" and not 0 < h.filesize <= newc.SYMLINK_MAX:
            raise self._error(f"entry '{label}': symlink target of {h.filesize} bytes "
                              f"(must be 1..{newc.SYMLINK_MAX})")
        if kind not in ("file", "symlink") and h.filesize:
            raise self._error(f"entry '{label}': a {kind} with {h.filesize} bytes of data")

    def _take(self, want: int) -> bytes:
        assert self._stream is not None
        try:
            chunk = self._stream.read_some(min(want, 1 << 20))
        except DataError as exc:
            raise self._error(str(exc)) from None
        if not chunk:
            label = self._current.name.decode(errors="replace") if self._current else "?"
            raise self._error(f"entry '{label}': data truncated ({self._left} of "
                              f"{self._current.size if self._current else 0} bytes missing)")
        self._left -= len(chunk)
        if self._crc is not None:
            self._crc = (self._crc + sum(chunk)) & 0xFFFFFFFF
        return chunk


def _label(name: bytes) -> str:
    """An entry's name as error messages show it."""
    return name.decode(errors="replace")
