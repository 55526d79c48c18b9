"""The seed's three recipes in one boot: the respun kernel, an initrd respin repacked, the network files.

fixtures/network/initrd-pipeline.toml runs as its comments say (network ->
initrd-extract -> initrd-modify -> initrd-pack, busybox beside it) on a base
image `respin initrd pack` made from a static busybox tree. The kernel respin
built from Debian's real 6.1 tree (the session's `real_build`) boots that
image under qemu; its /init applies the rendered initscripts files with
busybox `ip`, the way initscripts does, and prints what the kernel then holds.
Every rule and route of the rendered files must be there, as the model says.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from realbuild import BUILDID, REQUESTED_LINES, RealBuild
from realvm import BUSYBOX, between, boot, busybox_tree, marked, missing_boot_tools
from respin_cli import REPO, respin

EXAMPLE = REPO / "fixtures" / "network" / "initrd-pipeline.toml"
SCRIPTS = "etc/sysconfig/network-scripts"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(missing_boot_tools()),
                                 reason=f"booting needs {', '.join(missing_boot_tools())}")]


def words(line: str) -> str:
    return " ".join(line.split())


def file_lines(path: Path) -> list[str]:
    """The non-comment, non-blank lines of a rendered file, whitespace-normalized."""
    lines = path.read_text().splitlines()
    return [words(ln) for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def rule_as_shown(line: str) -> str:
    """A rule- file line ("from A lookup T priority P") as `ip rule show` prints it."""
    args = line.split()
    opts = dict(zip(args[::2], args[1::2], strict=True))
    shown = f"{opts['priority']}: from {opts.get('from', 'all')}"
    if "to" in opts:
        shown += f" to {opts['to']}"
    return f"{shown} lookup {opts['lookup']}"


@pytest.fixture(scope="module")
def booted(real_build: RealBuild, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The example pipeline run, its image booted with the respun kernel: (console, netfiles)."""
    where = tmp_path_factory.mktemp("real-net")
    shutil.copy(EXAMPLE, where / EXAMPLE.name)
    respin("initrd", "pack", busybox_tree(where / "base"), "-o", where / "initrd-base.img",
           "--compress", "gzip")
    assert BUSYBOX is not None
    shutil.copy(BUSYBOX, where / "busybox")
    respin("run", EXAMPLE.name, cwd=where, env={"SOURCE_DATE_EPOCH": "1700000000"})
    image = where / "_respin" / "initrd-pipeline" / "stages" / "initrd-pack" / "initrd.img"
    respin("initrd", "check", image)
    console = boot(real_build.kernel_image(where), image)
    assert "RESPIN-DONE" in console, console[-4000:]
    return console, where / "_respin" / "initrd-pipeline" / "stages" / "network" / "netfiles"


def test_one_boot_runs_the_respun_kernel_and_the_repacked_image(real_build: RealBuild,
                                                                 booted: tuple[str, Path]) -> None:
    console, _ = booted
    assert "RESPIN-FAILED" not in console, console[-4000:]
    assert marked(console, "UNAME-R") == real_build.kverrel
    assert BUILDID in real_build.kverrel
    running = between(console, "CONFIG")
    for line in REQUESTED_LINES:
        assert line in running, line


def test_the_models_rules_are_in_the_running_kernel(booted: tuple[str, Path]) -> None:
    console, netfiles = booted
    shown = [words(ln) for ln in between(console, "IP-RULE")]
    rule_files = sorted((netfiles / SCRIPTS).glob("rule-*"))
    assert [f.name for f in rule_files] == ["rule-eth0:1"]
    wanted = [rule_as_shown(ln) for ln in file_lines(rule_files[0])]
    # The model: both directions of the alias address, at its priorities, in its named table.
    assert wanted == ["1000: from 198.51.100.10 lookup test", "1001: from all to 198.51.100.10 lookup test"]
    for rule in wanted:
        assert shown.count(rule) == 1, (rule, shown)


def test_the_models_routes_are_in_their_table(booted: tuple[str, Path]) -> None:
    console, netfiles = booted
    route_files = sorted((netfiles / SCRIPTS).glob("route-*"))
    assert [f.name for f in route_files] == ["route-eth0:1"]
    wanted = sorted(ln.removeprefix("table test ") for ln in file_lines(route_files[0]))
    assert "default via 198.51.100.1 dev eth0" in wanted
    assert sorted(words(ln) for ln in between(console, "IP-ROUTE-test")) == wanted
    # The main table keeps the primary gateway: the alias's gateway is only in its table.
    main = [words(ln) for ln in between(console, "IP-ROUTE-main")]
    assert [ln for ln in main if ln.startswith("default")] == ["default via 192.0.2.1 dev eth0"]
    addresses = " ".join(words(ln) for ln in between(console, "IP-ADDR"))
    assert "inet 192.0.2.10/24" in addresses and "scope global eth0 " in addresses + " "
    assert "inet 198.51.100.10/24 brd 198.51.100.255 scope global eth0:1" in addresses


def test_the_image_is_the_example_as_written(booted: tuple[str, Path]) -> None:
    """What booted is what the pipeline file describes: the rendered files in the image."""
    _, netfiles = booted
    image = netfiles.parents[1] / "initrd-pack" / "initrd.img"
    listing = respin("initrd", "list", image).stdout.splitlines()
    for path in sorted(netfiles.rglob("*")):
        if path.is_file():
            assert os.fspath(path.relative_to(netfiles)) in listing, path
