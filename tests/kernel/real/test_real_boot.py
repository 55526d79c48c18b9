"""The kernel respin built from Debian's real Linux 6.1 tree boots, and runs with the change.

The image comes out of the binary package respin built (the session's
`real_build`); the initramfs is packed by `respin initrd pack` from a static
busybox tree; qemu boots both (TCG, serial console). Asserted from inside the
running kernel: `uname -r` is the package's <version>-<release>.x86_64 and
carries the buildid, every requested value is in /proc/config.gz (which is
the package's config as a whole), and the values show where they act.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from realbuild import BUILDID, REQUEST, REQUESTED_LINES, RealBuild
from realvm import between, boot, busybox_tree, marked, missing_boot_tools
from respin_cli import respin

from respin.stages.kernel.lib.rpmpkg import read_package

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(missing_boot_tools()),
                                 reason=f"booting needs {', '.join(missing_boot_tools())}")]


def test_the_package_is_the_requested_build(real_build: RealBuild) -> None:
    stages = {s["name"]: s["status"] for s in real_build.manifest["stages"]}  # type: ignore[index,union-attr]
    assert list(stages) == ["fetch", "sign", "prep", "config", "diff", "inject", "rebuild", "verify",
                            "publish"]
    assert set(stages.values()) == {"ran"}, stages
    assert BUILDID in real_build.kverrel.split("-", 1)[1], real_build.kverrel
    assert real_build.kverrel.endswith(".x86_64")
    # Laid out as Fedora's kernel-core: image, config and System.map in the module directory,
    # their /boot copies %ghost (listed, no content); verify read the config where it is.
    pkg = read_package(real_build.rpm)
    kver = real_build.kverrel
    assert pkg.ghosts == {f"/boot/vmlinuz-{kver}", f"/boot/config-{kver}", f"/boot/System.map-{kver}"}
    assert {f"/lib/modules/{kver}/{n}" for n in ("vmlinuz", "config", "System.map")} <= set(pkg.files)
    report = json.loads((real_build.workdir / "stages/verify/report.json").read_text())
    assert [p["configs"] for p in report["packages"] if "flavour" in p] == [[f"/lib/modules/{kver}/config"]]
    config = real_build.config().splitlines()
    for line in REQUESTED_LINES:
        assert line in config, line
    # The Fedora flavour: the SRPM was made for .fc37, so the rebuild keeps %dist and
    # defines %fedora, and %prep builds from the -fedora configs, not the -rhel ones.
    assert real_build.kverrel.endswith(f"{BUILDID}.fc37.x86_64"), real_build.kverrel
    assert "# CONFIG_RHEL_DIFFERENCES is not set" in config


def test_the_real_kernel_boots_with_the_change(real_build: RealBuild, tmp_path: Path) -> None:
    kernel = real_build.kernel_image(tmp_path)
    tree = busybox_tree(tmp_path / "tree")
    image = tmp_path / "initrd.img"
    respin("initrd", "pack", tree, "-o", image, "--compress", "gzip")
    # respin's own check of the image against the kernel it is for (CONFIG_RD_GZIP, /init).
    config = tmp_path / "config"
    config.write_text(real_build.config())
    respin("initrd", "check", image, "--kernel-config", config)

    console = boot(kernel, image)
    assert "RESPIN-DONE" in console, console[-4000:]
    assert "RESPIN-FAILED" not in console, console[-4000:]
    # uname -r: the package's version-release.arch, the buildid in the release.
    assert marked(console, "UNAME-R") == real_build.kverrel
    assert BUILDID in real_build.kverrel
    # The running kernel's config is the packaged one, requested values included.
    running = between(console, "CONFIG")
    packaged = [ln for ln in real_build.config().splitlines() if ln.startswith("CONFIG_")]
    assert [ln for ln in running if ln.startswith("CONFIG_")] == packaged
    for line in REQUESTED_LINES:
        assert line in running, line
    # Where each value acts: the hostname, timestamps on kernel messages.
    assert marked(console, "HOSTNAME") == REQUEST["CONFIG_DEFAULT_HOSTNAME"]
    first = marked(console, "FIRST-MESSAGE")
    assert re.match(r"^\[\s*\d+\.\d{6}\] Linux version " + re.escape(real_build.kverrel) + " ", first), first
