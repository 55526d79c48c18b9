"""`respin status`: what it says after a touch, a failure and during a run; its exit status."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from respin_cli import RESPIN, assert_one_line_error, respin

from fixtures.build import build_srpm

FETCH_ONLY = '[pipeline]\nstages = ["fetch"]\nworkdir = "work"\n\n[fetch]\nsrpm = "{srpm}"\n'


@pytest.fixture(scope="module")
def srpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("rpmbuild") is None:
        pytest.skip("rpmbuild is not installed")
    return build_srpm("kernel-2010", tmp_path_factory.mktemp("srpm"))


def fetch_only(tmp_path: Path, srpm: Path) -> tuple[Path, Path]:
    given = Path(shutil.copy(srpm, tmp_path / "kernel.src.rpm"))
    pf = tmp_path / "kernel.toml"
    pf.write_text(FETCH_ONLY.format(srpm=given))
    return pf, given


def test_status_exits_0_up_to_date_and_1_when_something_would_run(tmp_path: Path, srpm: Path) -> None:
    pf, _ = fetch_only(tmp_path, srpm)
    pending = respin("status", pf, check=False)
    assert (pending.returncode, pending.stdout) == (1, "fetch  never ran\n"), pending.stderr
    assert respin("status", pf, "--json", check=False).returncode == 1
    respin("run", pf)
    done = respin("status", pf, check=False)
    assert (done.returncode, done.stdout) == (0, "fetch  up to date\n"), done.stderr
    assert json.loads(respin("status", pf, "--json").stdout)[0]["up_to_date"]


def test_touching_the_srpm_leaves_fetch_up_to_date(tmp_path: Path, srpm: Path) -> None:
    pf, given = fetch_only(tmp_path, srpm)
    respin("run", pf)
    later = time.time() + 100
    os.utime(given, (later, later))  # the same bytes, a new mtime
    proc = respin("status", pf, check=False)
    assert (proc.returncode, proc.stdout) == (0, "fetch  up to date\n"), proc.stdout
    assert "nothing to do" in respin("run", pf).stderr


def test_a_stage_that_failed_says_failed_and_when(tmp_path: Path, srpm: Path) -> None:
    pf, given = fetch_only(tmp_path, srpm)
    given.write_bytes(srpm.read_bytes() + b"trailing garbage\n")
    before = time.gmtime(int(time.time()))
    assert respin("run", pf, check=False).returncode == 4
    proc = respin("status", pf, check=False)
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"fetch  failed at {time.strftime('%Y-%m-%d', before)} "), proc.stdout
    assert proc.stdout.rstrip().endswith(" UTC")
    shutil.copy(srpm, given)
    respin("run", pf)
    assert respin("status", pf).stdout == "fetch  up to date\n"


def test_status_during_a_run_says_a_run_holds_the_lock(tmp_path: Path, srpm: Path) -> None:
    pf, _ = fetch_only(tmp_path, srpm)
    # A run held at its first command: rpm waits for a file the test makes last.
    shim = tmp_path / "bin"
    shim.mkdir()
    go = tmp_path / "go"
    real = shutil.which("rpm")
    (shim / "rpm").write_text(f'#!/bin/sh\nwhile [ ! -e "{go}" ]; do sleep 0.05; done\nexec {real} "$@"\n')
    (shim / "rpm").chmod(0o755)
    env = {**os.environ, "PATH": f"{shim}:{os.environ['PATH']}"}
    run = subprocess.Popen([str(RESPIN), "run", str(pf)], env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "work/stages/fetch/srpm").exists():
            assert time.monotonic() < deadline and run.poll() is None, "the run never started fetch"
            time.sleep(0.05)
        proc = respin("status", pf, check=False)
        assert_one_line_error(proc, 7, f"{tmp_path}/work: a respin run holds this work dir's lock")
        assert proc.stdout == ""
    finally:
        go.touch()
        try:
            run.wait(timeout=60)
        finally:
            run.kill()  # after wait: only when it did not end
    assert run.returncode == 0, run.stderr
    assert respin("status", pf).stdout == "fetch  up to date\n"
