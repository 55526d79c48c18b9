"""Every compression an initrd member can have, one record each (CODECS, at the end):
its magic, its decoder, its encoder and pack's levels when pack writes it, and what
the kernel makes of it.

Every codec is a maintained library (stdlib zlib/lzma/bz2, zlib-ng, zstandard,
lz4, python-lzo when installed); only container framing is parsed here (lz4
legacy's magic and block sizes, zstd block headers to bound output, lzop
headers around lzo1x blocks). Decoders read a Stream (stream.py) and yield
bounded chunks so memory stays flat however much a member inflates, and give
back the input they did not use so the caller can go on walking the image after
the member, as the kernel does.
"""

from __future__ import annotations

import bz2
import lzma
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, NamedTuple, Protocol, cast

from respin.stages.initrd.lib.stream import IN_CHUNK, OUT_CHUNK, DataError, Stream

if TYPE_CHECKING:
    from concurrent.futures import Future

LZ4_LEGACY_MAGIC = b"\x02\x21\x4c\x18"
LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"
LZ4_LEGACY_BLOCK = 8 << 20
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
LZOP_MAGIC = b"\x89\x4c\x5a\x4f\x00\x0d\x0a\x1a\x0a"
XZ_CHECKS = {lzma.CHECK_NONE: "none", lzma.CHECK_CRC32: "crc32", lzma.CHECK_CRC64: "crc64",
             lzma.CHECK_SHA256: "sha256"}


# --- reading ---------------------------------------------------------------


class MemberInfo:
    """What a decoder learnt about its member (filled in while it runs): `detail` for
    people (the xz check), and the settings a repack should use to come out no larger,
    `level` and, for xz, `dict_size` (see repack_level)."""

    __slots__ = ("compression", "detail", "dict_size", "level")

    def __init__(self, compression: str, detail: str = "") -> None:
        self.compression = compression
        self.detail = detail
        self.level: int | None = DEFAULT_LEVEL.get(compression)
        self.dict_size: int | None = None


# zstd writes no level into a frame, only the window, which each level sets (for an
# input of unknown or large size): 2**19 for levels 1 and below, 2**20 for 2, 2**21 for
# 3-8, 2**22 for 9-16, 2**23 for 17-19, 2**25-2**27 for 20-22. A repack takes the
# lowest level of the range: 9 for the 2**22 of mkinitramfs's -9 (and dracut's -15).
_ZSTD_LEVEL_BY_WINDOW_LOG = {19: 1, 20: 2, 21: 3, 22: 9, 23: 19, 24: 19, 25: 20, 26: 21, 27: 22}
# A window no larger than the content says only that the input was small: such a
# member repacks at 19, which costs little on a small image and is no larger.
ZSTD_SMALL_LEVEL = 19


def zstd_level(window: int, content_size: int | None) -> int:
    """The level a zstd frame with this window (and content size, if the header has it)
    is repacked at; see _ZSTD_LEVEL_BY_WINDOW_LOG."""
    if content_size is not None and window >= content_size:
        return ZSTD_SMALL_LEVEL
    log = max(window, 1).bit_length() - 1
    return _ZSTD_LEVEL_BY_WINDOW_LOG.get(min(max(log, 19), 27), DEFAULT_LEVEL["zstd"])


def _xz_dict_size(head: bytes) -> int | None:
    """The LZMA2 dictionary size in the first block header of an xz stream, if readable.

    Stream header (12 bytes), then the block header: its size byte, flags (filter count,
    optional size fields), then each filter's id, property size and properties.
    """
    def vli(at: int) -> tuple[int, int]:
        value = shift = 0
        for i in range(at, min(at + 9, len(head))):
            value |= (head[i] & 0x7F) << shift
            shift += 7
            if not head[i] & 0x80:
                return value, i + 1
        raise IndexError("truncated number")

    try:
        if head[12] == 0:
            return None  # no block: an empty stream
        end = 12 + (head[12] + 1) * 4
        flags = head[13]
        at = 14
        for present in (0x40, 0x80):
            if flags & present:
                _, at = vli(at)
        for _ in range((flags & 3) + 1):
            fid, at = vli(at)
            size, at = vli(at)
            if fid == 0x21 and size == 1 and at < end:
                bits = head[at] & 0x3F
                return 0xFFFFFFFF if bits == 40 else (2 | (bits & 1)) << (bits // 2 + 11)
            at += size
    except IndexError:
        return None
    return None


def _xz(src: Stream, info: MemberInfo) -> Iterator[bytes]:
    # A repack keeps the dictionary: xz -6 to -9 differ in nothing else.
    info.dict_size = _xz_dict_size(src.peek(12 + 1024))
    yield from _needs_input_like(src, lzma.LZMADecompressor(format=lzma.FORMAT_XZ), "xz", info)


def _need(src: Stream, n: int, what: str) -> bytes:
    data = src.read(n)
    if len(data) < n:
        raise DataError(f"truncated {what}")
    return data


def _zlib_like(src: Stream, dec: zlib._Decompress, what: str) -> Iterator[bytes]:
    """Drive a zlib decompressobj with bounded output until its stream ends."""
    data = b""
    while True:
        if not data:
            data = src.read_some(IN_CHUNK)
            if not data:
                raise DataError(f"truncated {what} data (no end of stream)")
        try:
            out = dec.decompress(data, OUT_CHUNK)
        except zlib.error as exc:
            raise DataError(f"corrupt {what} data: {exc}") from None
        if out:
            yield out
        if dec.eof:
            src.unread(dec.unused_data)
            return
        data = dec.unconsumed_tail


def _needs_input_like(src: Stream, dec: lzma.LZMADecompressor | bz2.BZ2Decompressor, what: str,
                      info: MemberInfo | None = None) -> Iterator[bytes]:
    """Drive an lzma/bz2 decompressor with max_length until its stream ends."""
    errors: tuple[type[BaseException], ...] = (lzma.LZMAError, OSError, EOFError, ValueError)
    while True:
        if dec.needs_input:
            data = src.read_some(IN_CHUNK)
            if not data:
                raise DataError(f"truncated {what} data (no end of stream)")
        else:
            data = b""
        try:
            out = dec.decompress(data, OUT_CHUNK)
        except errors as exc:
            raise DataError(f"corrupt {what} data: {exc}") from None
        if info is not None and isinstance(dec, lzma.LZMADecompressor) and not info.detail:
            check = dec.check
            if check != lzma.CHECK_UNKNOWN:
                info.detail = "check=" + XZ_CHECKS.get(check, str(check))
        if out:
            yield out
        if dec.eof:
            src.unread(dec.unused_data)
            return


# zstd output per read: bounded whatever the input holds, and small enough to stay
# in the CPU cache while the walk looks at it.
ZSTD_OUT = 128 << 10
# Compressed bytes the decompressor asks for at a time (whole blocks, see _ZstdBlocks).
ZSTD_IN = 256 << 10


class _ZstdBlocks:
    """A file-like source for the binding's stream reader that hands out whole blocks
    of one frame and never a byte past its end, so the image walk carries on right
    after the frame. Each block header is checked on the way."""

    def __init__(self, src: Stream, header: bytes, flags: int) -> None:
        self._src = src
        self._pending = header
        self._checksum = bool(flags & 0x04)
        self.ended = False

    def read(self, n: int = -1) -> bytes:
        if self._pending:
            out, self._pending = self._pending, b""
            return out
        parts: list[bytes] = []
        size = 0
        while not self.ended and size < max(n, 1):
            bh = _need(self._src, 3, "zstd block header")
            value = int.from_bytes(bh, "little")
            last, btype, bsize = value & 1, (value >> 1) & 3, value >> 3
            if btype == 3:
                raise DataError("zstd block of reserved type")
            if bsize > 128 << 10:
                raise DataError(f"zstd block size {bsize} is over the 128 KiB maximum")
            body = _need(self._src, 1 if btype == 1 else bsize, "zstd block")
            parts += (bh, body)
            size += 3 + len(body)
            if last:
                if self._checksum:
                    parts.append(_need(self._src, 4, "zstd checksum"))
                self.ended = True
        return b"".join(parts)


def _zstd(src: Stream, info: MemberInfo | None = None) -> Iterator[bytes]:
    """One zstd frame, through the binding's stream reader: it decompresses straight
    into each output buffer, at most ZSTD_OUT bytes per read, so memory stays bounded
    (a frame of RLE blocks inflates 40,000-fold) without an extra copy."""
    import zstandard

    head = _need(src, 5, "zstd frame header")
    if head[:4] != ZSTD_MAGIC:
        raise DataError("bad zstd magic")
    fhd = head[4]
    if fhd & 0x08:
        raise DataError("zstd frame header has the reserved bit set")
    single = bool(fhd & 0x20)
    dict_len = (0, 1, 2, 4)[fhd & 3]
    fcs_len = (1 if single else 0, 2, 4, 8)[fhd >> 6]
    rest = _need(src, (0 if single else 1) + dict_len + fcs_len, "zstd frame header")
    if dict_len and any(rest[(0 if single else 1):(0 if single else 1) + dict_len]):
        raise DataError("zstd frame needs a dictionary, which the kernel does not have")
    if info is not None:
        fcs = rest[len(rest) - fcs_len:] if fcs_len else b""
        content = int.from_bytes(fcs, "little") + (256 if fcs_len == 2 else 0) if fcs else None
        if single:
            window = content or 0
        else:
            exponent, mantissa = rest[0] >> 3, rest[0] & 7
            base = 1 << (10 + exponent)
            window = base + (base // 8) * mantissa
        info.level = zstd_level(window, content)
    blocks = _ZstdBlocks(src, head + rest, fhd)
    # The binding only calls read() on its source.
    reader = zstandard.ZstdDecompressor().stream_reader(cast("BinaryIO", blocks), read_size=ZSTD_IN,
                                                        read_across_frames=False)
    # The reader ends only after the last block was handed over; libzstd checks the frame.
    try:
        while out := reader.read(ZSTD_OUT):
            yield out
    except zstandard.ZstdError as exc:
        raise DataError(f"corrupt zstd data: {exc}") from None


def _lz4_legacy(src: Stream, info: MemberInfo) -> Iterator[bytes]:
    """lz4 legacy: the magic, then (LE32 size, block) pairs, each block up to 8 MiB.

    Like the kernel, the member runs to the end of the image or to a zero size
    word (zero padding); a repeated magic starts a new frame and is skipped.
    """
    import lz4.block

    _need(src, 4, "lz4 magic")
    bound = LZ4_LEGACY_BLOCK + LZ4_LEGACY_BLOCK // 255 + 16
    while True:
        word = src.read(4)
        if not word:
            return
        if len(word) < 4 or word == b"\0\0\0\0":
            src.unread(word)
            return
        if word == LZ4_LEGACY_MAGIC:
            continue
        size = int.from_bytes(word, "little")
        if size > bound:
            raise DataError(f"lz4 legacy block size {size} is over the bound for 8 MiB blocks "
                            "(junk after the lz4 member? the kernel reads lz4 legacy to the end)")
        block = _need(src, size, "lz4 block")
        try:
            out = lz4.block.decompress(block, uncompressed_size=LZ4_LEGACY_BLOCK)
        except lz4.block.LZ4BlockError as exc:
            raise DataError(f"corrupt lz4 block: {exc}") from None
        yield out


def _lz4_frame(src: Stream, info: MemberInfo) -> Iterator[bytes]:
    """lz4 frame format: readable for inspection, though the kernel cannot boot it."""
    import lz4.frame

    dec = lz4.frame.LZ4FrameDecompressor()
    while True:
        data = src.read_some(IN_CHUNK) if dec.needs_input else b""
        if dec.needs_input and not data:
            raise DataError("truncated lz4 frame data")
        try:
            out = dec.decompress(data, max_length=OUT_CHUNK)
        except RuntimeError as exc:
            raise DataError(f"corrupt lz4 frame data: {exc}") from None
        if out:
            yield out
        if dec.eof:
            src.unread(dec.unused_data)
            return


def _lzo(src: Stream, info: MemberInfo) -> Iterator[bytes]:
    """lzop container around lzo1x blocks; needs the python-lzo binding."""
    try:
        import lzo  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        raise DataError("lzo-compressed member: reading it needs the python-lzo package "
                        "(pip install python-lzo)") from None
    magic = _need(src, 9, "lzop header")
    if magic != LZOP_MAGIC:
        raise DataError("bad lzop magic")
    version, _lib, = struct.unpack(">HH", _need(src, 4, "lzop header"))
    if version >= 0x0940:
        _need(src, 2, "lzop header")
    _need(src, 1, "lzop header")  # method
    if version >= 0x0940:
        _need(src, 1, "lzop header")  # level
    (flags,) = struct.unpack(">I", _need(src, 4, "lzop header"))
    if flags & 0x800:
        _need(src, 4, "lzop header")
    _need(src, 8 + (4 if version >= 0x0940 else 0), "lzop header")  # mode, mtime
    (name_len,) = _need(src, 1, "lzop header")
    _need(src, name_len + 4, "lzop header")
    if flags & 0x40:
        (extra,) = struct.unpack(">I", _need(src, 4, "lzop header"))
        _need(src, extra + 4, "lzop header")
    while True:
        (dst_len,) = struct.unpack(">I", _need(src, 4, "lzop block size"))
        if dst_len == 0:
            return
        if dst_len > 64 << 20:
            raise DataError(f"lzop block of {dst_len} bytes is implausibly large")
        (src_len,) = struct.unpack(">I", _need(src, 4, "lzop block size"))
        skip = 4 * (bool(flags & 0x1) + bool(flags & 0x100))
        if src_len < dst_len:
            skip += 4 * (bool(flags & 0x2) + bool(flags & 0x200))
        _need(src, skip, "lzop block checksum")
        block = _need(src, src_len, "lzo block")
        if src_len == dst_len:
            yield block
            continue
        try:
            out: bytes = lzo.decompress(block, False, dst_len)
        except lzo.error as exc:
            raise DataError(f"corrupt lzo block: {exc}") from None
        yield out


def _gunzip(src: Stream, info: MemberInfo) -> Iterator[bytes]:
    return _zlib_like(src, zlib.decompressobj(wbits=31), "gzip")


def _unlzma(src: Stream, info: MemberInfo) -> Iterator[bytes]:
    return _needs_input_like(src, lzma.LZMADecompressor(format=lzma.FORMAT_ALONE), "lzma")


def _bunzip2(src: Stream, info: MemberInfo) -> Iterator[bytes]:
    # "BZh1".."BZh9": the block size in 100 kB, which is what bzip2's level sets.
    head = src.peek(4)
    if head[3:4].isdigit() and head[3:4] != b"0":
        info.level = int(head[3:4])
    return _needs_input_like(src, bz2.BZ2Decompressor(), "bzip2")


def _old_gzip(src: Stream, info: MemberInfo) -> Iterator[bytes]:
    # Recognised only to be refused: at once, before any of it is read.
    raise DataError("old gzip magic 1f 9e, which the kernel's gunzip refuses")


# --- writing ---------------------------------------------------------------


class Sink(Protocol):
    """Where compressed bytes go."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class Compressor:
    """Streams bytes into `out` compressed with kernel-safe, deterministic settings."""

    def __init__(self, out: Sink) -> None:
        self.out = out

    def write(self, data: bytes) -> None:
        self.out.write(data)

    def close(self) -> None:
        """Finish the member (no further writes)."""


class _Buffered(Compressor):
    """Cuts input into fixed-size blocks so the output does not depend on write sizes."""

    block = OUT_CHUNK

    def __init__(self, out: Sink) -> None:
        super().__init__(out)
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        self._pending.append(bytes(data))
        self._size += len(data)
        if self._size >= self.block:
            joined = b"".join(self._pending)
            cut = len(joined) - len(joined) % self.block
            for i in range(0, cut, self.block):
                self._emit(joined[i:i + self.block])
            rest = joined[cut:]
            self._pending = [rest] if rest else []
            self._size = len(rest)

    def _emit(self, block: bytes) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        """Write whatever ends the stream."""

    def close(self) -> None:
        if self._size:
            self._emit(b"".join(self._pending))
        self._pending, self._size = [], 0
        self._finish()


# zlib-ng's memLevel 6 ends a deflate block every 4,096 symbols instead of every
# 16,384: the Huffman codes follow the data more closely. On a real initrd
# (132 MB of newc) level 9 comes out 0.87% smaller than with the default
# memLevel 8, and smaller than GNU `gzip -9`, at the same speed.
GZIP_MEM_LEVEL = 6
GZIP_WINDOW = 32 << 10


class _Gzip(_Buffered):
    """gzip from zlib-ng in independent 1 MiB blocks, each primed with the 32 KiB before
    it and ended by a sync flush (as pigz does), compressed on up to two threads. The
    header has no name and no timestamp; the output depends only on the input and the
    level, never on the thread count or the write sizes."""

    def __init__(self, out: Sink, level: int) -> None:
        super().__init__(out)
        from concurrent.futures import ThreadPoolExecutor

        from zlib_ng import zlib_ng

        self._zng = zlib_ng
        self.level = level
        threads = max(1, min(2, len(os.sched_getaffinity(0))))
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="initrd-gzip")
        self._ahead = 2 * threads  # blocks in flight: bounds memory
        self._jobs: list[Future[tuple[bytes, int, int]]] = []
        self._held: bytes | None = None  # the newest block: the last one gets Z_FINISH
        self._window = b""
        self._crc = 0
        self._total = 0
        # Magic, deflate, no flags, mtime 0, XFL as gzip sets it (2 best, 4 fastest), Unix.
        xfl = 2 if level >= 9 else 4 if level <= 1 else 0
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes([xfl, 3]))

    def _deflate(self, block: bytes, window: bytes, last: bool) -> tuple[bytes, int, int]:
        z = self._zng
        c = z.compressobj(self.level, z.DEFLATED, -15, GZIP_MEM_LEVEL, z.Z_DEFAULT_STRATEGY,
                          *((window,) if window else ()))
        data = c.compress(block) + c.flush(z.Z_FINISH if last else z.Z_SYNC_FLUSH)
        return data, z.crc32(block), len(block)

    def _submit(self, block: bytes, last: bool) -> None:
        self._jobs.append(self._pool.submit(self._deflate, block, self._window, last))
        self._window = (self._window + block)[-GZIP_WINDOW:]
        while len(self._jobs) > (0 if last else self._ahead):
            data, crc, size = self._jobs.pop(0).result()
            self.out.write(data)
            self._crc = self._zng.crc32_combine(self._crc, crc, size)
            self._total += size

    def _emit(self, block: bytes) -> None:
        if self._held is not None:
            self._submit(self._held, last=False)
        self._held = block

    def _finish(self) -> None:
        try:
            self._submit(self._held or b"", last=True)
        finally:
            self._held = None
            self._pool.shutdown(wait=True, cancel_futures=True)
        self.out.write((self._crc & 0xFFFFFFFF).to_bytes(4, "little")
                       + (self._total & 0xFFFFFFFF).to_bytes(4, "little"))

# dracut's choice, and what a plain tree gets; a repack keeps the image's own.
XZ_DICT_SIZE = 1 << 20


class _Streaming(Compressor):
    """A compressor over a library's compress/flush object (`_c`)."""

    _c: Any

    def write(self, data: bytes) -> None:
        self.out.write(self._c.compress(data))

    def close(self) -> None:
        self.out.write(self._c.flush())


class _Xz(_Streaming):
    """xz with a CRC32 check (the kernel cannot verify CRC64) and a 1 MiB dictionary
    unless told otherwise."""

    def __init__(self, out: Sink, level: int, dict_size: int | None = None) -> None:
        super().__init__(out)
        filters = [{"id": lzma.FILTER_LZMA2, "preset": level, "dict_size": dict_size or XZ_DICT_SIZE}]
        self._c = lzma.LZMACompressor(format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32,
                                      filters=filters)


class _Bzip2(_Streaming):
    def __init__(self, out: Sink, level: int) -> None:
        super().__init__(out)
        self._c = bz2.BZ2Compressor(level)


class _Zstd(_Streaming):
    """Single-threaded zstd: deterministic, and its window stays within the kernel's limit."""

    def __init__(self, out: Sink, level: int) -> None:
        super().__init__(out)
        import zstandard

        self._c = zstandard.ZstdCompressor(level=level, threads=0, write_checksum=True).compressobj()


class _Lz4Legacy(_Buffered):
    """lz4 legacy (`lz4 -l`): magic, then 8 MiB blocks each with its LE32 size."""

    block = LZ4_LEGACY_BLOCK

    def __init__(self, out: Sink, level: int) -> None:
        super().__init__(out)
        self.level = level
        out.write(LZ4_LEGACY_MAGIC)

    def _emit(self, block: bytes) -> None:
        import lz4.block

        if self.level >= 3:
            data = lz4.block.compress(block, mode="high_compression", compression=self.level,
                                      store_size=False)
        else:
            data = lz4.block.compress(block, store_size=False)
        self.out.write(struct.pack("<I", len(data)))
        self.out.write(data)


# --- one record per compression --------------------------------------------

# Reads a member from the stream (left right after it) into chunks, noting what it learns.
Decoder = Callable[[Stream, MemberInfo], Iterator[bytes]]
# (out, level, xz dictionary size or None) -> a compressor writing into out.
Encoder = Callable[[Sink, int, int | None], Compressor]


class Codec(NamedTuple):
    """One compression, everything respin knows of it. A named tuple, not a dataclass:
    the table is read on a short command's path (pipeline/startup.py)."""

    name: str
    magics: tuple[bytes, ...]  # what a member starts with (plain newc has none of its own)
    decoder: Decoder | None  # None: nothing to decompress
    encoder: Encoder | None = None  # None: read, never written
    level: int | None = None  # pack's default, and a member's until its decoder learns it
    levels: tuple[int, int] | None = None  # the levels pack accepts
    kernel_option: str | None = None  # the CONFIG_RD_* a kernel needs to unpack it
    not_bootable: str | None = None  # why no kernel unpacks it (None: it can)


# What pack writes comes first, in the order `pack --compress` offers it. No magic is a
# prefix of another, so detect's answer does not depend on the order.
CODECS: dict[str, Codec] = {codec.name: codec for codec in (
    Codec("gzip", (b"\x1f\x8b",), _gunzip, lambda out, level, _: _Gzip(out, level),
          level=9, levels=(1, 9), kernel_option="CONFIG_RD_GZIP"),
    Codec("xz", (b"\xfd7zXZ\x00",), _xz, _Xz, level=6, levels=(0, 9), kernel_option="CONFIG_RD_XZ"),
    Codec("zstd", (ZSTD_MAGIC,), _zstd, lambda out, level, _: _Zstd(out, level),
          level=3, levels=(1, 22), kernel_option="CONFIG_RD_ZSTD"),
    Codec("lz4", (LZ4_LEGACY_MAGIC,), _lz4_legacy, lambda out, level, _: _Lz4Legacy(out, level),
          level=9, levels=(1, 12), kernel_option="CONFIG_RD_LZ4"),
    Codec("bzip2", (b"BZh",), _bunzip2, lambda out, level, _: _Bzip2(out, level),
          level=9, levels=(1, 9), kernel_option="CONFIG_RD_BZIP2"),
    # Uncompressed: the walk reads such an archive in place, by its "0707".
    Codec("none", (), None, lambda out, _level, _dict: Compressor(out), level=0, levels=(0, 0)),
    # The kernel unpacks these, but pack does not write them.
    Codec("lzma", (b"\x5d\x00",), _unlzma, kernel_option="CONFIG_RD_LZMA"),
    Codec("lzo", (b"\x89LZO",), _lzo, kernel_option="CONFIG_RD_LZO"),
    # The kernel looks at two bytes and cannot read these two; they are recognised to say so.
    Codec("gzip-old", (b"\x1f\x9e",), _old_gzip,
          not_bootable="old gzip magic 1f 9e (the kernel's gunzip wants 1f 8b)"),
    Codec("lz4-frame", (LZ4_FRAME_MAGIC,), _lz4_frame,
          not_bootable="lz4 frame format (the kernel reads only lz4 legacy, `lz4 -l`)"),
)}

# Views of the table, for the CLI, pack, and check.
PACK_COMPRESSIONS = tuple(codec.name for codec in CODECS.values() if codec.encoder is not None)
DEFAULT_LEVEL = {codec.name: codec.level for codec in CODECS.values() if codec.level is not None}
LEVEL_RANGE = {codec.name: codec.levels for codec in CODECS.values() if codec.levels is not None}
NOT_BOOTABLE = {codec.name: codec.not_bootable for codec in CODECS.values() if codec.not_bootable}
CONFIG_RD = {codec.name: codec.kernel_option for codec in CODECS.values() if codec.kernel_option}


def detect(head: bytes) -> str | None:
    """The compression whose magic starts `head`, or None."""
    for codec in CODECS.values():
        if head.startswith(codec.magics):
            return codec.name
    return None


def decode(name: str, src: Stream, info: MemberInfo) -> Iterator[bytes]:
    """Decompressed chunks of the member of compression `name` that starts at `src`.

    On return `src` is positioned right after the member.
    """
    codec = CODECS.get(name)
    if codec is None or codec.decoder is None:
        raise DataError(f"unknown compression {name!r}")
    return codec.decoder(src, info)


def compressor(name: str, level: int | None, out: Sink, dict_size: int | None = None) -> Compressor:
    """A compressor for `pack` (`name` from PACK_COMPRESSIONS) writing into `out`
    (`dict_size` for xz only)."""
    codec = CODECS.get(name)
    if codec is None or codec.encoder is None:
        raise ValueError(f"unknown compression {name!r}")
    return codec.encoder(out, DEFAULT_LEVEL[name] if level is None else level, dict_size)
