"""`check`: the root device the image will mount, and what the kernel cannot read."""

from __future__ import annotations

import gzip
import stat
from pathlib import Path

from initrd_util import archive, run_cli
from respin_cli import assert_one_line_error, respin

from respin.stages.initrd.lib.writer import pack

NASH_INIT = """#!/bin/nash
mount -t proc /proc /proc
echo Creating root device.
mkrootdev -t ext3 -o defaults,ro {device}
echo Mounting root filesystem.
mount /sysroot
switchroot
"""


def image_from(tmp_path: Path, files: dict[str, str], compress: str = "gzip") -> Path:
    tree = tmp_path / "tree"
    for rel, text in files.items():
        p = tree / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        if rel in ("init", "bin/nash", "bin/sh"):
            p.chmod(0o755)
    out = tmp_path / "image.img"
    pack(tree, out, compress=compress)
    return out


def test_nash_mkrootdev_consistent_with_fstab_passes(tmp_path: Path) -> None:
    image = image_from(tmp_path, {
        "init": NASH_INIT.format(device="/dev/VolGroup00/LogVol00"), "bin/nash": "",
        "etc/fstab": "/dev/VolGroup00/LogVol00 / ext3 defaults 1 1\n"})
    code, out, err = run_cli("check", image)
    assert code == 0, out.decode() + err
    assert b"ok: root device /dev/VolGroup00/LogVol00" in out


def test_nash_init_without_mkrootdev_fails_like_the_boot_would(tmp_path: Path) -> None:
    script = NASH_INIT.replace("mkrootdev -t ext3 -o defaults,ro {device}\n", "")
    image = image_from(tmp_path, {"init": script, "bin/nash": ""})
    code, out, err = run_cli("check", image)
    assert code == 8
    assert "error mounting /dev/root on /sysroot" in out.decode()
    assert err.count("respin: error:") == 1


def test_mkrootdev_disagreeing_with_fstab_fails(tmp_path: Path) -> None:
    image = image_from(tmp_path, {
        "init": NASH_INIT.format(device="LABEL=/"), "bin/nash": "",
        "etc/fstab": "/dev/sda2 / ext4 defaults 1 1\n"})
    code, out, _err = run_cli("check", image)
    assert code == 8
    assert "inconsistent root device" in out.decode()
    assert "inconsistent root filesystem type" in out.decode()


def test_mkrootdev_without_device_and_dev_root_fail(tmp_path: Path) -> None:
    for device in ("", "/dev/root"):
        image = image_from(tmp_path, {"init": NASH_INIT.format(device=device), "bin/nash": ""})
        code, out, _ = run_cli("check", image)
        assert code == 8, out


def test_dracut_cmdline_root_and_expected_root(tmp_path: Path) -> None:
    files = {"init": "#!/bin/sh\nexec /sbin/init\n", "bin/sh": "",
             "etc/cmdline.d/90root.conf": "root=UUID=1234-abcd rootflags=ro\n",
             "etc/fstab": "UUID=1234-abcd / xfs defaults 0 0\n"}
    image = image_from(tmp_path, files)
    assert run_cli("check", image)[0] == 0
    assert run_cli("check", image, "--root", "UUID=1234-abcd")[0] == 0
    code, out, _ = run_cli("check", image, "--root", "/dev/sdb1")
    assert code == 8 and b"expected /dev/sdb1" in out


def test_empty_root_in_cmdline_fails(tmp_path: Path) -> None:
    files = {"init": "#!/bin/sh\n", "bin/sh": "", "etc/cmdline.d/root.conf": "root= quiet"}
    image = image_from(tmp_path, files)
    assert run_cli("check", image)[0] == 8


def test_image_without_root_device_is_a_note(tmp_path: Path) -> None:
    image = image_from(tmp_path, {"init": "#!/bin/sh\necho hi\n", "bin/sh": ""})
    code, out, _ = run_cli("check", image)
    assert code == 0 and b"note: the image names no root device" in out


def test_missing_interpreter_and_non_executable_init_fail(tmp_path: Path) -> None:
    image = image_from(tmp_path, {"init": "#!/bin/busybox sh\n"})
    code, out, _ = run_cli("check", image)
    assert code == 8 and b"/bin/busybox" in out
    tree = tmp_path / "t2"
    tree.mkdir()
    (tree / "init").write_text("#!/init\n")
    (tree / "init").chmod(0o644)
    pack(tree, tmp_path / "t2.img", compress="none")
    code, out, _ = run_cli("check", tmp_path / "t2.img")
    assert code == 8 and b"not executable" in out


def test_entry_before_its_parent_is_flagged(tmp_path: Path) -> None:
    image = tmp_path / "orphan.img"
    image.write_bytes(archive(("etc/passwd", {"data": b"root:x:0:0::/:/bin/sh\n"}),
                              ("etc", {"mode": stat.S_IFDIR | 0o755})))
    code, out, _ = run_cli("check", image)
    assert code == 8 and b"will skip it" in out


def test_kernel_config_without_the_decompressor_fails(tmp_path: Path) -> None:
    image = image_from(tmp_path, {"init": "#!/bin/sh\n", "bin/sh": ""}, compress="zstd")
    config = tmp_path / "config"
    config.write_text("CONFIG_RD_GZIP=y\n# CONFIG_RD_ZSTD is not set\n")
    code, out, _ = run_cli("check", image, "--kernel-config", config)
    assert code == 8 and b"CONFIG_RD_ZSTD" in out
    config.write_text("CONFIG_RD_ZSTD=y\n")
    assert run_cli("check", image, "--kernel-config", config)[0] == 0


def test_unreadable_image_is_bad_input_not_a_failed_check(tmp_path: Path) -> None:
    image = tmp_path / "junk.img"
    image.write_bytes(b"not an initrd at all")
    code, _, err = run_cli("check", image)
    assert code == 4 and str(image) in err
    code, _, err = run_cli("check", tmp_path / "missing.img")
    assert code == 4 and "missing.img" in err


def test_kernel_config_that_is_not_a_kernel_config_is_refused(tmp_path: Path) -> None:
    image = image_from(tmp_path, {"init": "#!/bin/sh\n", "bin/sh": ""}, compress="zstd")
    text = tmp_path / "notes.txt"
    text.write_text("just one line of text\n")
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"MZ\0\0" + bytes(range(256)) * 64)
    for path, why in ((text, "no CONFIG_BLK_DEV_INITRD or CONFIG_RD_* line"), (kernel, "binary data"),
                      (tmp_path / "missing", "cannot read")):
        proc = respin("initrd", "check", image, "--kernel-config", path, check=False)
        assert_one_line_error(proc, 4, str(path), why)
        assert proc.stdout == "", "refused before any finding"
    # A real config, gzipped as /proc/config.gz is, is read; one without initrd support fails.
    config = tmp_path / "config.gz"
    config.write_bytes(gzip.compress(b"CONFIG_BLK_DEV_INITRD=y\nCONFIG_RD_ZSTD=y\n"))
    assert respin("initrd", "check", image, "--kernel-config", config).returncode == 0
    config.write_bytes(gzip.compress(b"# CONFIG_BLK_DEV_INITRD is not set\n"))
    proc = respin("initrd", "check", image, "--kernel-config", config, check=False)
    assert_one_line_error(proc, 8, "2 problems found")
    assert "no initrd support" in proc.stdout


def test_each_problem_is_printed_once(tmp_path: Path) -> None:
    """The report on stdout names each problem; the error line says only that the check
    failed, and how many problems it found."""
    image = image_from(tmp_path, {"init": "#!/bin/busybox sh\n",
                                  "etc/cmdline.d/root.conf": "root= quiet"})
    proc = respin("initrd", "check", image, check=False)
    assert_one_line_error(proc, 8, f"{image}: 2 problems found")
    both = proc.stdout + proc.stderr
    for problem in ("wants interpreter /bin/busybox", "empty root="):
        assert both.count(problem) == 1, both


def test_a_dangling_interpreter_link_is_named_as_one(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "init").write_text("#!/bin/sh\nexec /sbin/init\n")
    (tree / "init").chmod(0o755)
    (tree / "bin/sh").symlink_to("/bin/busybox")
    pack(tree, tmp_path / "a.img", compress="gzip")
    proc = respin("initrd", "check", tmp_path / "a.img", check=False)
    assert_one_line_error(proc, 8, "1 problem found")
    assert ("problem: /init wants interpreter /bin/sh, a dangling symlink (bin/sh -> /bin/busybox): "
            "bin/busybox is not in the image") in proc.stdout, proc.stdout


def test_root_asked_of_an_image_that_names_none_is_not_a_pass(tmp_path: Path) -> None:
    """`--root` on an image that names no root device: nothing could be checked, so it does
    not pass; without --root the same image passes with a note."""
    image = image_from(tmp_path, {"init": "#!/bin/sh\necho hi\n", "bin/sh": ""})
    proc = respin("initrd", "check", image, "--root", "/dev/sda1", check=False)
    assert_one_line_error(proc, 8, "1 problem found")
    assert "problem: --root /dev/sda1: the image names no root device" in proc.stdout
    assert "cannot be checked" in proc.stdout and "ok: root device" not in proc.stdout
    assert respin("initrd", "check", image).returncode == 0


def test_a_bad_level_is_a_bad_value(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "init").write_text("#!/bin/sh\n")
    for level, why in (("abc", "--level 'abc': want a whole number"), ("-1", "want a whole number"),
                       ("99", "--level 99 is out of range for gzip (1..9)")):
        proc = respin("initrd", "pack", tree, "-o", tmp_path / "x.img", "--level", level, check=False)
        assert_one_line_error(proc, 3, why)
        assert not (tmp_path / "x.img").exists()
    respin("initrd", "pack", tree, "-o", tmp_path / "x.img", "--level", "1")
