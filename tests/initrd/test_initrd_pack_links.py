"""`pack` of an extraction another user can write: its main/, early/ and manifest are opened
without following symlinks, and the tree is read through directory descriptors, so neither a
planted link nor one swapped in while pack runs makes it pack what lies outside."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest
from initrd_util import EPOCH, make_tree
from respin_cli import assert_one_line_error, respin

from respin.pipeline.errors import InputError
from respin.stages.initrd.lib.writer import pack

SECRET = b"root-only secret 8d1f6c"


def _extraction(tmp_path: Path) -> Path:
    image = tmp_path / "orig.img"
    pack(make_tree(tmp_path / "tree"), image, compress="none", epoch=EPOCH)
    dest = tmp_path / "x"
    respin("initrd", "extract", image, dest)
    return dest


def _outside(tmp_path: Path) -> Path:
    secret_dir = tmp_path / "secret-dir"
    (secret_dir / "early").mkdir(parents=True)
    (secret_dir / "shadow").write_bytes(SECRET)
    (secret_dir / "early" / "shadow").write_bytes(SECRET)
    (secret_dir / "shadow").chmod(0o600)
    return secret_dir


@pytest.mark.parametrize("part", ["main", "early"])
def test_pack_refuses_a_symlinked_part_of_an_extraction(tmp_path: Path, part: str) -> None:
    dest = _extraction(tmp_path)
    outside = _outside(tmp_path)
    if (dest / part).exists():
        shutil.rmtree(dest / part)
    (dest / part).symlink_to(outside if part == "main" else outside / "early")
    out = tmp_path / "out.img"
    proc = respin("initrd", "pack", dest, "-o", out, "--compress", "none", check=False)
    assert_one_line_error(proc, 4, f"{dest / part}: is a symlink")
    assert not out.exists()
    assert SECRET.decode() not in proc.stdout + proc.stderr


def test_pack_refuses_a_symlinked_manifest(tmp_path: Path) -> None:
    dest = _extraction(tmp_path)
    outside = _outside(tmp_path)
    (dest / "initrd-manifest.json").unlink()
    (dest / "initrd-manifest.json").symlink_to(outside / "shadow")
    proc = respin("initrd", "pack", dest, "-o", tmp_path / "out.img", check=False)
    assert_one_line_error(proc, 4, "initrd-manifest.json: unreadable manifest: a symlink")
    assert SECRET.decode() not in proc.stderr


def test_pack_never_follows_a_directory_swapped_for_a_symlink_while_it_runs(tmp_path: Path) -> None:
    """A second user swaps main/etc between a directory and a link to a root-only directory
    while root packs: each pack either refuses in one error or packs what the tree held;
    the secret never lands in an image."""
    dest = _extraction(tmp_path)
    outside = _outside(tmp_path)
    etc = dest / "main" / "etc"
    real = dest / "main" / "etc.real"
    os.rename(etc, real)
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            with_link = etc.with_name("etc.tmp")
            with_link.symlink_to(outside)
            os.rename(with_link, etc)  # now a link to the secret directory
            os.unlink(etc)
            os.symlink("etc.real", with_link)
            os.rename(with_link, etc)  # a link again, but inside the tree
            os.unlink(etc)
            os.rename(real, etc)  # the real directory
            os.rename(etc, real)

    racer = threading.Thread(target=swap)
    racer.start()
    refused = packed = 0
    try:
        for i in range(40):
            out = tmp_path / f"out{i}.img"
            try:
                pack(dest, out, compress="none", epoch=EPOCH)
            except InputError:
                refused += 1
                continue
            packed += 1
            assert SECRET not in out.read_bytes(), f"pack {i} read through the swapped link"
    finally:
        stop.set()
        racer.join()
    assert refused + packed == 40
