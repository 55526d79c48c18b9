"""An entry-count bomb: a small image of very many empty files. Every command that reads an
image stops at --max-entries (default 1000000) in one line, before it keeps more, and the
memory an entry costs stays small."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from initrd_util import many_files_image
from respin_cli import RESPIN, assert_one_line_error, respin

from respin.pipeline.errors import ConfigError, InputError
from respin.pipeline.stage import Context
from respin.stages.initrd.extract import ExtractStage

BOUND = 500


@pytest.fixture(scope="module")
def just_over(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The directory and BOUND files: one entry over the bound.
    return many_files_image(tmp_path_factory.mktemp("bomb") / "over.img", BOUND)


@pytest.mark.parametrize("command", [["list"], ["list", "--long"], ["cat", "@", "d/0000001"],
                                     ["check"], ["extract", "@", "OUT"]])
def test_every_reading_command_stops_one_entry_over_the_bound(
        tmp_path: Path, just_over: Path, command: list[str]) -> None:
    argv = [str(just_over) if a == "@" else str(tmp_path / "out") if a == "OUT" else a for a in command]
    if "@" not in command:
        argv.append(str(just_over))
    proc = respin("initrd", *argv, "--max-entries", str(BOUND), check=False)
    assert_one_line_error(proc, 4, f"{just_over}: more than {BOUND} entries", "--max-entries")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.iterdir()), "no temp dir left beside the target"
    # One more raises the bound enough.
    respin("initrd", *argv, "--max-entries", str(BOUND + 1))


@pytest.mark.parametrize("value", ["abc", "0", "-5", "1e6", "x" * 3000])
def test_a_bad_max_entries_is_a_bad_value(just_over: Path, value: str) -> None:
    proc = respin("initrd", "list", just_over, "--max-entries", value, check=False)
    assert_one_line_error(proc, 3, "--max-entries")
    assert len(proc.stderr) < 500


def test_the_extract_stage_takes_max_entries(tmp_path: Path, just_over: Path) -> None:
    def ctx() -> Context:
        return Context(workdir=tmp_path / "w", source=tmp_path / "p.toml", settings={},
                       stagedir=tmp_path / "w/stages/initrd-extract", log=logging.getLogger("t"),
                       produced={})
    stage = ExtractStage.from_table({"image": str(just_over), "max_entries": BOUND}, "p.toml")
    with pytest.raises(InputError, match=f"more than {BOUND} entries"):
        stage.run(ctx())
    assert not (tmp_path / "w/stages/initrd-extract/tree").exists()
    with pytest.raises(ConfigError, match=r"p\.toml: max_entries: 0: want a positive whole number"):
        ExtractStage.from_table({"image": str(just_over), "max_entries": 0}, "p.toml")
    ExtractStage.from_table({"image": str(just_over), "max_entries": BOUND + 1}, "p.toml").run(ctx())


_MAXRSS = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def _peak_kib(*argv: str | Path) -> int:
    proc = subprocess.run([sys.executable, "-c", _MAXRSS, str(RESPIN), *map(str, argv)],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_memory_per_entry_stays_small(tmp_path: Path) -> None:
    """Memory grows by little per entry, against a 10-entry image: 50000 entries checked,
    10000 extracted (with the record of what was written). A million entries then stay
    in a few hundred megabytes, where they took gigabytes."""
    small = many_files_image(tmp_path / "small.img", 10)
    read = many_files_image(tmp_path / "read.img", 50_000)
    base = _peak_kib("initrd", "check", small)
    peak = _peak_kib("initrd", "check", read)
    # An entry's path, kind and mode: well under 400 bytes each.
    assert (peak - base) * 1024 < 50_000 * 400, (base, peak)
    written = many_files_image(tmp_path / "written.img", 10_000)
    # On a tmpfs where there is one: 10000 file creations on a busy disk take many seconds.
    shm = Path("/dev/shm")
    where = Path(tempfile.mkdtemp(dir=shm if os.access(shm, os.W_OK) else tmp_path))
    try:
        base = _peak_kib("initrd", "extract", small, where / "a")
        peak = _peak_kib("initrd", "extract", written, where / "b")
    finally:
        shutil.rmtree(where)
    assert (peak - base) * 1024 < 10_000 * 400, (base, peak)
