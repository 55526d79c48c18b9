"""Boot Debian's kernel under qemu (TCG) with images respin packed from a busybox-static tree.

The init prints a marker read from files in the image (one of them a hardlink,
one from the early part) on the serial console, then powers off.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from respin.stages.initrd.lib.manifest import MANIFEST_NAME
from respin.stages.initrd.lib.writer import pack

QEMU = shutil.which("qemu-system-x86_64")
KERNELS = sorted(glob.glob("/boot/vmlinuz-*"))
BUSYBOX = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p)), None)


def _static(path: str | None) -> bool:
    if path is None:
        return False
    with open(path, "rb") as fh:
        elf = fh.read(1 << 16)
    # A dynamic executable names its interpreter (PT_INTERP), a static one does not.
    return b"/lib64/ld-linux" not in elf and b"ld-linux" not in elf


REASON = ("needs qemu-system-x86_64, a kernel in /boot (linux-image-amd64) and a static busybox "
          "(busybox-static)")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (QEMU and KERNELS and os.access(KERNELS[-1], os.R_OK)
                                      and _static(BUSYBOX)), reason=REASON)]

INIT = """#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sys /sys
echo "MARKER:$(/bin/busybox cat /etc/marker):$(/bin/busybox cat /etc/marker-link)"
if [ -e /early-marker ]; then echo "EARLY:$(/bin/busybox cat /early-marker)"; fi
/bin/busybox poweroff -f
"""


def busybox_tree(root: Path, marker: str) -> Path:
    """A container like `extract` makes: main/ plus a manifest holding /dev/console."""
    main = root / "main"
    for d in ("bin", "dev", "proc", "sys", "etc", "root"):
        (main / d).mkdir(parents=True)
    assert BUSYBOX is not None
    shutil.copy(BUSYBOX, main / "bin/busybox")
    (main / "bin/sh").symlink_to("busybox")
    (main / "init").write_text(INIT)
    (main / "init").chmod(0o755)
    (main / "etc/marker").write_text(marker)
    os.link(main / "etc/marker", main / "etc/marker-link")
    manifest = {"format": "respin-initrd-manifest", "version": 1, "image": "", "parts": [],
                "trees": {"main": {"dev/console": {"kind": "chr", "mode": "0600", "rdev": [5, 1]}}}}
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))
    return root


def boot(image: Path) -> str:
    """Boot `image` and return the serial console output."""
    assert QEMU is not None
    argv = [QEMU, "-kernel", KERNELS[-1], "-initrd", str(image), "-append", "console=ttyS0 panic=-1 quiet",
            "-nographic", "-no-reboot", "-m", "256", "-accel", "tcg", "-monitor", "none"]
    proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=120,
                          stdin=subprocess.DEVNULL, check=False)
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("compress", ["gzip", "xz", "zstd", "lz4"])
def test_kernel_boots_image(tmp_path: Path, compress: str) -> None:
    marker = f"respin-{compress}-{os.getpid()}"
    tree = busybox_tree(tmp_path / "tree", marker)
    image = tmp_path / f"{compress}.img"
    pack(tree, image, compress=compress, epoch=1_700_000_000)
    console = boot(image)
    assert f"MARKER:{marker}:{marker}" in console, console[-3000:]


def test_kernel_boots_early_plus_main(tmp_path: Path) -> None:
    marker = f"respin-early-{os.getpid()}"
    tree = busybox_tree(tmp_path / "tree", marker)
    early = tmp_path / "early"
    (early / "kernel/x86/microcode").mkdir(parents=True)
    (early / "kernel/x86/microcode/GenuineIntel.bin").write_bytes(b"\0" * 64)
    (early / "early-marker").write_text("from-the-early-part")
    image = tmp_path / "early.img"
    pack(tree, image, compress="gzip", early=early, epoch=1_700_000_000)
    console = boot(image)
    assert f"MARKER:{marker}:{marker}" in console, console[-3000:]
    assert "EARLY:from-the-early-part" in console, console[-3000:]
