"""`respin makefile` with hostile names: a pipeline file's name or a work dir is data to make and
to the shell its recipes run, never a command."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from respin_cli import assert_one_line_error, respin

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

# Each runs `touch PWNED<n>` if any shell reads it as code (no space: make cannot name one).
HOSTILE_FILE = "k$(touch${IFS}PWNED1)`touch${IFS}PWNED2`&touch${IFS}PWNED3&(x)<y>z.toml"
HOSTILE_WORKDIR = "w$(touch${IFS}PWNED4)`touch${IFS}PWNED5`&><x"


def fake_respin(where: Path) -> Path:
    """A stand-in for respin that writes the words it was given, one per line."""
    script = where / "fake-respin"
    script.write_text('#!/bin/sh\nprintf "%s\\n" "$@" >> "$(dirname "$0")/calls"\n')
    script.chmod(0o755)
    return script


def make(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", "-f", "respin.mk",
                           f"RESPIN={fake_respin(where)}", *args], cwd=where, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=60,
                          env={**os.environ, "MAKEFLAGS": ""})


@pytest.mark.parametrize("workdir", [None, HOSTILE_WORKDIR])
def test_a_hostile_file_name_and_work_dir_run_nothing_through_make(tmp_path: Path,
                                                                     workdir: str | None) -> None:
    settings = f"[pipeline]\nworkdir = '{workdir}'\n\n" if workdir else ""
    pf = tmp_path / HOSTILE_FILE
    pf.write_text(settings + '[example-write]\ntext = "x"\n')
    respin("makefile", pf.name, "-o", "respin.mk", cwd=tmp_path)
    assert make(tmp_path, "-n", "example-upper").returncode == 0
    done = make(tmp_path, "example-upper")
    assert done.returncode == 0, done.stderr
    assert not list(tmp_path.rglob("PWNED*"))
    assert (tmp_path / "calls").read_text().splitlines() == [
        "run", HOSTILE_FILE, "--only", "example-write", "run", HOSTILE_FILE, "--only", "example-upper"]
    stamps = tmp_path / (workdir or f"_respin/{Path(HOSTILE_FILE).stem}") / "stamps"
    assert sorted(p.name for p in stamps.iterdir()) == ["example-upper.stamp", "example-write.stamp"]
    assert "Nothing to be done" in make(tmp_path, "example-upper").stdout


@pytest.mark.parametrize("name", ["a|b.toml", "p.toml)", "~p.toml", "a\nb.toml"])
def test_a_name_make_cannot_carry_is_refused_in_one_line(tmp_path: Path, name: str) -> None:
    pf = tmp_path / name
    pf.write_text('[example-write]\ntext = "x"\n')
    proc = respin("makefile", pf.name, cwd=tmp_path, check=False)
    assert_one_line_error(proc, 2, "make cannot name a path")
    assert proc.stdout == ""
