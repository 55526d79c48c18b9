"""The issue's example into an initrd, end to end through the installed `respin` command.

fixtures/network/initrd-pipeline.toml runs network -> initrd-extract ->
initrd-modify (the "netfiles" tree merged into the image's root) ->
initrd-pack on a base image packed first from fixtures/network/initrd-base.
The result is read back by GNU cpio and by `respin initrd list` / `cat`.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from respin_cli import RESPIN

from respin.pipeline.errors import ConfigError
from respin.pipeline.stage import Artifact, Context
from respin.stages.initrd.modify import ModifyStage

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "fixtures" / "network"
GOLDEN = Path(__file__).resolve().parent / "golden" / "net" / "initscripts"
PIPELINE = "initrd-pipeline.toml"
EPOCH = "1700000000"

RENDERED = [
    "etc/iproute2/rt_tables.d/test.conf",
    "etc/sysconfig/network-scripts/ifcfg-eth0",
    "etc/sysconfig/network-scripts/ifcfg-eth0:1",
    "etc/sysconfig/network-scripts/route-eth0:1",
    "etc/sysconfig/network-scripts/rule-eth0:1",
]
BASE = ["init", "etc/hostname", "etc/sysconfig/network-scripts/ifcfg-lo", "dev", "dev/fd", "bin", "bin/sh",
        "bin/busybox"]
BASE_NODES = {"dev/console": "crw-------", "dev/null": "crw-rw-rw-"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio is not installed"),
    pytest.mark.skipif(shutil.which("busybox") is None,
                       reason="the example copies in the host's busybox (busybox-static)"),
]


def _respin(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    """Run the installed command as a user would, SOURCE_DATE_EPOCH fixed; fail loudly."""
    proc = subprocess.run([str(RESPIN), *map(str, args)], cwd=cwd, capture_output=True,
                          stdin=subprocess.DEVNULL, env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH},
                          check=False, timeout=300)
    assert proc.returncode == 0, (args, proc.stdout.decode(), proc.stderr.decode())
    return proc


def _build(where: Path) -> Path:
    """Copy the pipeline file into `where`, pack the base image beside it, run; the image."""
    where.mkdir()
    shutil.copy(FIXTURES / PIPELINE, where / PIPELINE)
    shutil.copy(shutil.which("busybox") or "busybox", where / "busybox")  # as the file's comments say
    _respin("initrd", "pack", FIXTURES / "initrd-base", "-o", "initrd-base.img", cwd=where)
    proc = _respin("run", PIPELINE, cwd=where)
    ran = [line for line in proc.stderr.decode().splitlines() if ": running " in line]
    assert len(ran) == 4, proc.stderr.decode()
    image = where / "_respin" / "initrd-pipeline" / "stages" / "initrd-pack" / "initrd.img"
    assert image.is_file()
    return image


def _golden(rel: str) -> bytes:
    """The golden file with the header naming this pipeline file's [network] table."""
    head, _, rest = (GOLDEN / rel).read_bytes().partition(b"\n")
    assert head == b"# Written by respin from net.toml: edit that model, not this file."
    return f"# Written by respin from {PIPELINE} [network]: edit that model, not this file.\n".encode() + rest


def _golden_modes() -> dict[str, str]:
    modes = {}
    for line in (GOLDEN / "MODES").read_text().splitlines():
        mode, rel = line.split(" ", 1)
        modes[rel] = mode
    return modes


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The pipeline run once in its own directory: (that directory, the image)."""
    where = tmp_path_factory.mktemp("net-initrd") / "a"
    return where, _build(where)


def test_net_initrd_pipeline_cpio_lists_rendered_and_base_files(built: tuple[Path, Path]) -> None:
    _where, image = built
    data = image.read_bytes()
    assert data[:2] == b"\x1f\x8b", "initrd-pack was asked for gzip"
    proc = subprocess.run(["cpio", "-it", "--quiet"], input=gzip.decompress(data), capture_output=True,
                          check=True, timeout=60)
    names = proc.stdout.decode().splitlines()
    for rel in [*RENDERED, *BASE, *BASE_NODES]:
        assert rel in names, (rel, names)
    assert len(names) == len(set(names)), "an entry is in the archive twice"


def test_net_initrd_pipeline_respin_list_and_cat(built: tuple[Path, Path]) -> None:
    where, image = built
    listing = _respin("initrd", "list", "--long", image, cwd=where).stdout.decode()
    by_name = {line.split(" -> ")[0].rsplit(" ", 1)[1]: line for line in listing.splitlines()}
    modes = _golden_modes()
    for rel in RENDERED:
        assert rel in by_name, (rel, listing)
        line = by_name[rel]
        # Regular file, the rendered mode, owned by root.
        assert line.split()[0] == stat.filemode(stat.S_IFREG | int(modes[rel], 8)), line
        assert line.split()[2:4] == ["0", "0"], line
        got = _respin("initrd", "cat", image, rel, cwd=where).stdout
        assert got == _golden(rel), rel
    # What the trap would look like: no GATEWAY= in the alias's ifcfg (it would replace the
    # main default route); the second gateway is only in its table.
    alias = _respin("initrd", "cat", image, "etc/sysconfig/network-scripts/ifcfg-eth0:1", cwd=where).stdout
    assert b"GATEWAY" not in alias
    # The base image is intact: its files, their content, and the device nodes its
    # manifest carried through extract and modify.
    for rel in BASE:
        assert rel in by_name, (rel, listing)
    for rel, mode in BASE_NODES.items():
        assert by_name[rel].split()[0] == mode, by_name[rel]
    assert by_name["dev/fd"].endswith("dev/fd -> /proc/self/fd")
    for rel in ("init", "etc/hostname", "etc/sysconfig/network-scripts/ifcfg-lo"):
        got = _respin("initrd", "cat", image, rel, cwd=where).stdout
        assert got == (FIXTURES / "initrd-base" / "main" / rel).read_bytes(), rel
    assert by_name["init"].startswith("-rwxr-xr-x"), by_name["init"]
    # Nothing else crept in (no staging record: the initrd gets the rendered files only).
    assert sorted(by_name) == sorted({".", *RENDERED, *BASE, *BASE_NODES, "etc", "etc/iproute2",
                                      "etc/iproute2/rt_tables.d", "etc/sysconfig",
                                      "etc/sysconfig/network-scripts"})


def test_net_initrd_pipeline_second_run_runs_nothing(built: tuple[Path, Path]) -> None:
    where, image = built
    before = image.read_bytes()
    proc = _respin("run", "--json", PIPELINE, cwd=where)
    report = json.loads(proc.stdout)
    assert [(s["name"], s["status"]) for s in report["stages"]] == [
        ("network", "up to date"), ("initrd-extract", "up to date"),
        ("initrd-modify", "up to date"), ("initrd-pack", "up to date")]
    assert "nothing to do" in proc.stderr.decode()
    assert image.read_bytes() == before


def test_net_initrd_pipeline_is_reproducible_in_a_second_work_dir(built: tuple[Path, Path]) -> None:
    where, image = built
    other = _build(where.parent / "b")
    assert other != image
    assert other.read_bytes() == image.read_bytes()



def test_net_initrd_modify_refuses_to_merge_netfiles_through_a_symlink(tmp_path: Path) -> None:
    """An image whose etc is a symlink leading out of the tree: merging the netfiles root
    into it must not write through the link (as root that could be the host's /etc)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    tree = tmp_path / "extract" / "tree"
    tree.mkdir(parents=True)
    (tree / "etc").symlink_to(outside)
    netfiles = tmp_path / "netfiles"
    (netfiles / "etc" / "iproute2" / "rt_tables.d").mkdir(parents=True)
    (netfiles / "etc" / "iproute2" / "rt_tables.d" / "test.conf").write_text("1\ttest\n")
    produced = {"network": [Artifact(netfiles, "netfiles")],
                "initrd-extract": [Artifact(tree, "tree")]}
    stage = ModifyStage.from_table({"add": {"/": "@netfiles"}}, "p.toml [initrd-modify]")
    ctx = Context(workdir=tmp_path / "work", source=tmp_path / "p.toml", settings={},
                  stagedir=tmp_path / "work" / "stages" / "initrd-modify",
                  log=logging.getLogger("test"), produced=produced)
    ctx.stagedir.mkdir(parents=True)
    with pytest.raises(ConfigError, match="is a symlink in the tree"):
        stage.run(ctx)
    assert list(outside.iterdir()) == []
    assert not (ctx.stagedir / "tree").exists()
