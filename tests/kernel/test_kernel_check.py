"""The check pass: what a pipeline file gets wrong is found before the first stage runs, every
problem at once, by `respin check FILE` (which runs nothing) and by `respin run` (which then
starts no stage)."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from respin_cli import assert_one_line_error, respin

from fixtures.build import build_srpm
from respin.pipeline.errors import ConfigError, InputError

pytestmark = pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpmbuild is not installed")
STAGES = ["fetch", "sign", "prep", "config", "diff", "inject", "rebuild", "verify", "publish"]


@pytest.fixture(scope="module")
def current(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_srpm("kernel-current", tmp_path_factory.mktemp("kernel-current"))


@pytest.fixture(scope="module")
def old(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_srpm("kernel-2010", tmp_path_factory.mktemp("kernel-2010"))


def pipeline(where: Path, srpm: Path | str, *, config: str = 'set = { CONFIG_RESPIN_FEATURE_A = "y" }\n',
             rebuild: str = 'without = ["debug"]\n', stages: list[str] | None = None,
             extra: str = "", target: str = "x86_64") -> Path:
    """A pipeline file on the fixture SRPM; `extra` adds tables ([sign], [publish])."""
    order = f"stages = {json.dumps(stages)}\n" if stages else ""
    path = where / "kernel.toml"
    path.write_text(f'[pipeline]\ntarget = "{target}"\nworkdir = "work"\n{order}\n'
                    f'[fetch]\nsrpm = "{srpm}"\n\n[config]\n{config}\n[rebuild]\n{rebuild}\n{extra}')
    return path


def errors(proc: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in proc.stderr, proc.stderr
    return [ln.removeprefix("respin: error: ") for ln in proc.stderr.splitlines()
            if ln.startswith("respin: error: ")]


def refused_before_any_stage(pf: Path, code: int, *needles: str) -> None:
    """`respin check` and `respin run` both name the problem in one line, exit `code`, and
    nothing ran: the work dir was not even made."""
    for command in ("check", "run"):
        assert_one_line_error(respin(command, pf, check=False), code, *needles)
        assert not (pf.parent / "work").exists(), command


def test_a_good_pipeline_checks_ok_and_nothing_runs(tmp_path: Path, current: Path) -> None:
    pf = pipeline(tmp_path, current)
    proc = respin("check", pf)
    assert proc.stdout == (f"{pf}: ok: 7 stage(s) checked (fetch, prep, config, diff, inject, rebuild, "
                           "verify); nothing was run\n")
    assert proc.stderr == ""
    assert not (tmp_path / "work").exists()


def test_sign_after_rebuild_is_refused_before_any_build(tmp_path: Path, current: Path) -> None:
    (tmp_path / "module.pem").write_text("not read by the check\n")
    order = ["fetch", "prep", "config", "diff", "inject", "rebuild", "sign", "verify"]
    pf = pipeline(tmp_path, current, stages=order, extra='[sign]\nmodule_key = "module.pem"\n')
    refused_before_any_stage(pf, ConfigError.exit_code, "[sign]", "sign comes after rebuild",
                             "put it before rebuild")


def test_a_publish_repo_without_its_parent_is_refused_before_any_build(tmp_path: Path,
                                                                       current: Path) -> None:
    stages = [s for s in STAGES if s != "sign"]
    pf = pipeline(tmp_path, current, stages=stages, extra='[publish]\nrepo = "no/such/repo"\n')
    refused_before_any_stage(pf, InputError.exit_code, "[publish] repo", f"{tmp_path}/no/such/repo",
                             "its parent directory does not exist")


@pytest.mark.skipif(shutil.which("mock") is not None, reason="mock is installed here")
def test_backend_mock_without_mock_is_refused_before_any_build(tmp_path: Path, current: Path) -> None:
    pf = pipeline(tmp_path, current, rebuild='backend = "mock"\n')
    refused_before_any_stage(pf, ConfigError.exit_code, '[rebuild] backend = "mock"', "mock is not installed")
    # With a mock on PATH the same file checks ok.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "mock").write_text("#!/bin/sh\nexit 1\n")
    (bindir / "mock").chmod(0o755)
    env = {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    assert "ok:" in respin("check", pf, env=env).stdout


def test_backend_koji_without_its_client_is_refused_before_any_build(tmp_path: Path, current: Path) -> None:
    pf = pipeline(tmp_path, current, rebuild='backend = "koji"\nkoji_target = "f37-candidate"\n')
    # The respin command as it runs where the koji client library is not installed.
    code = ("import sys\nsys.modules['koji'] = None\nfrom respin.pipeline.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    for command in ("check", "run"):
        proc = subprocess.run([sys.executable, "-c", code, command, str(pf)], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, check=False)
        assert_one_line_error(proc, ConfigError.exit_code, '[rebuild] backend = "koji"',
                              "koji client library is not installed")
        assert not (tmp_path / "work").exists()


def test_malformed_config_names_and_a_missing_fragment_are_found_before_prep(tmp_path: Path,
                                                                            current: Path) -> None:
    pf = pipeline(tmp_path, current, config='set = { "CONFIG_RESPIN FEATURE" = "y" }\n')
    refused_before_any_stage(pf, ConfigError.exit_code, "[config] set", "'CONFIG_RESPIN FEATURE'",
                             "not a kernel config symbol")
    pf = pipeline(tmp_path, current, config='unset = ["respin_feature_a"]\n')
    refused_before_any_stage(pf, ConfigError.exit_code, "[config] unset", "'respin_feature_a'")
    pf = pipeline(tmp_path, current, config='fragment = "local.config"\n')
    refused_before_any_stage(pf, InputError.exit_code, f"{tmp_path}/local.config",
                             "cannot read the config fragment")


def test_config_files_the_target_does_not_build_are_refused_before_any_build(tmp_path: Path,
                                                                             current: Path) -> None:
    pf = pipeline(tmp_path, current, config='set = { CONFIG_RESPIN_FEATURE_A = "y" }\n'
                                            'files = ["kernel-aarch64*.config"]\n')
    refused_before_any_stage(pf, ConfigError.exit_code, "[config] files",
                             "match only configs the x86_64 build does not use",
                             "kernel-aarch64-debug-fedora.config, kernel-aarch64-fedora.config",
                             "it uses kernel-x86_64-debug-fedora.config, kernel-x86_64-fedora.config")
    pf = pipeline(tmp_path, current, config='set = { CONFIG_RESPIN_FEATURE_A = "y" }\nfiles = ["*-ppc*"]\n')
    refused_before_any_stage(pf, ConfigError.exit_code, "[config] files", "match none of")


@pytest.mark.slow
def test_config_files_of_another_arch_on_the_2010_layout_stop_before_the_build(tmp_path: Path,
                                                                               old: Path) -> None:
    # The 2010 spec makes its configs in %prep: they are known after prep, still before the build.
    pf = pipeline(tmp_path, old, target="i686", rebuild="",
                  config='set = { CONFIG_RESPIN_FEATURE_A = "y" }\nfiles = ["kernel-*-x86_64*.config"]\n')
    assert "ok:" in respin("check", pf).stdout
    proc = respin("run", pf, "--json", check=False)
    assert_one_line_error(proc, ConfigError.exit_code, "[config] files", "the i686 build does not use",
                          "it uses kernel-2.6.27.5-i686-PAE.config")
    stages = {s["name"]: s["status"] for s in json.loads(proc.stdout)["stages"]}
    assert stages["config"] == "failed" and stages["rebuild"] == "not reached"
    # Once prep's snapshot is in the work dir, the check pass knows the configs too.
    assert_one_line_error(respin("check", pf, check=False), ConfigError.exit_code,
                          "the i686 build does not use")


@pytest.mark.parametrize("fixture", ["current", "old"])
def test_a_switch_the_spec_never_reads_is_refused(fixture: str, tmp_path: Path,
                                                  request: pytest.FixtureRequest) -> None:
    srpm = request.getfixturevalue(fixture)
    target = "x86_64" if fixture == "current" else "i686"
    pf = pipeline(tmp_path, srpm, target=target, rebuild='with = ["basonly"]\n')
    refused_before_any_stage(pf, ConfigError.exit_code, "[rebuild] with: 'basonly'",
                             "kernel.spec never reads --with basonly", "did you mean 'baseonly'?")
    # A switch read only the other way round changes nothing either.
    pf = pipeline(tmp_path, srpm, target=target, rebuild='without = ["baseonly"]\n')
    refused_before_any_stage(pf, ConfigError.exit_code, "[rebuild] without: 'baseonly'",
                             "never reads --without baseonly")
    pf = pipeline(tmp_path, srpm, target=target, rebuild='with = ["baseonly"]\nwithout = ["debug"]\n')
    assert "ok:" in respin("check", pf).stdout


def test_a_bcond_switch_counts_as_read(tmp_path: Path) -> None:
    from respin.stages.kernel.lib.preview import switches

    spec = ("%bcond_with vanilla\n%bcond_without selftests\n%bcond zstd 1\n%bcond lto 0\n"
            "%bcond rt %{undefined rhel}\n%if %{?_without_up:1}0\n%endif\n")
    assert switches(spec) == {"with": {"vanilla", "lto", "rt"}, "without": {"selftests", "zstd", "rt", "up"}}


def test_three_problems_are_all_printed_one_line_each(tmp_path: Path, current: Path) -> None:
    (tmp_path / "module.pem").write_text("not read by the check\n")
    order = ["fetch", "prep", "config", "diff", "inject", "rebuild", "sign", "verify"]
    pf = pipeline(tmp_path, current, stages=order, rebuild='with = ["basonly"]\n',
                  config='set = { "CONFIG_A B" = "y" }\n', extra='[sign]\nmodule_key = "module.pem"\n')
    for command in ("check", "run"):
        proc = respin(command, pf, check=False)
        assert proc.returncode == ConfigError.exit_code, proc.stderr
        lines = errors(proc)
        assert [line.split(": ", 1)[0] for line in lines] == [f"{pf} [config] set", f"{pf} [rebuild] with",
                                                               f"{pf} [sign]"], lines
        assert not (tmp_path / "work").exists()
    # --json: the one document names the first problem and says where the rest are listed.
    doc = json.loads(respin("run", pf, "--json", check=False).stdout)
    assert doc["error"]["message"].endswith("(and 2 more problems; `respin check FILE` lists every one)")


def test_every_table_s_problems_are_printed_in_one_run(tmp_path: Path, current: Path) -> None:
    pf = tmp_path / "kernel.toml"
    pf.write_text(f'[pipeline]\ntarget = 5\n\n[fetch]\nsrpm = "{current}"\nsha256 = "abc"\n\n'
                  '[config]\nset = { CONFIG_A = "y" }\nbogus = 1\n\n[rebuild]\nmode = "fast"\n')
    for command in ("check", "run"):
        proc = respin(command, pf, check=False)
        assert proc.returncode == ConfigError.exit_code
        assert [line.split(": ")[1] for line in errors(proc)] == ["target", "sha256", "bogus", "mode"]


@pytest.fixture
def served(current: Path) -> Iterator[str]:
    """The fixture SRPM's folder over HTTP on 127.0.0.1: the URL of the SRPM."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(current.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{current.name}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_a_downloaded_spec_is_checked_before_the_build_and_then_by_the_check_pass(
        tmp_path: Path, served: str) -> None:
    pf = pipeline(tmp_path, served, rebuild='with = ["basonly"]\n')
    # Before fetch ran, the spec is not at hand: the check cannot read it.
    assert "ok:" in respin("check", pf).stdout
    proc = respin("run", pf, "--json", check=False)
    assert_one_line_error(proc, ConfigError.exit_code, "[rebuild] with: 'basonly'")
    stages = {s["name"]: s["status"] for s in json.loads(proc.stdout)["stages"]}
    assert stages["rebuild"] == "failed" and not list((tmp_path / "work").rglob("*.x86_64.rpm"))
    # Now fetch's output is up to date in the work dir: the check pass reads its spec, without
    # the rpm bindings.
    code = ("import sys\nfrom respin.pipeline.cli import main\nrc = main(['check', sys.argv[1]])\n"
            "sys.stderr.write('rpm loaded' if 'rpm' in sys.modules else '')\nsys.exit(rc)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(pf)], capture_output=True, text=True, check=False)
    assert proc.returncode == ConfigError.exit_code
    assert "[rebuild] with: 'basonly'" in proc.stderr and "rpm loaded" not in proc.stderr


NOT_A_KERNEL = """\
Name: hello
Version: 1
Release: 1
Summary: a package that is not a kernel
License: MIT
Source0: hello.txt
Patch0: fix.patch
%description
Not a kernel.
%prep
cp %{SOURCE0} .
%autopatch -p0
%files
"""


def test_a_package_that_is_not_a_kernel_is_named_so_before_any_stage(tmp_path: Path) -> None:
    top = tmp_path / "top"
    for sub in ("SPECS", "SOURCES"):
        (top / sub).mkdir(parents=True)
    (top / "SPECS/hello.spec").write_text(NOT_A_KERNEL)
    (top / "SOURCES/hello.txt").write_text("hello\n")
    (top / "SOURCES/fix.patch").write_text("")
    spec = top / "SPECS/hello.spec"
    subprocess.run(["rpmbuild", "-bs", "--nodeps", "--define", f"_topdir {top}", str(spec)], check=True,
                   capture_output=True)
    srpm = next((top / "SRPMS").glob("*.src.rpm"))
    pf = pipeline(tmp_path, srpm, rebuild="with = []\nwithout = []\n")
    refused_before_any_stage(pf, 4, "hello.spec", "not a kernel package",
                             "linux-*.tar*")
