"""The kernel config-patch pipeline end to end, on SRPMs rpmbuild builds from fixtures/."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from respin_cli import REPO, RESPIN, assert_one_line_error, respin

from fixtures.build import build_srpm
from respin.pipeline.process import run
from respin.stages.kernel.lib import kconfig
from respin.stages.kernel.lib.rpmpkg import payload_files, read_package

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpmbuild is not installed")]
STAGES = ["fetch", "prep", "config", "diff", "inject", "rebuild", "verify"]
GOOD_CONFIG = ('set = { CONFIG_RESPIN_FEATURE_A = "y", CONFIG_RESPIN_FEATURE_B = "y", '
               'CONFIG_LOCALVERSION = "-respin" }\nunset = ["CONFIG_DEBUG_STACKOVERFLOW"]\n')


# Both eras of kernel spec: the 2010 layout takes a config patch, today's takes kernel-local.
KERNELS = ["kernel-2010", "kernel-current"]


@pytest.fixture(scope="session", params=KERNELS)
def srpm(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_srpm(request.param, tmp_path_factory.mktemp(request.param))


def current(srpm: Path) -> bool:
    """Is this the current-layout fixture (kernel-local, x86_64) rather than the 2010 one?"""
    return srpm.name.startswith("kernel-6.")


def string_symbol(srpm: Path) -> str:
    """The string symbol the tests set: today's spec names its module directory from the
    release, so it refuses CONFIG_LOCALVERSION (the 2010 tree's release ignores it)."""
    return "CONFIG_DEFAULT_HOSTNAME" if current(srpm) else "CONFIG_LOCALVERSION"


def respun_srpm(srpm: Path, outdir: Path, edit: Callable[[str], str],
                sources: dict[str, str] | None = None) -> Path:
    """The fixture SRPM with its spec edited and `sources` (name -> text) replaced: for
    bad-input cases."""
    top = outdir / "top"
    run(["rpm", "-i", "--nodeps", "--define", f"_topdir {top}", str(srpm)])
    spec = top / "SPECS/kernel.spec"
    spec.write_text(edit(spec.read_text()))
    for name, text in (sources or {}).items():
        (top / "SOURCES" / name).write_text(text)
    run(["rpmbuild", "-bs", "--nodeps", "--define", f"_topdir {top}", str(spec)])
    out = next((top / "SRPMS").glob("*.src.rpm"))
    return Path(shutil.move(str(out), outdir / out.name))


def pipeline_file(where: Path, srpm: Path, config: str = GOOD_CONFIG, extra: str = "",
                  rebuild: str = 'mode = "all"\n') -> Path:
    target = "x86_64" if current(srpm) else "i686"
    config = config.replace("CONFIG_LOCALVERSION", string_symbol(srpm))
    if current(srpm) and "with = []" not in rebuild:
        rebuild = 'without = ["debug"]\n' + rebuild
    text = (f'[pipeline]\ntarget = "{target}"\nworkdir = "work"\n\n[fetch]\nsrpm = "{srpm}"\n{extra}\n'
            f"[config]\n{config}\n[rebuild]\n{rebuild}")
    path = where / "kernel.toml"
    path.write_text(text)
    return path


def built(manifest: dict[str, Any], kind: str) -> list[Path]:
    return [Path(a["path"]) for a in manifest["artifacts"] if a["kind"] == kind]  # type: ignore[index,union-attr]


def boot_config(rpm_path: Path) -> str:
    configs = dict(payload_files(rpm_path, re.compile(r"/boot/config-")))
    assert len(configs) == 1, configs
    return next(iter(configs.values())).decode()


def test_end_to_end_baseonly(tmp_path: Path, srpm: Path) -> None:
    pf = pipeline_file(tmp_path, srpm)
    manifest = json.loads(respin("run", pf, "--json").stdout)
    assert [s["status"] for s in manifest["stages"]] == ["ran"] * 7
    rpms = built(manifest, "rpm")
    names = sorted(read_package(p).name for p in rpms)
    assert names == ["kernel"], "baseonly must build no PAE or debug package"
    arch = "x86_64" if current(srpm) else "i686"
    assert all(p.name.endswith(f".{arch}.rpm") for p in rpms)
    config = boot_config(rpms[0])
    for line in ("CONFIG_RESPIN_FEATURE_A=y", "CONFIG_RESPIN_FEATURE_B=y", f'{string_symbol(srpm)}="-respin"',
                 "# CONFIG_DEBUG_STACKOVERFLOW is not set"):
        assert line in config.splitlines()
    (new_srpm,) = built(manifest, "srpm")
    if current(srpm):
        # Today's layout: the change rides in kernel-local; no patch is added.
        files = dict(payload_files(new_srpm, re.compile(r"(\.spec|kernel-local)$")))
        local = files["kernel-local"].decode().splitlines()
        assert "CONFIG_RESPIN_FEATURE_B=y" in local and "# CONFIG_DEBUG_STACKOVERFLOW is not set" in local
        spec_text = files["kernel.spec"].decode()
        assert "config-respin.patch" not in spec_text and "%define buildid .respin" in spec_text
        assert "Set through kernel-local" in spec_text
    else:
        _check_2010_spec(new_srpm)
    assert {a["kind"] for a in manifest["artifacts"]} >= {"srpm", "spec", "rpm", "log"}
    assert all(re.fullmatch(r"[0-9a-f]{64}", a["sha256"]) for a in manifest["artifacts"])
    assert "rpmbuild" in manifest["tools"]

    again = json.loads(respin("run", pf, "--json").stdout)
    assert [s["status"] for s in again["stages"]] == ["up to date"] * 7
    assert again["artifacts"] == manifest["artifacts"]
    # Up to date is decided from fingerprints alone: the heavy libraries stay unloaded.
    code = ("import sys\nfrom respin.pipeline.cli import main\nrc = main(['run', sys.argv[1], '-q'])\n"
            "heavy = {'rpm', 'specfile', 'kconfiglib', 'urllib.request', 'git'}\n"
            "sys.stderr.write(' '.join(sorted(heavy & set(sys.modules))))\nsys.exit(rc)\n")
    noop = subprocess.run([sys.executable, "-c", code, str(pf)], capture_output=True, text=True)
    assert noop.returncode == 0 and noop.stderr == "", noop.stderr

    pf.write_text(pf.read_text().replace('"-respin"', '"-respin2"'))
    proc = respin("status", pf, check=False)
    assert proc.returncode == 1 and "config" in proc.stdout and "options changed" in proc.stdout
    third = json.loads(respin("run", pf, "--json").stdout)
    assert [s["status"] for s in third["stages"]] == ["up to date"] * 2 + ["ran"] * 5
    assert f'{string_symbol(srpm)}="-respin2"' in boot_config(built(third, "rpm")[0])


def _check_2010_spec(new_srpm: Path) -> None:
    """The spec inside the new SRPM declares and applies the patch in the right place."""
    files = dict(payload_files(new_srpm, re.compile(r"(\.spec|config-respin\.patch)$")))
    assert "linux-2.6-config-respin.patch" in files
    spec = files["kernel.spec"].decode().splitlines()
    tags = [ln for ln in spec if re.match(r"^Patch\d+:", ln)]
    assert tags[-1] == "Patch21: linux-2.6-config-respin.patch"
    assert spec[spec.index(tags[-1]) + 1:spec.index(tags[-1]) + 3] == ["", "%description"]  # blank kept
    applies = [i for i, ln in enumerate(spec) if re.match(r"^\s*ApplyPatch \S", ln)]
    assert spec[applies[-1]].strip() == "ApplyPatch linux-2.6-config-respin.patch"
    end = next(i for i, ln in enumerate(spec) if "END OF PATCH APPLICATIONS" in ln)
    assert applies[-2] < applies[-1] < end
    assert "%define buildid .respin" in spec


def test_until_and_only_select_stages(tmp_path: Path, srpm: Path) -> None:
    pf = pipeline_file(tmp_path, srpm)
    manifest = json.loads(respin("run", pf, "--until", "diff", "--json").stdout)
    assert [s["status"] for s in manifest["stages"]] == ["ran"] * 4 + ["not selected"] * 3
    name = "kernel-local.diff" if current(srpm) else "config.patch"
    patch = (tmp_path / "work/stages/diff" / name).read_text()
    assert "+CONFIG_RESPIN_FEATURE_B=y" in patch and "\t20" not in patch  # no timestamps
    manifest = json.loads(respin("run", pf, "--only", "inject", "--json").stdout)
    assert [s["status"] for s in manifest["stages"]][4] == "ran"
    assert not list((tmp_path / "work/stages/rebuild/rpmbuild/RPMS").glob("*/*.rpm"))


def test_all_flavours_without_baseonly(tmp_path: Path, srpm: Path) -> None:
    pf = pipeline_file(tmp_path, srpm, rebuild="with = []\n")
    manifest = json.loads(respin("run", pf, "--json").stdout)
    rpms = built(manifest, "rpm")
    want = ["kernel", "kernel-debug"] if current(srpm) else ["kernel", "kernel-PAE", "kernel-debug"]
    assert sorted(read_package(p).name for p in rpms) == want
    for p in rpms:
        assert "CONFIG_RESPIN_FEATURE_B=y" in boot_config(p).splitlines()
    report = json.loads((tmp_path / "work/stages/verify/report.json").read_text())
    assert report["flavours"] == (["base", "debug"] if current(srpm) else ["PAE", "base", "debug"])


def _drop_patches(text: str) -> str:
    return "\n".join(ln for ln in text.splitlines()
                     if not re.match(r"^\s*(ApplyPatch|ApplyOptionalPatch) \S", ln)) + "\n"


def _fail_prep(text: str) -> str:
    return text.replace("%prep\n", "%prep\necho 'simulated prep failure' >&2\nexit 3\n", 1)


BAD = {
    # name: (how to break the pipeline file or its input, exit code, words in the error line)
    "not-an-rpm": ("srpm", lambda d, s: d.joinpath("junk.src.rpm").write_text("junk") and d / "junk.src.rpm",
                   4, ["junk.src.rpm", "not an RPM package"]),
    "sha256-mismatch": ("extra", 'sha256 = "' + "0" * 64 + '"\n', 4, ["sha256 is", "pipeline pins"]),
    "unknown-key": ("config", 'sett = { CONFIG_B = "y" }\n', 3, ["[config]", "sett: unknown key"]),
    "malformed-name": ("config", 'set = { CONFIG_B-X = "y" }\n', 3, ["CONFIG_B-X", "not a kernel config"]),
    "name-with-final-newline": ("config", 'set = { "CONFIG_RESPIN_FEATURE_A\\n" = "y" }\n', 3,
                                ["CONFIG_RESPIN_FEATURE_A\\n", "not a kernel config"]),
    "unset-name-with-final-newline": ("config", 'unset = ["CONFIG_DEBUG_STACKOVERFLOW\\n"]\n', 3,
                                      ["CONFIG_DEBUG_STACKOVERFLOW\\n", "not a kernel config"]),
    "word-for-an-int": ("config", 'set = { CONFIG_LOG_BUF_SHIFT = "abc" }\n', 3,
                        ['CONFIG_LOG_BUF_SHIFT="abc" is not a valid value for CONFIG_LOG_BUF_SHIFT',
                         "takes a number"]),
    "word-for-a-bool": ("config", 'set = { CONFIG_RESPIN_FEATURE_A = "abc" }\n', 3,
                        ['CONFIG_RESPIN_FEATURE_A="abc" is not a valid value for CONFIG_RESPIN_FEATURE_A',
                         "takes y"]),
    "malformed-value": ("config", 'set = { CONFIG_RESPIN_FEATURE_A = "a\\nb" }\n', 3, ["line break"]),
    # auto.conf keeps strings unquoted and the kernel's Makefiles include it: make syntax.
    "make-syntax-in-a-string": ("config", 'set = { CONFIG_DEFAULT_HOSTNAME = "$(shell id >&2)" }\n', 3,
                                ["CONFIG_DEFAULT_HOSTNAME", "'$'", "make as syntax"]),
    "unknown-symbol": ("config", 'set = { CONFIG_NO_SUCH_THING = "y" }\n', 3,
                       ["CONFIG_NO_SUCH_THING", "unknown CONFIG symbol"]),
    "dropped-by-oldconfig": ("config", 'set = { CONFIG_RESPIN_FEATURE_B = "y" }\nvalidate = false\n', 6,
                             ["CONFIG_RESPIN_FEATURE_B", "oldconfig dropped it"]),
    "unmet-dependency-before-build": ("config", 'set = { CONFIG_RESPIN_FEATURE_B = "y" }\n', 3,
                                      ["CONFIG_RESPIN_FEATURE_B=y needs CONFIG_RESPIN_FEATURE_A=y",
                                       "resolve = true"]),
    "no-patch-application": ("spec", _drop_patches, 4, ["kernel.spec", "applies no patch"]),
    "hook-never-reached": ("spec", lambda t: t.replace("# END OF PATCH APPLICATIONS",
                                                       "exit 0\n# END OF PATCH APPLICATIONS", 1),
                           4, ["kernel.spec", "without reaching the respin hook"]),
    "prep-fails": ("spec", _fail_prep, 5, ["rpmbuild -bp of kernel.spec failed", "simulated prep failure",
                                           "prep.log"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_one_line_then_fixed_rerun_succeeds(case: str, tmp_path: Path, srpm: Path) -> None:
    what, how, code, needles = BAD[case]
    if what == "srpm":
        pf = pipeline_file(tmp_path, how(tmp_path, srpm))  # type: ignore[operator]
    elif what == "spec":
        pf = pipeline_file(tmp_path, respun_srpm(srpm, tmp_path / "bad", how))  # type: ignore[arg-type]
    elif what == "extra":
        pf = pipeline_file(tmp_path, srpm, extra=how)  # type: ignore[arg-type]
    else:
        pf = pipeline_file(tmp_path, srpm, config=how)  # type: ignore[arg-type]
    if case == "dropped-by-oldconfig" and current(srpm):
        # Today's spec guards itself: its process_configs check fails the build.
        code, needles = 5, ["of kernel.spec failed", "Found CONFIG_RESPIN_FEATURE_B absent"]
    assert_one_line_error(respin("run", pf, check=False), code, *needles)
    pipeline_file(tmp_path, srpm)
    respin("run", pf)


def test_fetch_by_file_url_with_a_matching_pin(tmp_path: Path, srpm: Path) -> None:
    import hashlib

    pin = hashlib.sha256(srpm.read_bytes()).hexdigest()
    pf = pipeline_file(tmp_path, srpm, extra=f'sha256 = "{pin}"\n')
    pf.write_text(pf.read_text().replace(f'srpm = "{srpm}"', f'srpm = "file://{srpm}"'))
    manifest = json.loads(respin("run", pf, "--until", "fetch", "--json").stdout)
    spec = built(manifest, "pristine-spec")[0]
    assert spec.name == "kernel.spec" and "Name: kernel" in spec.read_text()


def test_binary_rpm_is_refused(tmp_path: Path, srpm: Path) -> None:
    pf = pipeline_file(tmp_path, srpm, rebuild='mode = "binary"\n')
    manifest = json.loads(respin("run", pf, "--json").stdout)
    binary = shutil.copy(built(manifest, "rpm")[0], tmp_path / "binary.rpm")
    bad = tmp_path / "b"
    bad.mkdir()
    pf2 = pipeline_file(bad, Path(binary))
    assert_one_line_error(respin("run", pf2, check=False), 4, "binary.rpm", "binary package")


def test_unknown_stage_selection(tmp_path: Path, srpm: Path) -> None:
    pf = pipeline_file(tmp_path, srpm)
    assert_one_line_error(respin("run", pf, "--only", "nosuch", check=False), 2, "nosuch")


def _hashes(manifest: dict[str, Any]) -> dict[str, str]:
    return {a["path"]: a["sha256"] for a in manifest["artifacts"] if a["kind"] != "log"}  # type: ignore[index,union-attr]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("stage", STAGES)
def test_interrupted_run_ends_with_the_same_bytes(stage: str, sig: signal.Signals, tmp_path: Path,
                                                   srpm: Path) -> None:
    pf = pipeline_file(tmp_path, srpm)
    reference = _hashes(json.loads(respin("run", pf, "--json").stdout))
    shutil.rmtree(tmp_path / "work")
    proc = subprocess.Popen([str(RESPIN), "run", str(pf)], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if f"] {stage}: running" in line:
            proc.send_signal(sig)
            break
    proc.communicate(timeout=300)
    assert proc.returncode in (0, 130, -signal.SIGKILL), proc.returncode
    again = json.loads(respin("run", pf, "--json").stdout)
    assert _hashes(again) == reference


def test_resolve_adds_the_unmet_dependency_and_the_build_carries_both(tmp_path: Path, srpm: Path) -> None:
    pf = pipeline_file(tmp_path, srpm, config='set = { CONFIG_RESPIN_FEATURE_B = "y" }\nresolve = true\n',
                       rebuild='mode = "binary"\n')
    proc = respin("run", pf, "--json")
    assert "resolve: added CONFIG_RESPIN_FEATURE_A=y (needed by CONFIG_RESPIN_FEATURE_B=y)" in proc.stderr
    manifest = json.loads(proc.stdout)
    config = boot_config(built(manifest, "rpm")[0]).splitlines()
    assert "CONFIG_RESPIN_FEATURE_A=y" in config and "CONFIG_RESPIN_FEATURE_B=y" in config
    # Listed as added for a dependency, not as asked for: in the manifest and the changelog.
    (meta,) = [a["meta"] for a in manifest["artifacts"] if a["kind"] == "kconfig-edited"]
    assert meta["resolved"] == {"CONFIG_RESPIN_FEATURE_A=y": "needed by CONFIG_RESPIN_FEATURE_B=y"}
    (spec,) = [Path(a["path"]) for a in manifest["artifacts"]
               if a["kind"] == "spec" and a["stage"] == "inject"]
    assert "CONFIG_RESPIN_FEATURE_B=y; added for dependencies: CONFIG_RESPIN_FEATURE_A=y" in spec.read_text()


def test_fragment_alongside_inline_values(tmp_path: Path, srpm: Path) -> None:
    (tmp_path / "local.config").write_text(
        "# local changes\nCONFIG_RESPIN_FEATURE_A=y\nCONFIG_RESPIN_FEATURE_B=y\n"
        "# CONFIG_DEBUG_STACKOVERFLOW is not set\n")
    config = 'fragment = "local.config"\nset = { CONFIG_LOG_BUF_SHIFT = 16 }\n'
    pf = pipeline_file(tmp_path, srpm, config=config, rebuild='mode = "binary"\n')
    manifest = json.loads(respin("run", pf, "--json").stdout)
    lines = boot_config(built(manifest, "rpm")[0]).splitlines()
    for line in ("CONFIG_RESPIN_FEATURE_A=y", "CONFIG_RESPIN_FEATURE_B=y", "CONFIG_LOG_BUF_SHIFT=16",
                 "# CONFIG_DEBUG_STACKOVERFLOW is not set"):
        assert line in lines
    # Editing the fragment reruns config and what follows, not fetch or prep.
    (tmp_path / "local.config").write_text("CONFIG_RESPIN_FEATURE_A=y\n")
    again = json.loads(respin("run", pf, "--json").stdout)
    assert [s["status"] for s in again["stages"]][:3] == ["up to date", "up to date", "ran"]


def test_forcing_the_wrong_mechanism_is_refused_with_the_reason(tmp_path: Path, srpm: Path) -> None:
    if current(srpm):
        pf = pipeline_file(tmp_path, srpm, config=GOOD_CONFIG + 'mechanism = "patch"\n')
        assert_one_line_error(respin("run", pf, check=False), 3, "'patch' cannot work",
                              "nothing to apply to", "lack the change")
    else:
        pf = pipeline_file(tmp_path, srpm, config=GOOD_CONFIG + 'mechanism = "kernel-local"\n')
        assert_one_line_error(respin("run", pf, check=False), 3, "mechanism", "no kernel-local Source")
    assert not list((tmp_path / "work/stages/rebuild/rpmbuild/RPMS").glob("*/*.rpm"))


def test_oldconfig_validator_runs_the_trees_own_oldconfig(tmp_path: Path, srpm: Path) -> None:
    pf = pipeline_file(tmp_path, srpm, config='set = { CONFIG_RESPIN_FEATURE_B = "y" }\n'
                       'validator = "oldconfig"\n')
    assert_one_line_error(respin("run", pf, check=False), 3,
                          "CONFIG_RESPIN_FEATURE_B=y would end up as not set after oldconfig")
    pf = pipeline_file(tmp_path, srpm, config=GOOD_CONFIG + 'validator = "oldconfig"\n',
                       rebuild='mode = "binary"\n')
    respin("run", pf)


def test_a_value_dropped_from_the_pipeline_leaves_the_build(tmp_path: Path, srpm: Path) -> None:
    # Rerunning config after inject must start from the shipped kernel-local (or the
    # pristine configs), not from what the last run wrote into SOURCES/.
    pf = pipeline_file(tmp_path, srpm)
    respin("run", pf, "--until", "inject")
    pf = pipeline_file(tmp_path, srpm, config='set = { CONFIG_LOCALVERSION = "-respin2" }\n')
    manifest = json.loads(respin("run", pf, "--until", "inject", "--json").stdout)

    def made_by(stage: str, kind: str) -> Path:
        (path,) = [Path(a["path"]) for a in manifest["artifacts"]
                   if a["stage"] == stage and a["kind"] == kind]
        return path

    if current(srpm):
        text = made_by("config", "kernel-local").read_text()
        assert "CONFIG_RESPIN_FEATURE_A" not in text and "CONFIG_RESPIN_FEATURE_B" not in text
        assert text.count("# respin: requested values") == 1
        assert 'CONFIG_DEFAULT_HOSTNAME="-respin2"' in text
    else:
        added = [ln for ln in made_by("diff", "patch").read_text().splitlines() if ln.startswith("+CONFIG")]
        assert added and all("LOCALVERSION" in ln for ln in added), added


def test_fragment_that_is_not_text_is_one_line(tmp_path: Path, srpm: Path) -> None:
    (tmp_path / "local.config").write_bytes(b"CONFIG_RESPIN_FEATURE_A=\xff\xfe\n")
    pf = pipeline_file(tmp_path, srpm, config='fragment = "local.config"\n')
    assert_one_line_error(respin("run", pf, check=False), 4, "local.config", "not UTF-8")


def test_localversion_is_refused_where_the_module_directory_follows_the_release(tmp_path: Path,
                                                                                srpm: Path) -> None:
    pf = pipeline_file(tmp_path, srpm, config='set = { CONFIG_RESPIN_FEATURE_A = "y" }\n')
    pf.write_text(pf.read_text().replace('set = { CONFIG_RESPIN_FEATURE_A = "y" }',
                                         'set = { CONFIG_LOCALVERSION = "-respin" }'))
    proc = respin("run", pf, "--json", check=False)
    if current(srpm):
        # Today's spec: modules under /lib/modules/<version>-<release>.<arch>, and the tree
        # appends CONFIG_LOCALVERSION to uname -r: refused before any build, pointing to buildid.
        assert_one_line_error(proc, 3, "CONFIG_LOCALVERSION", "/lib/modules/6.1.0-200.x86_64", "buildid")
        assert not (tmp_path / "work/stages/rebuild/rpmbuild/RPMS").exists() or not list(
            (tmp_path / "work/stages/rebuild/rpmbuild/RPMS").rglob("*.rpm"))
    else:
        # The 2010 tree's release does not take it: the build's own check (kernelrelease equals
        # the module directory's name) passes and the package carries the value.
        assert proc.returncode == 0, proc.stderr
        (rpm,) = built(json.loads(proc.stdout), "rpm")
        assert 'CONFIG_LOCALVERSION="-respin"' in boot_config(rpm).splitlines()
        assert any(f.startswith("/lib/modules/2.6.27.5-117.respin.i686") for f in read_package(rpm).files)


def _changelogs(package: Path) -> list[str]:
    """The package header's %changelog: each entry as rpm stored it, name line then text."""
    import rpm

    from respin.stages.kernel.lib.rpmpkg import _header

    hdr = _header(package)
    return [f"{name}\n{text}" for name, text in zip(hdr[rpm.RPMTAG_CHANGELOGNAME],
                                                     hdr[rpm.RPMTAG_CHANGELOGTEXT], strict=True)]


def test_a_hostile_value_is_data_in_the_spec_and_the_changelog_shows_it(tmp_path: Path, srpm: Path) -> None:
    # rpm expands macros in every spec line, %changelog too: a value respin writes there
    # unescaped would run at rpmbuild time, and in every mock or koji rebuild of the SRPM.
    pwned = tmp_path / "PWNED"
    value = f"%(touch {pwned})"
    packager = f"Eve %(touch {pwned}) <eve@example.org>"
    pf = pipeline_file(tmp_path, srpm, config=f'set = {{ CONFIG_LOCALVERSION = "{value}" }}\n',
                       extra=f'\n[inject]\npackager = "{packager}"\n')
    manifest = json.loads(respin("run", pf, "--json").stdout)
    assert not pwned.exists()
    (new_srpm,) = built(manifest, "srpm")
    for package in (new_srpm, built(manifest, "rpm")[0]):
        newest = _changelogs(package)[0]
        assert newest.splitlines()[0].startswith(packager + " - "), newest
        assert f'{string_symbol(srpm)}="{value}"' in newest, newest
    spec = tmp_path / "shipped.spec"
    spec.write_bytes(dict(payload_files(new_srpm, re.compile(r"\.spec$")))["kernel.spec"])
    # As rpm reads the spec inside the SRPM, which mock and koji rebuild from.
    shown = run(["rpmspec", "-q", "--srpm", "--qf", "[%{CHANGELOGNAME}\n%{CHANGELOGTEXT}\n]", str(spec)])
    assert not pwned.exists()
    assert shown.stdout.startswith(f'{packager} - ') and f'{string_symbol(srpm)}="{value}"' in shown.stdout


@pytest.mark.parametrize("workdir", ["w%(touch PWNED)", "w\\nx", "w$(touch PWNED)"],
                         ids=["macro", "newline", "shell"])
def test_a_work_dir_rpm_cannot_take_literally_is_refused_before_rpm_runs(workdir: str, tmp_path: Path,
                                                                         srpm: Path) -> None:
    pf = pipeline_file(tmp_path, srpm)
    pf.write_text(pf.read_text().replace('workdir = "work"', f'workdir = "{workdir}"'))
    proc = respin("run", pf, check=False, cwd=tmp_path)
    assert_one_line_error(proc, 3, "work dir", "rpm")
    assert not list(tmp_path.rglob("PWNED"))
    assert not list(tmp_path.rglob("rpmbuild")) and not list(tmp_path.rglob("pristine"))


# --- verify reads the config where the package has it ---------------------------------

def fedora_layout(lib_modules_config: str | None = "install -m 644 .config") -> Callable[[str], str]:
    """A spec edit: /boot/config-* listed as %ghost, as Fedora's kernel-core lists it (the
    buildroot still holds the full config there: the package carries none of it), and the
    config installed as /lib/modules/<kver>/config by `lib_modules_config` (None: not at all)."""
    def edit(spec: str) -> str:
        spec = spec.replace("\n/boot/config-%{KVERREL}", "\n%ghost /boot/config-%{KVERREL}")
        line = "install -m 644 .config $RPM_BUILD_ROOT/lib/modules/$KernelVer/config\n"
        assert spec.count(line) == 1 and spec.count("%ghost /boot/config-") == 2
        new = "" if lib_modules_config is None else line.replace("install -m 644 .config", lib_modules_config)
        return spec.replace(line, new)
    return edit


@pytest.fixture(scope="module")
def current_srpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_srpm("kernel-current", tmp_path_factory.mktemp("kernel-current"))


@pytest.mark.parametrize("mode", ["binary", "all"])
def test_verify_reads_the_config_under_lib_modules_when_boot_config_is_a_ghost(
        tmp_path: Path, current_srpm: Path, mode: str) -> None:
    ghosted = respun_srpm(current_srpm, tmp_path, fedora_layout())
    proc = respin("run", pipeline_file(tmp_path, ghosted, rebuild=f'mode = "{mode}"\n'), "--json")
    report = json.loads((tmp_path / "work/stages/verify/report.json").read_text())
    (kernel,) = [p for p in report["packages"] if "flavour" in p]
    assert kernel["flavour"] == "base" and report["flavours"] == ["base"]
    assert kernel["configs"] == ["/lib/modules/6.1.0-200.respin.x86_64/config"]
    assert report["checked"] == "binary and source packages"
    assert "present in the config of every built kernel; flavours built: base" in proc.stderr


@pytest.mark.parametrize("mode", ["binary", "all"])
def test_verify_fails_when_the_config_under_lib_modules_lacks_the_value(
        tmp_path: Path, current_srpm: Path, mode: str) -> None:
    # The package's only config with content lacks the value (the %ghost /boot one had it
    # in the buildroot): verify must read that one, and fail.
    drop = "sed 's/^CONFIG_RESPIN_FEATURE_B=y$/# CONFIG_RESPIN_FEATURE_B is not set/' .config >"
    lacking = respun_srpm(current_srpm, tmp_path, fedora_layout(drop))
    proc = respin("run", pipeline_file(tmp_path, lacking, rebuild=f'mode = "{mode}"\n'), check=False)
    assert_one_line_error(proc, 6, "/config has CONFIG_RESPIN_FEATURE_B not set, requested y")
    assert "/lib/modules/6.1.0-200.respin.x86_64/config" in proc.stderr


def test_verify_fails_when_a_built_kernel_goes_unchecked(tmp_path: Path, current_srpm: Path) -> None:
    # A kernel package whose only config is %ghost: nothing to check, and that is a failure
    # (not "present", not "source only"), in mode "all" as in "binary".
    unchecked = respun_srpm(current_srpm, tmp_path, fedora_layout(None))
    proc = respin("run", pipeline_file(tmp_path, unchecked), check=False)
    assert_one_line_error(proc, 6, "kernel-6.1.0-200.respin.x86_64.rpm: kernel 6.1.0-200.respin.x86_64 goes "
                          "unchecked: the package lists /boot/config-6.1.0-200.respin.x86_64 as %ghost")


def test_a_source_only_build_is_not_reported_as_present(tmp_path: Path, current_srpm: Path) -> None:
    proc = respin("run", pipeline_file(tmp_path, current_srpm, rebuild='mode = "source"\n'))
    assert "checked in the source package only (no binary package was built)" in proc.stderr
    assert "present" not in proc.stderr
    report = json.loads((tmp_path / "work/stages/verify/report.json").read_text())
    assert report["checked"] == "source package only" and report["flavours"] == []


@pytest.mark.parametrize(("name", "owner"), [("linux-2.6-utrace.patch", "Patch10"),
                                             ("config-generic", "Source23")])
def test_a_config_patch_named_after_one_of_the_packages_own_files_is_refused(
        name: str, owner: str, tmp_path: Path, srpm: Path) -> None:
    if current(srpm):
        # Today's layout takes no config patch (the change is kernel-local): the name is unused
        # and the package's own patch stays as shipped.
        name = "linux-kernel-test.patch"
        pf = pipeline_file(tmp_path, srpm, extra=f'\n[inject]\npatch = "{name}"\n')
        respin("run", pf, "--until", "inject")
        shipped = (tmp_path / "work/stages/fetch/pristine/SOURCES" / name).read_bytes()
        assert (tmp_path / "work/stages/inject/input/SOURCES" / name).read_bytes() == shipped
        return
    pf = pipeline_file(tmp_path, srpm, extra=f'\n[inject]\npatch = "{name}"\n')
    assert_one_line_error(respin("run", pf, check=False), 3, f"[inject] patch: {name}", owner, "kernel.spec")
    # Refused before inject wrote a build input; prep's tree and fetch's copy keep the file.
    assert not (tmp_path / "work/stages/inject/input").exists()
    shipped = (tmp_path / "work/stages/fetch/pristine/SOURCES" / name).read_bytes()
    assert (tmp_path / "work/stages/prep/rpmbuild/SOURCES" / name).read_bytes() == shipped


# A merge script as Fedora 37's kernel.spec runs it, `merge.pl OVERRIDES BASE [ARCH]`, written
# for this test from how that one reads an override: the first line for a symbol wins,
# "# NAME is not set" counts anywhere in a line (one blank each side), else "NAME=" at its start.
FEDORA_STYLE_MERGE = r"""#!/usr/bin/perl
use strict;
use warnings;
my ($overrides, $base) = @ARGV;
my (%line_of, @names);
sub symbol { my ($l) = @_; return $1 if $l =~ /\# (\w+) is not set/; return $1 if $l =~ /^(\w+)=/; undef }
open(my $in, '<', $overrides) or die "$overrides: $!";
while (my $l = <$in>) {
    my $name = symbol($l);
    next if !defined $name || exists $line_of{$name};
    $line_of{$name} = $l;
    push @names, $name;
}
open(my $cfg, '<', $base) or die "$base: $!";
while (my $l = <$cfg>) {
    my $name = symbol($l);
    if (defined $name && exists $line_of{$name}) { print delete $line_of{$name} } else { print $l }
}
print $line_of{$_} for grep { exists $line_of{$_} } @names;
"""


def test_the_requested_value_wins_kernel_local_under_each_merge_script(tmp_path: Path,
                                                                        current_srpm: Path) -> None:
    # Shipped lines a merge takes for a requested symbol, though respin's own parse does not.
    shipped = ("# kernel-local as a packager left it\n"
               "#  CONFIG_RESPIN_FEATURE_A is not set\n"
               "# CONFIG_RESPIN_FEATURE_B is not set  # off upstream\n"
               "CONFIG_DEBUG_STACKOVERFLOW=y\n"
               "CONFIG_LOG_BUF_SHIFT=17\n")
    srpm = respun_srpm(current_srpm, tmp_path / "src", lambda text: text, {"kernel-local": shipped})
    pf = pipeline_file(tmp_path, srpm)
    manifest = json.loads(respin("run", pf, "--json").stdout)
    asked = {"CONFIG_RESPIN_FEATURE_A": "y", "CONFIG_RESPIN_FEATURE_B": "y",
             "CONFIG_DEFAULT_HOSTNAME": '"-respin"', "CONFIG_DEBUG_STACKOVERFLOW": None}
    built_config = kconfig.parse(boot_config(built(manifest, "rpm")[0]))  # the fixture's merge.pl
    assert {k: built_config.get(k) for k in asked} == asked
    (local,) = [Path(a["path"]) for a in manifest["artifacts"]
                if a["stage"] == "config" and a["kind"] == "kernel-local"]
    assert "CONFIG_LOG_BUF_SHIFT=17" in local.read_text().splitlines()  # the rest is kept
    fedora = tmp_path / "fedora-merge.pl"
    fedora.write_text(FEDORA_STYLE_MERGE)
    base = tmp_path / "work/stages/fetch/pristine/SOURCES/kernel-x86_64-fedora.config"
    for script in (REPO / "fixtures/kernel-current/merge.pl", fedora):
        merged = kconfig.parse(run(["perl", str(script), str(local), str(base)]).stdout)
        assert {k: merged.get(k) for k in asked} == asked, script.name
        assert merged["CONFIG_LOG_BUF_SHIFT"] == "17"


# --- what the spec needs and the host lacks, named before the build --------------------

def needy(spec: str) -> str:
    """A spec edit: %install uses bash's pushd/popd and runs two commands no host has, as
    Fedora's runs sha512hmac in a subshell."""
    assert spec.count("\n%install\n") == 1
    return spec.replace("\n%install\n", "\n%install\npushd . > /dev/null\npopd > /dev/null\n"
                        "(cd . && respin-test-hmac x) > /dev/null\nrespin-test-tool --version\n")


def test_what_the_spec_needs_and_the_host_lacks_is_named_before_the_build(
        tmp_path: Path, current_srpm: Path) -> None:
    if Path("/bin/sh").resolve().name.startswith("bash"):
        pytest.skip("/bin/sh is bash here: rpm's default build shell takes pushd")
    spec_needs = respun_srpm(current_srpm, tmp_path, needy)
    pf = pipeline_file(tmp_path, spec_needs)
    # All in one pass, one line each, before any stage runs (by `respin check` too): the build
    # shell (with the remedy), then each command.
    for command in ("check", "run"):
        proc = respin(command, pf, check=False)
        assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
        lines = proc.stderr.splitlines()
        assert len(lines) == 3 and all(ln.startswith("respin: error: kernel.spec line ") for ln in lines)
        assert "%install uses pushd" in lines[0] and "/bin/sh (%_buildshell)" in lines[0]
        assert 'define = { _buildshell = "/bin/bash" }' in lines[0]
        for line, tool in zip(lines[1:], ("respin-test-hmac", "respin-test-tool"), strict=True):
            assert f"%install runs {tool}, which is not on the build's PATH" in line, tool
        assert not (tmp_path / "work").exists()  # refused before any stage ran

    # Given bash as rpm's build shell, as the line says, only the commands are left.
    pf.write_text(pf.read_text().replace('workdir = "work"\n',
                                         'workdir = "work"\ndefine = { _buildshell = "/bin/bash" }\n'))
    proc = respin("run", pf, check=False)
    assert proc.returncode == 3
    assert ["%install runs respin-test-hmac" in ln for ln in proc.stderr.splitlines()] == [True, False]
    assert "pushd" not in proc.stderr
    # And with the commands on PATH the build runs, bash taking pushd. (Not under pytest's
    # 0700 tmp dir: run as root, the build runs as an unprivileged user.)
    bindir = Path(tempfile.mkdtemp(prefix="respin-test-bin-"))
    try:
        bindir.chmod(0o755)
        for tool in ("respin-test-hmac", "respin-test-tool"):
            (bindir / tool).write_text("#!/bin/sh\nexit 0\n")
            (bindir / tool).chmod(0o755)
        respin("run", pf, env={"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"})
    finally:
        shutil.rmtree(bindir, ignore_errors=True)


def test_a_value_already_set_is_a_warning_and_the_build_goes_on(tmp_path: Path, srpm: Path) -> None:
    # The day upstream turns the option on, a CI job asking for it still builds (and verifies).
    pf = pipeline_file(tmp_path, srpm, config="set = { CONFIG_RESPIN_FEATURE_A = false }\n")
    proc = respin("run", pf, "--json")
    assert "already set" in proc.stderr and "nothing to change" in proc.stderr
    manifest = json.loads(proc.stdout)
    assert [s["status"] for s in manifest["stages"]] == ["ran"] * 7
    assert "# CONFIG_RESPIN_FEATURE_A is not set" in boot_config(built(manifest, "rpm")[0]).splitlines()
    (new_srpm,) = built(manifest, "srpm")
    assert not [f for f in read_package(new_srpm).files if "config-respin" in f]
    assert "CONFIG_RESPIN_FEATURE_A is not set" in _changelogs(new_srpm)[0]


# What a hostile spec tries from %prep and %build: say who it runs as, write where only root
# may, read root's secrets.
_WHO_AM_I = """\
echo "%s $(id -u) $(id -g)" >> {record}/uids
if touch /etc/respin-spec-was-root 2>/dev/null; then echo "%s wrote /etc" >> {record}/uids; fi
if cat /etc/shadow > /dev/null 2>&1; then echo "%s read /etc/shadow" >> {record}/uids; fi
"""


@pytest.mark.root
@pytest.mark.parametrize("srpm", ["kernel-current"], indirect=True)
def test_as_root_the_spec_runs_unprivileged_and_the_packages_are_roots(tmp_path: Path, srpm: Path) -> None:
    """Run as root, respin runs rpmbuild's %prep (prep and rebuild) and %build as an
    unprivileged uid: the spec cannot write /etc or read /etc/shadow; the packages still
    record root as the owner of every file, as a root build does."""
    record = Path(tempfile.mkdtemp(prefix="respin-uids-"))
    record.chmod(0o777)
    try:
        def edit(text: str) -> str:
            for section in ("%prep", "%build"):
                text = text.replace(f"\n{section}\n", f"\n{section}\n" + _WHO_AM_I.format(record=record)
                                    .replace("%s", section.lstrip("%")), 1)
            return text

        pf = pipeline_file(tmp_path, respun_srpm(srpm, tmp_path, edit), rebuild='mode = "binary"\n')
        manifest = json.loads(respin("run", pf, "--json").stdout)
        said = (record / "uids").read_text().splitlines()
    finally:
        shutil.rmtree(record, ignore_errors=True)
    assert not Path("/etc/respin-spec-was-root").exists()
    # prep's %prep, then rebuild's %prep and %build.
    assert not [ln for ln in said if " wrote " in ln or " read " in ln], said
    assert [ln.split()[0] for ln in said] == ["prep", "prep", "build"], said
    for line in said:
        _, uid, gid = line.split()
        assert int(uid) != 0 and int(gid) != 0, said
    import rpm

    (package,) = built(manifest, "rpm")
    ts = rpm.TransactionSet()
    ts.setVSFlags(rpm._RPMVSF_NOSIGNATURES | rpm._RPMVSF_NODIGESTS)
    with open(package, "rb") as fh:
        hdr = ts.hdrFromFdno(fh.fileno())
    assert hdr[rpm.RPMTAG_FILENAMES] and set(hdr[rpm.RPMTAG_FILEUSERNAME]) == {"root"}
    assert set(hdr[rpm.RPMTAG_FILEGROUPNAME]) == {"root"}
    # What the build wrote is respin's again (the packages), or private to the build.
    assert package.stat().st_uid == 0
    assert (tmp_path / "work/stages/rebuild/rpmbuild/BUILD").stat().st_mode & 0o777 == 0o700


def _every_arch(spec: str) -> str:
    """Today's Fedora spec: %prep keeps, merges kernel-local into and checks the configs of
    every arch (%{all_configs}), not the build arch's alone."""
    spec = re.sub(r"^%define all_arch_configs .*$", "%define all_configs %{name}-%{specrpmversion}-*.config",
                  spec, flags=re.M)
    return spec.replace("%{all_arch_configs}", "%{all_configs}")


def test_every_arch_that_prep_checks_is_checked_before_the_build(tmp_path: Path, current_srpm: Path) -> None:
    # 8000 CPUs is in x86_64's range (2-8192) and out of arm64's (2-4096): a spec that checks
    # the arm64 configs too would fail %prep; one that deletes them builds.
    config = 'set = { CONFIG_NR_CPUS = "8000" }\n'
    (tmp_path / "own").mkdir()
    respin("run", pipeline_file(tmp_path / "own", current_srpm, config=config), "--until", "config")
    every = respun_srpm(current_srpm, tmp_path / "every", _every_arch)
    proc = respin("run", pipeline_file(tmp_path, every, config=config), check=False)
    assert_one_line_error(proc, 3, "CONFIG_NR_CPUS=8000", "aarch64", "4096")
    assert "rebuild: running" not in proc.stderr


def test_a_shipped_config_that_already_fails_prep_s_check_is_named_before_the_build(
        tmp_path: Path, current_srpm: Path) -> None:
    # The arm64 config as shipped leaves KEXEC without a value (as Fedora's leave a symbol
    # that a host's pahole opens): %prep's check would fail whatever the change.
    shipped = (REPO / "fixtures/kernel-current/kernel-aarch64-fedora.config").read_text()
    broken = respun_srpm(current_srpm, tmp_path / "every", _every_arch,
                         sources={"kernel-aarch64-fedora.config": shipped.replace("CONFIG_KEXEC=y\n", "")})
    proc = respin("run", pipeline_file(tmp_path, broken), check=False)
    assert_one_line_error(proc, 3, "kernel-aarch64-fedora.config, as shipped, already fails",
                          "CONFIG_KEXEC", "not the change's doing")
    assert "rebuild: running" not in proc.stderr


def test_verify_fails_when_the_source_package_carries_another_change(tmp_path: Path, srpm: Path) -> None:
    # verify compares the carried Source (the patch, kernel-local) in the built SRPM with the
    # one inject wrote, byte for byte, and reads what it says of each request: a package
    # built from anything else is not "verified".
    from respin.pipeline.errors import VerifyError
    from respin.stages.kernel.kinds import Injected
    from respin.stages.kernel.lib import mechanism
    from respin.stages.kernel.lib.kconfig import Request

    carrier = mechanism.CARRIERS["kernel-local" if current(srpm) else "patch"]
    name = "kernel-local" if current(srpm) else "linux-2.6-utrace.patch"  # one the package has
    (shipped,) = [data for _, data in payload_files(srpm, re.compile(rf"(^|/){re.escape(name)}$"))]
    injected = Injected(buildid=".respin", source=name)
    same, other, empty = tmp_path / "same", tmp_path / "other", tmp_path / "empty"
    for where in (same, other, empty):
        where.mkdir()
    (same / name).write_bytes(shipped)
    (other / name).write_bytes(shipped + b"# not what the package carries\n")
    assert carrier.check_source(srpm, [], injected, same) == {carrier.report_key: name}
    with pytest.raises(VerifyError, match=f"its {re.escape(name)} is not the one respin wrote"):
        carrier.check_source(srpm, [], injected, other)
    with pytest.raises(VerifyError, match=f"cannot read the {re.escape(name)} inject wrote"):
        carrier.check_source(srpm, [], injected, empty)  # nothing to compare with: no "verified"
    said = "its kernel-local lacks" if current(srpm) else "its config patch does not carry"
    with pytest.raises(VerifyError, match=rf"{said} CONFIG_RESPIN_NOWHERE=y$"):
        carrier.check_source(srpm, [Request("CONFIG_RESPIN_NOWHERE", "y")], injected, same)
    gone = Injected(buildid=".respin", source="no-such-source")
    with pytest.raises(VerifyError, match="the source package lacks no-such-source"):
        carrier.check_source(srpm, [], gone, same)
