"""fixtures/network/initrd-pipeline.toml, run as its comments say, passes its own check.

The commands are read from the file's comments and run as written (with the installed
`respin` first on PATH) in a copy of the fixture directory; then `respin initrd check`
must pass, and GNU cpio and bsdtar must both see every entry (the root entry and the
device nodes from the manifest too) dated SOURCE_DATE_EPOCH.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from respin_cli import REPO, RESPIN, respin

FIXTURES = REPO / "fixtures" / "network"
PIPELINE = FIXTURES / "initrd-pipeline.toml"

pytestmark = [
    pytest.mark.skipif(not (shutil.which("cpio") and shutil.which("bsdtar")),
                       reason="needs GNU cpio and bsdtar"),
    pytest.mark.skipif(shutil.which("busybox") is None,
                       reason="the example copies in the host's busybox (busybox-static)"),
]


def _commands() -> list[str]:
    """The indented command lines of the file's opening comment."""
    found = [m.group(1) for m in re.finditer(r"^#   (\S.*)$", PIPELINE.read_text(), re.M)]
    assert found, "the example's comments give no commands"
    return found


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, int, list[str]]:
    """The example run as its comments say: (its directory, the image, the epoch, the commands)."""
    where = tmp_path_factory.mktemp("example")
    shutil.copy(PIPELINE, where)
    shutil.copytree(FIXTURES / "initrd-base", where / "initrd-base", symlinks=True)
    commands = _commands()
    env = {**os.environ, "PATH": f"{RESPIN.parent}:{os.environ['PATH']}"}
    env.pop("SOURCE_DATE_EPOCH", None)
    for command in commands:
        proc = subprocess.run(["bash", "-c", command], cwd=where, env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, check=False, timeout=600)
        assert proc.returncode == 0, (command, proc.stdout, proc.stderr)
    epoch = int(next(m.group(1) for c in commands if (m := re.search(r"SOURCE_DATE_EPOCH=(\d+)", c))))
    return where, where / "_respin/initrd-pipeline/stages/initrd-pack/initrd.img", epoch, commands


def test_the_example_image_passes_its_own_check(example: tuple[Path, Path, int, list[str]]) -> None:
    where, image, _epoch, commands = example
    proc = respin("initrd", "check", image, cwd=where)
    assert "ok: /init is an executable file" in proc.stdout
    assert any(c.startswith("respin initrd check") for c in commands), "the comments run the check"
    # /init's interpreter is the host's busybox, through the base tree's bin/sh link.
    cat = subprocess.run([str(RESPIN), "initrd", "cat", str(image), "bin/sh"], capture_output=True,
                         stdin=subprocess.DEVNULL, check=True)
    assert cat.stdout == Path(shutil.which("busybox") or "").read_bytes()


def test_every_entry_is_dated_source_date_epoch(example: tuple[Path, Path, int, list[str]]) -> None:
    _where, image, epoch, _commands = example
    # bsdtar turns the image into a tar, whose headers keep each mtime to the second.
    tar = subprocess.run(["bsdtar", "-cf", "-", "--format=ustar", f"@{image}"], capture_output=True,
                         stdin=subprocess.DEVNULL, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        mtimes = {m.name: int(m.mtime) for m in archive.getmembers()}
    assert {n: t for n, t in mtimes.items() if t != epoch} == {}
    for name in (".", "dev/console", "dev/null", "init", "etc/hostname"):
        assert name in mtimes, (name, sorted(mtimes))
    # GNU cpio's long listing: the same date on every line (day resolution, UTC).
    listing = subprocess.run(["cpio", "-itv", "--quiet"], input=gzip.decompress(image.read_bytes()),
                             capture_output=True, check=True, env={**os.environ, "TZ": "UTC"}).stdout.decode()
    dates = {(m.group(2), m.group(1)) for m in re.finditer(r" (\w{3} +\d+ +\d{4}) (\S+)", listing)}
    assert len(dates) == len(mtimes)
    day = time.gmtime(epoch)
    want = f"{time.strftime('%b', day)} {day.tm_mday} {day.tm_year}"
    assert {name: " ".join(d.split()) for name, d in dates if " ".join(d.split()) != want} == {}
