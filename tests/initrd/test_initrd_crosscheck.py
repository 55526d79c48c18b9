"""respin against GNU cpio and bsdtar on the same images, both directions."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from initrd_util import EPOCH, inodes, make_tree, run_cli, sh, snapshot, tool

from respin.stages.initrd.lib.manifest import MANIFEST_NAME
from respin.stages.initrd.lib.reader import ImageReader
from respin.stages.initrd.lib.unpack import extract
from respin.stages.initrd.lib.writer import pack

pytestmark = pytest.mark.skipif(not (tool("cpio") and tool("bsdtar")), reason="needs GNU cpio and bsdtar")


def respin_names(image: Path) -> list[str]:
    code, out, err = run_cli("list", image)
    assert code == 0, err
    names: list[str] = out.decode().splitlines()
    return names


def respin_tree(image: Path, dest: Path) -> dict[str, tuple[str, int, bytes]]:
    """Extract with respin and return the tree as the archive meant it (manifest modes applied)."""
    code, _, err = run_cli("extract", image, dest)
    assert code == 0, err
    meant: dict[str, tuple[str, int, bytes]] = as_meant(dest)
    return meant


def as_meant(dest: Path, tree: str = "main") -> dict[str, tuple[str, int, bytes]]:
    """An extracted tree's snapshot with the manifest's modes applied."""
    snap = snapshot(dest / tree)
    records = json.loads((dest / MANIFEST_NAME).read_text())["trees"][tree]
    for path, rec in records.items():
        if "mode" in rec and path in snap and "kind" not in rec:
            kind, _, data = snap[path]
            snap[path] = (kind, int(rec["mode"], 8), data)
    return snap


def decompress_cmd(compress: str) -> str:
    return {"gzip": "gzip -dc", "none": "cat", "xz": "xz -dc", "zstd": "zstd -dc",
            "bzip2": "bzip2 -dc", "lz4": "lz4 -dc"}[compress]


@pytest.mark.parametrize("compress", ["none", "gzip", "xz", "zstd", "lz4", "bzip2"])
def test_what_respin_writes_cpio_and_bsdtar_list_and_extract_identically(
        tmp_path: Path, compress: str) -> None:
    tree = make_tree(tmp_path / "tree")
    image = tmp_path / "out.img"
    code, _, err = run_cli("pack", tree, "-o", image, "--compress", compress)
    assert code == 0, err
    dec = decompress_cmd(compress)
    gnu = sh(f"{dec} {image} | cpio -t --quiet").decode().splitlines()
    bsd = sh(f"{dec} {image} | bsdtar -tf -").decode().splitlines()
    ours = respin_names(image)
    assert ours == gnu == bsd
    assert ours == sorted(ours, key=os.fsencode)
    assert not any(n.startswith("./") for n in ours)
    (tmp_path / "gnu").mkdir()
    (tmp_path / "bsd").mkdir()
    sh(f"{dec} {image} | cpio -idm --quiet --no-absolute-filenames", cwd=tmp_path / "gnu")
    sh(f"{dec} {image} | bsdtar -xpf -", cwd=tmp_path / "bsd")
    mine = respin_tree(image, tmp_path / "mine")
    assert snapshot(tmp_path / "gnu") == snapshot(tmp_path / "bsd") == mine == snapshot(tree)
    assert inodes(tmp_path / "gnu") == inodes(tmp_path / "bsd") == inodes(tmp_path / "mine" / "main") \
        == inodes(tree)


def test_find_cpio_gzip9_image_reads_identically(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    image = tmp_path / "classic.img"
    sh(f"find . | cpio -o -H newc --quiet | gzip -9 > {image}", cwd=tree)
    assert respin_names(image) == sh(f"gzip -dc {image} | cpio -t --quiet").decode().splitlines()
    (tmp_path / "gnu").mkdir()
    sh(f"gzip -dc {image} | cpio -idm --quiet", cwd=tmp_path / "gnu")
    assert respin_tree(image, tmp_path / "mine") == snapshot(tmp_path / "gnu")
    assert inodes(tmp_path / "mine" / "main") == inodes(tmp_path / "gnu")


def test_gnu_cpio_crc_format_is_read_and_checked(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree")
    image = tmp_path / "crc.img"
    sh(f"find . | cpio -o -H crc --quiet > {image}", cwd=tree)
    reader = ImageReader(image)
    names = [e.name.decode() for e in reader.entries()]
    assert names == sh(f"cpio -t --quiet < {image}").decode().splitlines()
    assert reader.parts[0].format == "crc"


def _early_main(tmp_path: Path) -> tuple[Path, Path, Path]:
    early = tmp_path / "early"
    (early / "kernel/x86/microcode").mkdir(parents=True)
    (early / "kernel/x86/microcode/GenuineIntel.bin").write_bytes(b"\x01microcode" * 100)
    main = make_tree(tmp_path / "main")
    image = tmp_path / "early+main.img"
    sh(f"find kernel | cpio -o -H newc --quiet > {image}", cwd=early)
    sh(f"find . | cpio -o -H newc --quiet | gzip -9 >> {image}", cwd=main)
    return early, main, image


def test_early_cpio_plus_compressed_main_lists_and_extracts_both(tmp_path: Path) -> None:
    early, main, image = _early_main(tmp_path)
    # The peers stop at the first TRAILER!!!: they only see the microcode.
    assert sh(f"cpio -t --quiet < {image}").decode().split() == [
        "kernel", "kernel/x86", "kernel/x86/microcode", "kernel/x86/microcode/GenuineIntel.bin"]
    code, out, _ = run_cli("list", "--parts", image)
    assert code == 0
    rows = out.decode().splitlines()[1:]
    assert [r.split()[3] for r in rows] == ["none", "gzip"]
    names = respin_names(image)
    assert "kernel/x86/microcode/GenuineIntel.bin" in names and "bin/tool" in names
    run_cli("extract", image, tmp_path / "x")
    assert snapshot(tmp_path / "x" / "early") == snapshot(early)
    assert as_meant(tmp_path / "x") == snapshot(main)


def test_pack_with_early_round_trips(tmp_path: Path) -> None:
    _early, main, image = _early_main(tmp_path)
    run_cli("extract", image, tmp_path / "x")
    out = tmp_path / "repacked.img"
    code, _, err = run_cli("pack", tmp_path / "x", "-o", out)
    assert code == 0, err
    reader = ImageReader(out)
    reader.summary()
    expected = [("none", 4), ("gzip", len(snapshot(main)) + 1)]
    assert [(p.compression, p.entries) for p in reader.parts] == expected
    # Parts start 4-byte aligned; GNU cpio sees the early part exactly as respin lists it.
    assert reader.parts[1].offset % 4 == 0
    early_names = sh(f"cpio -t --quiet < {out}").decode().splitlines()
    assert early_names == respin_names(out)[:4]
    run_cli("extract", out, tmp_path / "y")
    for tree in ("early", "main"):
        assert snapshot(tmp_path / "y" / tree) == snapshot(tmp_path / "x" / tree)
    trees = [json.loads((tmp_path / d / MANIFEST_NAME).read_text())["trees"] for d in ("x", "y")]
    assert trees[0] == trees[1]


def test_two_compressed_members_later_overlays_earlier(tmp_path: Path) -> None:
    first = tmp_path / "first"
    (first / "etc").mkdir(parents=True)
    (first / "etc/config").write_text("old\n")
    (first / "etc/only-first").write_text("kept\n")
    (first / "data").mkdir()
    (first / "data/inner").write_text("goes away\n")
    second = tmp_path / "second"
    (second / "etc").mkdir(parents=True)
    (second / "etc/config").write_text("new\n")
    (second / "data").write_text("a file replaces the directory\n")
    image = tmp_path / "two.img"
    sh(f"find . | cpio -o -H newc --quiet | gzip -9 > {image}", cwd=first)
    sh(f"find . | cpio -o -H newc --quiet | xz --check=crc32 >> {image}", cwd=second)
    names = respin_names(image)
    assert names.count("etc/config") == 2 and "data/inner" in names
    code, out, _ = run_cli("cat", image, "etc/config")
    assert (code, out) == (0, b"new\n")
    run_cli("extract", image, tmp_path / "x")
    x = tmp_path / "x" / "main"
    assert (x / "etc/config").read_text() == "new\n"
    assert (x / "etc/only-first").read_text() == "kept\n"
    assert (x / "data").read_text() == "a file replaces the directory\n"


def test_extract_then_pack_gives_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(EPOCH))
    tree = make_tree(tmp_path / "tree")
    (tree / "etc/ro").chmod(0o4755)  # a setuid bit survives the round trip via the manifest
    first = tmp_path / "a.img"
    pack(tree, first, compress="gzip")
    extract(first, tmp_path / "x")
    again = tmp_path / "b.img"
    pack(tmp_path / "x", again)
    assert first.read_bytes() == again.read_bytes()
    assert not stat.S_IMODE((tmp_path / "x/main/etc/ro").stat().st_mode) & stat.S_ISUID
