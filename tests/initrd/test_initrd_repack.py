"""A repack without options keeps the extracted image's compression and level.

Images made by the real tools with settings other than respin's defaults (zstd -19,
xz -7, bzip2 -3, and Debian's mkinitramfs when installed), extracted and packed again
through the installed `respin` command: the same compression and level, and no larger.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
from initrd_util import sh, tool
from respin_cli import respin

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not tool("cpio"), reason="needs GNU cpio")]
def _text_tree(root: Path, budget: int = 1_500_000) -> Path:
    """Real text (this Python's own standard library modules, up to `budget` bytes): it
    compresses better the harder the compressor tries. (Made-up text can be a poor judge:
    zstd -19's output size on it swings by 4% when one byte is put in front.)"""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    (root / "usr/lib/python").mkdir(parents=True)
    for src in sorted(stdlib.glob("*.py")):
        if budget <= 0:
            break
        shutil.copyfile(src, root / "usr/lib/python" / src.name)
        budget -= src.stat().st_size
    (root / "init").write_text("#!/bin/sh\n")
    (root / "init").chmod(0o755)
    # One time for every file, as a reproducible build's image has: the sizes compared are
    # then those of the compression, not of which second each file was copied in.
    for path in (root, *root.rglob("*")):
        os.utime(path, (1_700_000_000, 1_700_000_000), follow_symlinks=False)
    return root


def _image(tmp_path: Path, tree: Path, compressor: str) -> Path:
    """`find | cpio -o -H newc | COMPRESSOR`, as the distribution tools build images."""
    image = tmp_path / "orig.img"
    sh(f"find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet | {compressor} > {image}", cwd=tree)
    return image


def _repack(tmp_path: Path, image: Path, *extra: str) -> tuple[str, Path]:
    """Extract `image`, pack it again (with `extra` options); the summary line and the image."""
    if not (tmp_path / "x").exists():
        respin("initrd", "extract", image, tmp_path / "x")
    out = tmp_path / "again.img"
    line = respin("initrd", "pack", tmp_path / "x", "-o", out, *extra).stdout
    return line, out


@pytest.mark.parametrize(("command", "summary"), [("zstd -q -19", "zstd -19"), ("bzip2 -3", "bzip2 -3")])
def test_image_repacks_at_its_level_and_no_larger(tmp_path: Path, command: str, summary: str) -> None:
    """zstd -19 (told from its 8 MiB window) and bzip2 -3 (its block size)."""
    if not tool(command.split()[0]):
        pytest.skip(f"needs {command.split()[0]}")
    image = _image(tmp_path, _text_tree(tmp_path / "tree"), command)
    line, again = _repack(tmp_path, image)
    assert f"{summary}, as the extracted image" in line, line
    assert again.stat().st_size <= image.stat().st_size
    if summary.startswith("zstd"):
        # What the repack was before, at zstd's default level: the level matters.
        _, default = _repack(tmp_path, image, "--level", "3")
        assert default.stat().st_size > image.stat().st_size * 1.2


@pytest.mark.skipif(not tool("xz"), reason="needs xz")
def test_xz_7_image_keeps_its_dictionary(tmp_path: Path) -> None:
    """xz -7 has a 16 MiB dictionary: a 1.5 MiB file stored twice costs once with it, twice
    with pack's own 1 MiB one."""
    tree = tmp_path / "tree"
    (tree / "lib/firmware").mkdir(parents=True)
    blob = random.Random(7).randbytes(3 << 19)
    (tree / "lib/firmware/a.bin").write_bytes(blob)
    (tree / "lib/firmware/b.bin").write_bytes(blob)
    image = _image(tmp_path, tree, "xz -7 --check=crc32")
    line, again = _repack(tmp_path, image)
    assert "xz -6 (dictionary 16384 KiB), as the extracted image" in line, line
    assert again.stat().st_size <= image.stat().st_size
    assert sh(f"xz -dc {again} | cpio -it --quiet").split() == [b"lib", b"lib/firmware",
                                                                b"lib/firmware/a.bin", b"lib/firmware/b.bin"]
    assert respin("initrd", "check", again).returncode == 0


@pytest.mark.skipif(not tool("zstd"), reason="needs zstd")
def test_options_and_plain_trees_keep_the_old_defaults(tmp_path: Path) -> None:
    tree = _text_tree(tmp_path / "tree", budget=100_000)
    image = _image(tmp_path, tree, "zstd -q -12")
    # Another compression, or a level given, is what was asked for.
    assert "xz -6, " in _repack(tmp_path, image, "--compress", "xz")[0]
    assert "zstd -5, " in _repack(tmp_path, image, "--level", "5")[0]
    # The same compression named keeps the recorded level (12 and 9 share their window).
    assert "zstd -9, as the extracted image" in _repack(tmp_path, image, "--compress", "zstd")[0]
    # A plain tree: gzip -9 as before.
    line = respin("initrd", "pack", tree, "-o", tmp_path / "plain.img").stdout
    assert re.search(r": gzip -9, \d+ entries", line), line
    help_text = " ".join(respin("initrd", "pack", "--help").stdout.split())
    assert "the level extract recorded for it; for a plain tree, gzip" in help_text


KVER = sorted(p.name for p in Path("/lib/modules").glob("*") if (p / "modules.dep").is_file()) \
    if Path("/lib/modules").is_dir() else []


@pytest.mark.skipif(not (shutil.which("mkinitramfs") and KVER),
                    reason="needs Debian's mkinitramfs (initramfs-tools, installed by `make bench`) "
                    "and a kernel's modules in /lib/modules")
def test_debian_mkinitramfs_image_repacks_no_larger(tmp_path: Path) -> None:
    """mkinitramfs writes zstd -9 by default; the repack used to be zstd -3, 13% larger."""
    conf = tmp_path / "conf"
    (conf / "scripts").mkdir(parents=True)
    # Its own defaults, with only the modules listed (none): a real image, made in seconds.
    (conf / "initramfs.conf").write_text("MODULES=list\nBUSYBOX=auto\nCOMPRESS=zstd\n")
    (conf / "modules").write_text("")
    image = tmp_path / "mk.img"
    subprocess.run(["mkinitramfs", "-d", str(conf), "-o", str(image), KVER[-1]], check=True,
                   capture_output=True, stdin=subprocess.DEVNULL, timeout=600)
    line, again = _repack(tmp_path, image)
    assert "zstd -9, as the extracted image" in line, line
    assert again.stat().st_size <= image.stat().st_size
    assert respin("initrd", "check", again).returncode == 0
