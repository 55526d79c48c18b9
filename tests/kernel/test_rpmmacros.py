"""One set of rpm macros for the whole run.

Every rpm and rpmbuild call of a run gets the same definitions: [pipeline]
define, and, when the host's rpm defines no %dist (Debian's does not), the
%dist and %fedora/%rhel the SRPM was made for. No call reads the user's
~/.rpmmacros. Checked on the current-layout fixture built as a Fedora 37
package, through prep's record of the spec's macros, the rebuilt packages'
headers and the changelog the rebuilt spec carries.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from respin_cli import respin

from fixtures.build import build_srpm
from respin.stages.kernel.lib.rpmpkg import read_package

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpmbuild is not installed")]
@pytest.fixture(scope="module")
def fc37(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture kernel as Fedora 37 made it: kernel-6.1.0-200.fc37.src.rpm."""
    srpm = build_srpm("kernel-current", tmp_path_factory.mktemp("fc37"), defines={"dist": ".fc37"})
    assert read_package(srpm).release == "200.fc37"
    return srpm


def pipeline(where: Path, srpm: Path, define: str = "") -> Path:
    path = where / "kernel.toml"
    path.write_text(f'[pipeline]\ntarget = "x86_64"\nworkdir = "work"\n{define}\n[fetch]\nsrpm = "{srpm}"\n\n'
                    '[config]\nset = { CONFIG_RESPIN_FEATURE_A = "y" }\n\n'
                    '[rebuild]\nwithout = ["debug"]\nmode = "all"\n')
    return path


def run(pf: Path, home: Path) -> tuple[dict[str, Any], str]:
    proc = respin("run", pf, "--json", env={"HOME": str(home)})
    return json.loads(proc.stdout), proc.stderr


def meta(manifest: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(a["meta"] for a in manifest["artifacts"] if a["kind"] == kind)


def releases(manifest: dict[str, Any]) -> set[str]:
    return {read_package(Path(a["path"])).release for a in manifest["artifacts"]
            if a["kind"] in ("rpm", "srpm")}


def changelog_top(srpm: Path) -> str:
    out = subprocess.run(["rpm", "-qp", "--changelog", str(srpm)], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0]


def home_with_rpmmacros(where: Path) -> Path:
    """A HOME whose ~/.rpmmacros would change the build if anything read it."""
    home = where / "home"
    home.mkdir()
    (home / ".rpmmacros").write_text("%dist .el9\n%rhel 9\n%buildid .fromhome\n")
    return home


def test_the_srpms_dist_reaches_every_call_and_rpmmacros_none(tmp_path: Path, fc37: Path) -> None:
    manifest, log = run(pipeline(tmp_path, fc37), home_with_rpmmacros(tmp_path))
    assert "rpm here defines no %dist" in log and "%dist .fc37" in log and "%fedora 37" in log
    # prep saw the spec as rpmbuild evaluated it with those macros, and nothing from ~/.rpmmacros.
    macros = meta(manifest, "kconfig-snapshot")["macros"]
    assert macros["dist"] == ".fc37" and macros["fedora"] == "37" and "rhel" not in macros
    assert "buildid" not in macros
    # The rebuilt SRPM and RPM keep .fc37, marked before it; the changelog names that release.
    assert releases(manifest) == {"200.respin.fc37"}
    srpm = next(Path(a["path"]) for a in manifest["artifacts"] if a["kind"] == "srpm")
    assert changelog_top(srpm).endswith("6.1.0-200.respin.fc37")


def test_pipeline_define_wins_and_reaches_every_call(tmp_path: Path, fc37: Path) -> None:
    pf = pipeline(tmp_path, fc37, define='define = { dist = ".fc99", fedora = "99" }\n')
    manifest, log = run(pf, home_with_rpmmacros(tmp_path))
    assert "defines no %dist" not in log
    macros = meta(manifest, "kconfig-snapshot")["macros"]
    assert macros["dist"] == ".fc99" and macros["fedora"] == "99"
    assert releases(manifest) == {"200.respin.fc99"}


def test_a_package_without_a_dist_gets_none(tmp_path: Path) -> None:
    srpm = build_srpm("kernel-current", tmp_path / "plain")
    manifest, log = run(pipeline(tmp_path, srpm), home_with_rpmmacros(tmp_path))
    assert "defines no %dist" not in log
    assert releases(manifest) == {"200.respin"}
