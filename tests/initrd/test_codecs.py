"""Every compression, written by the real command-line tools, read back; check's verdicts;
and the one table of them (codecs.CODECS) with what is derived from it."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pytest
from initrd_util import make_tree, run_cli, sh, tool

from respin.stages.initrd.lib.codecs import (
    CODECS,
    CONFIG_RD,
    DEFAULT_LEVEL,
    LEVEL_RANGE,
    NOT_BOOTABLE,
    PACK_COMPRESSIONS,
    MemberInfo,
    compressor,
    decode,
    detect,
)
from respin.stages.initrd.lib.reader import ImageReader
from respin.stages.initrd.lib.stream import DataError, Stream

TOOLS = {
    "gzip": "gzip -9 -n",
    "bzip2": "bzip2 -9",
    "lzma": "xz --format=lzma",
    "xz": "xz --check=crc32",
    "xz-crc64": "xz --check=crc64",
    "zstd": "zstd -q -19",
    "lz4": "lz4 -l -9 -q",
    "lz4-frame": "lz4 -q",
    "lzo": "lzop -c",
}


@pytest.fixture(scope="module")
def cpio_bytes(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, list[str]]:
    tree = make_tree(tmp_path_factory.mktemp("tree"))
    data = sh("find . | cpio -o -H newc --quiet", cwd=tree)
    names = sh("cpio -t --quiet", stdin=data).decode().splitlines()
    return data, names


@pytest.mark.parametrize("kind", list(TOOLS))
def test_members_written_by_real_tools_read_back(tmp_path: Path, kind: str,
                                                 cpio_bytes: tuple[bytes, list[str]]) -> None:
    exe = TOOLS[kind].split()[0]
    if not tool(exe):
        pytest.skip(f"{exe} not installed")
    if kind == "lzo" and importlib.util.find_spec("lzo") is None:
        pytest.skip("python-lzo not installed (optional: lzo images are then refused with a clear line)")
    data, names = cpio_bytes
    image = tmp_path / f"{kind}.img"
    # Zero padding after the member, as the kernel allows (except lz4 legacy: it runs to the end).
    image.write_bytes(sh(TOOLS[kind], stdin=data) + b"\0" * 16)
    code, out, err = run_cli("list", image)
    assert code == 0, err
    assert out.decode().splitlines() == names
    code, out, err = run_cli("check", image)
    if kind in ("xz-crc64", "lz4-frame"):
        assert code == 8, out
        report = out.decode()
        assert ("CRC64" in report) if kind == "xz-crc64" else ("legacy" in report)
    else:
        assert code == 0, out.decode() + err


def test_lzo_without_binding_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              cpio_bytes: tuple[bytes, list[str]]) -> None:
    if not tool("lzop"):
        pytest.skip("lzop not installed")
    import sys
    monkeypatch.setitem(sys.modules, "lzo", None)
    image = tmp_path / "lzo.img"
    image.write_bytes(sh("lzop -c", stdin=cpio_bytes[0]))
    code, _, err = run_cli("list", image)
    assert code == 4 and "python-lzo" in err and err.count("\n") == 1


@pytest.mark.parametrize("compress", ["gzip", "xz", "zstd", "lz4", "bzip2", "none"])
def test_pack_output_decompresses_with_the_real_tools(tmp_path: Path, compress: str) -> None:
    tree = make_tree(tmp_path / "tree")
    image = tmp_path / "out.img"
    assert run_cli("pack", tree, "-o", image, "--compress", compress)[0] == 0
    dec = {"gzip": "gzip -dc", "xz": "xz -dc", "zstd": "zstd -dc", "lz4": "lz4 -dc",
           "bzip2": "bzip2 -dc", "none": "cat"}[compress]
    listed = sh(f"{dec} < {image} | cpio -t --quiet").decode().splitlines()
    assert listed == run_cli("list", image)[1].decode().splitlines()
    head = image.read_bytes()[:16]
    if compress == "xz":
        assert sh(f"xz --robot --list {image}").decode().count("CRC32") >= 1
    if compress == "lz4":
        assert head.startswith(b"\x02\x21\x4c\x18")
    if compress == "gzip":
        assert head[4:8] == b"\0\0\0\0"  # no timestamp
    assert run_cli("check", image)[0] == 0


def test_same_tree_and_epoch_give_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1600000000")
    a = make_tree(tmp_path / "a")
    images = {}
    for compress in ("gzip", "xz", "zstd", "lz4", "bzip2", "none"):
        for n in (1, 2):
            out = tmp_path / f"{compress}{n}.img"
            assert run_cli("pack", a, "-o", out, "--compress", compress)[0] == 0
            images[compress, n] = out.read_bytes()
        assert images[compress, 1] == images[compress, 2]
    # mtimes are clamped to SOURCE_DATE_EPOCH, owners are 0.
    reader = ImageReader(tmp_path / "none1.img")
    for e in reader.entries():
        assert e.header.mtime <= 1600000000 and e.header.uid == 0 and e.header.gid == 0


def test_gzip_level_is_no_larger_than_gzip_9(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    (tree / "big").write_bytes(b"".join(b"line %d of a compressible file\n" % i for i in range(200_000)))
    ours = tmp_path / "ours.img"
    run_cli("pack", tree, "-o", ours, "--compress", "gzip")
    theirs = tmp_path / "theirs.img"
    sh(f"find . | cpio -o -H newc --quiet -R 0:0 | gzip -9 -n > {theirs}", cwd=tree)
    assert ours.stat().st_size <= theirs.stat().st_size * 1.01


def test_bad_level_is_a_config_error(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    code, _, err = run_cli("pack", tree, "-o", tmp_path / "x.img", "--compress", "gzip", "--level", "42")
    assert code == 3 and "--level" in err
    assert not (tmp_path / "x.img").exists()


def test_detect_and_stream_boundaries() -> None:
    import gzip
    payload = gzip.compress(b"0" * 10, mtime=0)
    assert detect(payload) == "gzip" and detect(b"\x28\xb5\x2f\xfd") == "zstd" and detect(b"xx") is None
    src = Stream.from_chunks(iter([payload[:5], payload[5:] + b"REST"]))
    out = b"".join(decode("gzip", src, MemberInfo("gzip")))
    assert out == b"0" * 10 and src.read(4) == b"REST" and src.pos == len(payload) + 4


def test_the_views_of_the_table_are_what_pack_and_check_offer() -> None:
    # Pinned: pack's choices in their order, its levels, and what check says of a kernel.
    assert PACK_COMPRESSIONS == ("gzip", "xz", "zstd", "lz4", "bzip2", "none")
    assert DEFAULT_LEVEL == {"gzip": 9, "xz": 6, "zstd": 3, "lz4": 9, "bzip2": 9, "none": 0}
    assert LEVEL_RANGE == {"gzip": (1, 9), "xz": (0, 9), "zstd": (1, 22), "lz4": (1, 12), "bzip2": (1, 9),
                           "none": (0, 0)}
    assert sorted(NOT_BOOTABLE) == ["gzip-old", "lz4-frame"]
    assert CONFIG_RD == {"gzip": "CONFIG_RD_GZIP", "xz": "CONFIG_RD_XZ", "zstd": "CONFIG_RD_ZSTD",
                         "lz4": "CONFIG_RD_LZ4", "bzip2": "CONFIG_RD_BZIP2", "lzma": "CONFIG_RD_LZMA",
                         "lzo": "CONFIG_RD_LZO"}


def test_every_record_is_whole_and_its_magic_its_own() -> None:
    magics = [magic for codec in CODECS.values() for magic in codec.magics]
    # detect tries the table in order: that is only safe while no magic starts another.
    assert not [(a, b) for a in magics for b in magics if a != b and b.startswith(a)]
    for name, codec in CODECS.items():
        assert codec.name == name
        # A compression pack writes has its default level and range; one it only reads, neither.
        assert (codec.encoder is None) == (codec.level is None) == (codec.levels is None), name
        if codec.levels is not None and codec.level is not None:
            assert codec.levels[0] <= codec.level <= codec.levels[1], name
        # What no kernel unpacks needs no kernel option, and pack never writes it.
        if codec.not_bootable:
            assert codec.kernel_option is None and codec.encoder is None, name
        for magic in codec.magics:
            assert detect(magic + b"\0" * 8) == name


@pytest.mark.parametrize("name", ["gzip", "xz", "zstd", "lz4", "bzip2", "none"])
def test_what_pack_writes_is_detected_and_decoded_back(name: str) -> None:
    data = b"".join(b"line %d\n" % i for i in range(50_000))
    out = io.BytesIO()
    comp = compressor(name, None, out)
    comp.write(data)
    comp.close()
    member = out.getvalue()
    if name == "none":
        assert member == data and detect(member) is None
        return
    assert detect(member) == name
    # Zero padding, then the next part: the member ends where it does (lz4 legacy at a zero word).
    src = Stream.from_chunks(iter([member, b"\0\0\0\0NEXT"]))
    info = MemberInfo(name)
    assert b"".join(decode(name, src, info)) == data
    assert src.read(8) == b"\0\0\0\0NEXT" and info.level == DEFAULT_LEVEL[name]


def test_names_without_a_decoder_or_encoder_are_refused() -> None:
    src = Stream.from_chunks(iter([b"\x1f\x9e\0\0"]))
    with pytest.raises(DataError, match="unknown compression 'none'"):
        decode("none", src, MemberInfo("none"))
    with pytest.raises(DataError, match="unknown compression 'brotli'"):
        decode("brotli", src, MemberInfo("brotli"))
    # Refused at once, before any of the member is read.
    with pytest.raises(DataError, match="old gzip magic 1f 9e"):
        decode("gzip-old", src, MemberInfo("gzip-old"))
    assert src.pos == 0
    for name in ("lzma", "lzo", "gzip-old", "lz4-frame", "brotli"):
        with pytest.raises(ValueError, match=f"unknown compression '{name}'"):
            compressor(name, 1, io.BytesIO())


def _zstd_cli(data: bytes, *args: str) -> bytes:
    if not tool("zstd"):
        pytest.skip("zstd not installed")
    out: bytes = sh("zstd -q -c " + " ".join(args), stdin=data)
    return out


@pytest.mark.parametrize("args", [(), ("--no-check",), ("-19",), ("--content-size",)])
def test_zstd_member_ends_exactly_where_its_frame_does(args: tuple[str, ...]) -> None:
    # The stream reader must not take a byte past the frame: what follows is the image's.
    payload = bytes(range(256)) * 4000
    member = _zstd_cli(payload, *args)
    src = Stream.from_chunks(iter([member[:7], member[7:] + b"NEXT"]))
    out = b"".join(decode("zstd", src, MemberInfo("zstd")))
    assert out == payload and src.read(4) == b"NEXT" and src.pos == len(member) + 4


def test_zstd_output_is_bounded_per_chunk() -> None:
    # 64 MiB of zeros is a few KiB of RLE blocks: no chunk may hold more than ZSTD_OUT, and
    # memory stays flat while they stream (a decoder that inflated it all first would not).
    import tracemalloc

    from respin.stages.initrd.lib.codecs import ZSTD_OUT

    member = _zstd_cli(b"\0" * (64 << 20))
    assert len(member) < 64 << 10
    total = biggest = 0
    tracemalloc.start()
    try:
        for chunk in decode("zstd", Stream.from_chunks(iter([member])), MemberInfo("zstd")):
            total += len(chunk)
            biggest = max(biggest, len(chunk))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == 64 << 20 and biggest <= ZSTD_OUT
    assert peak < 4 << 20, f"peak {peak} bytes while decoding"


@pytest.mark.parametrize(("damage", "message"), [
    (lambda m: m[:len(m) // 2], "truncated zstd"),
    (lambda m: m[:12] + bytes(b ^ 0x5A for b in m[12:40]) + m[40:], "corrupt zstd data|zstd block"),
])
def test_damaged_zstd_is_a_data_error(damage: object, message: str) -> None:
    member = _zstd_cli(bytes(range(256)) * 4000, "-19")
    with pytest.raises(DataError, match=message):
        b"".join(decode("zstd", Stream.from_chunks(iter([damage(member)])),  # type: ignore[operator]
                        MemberInfo("zstd")))


def _first_block_at(member: bytes) -> int:
    """Offset of the first block header of a zstd frame written by the zstd tool."""
    fhd = member[4]
    single = bool(fhd & 0x20)
    return 5 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3] + (1 if single else 0, 2, 4, 8)[fhd >> 6]


@pytest.mark.parametrize(("block_type", "size", "message"), [
    (3, 16, "reserved type"),
    (0, (128 << 10) + 1, "over the 128 KiB maximum"),
])
def test_zstd_block_headers_are_checked(block_type: int, size: int, message: str) -> None:
    member = _zstd_cli(bytes(range(256)) * 4000, "-19")
    at = _first_block_at(member)
    header = ((size << 3) | (block_type << 1)).to_bytes(3, "little")
    forged = member[:at] + header + member[at + 3:]
    with pytest.raises(DataError, match=message):
        b"".join(decode("zstd", Stream.from_chunks(iter([forged])), MemberInfo("zstd")))
