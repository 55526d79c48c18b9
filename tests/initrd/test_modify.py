"""initrd-modify through `respin run`: adding into a directory the image names through a
symlink (merged /usr), and an `add` source that would hold the work dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from initrd_util import EPOCH
from respin_cli import assert_one_line_error, respin

from respin.stages.initrd.lib.writer import pack

IMAGE = "_respin/p/stages/initrd-pack/initrd.img"


def _merged_usr(where: Path, lib_target: str) -> None:
    """An image whose lib is a symlink (merged /usr), with modules under usr/lib."""
    tree = where / "tree"
    (tree / "usr/lib/modules/6.1").mkdir(parents=True)
    (tree / "usr/lib/modules/6.1/mod.ko").write_bytes(b"module")
    (tree / "etc").mkdir()
    (tree / "lib").symlink_to(lib_target)
    pack(tree, where / "base.img", compress="gzip", epoch=EPOCH)
    (where / "extra.conf").write_text("options mod x=1\n")


def _pipeline(where: Path, add: str) -> Path:
    path = where / "p.toml"
    path.write_text('[pipeline]\nstages = ["initrd-extract", "initrd-modify", "initrd-pack"]\n'
                    '[initrd-extract]\nimage = "base.img"\n'
                    f"[initrd-modify]\nadd = {add}\n")
    return path


@pytest.mark.parametrize("lib_target", ["usr/lib", "/usr/lib", "../usr/./lib"])
def test_add_into_a_symlinked_directory_adds_into_its_target(tmp_path: Path, lib_target: str) -> None:
    _merged_usr(tmp_path, lib_target)
    respin("run", _pipeline(tmp_path, '{ "lib/" = "extra.conf" }'), cwd=tmp_path,
           env={"SOURCE_DATE_EPOCH": str(EPOCH)})
    listing = respin("initrd", "list", "--long", IMAGE, cwd=tmp_path).stdout.splitlines()
    assert any(ln.endswith(f" lib -> {lib_target}") for ln in listing), listing
    names = [ln.split()[-1] for ln in listing if " -> " not in ln]
    assert "usr/lib/modules/6.1/mod.ko" in names and "usr/lib/extra.conf" in names
    assert respin("initrd", "cat", IMAGE, "lib/extra.conf", cwd=tmp_path).stdout == "options mod x=1\n"


@pytest.mark.parametrize("how", ["absolute", "dotdot", "file"])
def test_add_into_a_symlink_leading_nowhere_in_the_image_is_refused(tmp_path: Path, how: str) -> None:
    """A hostile image's lib -> a host directory (absolute, or `..` past the root): the link is
    looked up in the image, where it names nothing, so nothing is written on the host."""
    host = tmp_path / "host-dir"
    host.mkdir()
    target = {"absolute": str(host), "dotdot": "../../../../../../../.." + str(host),
              "file": "usr/lib/modules/6.1/mod.ko"}[how]
    _merged_usr(tmp_path, target)
    proc = respin("run", _pipeline(tmp_path, '{ "lib/" = "extra.conf" }'), cwd=tmp_path, check=False)
    assert_one_line_error(proc, 3, f"[initrd-modify] add: 'lib' is a symlink to '{target}'"
                          if how != "file" else "'lib' is a symlink to 'usr/lib/modules/6.1/mod.ko', a file")
    assert list(host.iterdir()) == []
    assert not (tmp_path / IMAGE).exists()


def test_add_source_holding_the_work_dir_is_refused_in_one_short_line(tmp_path: Path) -> None:
    _merged_usr(tmp_path, "usr/lib")
    (tmp_path / "etc-files").mkdir()
    proc = respin("run", _pipeline(tmp_path, '{ "/" = "." }'), cwd=tmp_path, check=False)
    assert_one_line_error(proc, 3, f"source directory {tmp_path} holds the work dir")
    [line] = [ln for ln in proc.stderr.splitlines() if ln.startswith("respin: error:")]
    assert len(line) < 300, line
    assert not (tmp_path / IMAGE).exists()
    assert not (tmp_path / "_respin/p/stages/initrd-modify/tree").exists()
