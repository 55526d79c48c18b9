"""What a change reruns, on the kernel fixture: only the stages it decides."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from respin_cli import respin

from fixtures.build import build_srpm

pytestmark = pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpmbuild is not installed")


@pytest.fixture(scope="module")
def srpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_srpm("kernel-2010", tmp_path_factory.mktemp("srpm"))


def test_another_target_reruns_what_builds_not_fetch(tmp_path: Path, srpm: Path) -> None:
    pf = tmp_path / "kernel.toml"
    pf.write_text(f'[pipeline]\ntarget = "i686"\n\n[fetch]\nsrpm = "{srpm}"\n\n'
                  '[config]\nset = { CONFIG_RESPIN_FEATURE_A = "y" }\n')
    respin("run", pf, "--until", "prep")
    rows = {r["stage"]: r["reason"] for r in json.loads(respin("status", pf, "--target", "x86_64", "--json",
                                                               check=False).stdout)}
    assert rows["fetch"] == "up to date"
    assert rows["prep"] == "[pipeline] settings changed"
    again = respin("run", pf, "--until", "prep", "--target", "x86_64")
    assert "fetch: up to date" in again.stderr and "prep: running" in again.stderr
    # [pipeline] define does reach fetch (the dist macros of rpm -i).
    pf.write_text(pf.read_text().replace("[fetch]", 'define = { dist = ".fc10" }\n\n[fetch]'))
    assert "fetch: running ([pipeline] settings changed)" in respin("run", pf, "--until", "fetch").stderr


def test_fetch_leaves_no_rpm_database_behind(tmp_path: Path, srpm: Path) -> None:
    pf = tmp_path / "kernel.toml"
    pf.write_text(f'[pipeline]\ntarget = "i686"\n\n[fetch]\nsrpm = "{srpm}"\n\n'
                  '[config]\nset = { CONFIG_RESPIN_FEATURE_A = "y" }\n')
    respin("run", pf, "--until", "fetch")
    fetch = tmp_path / "_respin/kernel/stages/fetch"
    assert fetch.is_dir() and not (fetch / "home").exists()
    assert not [p for p in fetch.rglob("*") if "rpmdb" in p.name.lower()]
