"""The README's set-up commands: what `make demo`, `make test` and `make install` do to a host.

`make demo` installs only what the demo runs; neither target masks, starts or
reconfigures a service; on a host booted with systemd, a package whose
install would start a daemon (NetworkManager) is left out unless asked for;
the tests' example plugin never lands in the user's venv; `make install`
puts a working `respin` on PATH.  Each is checked with the real make: a dry
run (`make -n`) of the real Makefile, and a real install into a temp prefix.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_PY = Path(sys.executable)

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

DAEMON_PACKAGES = ("network-manager", "NetworkManager")
TEST_ONLY = ("qemu-system-x86", "linux-image-amd64", "busybox-static", "dnf", "createrepo-c", "nftables",
             "linux-source-6.1", "libkrb5-dev")


def dry_run(target: str, *variables: str, cwd: Path | None = None) -> str:
    """`make -n TARGET` in a copy of the Makefile with no stamp made yet, as on a fresh clone."""
    where = cwd or REPO
    proc = subprocess.run(["make", "-n", "-f", str(REPO / "Makefile"), "-C", str(where), target, *variables],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, check=True,
                          env={**os.environ, "MAKEFLAGS": ""})
    return proc.stdout


def apt_packages(out: str) -> list[str]:
    """The packages a dry run would check for and install with apt-get."""
    lists = re.findall(r"for p in ([^;]*); do dpkg -s", out)
    return [name for names in lists for name in names.split()]


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    """A directory holding the files make's rules depend on, and no stamp."""
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    return tmp_path


def test_demo_installs_only_what_the_demo_needs(fresh: Path) -> None:
    packages = apt_packages(dry_run(".stamp-demodeps", cwd=fresh))
    assert {"rpm", "python3-rpm", "patch"} <= set(packages)
    assert not set(packages) & {*TEST_ONLY, *DAEMON_PACKAGES}


def test_no_target_touches_a_service(fresh: Path) -> None:
    for target in ("demo", "test", "check", "install", "bench"):
        out = dry_run(target, cwd=fresh)
        assert "systemctl" not in out, target
        assert "policy-rc.d" not in out, target


def test_tests_install_the_daemon_only_off_a_systemd_host(fresh: Path) -> None:
    assert "network-manager" in apt_packages(dry_run(".stamp-testdeps", "INSTALL_SERVICES=1", cwd=fresh))
    out = dry_run(".stamp-testdeps", "INSTALL_SERVICES=", cwd=fresh)
    assert "network-manager" not in apt_packages(out)
    assert set(TEST_ONLY) <= set(apt_packages(out))
    assert "make test INSTALL_SERVICES=1" in out


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="faking a systemd-booted /run needs a mount namespace (root)")
def test_a_host_booted_with_systemd_is_detected(fresh: Path) -> None:
    # A private /run holding what systemd makes at boot: the Makefile's own test of the host.
    script = ("mount -t tmpfs respin /run && mkdir -p /run/systemd/system && "
              f"exec make -n -f {REPO / 'Makefile'} -C {fresh} .stamp-testdeps")
    proc = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL,
                          env={**os.environ, "MAKEFLAGS": ""})
    assert "not installed: network-manager" in proc.stdout
    assert "network-manager" not in apt_packages(proc.stdout)
    assert "qemu-system-x86" in apt_packages(proc.stdout)


@pytest.mark.slow
def test_the_example_plugin_is_not_in_the_users_venv() -> None:
    # The tests put it on PYTHONPATH for themselves; without that, respin lists only its own.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(VENV_PY.with_name("respin")), "stages"], capture_output=True, text=True,
                          env=env, check=True, stdin=subprocess.DEVNULL)
    assert "fetch" in proc.stdout
    assert "example" not in proc.stdout
    shown = subprocess.run([str(VENV_PY), "-m", "pip", "show", "respin-example-plugin"],
                           capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert shown.returncode != 0


def test_readme_first_screen_says_where_respin_is() -> None:
    first = "\n".join((REPO / "README.md").read_text().splitlines()[:40])
    assert ".venv/bin/respin" in first
    assert "make install" in first
    assert "INSTALL_SERVICES" in first


@pytest.mark.slow
def test_the_wheel_holds_one_package_named_respin(tmp_path: Path) -> None:
    # The folders stay at the top of the checkout; the wheel maps them under respin/. Built
    # from a copy: setuptools leaves build/ and *.egg-info beside the sources.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("respin", "pipeline", "stages"):
        shutil.copytree(REPO / name, src / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    proc = subprocess.run([str(VENV_PY), "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), str(src)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(next(tmp_path.glob("respin-*.whl"))) as wheel:
        names = wheel.namelist()
        entry_points = wheel.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt")))
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"respin"}
    for module in ("__init__.py", "__main__.py", "py.typed", "pipeline/runner.py", "pipeline/py.typed",
                   "stages/kernel/config.py", "stages/initrd/lib/newc.py", "stages/network/lib/model.py"):
        assert f"respin/{module}" in names
    # Every module of the two folders is in it, and nothing from tests/, fixtures/ or bench/.
    ours = {f"respin/{p.relative_to(REPO).as_posix()}" for d in ("pipeline", "stages")
            for p in (REPO / d).rglob("*.py") if "__pycache__" not in p.parts}
    assert ours <= set(names)
    assert not [n for n in names if n.split("/")[1:2] in (["tests"], ["fixtures"], ["bench"])]
    text = entry_points.decode()
    assert "respin = respin.pipeline.cli:main" in text
    assert re.findall(r"^\S+ = (\S+):", text, flags=re.M) and all(
        v.startswith("respin.") for v in re.findall(r"^\S+ = (\S+):", text, flags=re.M))


@pytest.mark.slow
def test_make_install_puts_respin_on_path(tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MAKEFLAGS")}
    proc = subprocess.run(["make", "-C", str(REPO), "install", f"PREFIX={prefix}"], capture_output=True,
                          text=True, env=env, stdin=subprocess.DEVNULL, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"installed: {prefix}/bin/respin" in proc.stdout
    tool = prefix / "bin" / "respin"
    env["PATH"] = f"{prefix / 'bin'}:{env['PATH']}"
    stages = subprocess.run(["respin", "stages"], capture_output=True, text=True, env=env, check=True,
                            stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert "fetch" in stages.stdout and "example" not in stages.stdout
    assert shutil.which("respin", path=env["PATH"]) == str(tool)
    # A regular install, not a path back into this checkout, under the one name `respin`.
    site = next((prefix / "share/respin/venv/lib").glob("python3*/site-packages"))
    runner = site / "respin" / "pipeline" / "runner.py"
    assert runner.is_file() and not runner.is_symlink() and not (site / "respin" / "pipeline").is_symlink()
    assert not (site / "pipeline").exists() and not (site / "stages").exists()
    # The API a script needs, and every entry point, load from the installed copy alone.
    script = ("import importlib.metadata as md, respin\n"
              "eps = [ep for g in ('respin.stages', 'respin.commands', 'respin.pipelines')\n"
              "       for ep in md.entry_points(group=g) if ep.dist.name == 'respin']\n"
              "assert all(ep.value.startswith('respin.') and ep.load() for ep in eps), eps\n"
              "print(respin.__file__, respin.Runner.__module__, respin.load.__module__, len(eps),\n"
              "      respin.RespinError.__module__)\n")
    api = subprocess.run([str(prefix / "share/respin/venv/bin/python"), "-c", script], capture_output=True,
                         text=True, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert api.returncode == 0, api.stderr
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    count = sum(len(declared[g]) for g in ("respin.stages", "respin.commands", "respin.pipelines"))
    assert api.stdout.split() == [str(site / "respin" / "__init__.py"), "respin.pipeline.runner",
                                  "respin.pipeline.pipelinefile", str(count), "respin.pipeline.errors"]
    subprocess.run(["make", "-C", str(REPO), "uninstall", f"PREFIX={prefix}"], capture_output=True,
                   env=env, check=True, stdin=subprocess.DEVNULL)
    assert not tool.exists() and not (prefix / "share/respin").exists()
