"""fetch by package name from a repository: `dnf download --source` against a real local
repository that createrepo_c made around the fixture SRPM."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from respin_cli import assert_one_line_error, respin

from fixtures.build import build_srpm
from respin.stages.kernel.lib.repo import REPO_ID, dnf_download_argv

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("rpmbuild", "createrepo_c", "dnf")),
    reason="rpmbuild, createrepo_c and dnf are needed")]
@pytest.fixture(scope="module")
def srpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_srpm("kernel-2010", tmp_path_factory.mktemp("srpm"))


def make_repo(where: Path, *packages: Path) -> Path:
    repo = where / "repo"
    repo.mkdir(parents=True, exist_ok=True)
    for pkg in packages:
        shutil.copy(pkg, repo / pkg.name)
    subprocess.run(["createrepo_c", "--quiet", str(repo)], check=True, capture_output=True)
    return repo


def pipeline(where: Path, fetch: str) -> Path:
    path = where / "kernel.toml"
    path.write_text(f'[pipeline]\ntarget = "i686"\nworkdir = "work"\n\n[fetch]\n{fetch}\n\n'
                    '[config]\nset = { CONFIG_RESPIN_FEATURE_A = "y" }\n')
    return path


def test_repo_fetch_by_name_from_local_createrepo_c_repository(tmp_path: Path, srpm: Path) -> None:
    make_repo(tmp_path, srpm)
    digest = hashlib.sha256(srpm.read_bytes()).hexdigest()
    pf = pipeline(tmp_path, f'srpm = "kernel"\nrepo = "repo"\nsha256 = "{digest}"')
    manifest = json.loads(respin("run", pf, "--json").stdout)
    assert [s["status"] for s in manifest["stages"]] == ["ran"] * 7
    (fetched,) = [a for a in manifest["artifacts"] if a["kind"] == "source-srpm"]
    assert Path(fetched["path"]).read_bytes() == srpm.read_bytes()
    assert Path(fetched["path"]).is_relative_to(tmp_path / "work")
    assert [a for a in manifest["artifacts"] if a["kind"] == "rpm"]
    # Nothing changed: nothing runs. The repository changes: fetch runs again.
    status = json.loads(respin("status", pf, "--json").stdout)
    assert all(row["up_to_date"] for row in status)
    subprocess.run(["createrepo_c", "--quiet", "--update", "--revision", "2", str(tmp_path / "repo")],
                   check=True, capture_output=True)
    status = json.loads(respin("status", pf, "--json", check=False).stdout)
    assert status[0]["reason"] == "inputs changed"


def test_repo_fetch_file_url_and_version(tmp_path: Path, srpm: Path) -> None:
    repo = make_repo(tmp_path, srpm)
    pf = pipeline(tmp_path, f'srpm = "kernel-2.6.27.5-117"\nrepo = "{repo.as_uri()}"')
    proc = respin("run", pf, "--until", "fetch", "--json")
    (fetched,) = [a for a in json.loads(proc.stdout)["artifacts"] if a["kind"] == "source-srpm"]
    assert Path(fetched["path"]).name == srpm.name


def test_repo_unknown_package_is_one_line_error(tmp_path: Path, srpm: Path) -> None:
    make_repo(tmp_path, srpm)
    proc = respin("run", pipeline(tmp_path, 'srpm = "no-such-kernel"\nrepo = "repo"'), check=False)
    assert_one_line_error(proc, 4, "repo", "no-such-kernel")


def test_repo_not_a_repository_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    proc = respin("run", pipeline(tmp_path, 'srpm = "kernel"\nrepo = "empty"'), check=False)
    assert_one_line_error(proc, 4, "empty", "createrepo_c")


def test_repo_package_name_that_looks_like_an_option_is_refused(tmp_path: Path, srpm: Path) -> None:
    make_repo(tmp_path, srpm)
    proc = respin("run", pipeline(tmp_path, 'srpm = "--help"\nrepo = "repo"'), check=False)
    assert_one_line_error(proc, 3, "--help", "not a package name")


def test_repo_dnf_command_line_uses_only_that_repository(tmp_path: Path) -> None:
    argv = dnf_download_argv("kernel", "file:///srv/repo", tmp_path, tmp_path / "out")
    assert argv[:4] == ["dnf", "download", "--source", "kernel"]
    assert f"--repofrompath={REPO_ID},file:///srv/repo" in argv and f"--repo={REPO_ID}" in argv
    assert "--setopt=reposdir=/nonexistent" in argv
    assert all(str(tmp_path) in a for a in argv if a.startswith(("--setopt=cachedir", "--setopt=logdir",
                                                                  "--setopt=persistdir", "--config")))
