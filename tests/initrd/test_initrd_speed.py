"""The fast paths: threaded decoding, header parsing, threaded gzip, and a lean start-up."""

from __future__ import annotations

import gzip
import os
import stat
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from initrd_util import entry

from respin.pipeline.errors import InputError
from respin.stages.initrd.lib import newc
from respin.stages.initrd.lib.codecs import compressor
from respin.stages.initrd.lib.reader import ImageReader
from respin.stages.initrd.lib.stream import OUT_CHUNK, DataError, Prefetch

REPO = Path(__file__).resolve().parents[2]


class _Sink:
    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def value(self) -> bytes:
        return b"".join(self.parts)


def _gzip(data: bytes, writes: int, cpus: int, monkeypatch: pytest.MonkeyPatch, level: int = 9) -> bytes:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    sink = _Sink()
    comp = compressor("gzip", level, sink)
    step = max(1, len(data) // writes)
    for i in range(0, len(data), step):
        comp.write(data[i:i + step])
    comp.close()
    return sink.value()


@pytest.mark.parametrize("size", [0, 1, OUT_CHUNK, 3 * OUT_CHUNK, 3 * OUT_CHUNK + 12345])
def test_gzip_is_valid_and_independent_of_threads_and_write_sizes(
        size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    data = b"".join(b"%08d some text that compresses, " % i for i in range(size // 32 + 1))[:size]
    one = _gzip(data, 1, 1, monkeypatch)
    assert gzip.decompress(one) == data
    assert one[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03"  # no name, no mtime, unix
    assert _gzip(data, 7, 2, monkeypatch) == one
    assert _gzip(data, 100, 2, monkeypatch) == one
    # One gzip member: the kernel reads one stream per member.
    d = zlib.decompressobj(wbits=31)
    assert d.decompress(one) == data and d.eof and d.unused_data == b""


def test_gzip_9_is_no_larger_than_zlib_9_on_mixed_data(monkeypatch: pytest.MonkeyPatch) -> None:
    rnd = os.urandom(1 << 18)
    text = b"".join(b"line %d: the quick brown fox %d\n" % (i, i * 7 % 13) for i in range(60_000))
    data = (text[:1 << 20] + rnd + text[1 << 20:] + bytes(range(256)) * 2000) * 2
    ours = _gzip(data, 3, 2, monkeypatch)
    assert gzip.decompress(ours) == data
    assert len(ours) <= len(gzip.compress(data, 9, mtime=0))


def _chunks(n: int, fail_at: int | None = None, seen: list[int] | None = None) -> Iterator[bytes]:
    for i in range(n):
        if i == fail_at:
            raise DataError(f"broken at {i}")
        if seen is not None:
            seen.append(i)
        yield bytes([i % 256]) * 1000


def test_prefetch_passes_every_chunk_in_order() -> None:
    with Prefetch(_chunks(5000), batch=10_000) as ahead:
        got = list(ahead)
    assert got == list(_chunks(5000))


def test_prefetch_raises_the_decoder_error_where_it_happened() -> None:
    got: list[bytes] = []
    with pytest.raises(DataError, match="broken at 30"), Prefetch(_chunks(100, fail_at=30)) as ahead:
        for chunk in ahead:
            got.append(chunk)
    assert len(got) == 30


def test_prefetch_stops_its_worker_when_left_early() -> None:
    seen: list[int] = []
    with Prefetch(_chunks(1_000_000, seen=seen), batch=1000, depth=1) as ahead:
        next(iter(ahead))
    # Stopped: a few batches ahead at most, and no thread left behind.
    assert len(seen) < 100
    assert not [t for t in threading.enumerate() if t.name == "initrd-decode"]


def test_reader_stops_the_worker_on_a_bad_header(tmp_path: Path) -> None:
    body = entry("a", data=b"x" * 10) + b"0707XX" + b"0" * 200
    image = tmp_path / "bad.img"
    image.write_bytes(gzip.compress(body + b"\0" * 4096, mtime=0))
    with pytest.raises(InputError, match="bad magic"):
        for _ in ImageReader(image).entries():
            pass
    assert not [t for t in threading.enumerate() if t.name == "initrd-decode"]


@pytest.mark.parametrize("field", range(13))
def test_fast_header_parse_agrees_with_the_strict_rules(field: int) -> None:
    raw = newc.format_header(name=b"x", ino=0x1234, mode=stat.S_IFREG | 0o644, filesize=77)[:110]
    crc, values = newc.parse_fields(raw)
    assert not crc and values[0] == 0x1234 and values[6] == 77 and values[11] == 2
    at = 6 + 8 * field
    for bad in (b" ", b"+", b"g", b"\0"):
        broken = raw[:at] + bad + raw[at + 1:]
        with pytest.raises(newc.HeaderError, match=f"field {newc._FIELDS[field]} is not 8 hex digits"):
            newc.parse_fields(broken)


def test_initrd_commands_import_neither_other_providers_nor_the_engine(tmp_path: Path) -> None:
    image = tmp_path / "one.img"
    image.write_bytes(entry("a", data=b"hi") + entry("TRAILER!!!", mode=0, offset=0))
    code = ("import sys\nfrom respin.pipeline.cli import main\n"
            f"rc = main(['initrd', 'list', {str(image)!r}])\n"
            "bad = sorted(m for m in sys.modules"
            " if m.split('.')[0] in ('rpm', 'specfile', 'git', 'kconfiglib')"
            " or m.startswith(('respin.stages.network', 'respin.stages.kernel', 'respin.pipeline.runner',"
            " 'respin.pipeline.pipelinefile', 'respin.stages.initrd.lib.writer',"
            " 'respin.stages.initrd.lib.unpack', 'respin.stages.initrd.lib.check')))\n"
            "print(rc, bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stdout + out.stderr


@pytest.mark.parametrize("prefetch", [True, False])
def test_the_walk_is_the_same_with_and_without_the_decode_thread(tmp_path: Path, prefetch: bool) -> None:
    body = b"".join(entry(f"f{i}", data=os.urandom(i * 37 % 3000), ino=i + 1) for i in range(300))
    image = tmp_path / "two.img"
    image.write_bytes(gzip.compress(body + entry("TRAILER!!!", mode=0), mtime=0)
                      + b"\0" * 8 + gzip.compress(entry("late", data=b"x") + entry("TRAILER!!!", mode=0)))
    reader = ImageReader(image, prefetch=prefetch)
    got = [(e.name, e.part, e.archive, len(reader.read_all(1 << 20))) for e in reader.entries()]
    assert got == [(f"f{i}".encode(), 0, 0, i * 37 % 3000) for i in range(300)] + [(b"late", 1, 1, 1)]
    assert [p.compression for p in reader.parts] == ["gzip", "gzip"]
