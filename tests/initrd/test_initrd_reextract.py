"""Extracting again into a directory keeps the user's changes unless told otherwise.

`extract` records what it wrote (initrd-extracted.json); a later extract into the same
directory replaces it only when nothing was added, removed or changed since, or with
--force. Everything through the installed `respin` command.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from initrd_util import snapshot
from respin_cli import assert_one_line_error, respin


@pytest.fixture
def image(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    (tree / "etc/cmdline.d").mkdir(parents=True)
    (tree / "etc/cmdline.d/90root.conf").write_text("root=/dev/sda1\n")
    (tree / "etc/hostname").write_text("host-a\n")
    (tree / "bin").mkdir()
    (tree / "bin/tool").write_bytes(b"\x7fELF tool")
    (tree / "bin/sh").symlink_to("tool")
    out = tmp_path / "a.img"
    respin("initrd", "pack", tree, "-o", out, "--compress", "gzip")
    return out


def test_reextract_refuses_to_delete_the_users_edits(tmp_path: Path, image: Path) -> None:
    """The issue's steps: an edit and a new file survive a second extract, which says why."""
    ex = tmp_path / "ex"
    respin("initrd", "extract", image, ex)
    (ex / "main/etc/cmdline.d/90root.conf").write_text("x\n")
    (ex / "NOTES.txt").write_text("n\n")
    before = snapshot(ex)
    proc = respin("initrd", "extract", image, ex, check=False)
    # NOTES.txt sorts before main/ bytewise: it is the first changed path.
    assert_one_line_error(proc, 2, str(ex), "changed since it was extracted (NOTES.txt added)", "--force")
    assert snapshot(ex) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.img", "ex", "tree"], "no temp dir left"
    (ex / "NOTES.txt").unlink()
    proc = respin("initrd", "extract", image, ex, check=False)
    assert_one_line_error(proc, 2, "(main/etc/cmdline.d/90root.conf modified)")
    # --force replaces it with the image's content.
    respin("initrd", "extract", image, ex, "--force")
    assert (ex / "main/etc/cmdline.d/90root.conf").read_text() == "root=/dev/sda1\n"


def _same_size_same_mtime(ex: Path) -> None:
    path = ex / "main/etc/hostname"
    st = path.stat()
    path.write_text("host-b\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize(("change", "needle"), [
    (lambda ex: (ex / "main/etc/hostname").unlink(), "main/etc/hostname removed"),
    (lambda ex: (ex / "main/etc/new").write_text("new\n"), "main/etc/new added"),
    (lambda ex: shutil.rmtree(ex / "main/etc/cmdline.d"), "main/etc/cmdline.d removed"),
    (lambda ex: (ex / "main/bin/tool").chmod(0o700), "main/bin/tool modified"),
    (lambda ex: ((ex / "main/bin/sh").unlink(), (ex / "main/bin/sh").symlink_to("/bin/bash")),
     "main/bin/sh modified"),
    (_same_size_same_mtime, "main/etc/hostname modified"),
    (lambda ex: (ex / "initrd-manifest.json").write_text("{}"), "initrd-manifest.json modified"),
], ids=["removed", "added", "dir-removed", "chmod", "relinked", "same-size-and-mtime", "manifest"])
def test_any_change_is_found_and_named(tmp_path: Path, image: Path, change: Callable[[Path], object],
                                       needle: str) -> None:
    ex = tmp_path / "ex"
    respin("initrd", "extract", image, ex)
    change(ex)
    before = snapshot(ex)
    proc = respin("initrd", "extract", image, ex, check=False)
    assert_one_line_error(proc, 2, f"({needle})")
    assert snapshot(ex) == before


def test_unchanged_extraction_is_replaced_without_force(tmp_path: Path, image: Path) -> None:
    ex = tmp_path / "ex"
    respin("initrd", "extract", image, ex)
    first = snapshot(ex)
    respin("initrd", "extract", image, ex)
    assert snapshot(ex) == first


def test_foreign_or_unrecorded_directories(tmp_path: Path, image: Path) -> None:
    """A non-empty directory extract did not make is never replaced, --force or not; an
    extraction with no record (an older respin's) only with --force."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "precious").write_text("data")
    for extra in ((), ("--force",)):
        proc = respin("initrd", "extract", image, mine, *extra, check=False)
        assert_one_line_error(proc, 2, str(mine), "not empty")
        assert (mine / "precious").read_text() == "data"
    ex = tmp_path / "ex"
    respin("initrd", "extract", image, ex)
    (ex / "initrd-extracted.json").unlink()
    proc = respin("initrd", "extract", image, ex, check=False)
    assert_one_line_error(proc, 2, "no record of what extract wrote", "--force")
    respin("initrd", "extract", image, ex, "--force")
    assert (ex / "initrd-extracted.json").is_file()
