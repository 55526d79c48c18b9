"""Make integration: the README's example Makefile, run with make, make -n, make -j and make -q."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from respin_cli import REPO, RESPIN, respin

from fixtures.build import build_srpm

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("rpmbuild") is None or shutil.which("make") is None,
                                 reason="rpmbuild and make are needed")]
STAGES = ["fetch", "prep", "config", "diff", "inject", "rebuild", "verify"]

# The example Makefile of the README (a ```make block that runs `respin makefile`); this
# copy is used until the README has it, and must stay identical to it after.
EXAMPLE_MAKEFILE = """\
# respin from make: `make` builds and verifies the respun kernel; `make prep`,
# `make -n`, `make -j8` behave; a second `make` does nothing.
RESPIN ?= respin

all: verify

respin-kernel.mk: kernel.toml
	$(RESPIN) makefile kernel.toml -o $@

include respin-kernel.mk
"""


def readme_example() -> str | None:
    text = (REPO / "README.md").read_text()
    for block in re.findall(r"^```make\n(.*?)^```$", text, re.M | re.S):
        if "$(RESPIN) makefile" in block:
            return str(block)
    return None


def test_readme_example_makefile_is_the_tested_one() -> None:
    assert readme_example() == EXAMPLE_MAKEFILE


@pytest.fixture(scope="module")
def srpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_srpm("kernel-2010", tmp_path_factory.mktemp("srpm"))


def tree(where: Path, srpm: Path, value: str = "-one") -> Path:
    if not (where / srpm.name).exists():
        shutil.copy(srpm, where / srpm.name)
    (where / "kernel.toml").write_text(f"""[pipeline]
target = "i686"
workdir = "_respin"

[fetch]
srpm = "{srpm.name}"

[config]
set = {{ CONFIG_RESPIN_FEATURE_A = "y", CONFIG_LOCALVERSION = "{value}" }}
""")
    (where / "Makefile").write_text(EXAMPLE_MAKEFILE)
    return where


def make(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "--no-print-directory", f"RESPIN={RESPIN}", *args], cwd=where,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
                          env={**os.environ, "MAKEFLAGS": ""})


def stamps(where: Path) -> dict[str, int]:
    return {p.stem: p.stat().st_mtime_ns for p in (where / "_respin/stamps").glob("*.stamp")}


def test_example_makefile_make_then_nothing_then_n_then_j(tmp_path: Path, srpm: Path) -> None:
    tree(tmp_path, srpm)
    # make -n on a fresh tree prints the respin runs in stage order and builds nothing.
    dry = make(tmp_path, "-n")
    assert dry.returncode == 0, dry.stderr
    runs = [ln for ln in dry.stdout.splitlines() if " run kernel.toml --only " in ln]
    assert [ln.rsplit(" ", 1)[1] for ln in runs] == STAGES
    assert not (tmp_path / "_respin/manifest.json").exists()

    first = make(tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert set(stamps(tmp_path)) == set(STAGES)
    manifest = json.loads((tmp_path / "_respin/manifest.json").read_text())
    assert [a for a in manifest["artifacts"] if a["kind"] == "rpm"]

    # A second make does nothing; make -q agrees.
    before = stamps(tmp_path)
    again = make(tmp_path)
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout and "respin" not in again.stdout, again.stdout
    assert make(tmp_path, "-q").returncode == 0
    assert stamps(tmp_path) == before

    # A config change: make -n shows what would run, changes nothing.
    time.sleep(0.01)
    tree(tmp_path, srpm, value="-two")
    dry = make(tmp_path, "-n")
    assert dry.returncode == 0, dry.stderr
    assert [ln.rsplit(" ", 1)[1] for ln in dry.stdout.splitlines() if " --only " in ln] == STAGES
    assert stamps(tmp_path) == before

    # make -j4 reruns; respin itself skips fetch and prep (their inputs did not change).
    par = make(tmp_path, "-j4")
    assert par.returncode == 0, par.stdout + par.stderr
    assert all(stamps(tmp_path)[s] > before[s] for s in STAGES)
    status = json.loads(respin("status", tmp_path / "kernel.toml", "--json").stdout)
    assert all(row["up_to_date"] for row in status)
    assert "fetch: up to date" in par.stderr and "config: running" in par.stderr
    assert make(tmp_path).stdout.count("Nothing to be done") == 1


def test_one_stage_target_runs_only_up_to_it(tmp_path: Path, srpm: Path) -> None:
    tree(tmp_path, srpm)
    done = make(tmp_path, "diff")
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(stamps(tmp_path)) == {"fetch", "prep", "config", "diff"}
    # The stamp of fetch depends on the SRPM: touching it reruns the chain from fetch.
    os.utime(tmp_path / srpm.name)
    dry = make(tmp_path, "-n", "diff")
    assert [ln.rsplit(" ", 1)[1] for ln in dry.stdout.splitlines() if " --only " in ln] == STAGES[:4]


def test_makefile_command_output(tmp_path: Path, srpm: Path) -> None:
    tree(tmp_path, srpm)
    text = respin("makefile", tmp_path / "kernel.toml", "--prefix", "k-", cwd=tmp_path).stdout
    assert ".PHONY: k-fetch k-prep k-config k-diff k-inject k-rebuild k-verify" in text
    assert f"_respin/stamps/fetch.stamp: kernel.toml {srpm.name}\n" in text
    assert "_respin/stamps/prep.stamp: _respin/stamps/fetch.stamp kernel.toml\n" in text
    assert "\t$(RESPIN) $(RESPIN_FLAGS) run kernel.toml --only verify\n" in text
    # An override given here reaches every recipe, so make builds what was asked for.
    text = respin("makefile", tmp_path / "kernel.toml", "--target", "i586", cwd=tmp_path).stdout
    assert "\t$(RESPIN) $(RESPIN_FLAGS) run kernel.toml --target i586 --only verify\n" in text
    assert text.count("--target i586") == 7
    proc = respin("makefile", tmp_path / "kernel.toml", "--target", "x; rm", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--target" in proc.stderr
