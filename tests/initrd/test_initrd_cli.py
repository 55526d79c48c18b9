"""The `respin initrd` command line: in-process through register(), and end to end once installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from initrd_util import make_tree, parser, respin_has_initrd, run_cli
from respin_cli import RESPIN, assert_one_line_error, respin

from respin.stages.initrd.lib.writer import pack


def test_register_adds_every_sub_command() -> None:
    p = parser()
    for argv in (["list", "x"], ["cat", "x", "y"], ["extract", "x", "d"], ["pack", "d", "-o", "x"],
                 ["check", "x"]):
        args = p.parse_args(["initrd", *argv])
        assert callable(args.func)


def test_list_long_and_parts(tmp_path: Path) -> None:
    image = tmp_path / "a.img"
    pack(make_tree(tmp_path / "tree"), image, compress="gzip", epoch=1_700_000_000)
    code, out, _ = run_cli("list", "--long", image)
    assert code == 0
    lines = out.decode().splitlines()
    assert any(ln.startswith("lrwxrwxrwx") and ln.endswith("lib64 -> /lib") for ln in lines)
    assert any(ln.startswith("-rwxr-xr-x   3") and ln.endswith(" bin/tool") for ln in lines)
    code, out, _ = run_cli("list", "--parts", image)
    header, row = out.decode().splitlines()
    assert header.split()[:4] == ["part", "offset", "end", "compression"]
    assert row.split()[:2] == ["0", "0"] and row.split()[3] == "gzip"


def test_cat_resolves_hardlinks_and_refuses_non_files(tmp_path: Path) -> None:
    image = tmp_path / "a.img"
    tree = make_tree(tmp_path / "tree")
    pack(tree, image, compress="none")
    data = (tree / "bin/tool").read_bytes()
    # Data is on the last name of the hardlink group; every name shows it.
    for name in ("bin/tool", "bin/tool2", "usr/lib/tool-hardlink", "/bin/tool"):
        assert run_cli("cat", image, name)[:2] == (0, data)
    for name, needle in (("lib64", "'lib64' -> 'lib' is a dir"), ("etc", "dir"), ("nope", "no entry")):
        code, out, err = run_cli("cat", image, name)
        assert code == 4 and needle in err and out == b""


def test_pack_bad_inputs_are_one_line(tmp_path: Path) -> None:
    code, _, err = run_cli("pack", tmp_path / "missing", "-o", tmp_path / "x.img")
    assert code == 4 and "not a directory" in err and err.count("\n") == 1
    tree = make_tree(tmp_path / "tree")
    existing = tmp_path / "keep.img"
    existing.write_bytes(b"old image")
    (tree / "etc/unreadable").write_text("x")
    code, _, err = run_cli("pack", tree, "-o", existing, "--early", tmp_path / "nope")
    assert code == 4 and existing.read_bytes() == b"old image"


def test_bad_source_date_epoch_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    code, _, err = run_cli("pack", make_tree(tmp_path / "tree"), "-o", tmp_path / "x.img")
    assert code == 3 and "SOURCE_DATE_EPOCH" in err


@pytest.mark.skipif(not respin_has_initrd(),
                    reason="the installed respin does not know `initrd` yet (entry point "
                           "respin.commands: initrd = stages.initrd.cli:register not registered)")
@pytest.mark.slow
def test_end_to_end_through_the_installed_respin(tmp_path: Path) -> None:
    exe = str(Path(sys.executable).with_name("respin"))
    tree = make_tree(tmp_path / "tree")
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1700000000"}

    def run(*argv: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([exe, "initrd", *map(str, argv)], capture_output=True, text=True, env=env,
                              stdin=subprocess.DEVNULL, check=False)

    image = tmp_path / "a.img"
    assert run("pack", tree, "-o", image, "--compress", "zstd").returncode == 0
    listed = run("list", image)
    assert listed.returncode == 0 and "bin/tool" in listed.stdout.splitlines()
    assert run("extract", image, tmp_path / "x").returncode == 0
    assert run("check", image).returncode == 0
    bad = tmp_path / "bad.img"
    bad.write_bytes(b"junk" * 50)
    for argv, code in ((("list", bad), 4), (("extract", bad, tmp_path / "y"), 4),
                       (("pack", tree, "-o", tmp_path / "z.img", "--level", "99"), 3),
                       (("list",), 2), (("pack", tree), 2)):
        proc = run(*argv)
        assert proc.returncode == code, (argv, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert len([ln for ln in proc.stderr.splitlines() if ln.startswith("respin: error:")]) == 1
    assert not (tmp_path / "y").exists()


@pytest.mark.slow
def test_cat_follows_symlinks_inside_a_merged_usr_image(tmp_path: Path) -> None:
    """bin -> usr/bin and usr/bin/sh -> bash, as in Debian's and Fedora's images: cat reads
    what the kernel's root would show, says on stderr which path it read, never leaves the
    image and refuses a loop."""
    tree = tmp_path / "tree"
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/lib").mkdir()
    (tree / "etc").mkdir()
    (tree / "bin").symlink_to("usr/bin")
    (tree / "lib").symlink_to("/usr/lib")
    (tree / "usr/bin/busybox").write_bytes(b"busybox bytes\0\1")
    (tree / "usr/bin/bash").write_bytes(b"bash bytes")
    (tree / "usr/bin/sh").symlink_to("bash")
    (tree / "usr/lib/os-release").symlink_to("../../etc/os-release")
    (tree / "etc/os-release").write_text("ID=image\n")
    # Up past the root stays at the image's root: this is the image's etc/hostname.
    (tree / "etc/hostname").write_text("image-host\n")
    (tree / "usr/bin/up").symlink_to("../../../../../../etc/hostname")
    (tree / "etc/loop1").symlink_to("loop2")
    (tree / "etc/loop2").symlink_to("/etc/loop1")
    (tree / "etc/dangling").symlink_to("/nowhere/file")
    (tree / "etc/through-file").symlink_to("/usr/bin/bash/x")
    image = tmp_path / "mk.img"
    respin("initrd", "pack", tree, "-o", image, "--compress", "zstd")

    for path, data, read, link in (
            ("bin/busybox", b"busybox bytes\0\1", "usr/bin/busybox", "bin -> usr/bin"),
            ("usr/bin/sh", b"bash bytes", "usr/bin/bash", "usr/bin/sh -> bash"),
            ("/bin/sh", b"bash bytes", "usr/bin/bash", "usr/bin/sh -> bash"),
            ("lib/os-release", b"ID=image\n", "etc/os-release", "lib -> /usr/lib"),
            ("usr/bin/up", b"image-host\n", "etc/hostname", "usr/bin/up -> ../../../../../../etc/hostname")):
        raw = subprocess.run([str(RESPIN), "initrd", "cat", str(image), path], capture_output=True,
                             stdin=subprocess.DEVNULL, check=False)
        assert raw.returncode == 0, (path, raw.stderr)
        assert raw.stdout == data, path
        assert f"reading '{read}' for '{path}'" in raw.stderr.decode() and link in raw.stderr.decode()
    # A path with no symlink on the way is read as before, and nothing is said about it.
    proc = respin("initrd", "cat", image, "usr/bin/bash")
    assert proc.stdout == "bash bytes" and proc.stderr == ""
    for path, needle in (("etc/loop1", "more than 40 symlinks in one lookup, a loop"),
                         ("etc/dangling", "no entry 'nowhere' (etc/dangling -> /nowhere/file)"),
                         ("etc/through-file", "'usr/bin/bash' is a file, not a directory"),
                         ("bin", "'bin' -> 'usr/bin' is a dir, not a file"),
                         ("bin/nope", "no entry 'usr/bin/nope' (bin -> usr/bin)")):
        proc = respin("initrd", "cat", image, path, check=False)
        assert_one_line_error(proc, 4, str(image), needle)
        assert proc.stdout == ""
