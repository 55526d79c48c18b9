"""CI-job mode, as in a mock chroot or a koji builder: the whole kernel pipeline run by an
unprivileged user (created here), no TTY, no network (a network namespace of its own), a
read-only home, stdin closed, no proxies in the environment, in a work dir the user owns.

Logs are plain lines (no carriage returns, no escape sequences) and `--json` gives the
manifest. The packages are byte-identical to a root run's in another directory.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from respin_cli import RESPIN, respin

from fixtures.build import build_srpm

USER = "respin-ci"

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create the unprivileged user"),
    pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpmbuild is not installed"),
    pytest.mark.skipif(shutil.which("useradd") is None or shutil.which("setpriv") is None,
                       reason="useradd and setpriv are needed"),
]


@pytest.fixture(scope="module")
def ci_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", USER], check=True, capture_output=True)
        return pwd.getpwnam(USER)


@pytest.fixture
def ci_dir(ci_user: pwd.struct_passwd) -> Iterator[Path]:
    # Not under pytest's tmp_path: that is root's and mode 0700.
    top = Path(tempfile.mkdtemp(prefix="respin-ci-", dir="/tmp"))
    os.chmod(top, 0o755)
    work = top / "job"
    work.mkdir()
    os.chown(work, ci_user.pw_uid, ci_user.pw_gid)
    home = top / "home"  # read-only: root's, mode 0555
    home.mkdir(mode=0o555)
    os.chmod(home, 0o555)
    try:
        yield work
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def srpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_srpm("kernel-2010", tmp_path_factory.mktemp("srpm"))


PIPELINE = """[pipeline]
target = "i686"
workdir = "work"

[fetch]
{fetch}

[config]
set = {{ CONFIG_RESPIN_FEATURE_A = "y", CONFIG_LOCALVERSION = "-ci" }}
unset = ["CONFIG_DEBUG_STACKOVERFLOW"]

[rebuild]
mode = "all"
"""


def as_ci_user(user: pwd.struct_passwd, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run respin as the CI user: own network namespace (no network), no TTY, stdin closed,
    read-only HOME, a minimal environment without proxies."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(work.parent / "home"),
           "USER": USER, "LOGNAME": USER, "LANG": "C.UTF-8"}
    argv = ["unshare", "--net", "--",
            "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
            "--reset-env", "--", "env", *(f"{k}={v}" for k, v in env.items()), str(RESPIN), *args]
    return subprocess.run(argv, cwd=work, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          start_new_session=True, timeout=300, env=env)


def copy_for(user: pwd.struct_passwd, src: Path, dest: Path) -> Path:
    shutil.copy(src, dest)
    os.chown(dest, user.pw_uid, user.pw_gid)
    return dest


def test_ci_mode_whole_kernel_pipeline_unprivileged_no_tty_no_network(
        ci_user: pwd.struct_passwd, ci_dir: Path, srpm: Path, tmp_path: Path) -> None:
    local = copy_for(ci_user, srpm, ci_dir / srpm.name)
    pf = ci_dir / "kernel.toml"
    pf.write_text(PIPELINE.format(fetch=f'srpm = "{local.name}"'))
    # The user cannot reach the network from its namespace: prove the setting first.
    probe = subprocess.run(["unshare", "--net", "--", "ip", "-o", "link", "show", "up"],
                           capture_output=True, text=True, check=False)
    assert "eth" not in probe.stdout and "ens" not in probe.stdout

    proc = as_ci_user(ci_user, ci_dir, "run", "kernel.toml", "--json")
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)
    assert [s["status"] for s in manifest["stages"]] == ["ran"] * 7
    # Plain log lines only.
    assert "\r" not in proc.stderr and "\033" not in proc.stderr
    assert all(ln.startswith(("respin: ", "[")) for ln in proc.stderr.splitlines()), proc.stderr
    # Everything it wrote is the CI user's, inside its work dir.
    for art in manifest["artifacts"]:
        path = Path(art["path"])
        assert path.is_relative_to(ci_dir), path
        assert path.stat().st_uid == ci_user.pw_uid, path
    assert not any((ci_dir.parent / "home").iterdir())
    # A second run does nothing.
    again = as_ci_user(ci_user, ci_dir, "run", "kernel.toml", "--json")
    assert again.returncode == 0, again.stderr
    assert {s["status"] for s in json.loads(again.stdout)["stages"]} == {"up to date"}

    # The same pipeline run by root elsewhere gives the same package bytes.
    root_dir = tmp_path / "as-root"
    root_dir.mkdir()
    shutil.copy(srpm, root_dir / srpm.name)
    (root_dir / "kernel.toml").write_text(pf.read_text())
    root_manifest = json.loads(respin("run", root_dir / "kernel.toml", "--json").stdout)
    for kind in ("srpm", "rpm", "patch"):
        ci = sorted(a["sha256"] for a in manifest["artifacts"] if a["kind"] == kind)
        root = sorted(a["sha256"] for a in root_manifest["artifacts"] if a["kind"] == kind)
        assert ci and ci == root, kind


def test_ci_mode_error_is_one_plain_line(ci_user: pwd.struct_passwd, ci_dir: Path) -> None:
    (ci_dir / "kernel.toml").write_text(PIPELINE.format(fetch='srpm = "missing.src.rpm"'))
    proc = as_ci_user(ci_user, ci_dir, "run", "kernel.toml")
    assert proc.returncode == 4, proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("respin: error:")]
    assert len(errors) == 1 and "missing.src.rpm" in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(shutil.which("createrepo_c") is None or shutil.which("dnf") is None,
                    reason="createrepo_c and dnf are needed")
def test_ci_mode_fetch_by_name_from_local_repository(ci_user: pwd.struct_passwd, ci_dir: Path,
                                                     srpm: Path) -> None:
    """dnf as the CI user with a read-only home and no network: cache, logs and state in the work dir."""
    repo = ci_dir / "repo"
    repo.mkdir()
    shutil.copy(srpm, repo / srpm.name)
    subprocess.run(["createrepo_c", "--quiet", str(repo)], check=True, capture_output=True)
    (ci_dir / "kernel.toml").write_text(PIPELINE.format(fetch=f'srpm = "kernel"\nrepo = "{repo.as_uri()}"'))
    proc = as_ci_user(ci_user, ci_dir, "run", "kernel.toml", "--until", "prep", "--json")
    assert proc.returncode == 0, proc.stderr
    (fetched,) = [a for a in json.loads(proc.stdout)["artifacts"] if a["kind"] == "source-srpm"]
    assert Path(fetched["path"]).read_bytes() == srpm.read_bytes()
    assert Path(fetched["path"]).stat().st_uid == ci_user.pw_uid
