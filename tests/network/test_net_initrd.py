"""netfiles into an initrd: the network stage's tree, laid over an initrd tree and packed
with the initrd writer, read back by GNU cpio.

This test does initrd-modify's part by hand (copy the tree over an initrd
tree, then pack), so the hand-off format is proven with the real writer alone;
test_net_initrd_pipeline.py runs the real stages through `respin run`.
"""

from __future__ import annotations

import gzip
import logging
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from respin.pipeline.stage import Context
from respin.stages.network.network import NetworkStage

writer = pytest.importorskip("respin.stages.initrd.lib.writer", reason="the initrd writer is not available")

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "network"

pytestmark = pytest.mark.skipif(shutil.which("cpio") is None, reason="GNU cpio is not installed")


def test_net_netfiles_packed_into_initrd_read_back_by_cpio(tmp_path: Path) -> None:
    table = dict(tomllib.loads((FIXTURES / "net.toml").read_text())["network"])
    stage = NetworkStage.from_table(table, "net.toml [network]")
    source = tmp_path / "net.toml"
    source.write_text("")
    ctx = Context(workdir=tmp_path / "work", source=source, settings={},
                  stagedir=tmp_path / "work" / "stages" / "network", log=logging.getLogger("test"))
    ctx.stagedir.mkdir(parents=True)
    (netfiles,) = [a for a in stage.run(ctx) if a.kind == "netfiles"]

    # An initrd tree as extracted, then the netfiles laid over it (what initrd-modify does).
    tree = tmp_path / "initrd-tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "init").write_text("#!/bin/sh\nexec /sbin/init\n")
    (tree / "init").chmod(0o755)
    shutil.copytree(netfiles.path, tree, dirs_exist_ok=True)

    image = tmp_path / "initrd.img"
    writer.pack(tree, image, compress="gzip", epoch=1700000000)

    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["cpio", "-i", "-d", "--quiet", "--no-absolute-filenames"], cwd=out,
                   input=gzip.decompress(image.read_bytes()), check=True, capture_output=True)
    for rel in netfiles.meta["files"]:
        got = out / rel
        assert got.read_bytes() == (netfiles.path / rel).read_bytes(), rel
        assert got.stat().st_mode & 0o777 == (netfiles.path / rel).stat().st_mode & 0o777
    assert (out / "init").is_file()
