"""Bit-for-bit reproducibility of whole pipelines: `respin repro` and two runs by hand.

The kernel pipeline (patch, spec, SRPM, binary RPM) is combined with the
network stage and the initrd stages (the kernel RPM and the rendered network
files repacked into an initrd), and run twice in different directories at
different wall-clock times, with SOURCE_DATE_EPOCH unset (taken from the SRPM's
changelog) and set.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from respin_cli import assert_one_line_error, respin
from signkeys import gpg_home, stop_agent

from fixtures.build import build_srpm
from respin.pipeline.repro import compare_manifests
from respin.stages.initrd.lib.writer import pack

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpmbuild is not installed")]
BASE_EPOCH = 1600000000
KINDS = {"patch", "spec", "srpm", "rpm", "initrd", "netfiles"}


@pytest.fixture(scope="module")
def srpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_srpm("kernel-2010", tmp_path_factory.mktemp("srpm"))


def base_initrd(where: Path) -> Path:
    tree = where / "initrd-tree"
    for d in ("bin", "etc", "boot"):
        (tree / d).mkdir(parents=True, exist_ok=True)
    (tree / "init").write_text("#!/bin/sh\nexec /bin/sh\n")
    (tree / "init").chmod(0o755)
    (tree / "etc/fstab").write_text("/dev/sda1 / ext4 defaults 0 1\n")
    image = where / "base.img"
    pack(tree, image, compress="gzip", epoch=BASE_EPOCH)
    return image


def combined_pipeline(where: Path, srpm: Path, extra_settings: str = "") -> Path:
    base = base_initrd(where)
    text = f"""[pipeline]
target = "i686"
workdir = "work"
stages = ["fetch", "prep", "config", "diff", "inject", "rebuild", "verify",
          "network", "initrd-extract", "initrd-modify", "initrd-pack"]
{extra_settings}
[fetch]
srpm = "{srpm}"

[config]
set = {{ CONFIG_RESPIN_FEATURE_A = "y", CONFIG_LOCALVERSION = "-respin" }}

[rebuild]
mode = "all"

[network]
device = "eth0"
address = "192.0.2.10/24"
gateway = "192.0.2.1"

[[network.alias]]
device = "eth0:1"
address = "198.51.100.10/24"
gateway = "198.51.100.1"
table = {{ id = 1, name = "test" }}

[initrd-extract]
image = "{base}"

[initrd-modify]
add = {{ "/" = "@netfiles", "boot/rpms" = "@rpm" }}

[initrd-pack]
compress = "gzip"
"""
    path = where / "kernel.toml"
    path.write_text(text)
    return path


def _env_without_epoch() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "SOURCE_DATE_EPOCH"}


def test_repro_command_kernel_initrd_network_identical(tmp_path: Path, srpm: Path) -> None:
    pf = combined_pipeline(tmp_path, srpm)
    proc = respin("repro", pf, "--json", "--keep", "--base", tmp_path / "repro", "--pause", "1.1",
                  env=_env_without_epoch(), timeout=300)
    report = json.loads(proc.stdout)
    assert report["identical"], report["differences"]
    kinds = {line.split()[1] for line in report["compared"]}
    assert kinds >= KINDS, kinds
    first, second = (Path(w) for w in report["workdirs"])
    assert first != second and first.name != second.name
    # Every deliverable is there, in both, byte for byte; the rpm is a real kernel package.
    m1 = json.loads((first / "manifest.json").read_text())
    m2 = json.loads((second / "manifest.json").read_text())
    for kind in ("srpm", "rpm", "initrd", "patch"):
        a = [x for x in m1["artifacts"] if x["kind"] == kind]
        b = [x for x in m2["artifacts"] if x["kind"] == kind]
        assert a and [x["sha256"] for x in a] == [x["sha256"] for x in b], kind
    # The runs happened at different wall-clock times (the builds' own logs say so).
    assert (first / "stages/rebuild/rebuild.log").stat().st_mtime + 1 <= \
        (second / "stages/rebuild/rebuild.log").stat().st_mtime


def test_two_runs_by_hand_different_dirs_and_times_same_bytes(tmp_path: Path, srpm: Path) -> None:
    """The same check without `repro`: two trees, the pipeline file copied into each, runs a
    second apart, SOURCE_DATE_EPOCH set explicitly this time."""
    manifests = []
    for name in ("one", "elsewhere/two"):
        where = tmp_path / name
        where.mkdir(parents=True)
        pf = combined_pipeline(where, srpm)
        manifests.append(json.loads(respin("run", pf, "--json", env={"SOURCE_DATE_EPOCH": "1300000000"},
                                           timeout=300).stdout))
        time.sleep(1.1)
    report = compare_manifests(manifests[0], manifests[1])
    assert report.identical, [d.line() for d in report.differences]
    assert {c.split()[1] for c in report.compared} >= KINDS


def test_repro_names_every_artifact_that_differs(tmp_path: Path, srpm: Path) -> None:
    """Two real runs, then one file of the second run's binary RPM and one of its network
    files altered: the comparison names exactly those two, by stage, kind and path."""
    pf = combined_pipeline(tmp_path, srpm)
    proc = respin("repro", pf, "--json", "--keep", "--base", tmp_path / "repro", "--pause", "0",
                  timeout=300)
    report = json.loads(proc.stdout)
    assert report["identical"]
    first, second = (Path(w) for w in report["workdirs"])
    m1 = json.loads((first / "manifest.json").read_text())
    m2 = json.loads((second / "manifest.json").read_text())
    (rpm_path,) = [Path(a["path"]) for a in m2["artifacts"] if a["kind"] == "rpm"]
    rpm_path.write_bytes(rpm_path.read_bytes() + b"\0")
    (net,) = [Path(a["path"]) for a in m2["artifacts"] if a["kind"] == "netfiles"]
    some = next(p for p in sorted(net.rglob("*")) if p.is_file())
    some.write_text(some.read_text() + "# changed\n")
    diff = compare_manifests(m1, m2)
    lines = [d.line() for d in diff.differences]
    assert len(lines) == 2, lines
    assert any(line.startswith("rebuild rpm stages/rebuild/rpmbuild/RPMS/i686/") and "content differs" in line
               for line in lines)
    assert any(line.startswith("network netfiles ") and some.name in line for line in lines)


def test_repro_bad_file_is_one_line_error(tmp_path: Path) -> None:
    proc = respin("repro", tmp_path / "nope.toml", check=False)
    assert_one_line_error(proc, 4, "nope.toml")


def test_repro_bad_pause_is_one_line_and_a_named_base_stays(tmp_path: Path) -> None:
    pf = tmp_path / "p.toml"
    pf.write_text('[example-write]\ntext = "x"\n')
    assert_one_line_error(respin("repro", pf, "--pause", "-1", check=False), 2, "--pause -1")
    base = tmp_path / "mine"
    base.mkdir()
    assert respin("repro", pf, "--pause", "0", "--base", base).returncode == 0
    assert base.is_dir() and list(base.iterdir()) == []  # identical: its runs removed, the dir kept


def test_repro_paths_map_between_work_dir_and_fixed_topdir(tmp_path: Path) -> None:
    from respin.stages.kernel.lib.rpmpkg import FIXED_TOPDIR, from_fixed, in_fixed_topdir, to_fixed

    top = tmp_path / "work/stages/rebuild/rpmbuild"
    spec = top / "SPECS/kernel.spec"
    assert to_fixed(spec, top) == FIXED_TOPDIR / "SPECS/kernel.spec"
    assert from_fixed(FIXED_TOPDIR / "RPMS/i686/k.rpm", top) == top / "RPMS/i686/k.rpm"
    assert to_fixed(tmp_path / "elsewhere.spec", top) == tmp_path / "elsewhere.spec"
    argv = in_fixed_topdir(["rpmbuild", "-bb", str(FIXED_TOPDIR / "SPECS/kernel.spec")], top)
    if argv is not None:
        assert argv[0] == "unshare" and argv[-4:] == [str(top), "rpmbuild", "-bb",
                                                      str(FIXED_TOPDIR / "SPECS/kernel.spec")]


def test_repro_without_mount_namespace_still_builds_and_warns(
        tmp_path: Path, srpm: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Where unshare is refused (some container sandboxes), rpmbuild runs with the real
    path: the build works, and a warning says the bytes now depend on the work dir."""
    import respin.stages.kernel.lib.backends as backends
    from respin.pipeline.errors import UsageError
    from respin.pipeline.pipelinefile import load
    from respin.pipeline.runner import Runner

    monkeypatch.setattr(backends, "fixed_topdir_available", lambda: False)
    pf = tmp_path / "kernel.toml"
    pf.write_text(f'[pipeline]\ntarget = "i686"\nworkdir = "work"\n\n[fetch]\nsrpm = "{srpm}"\n\n'
                  '[config]\nset = { CONFIG_RESPIN_FEATURE_A = "y" }\n')
    if os.geteuid() == 0:
        # Root builds as an unprivileged user in that namespace, or not at all.
        with pytest.raises(UsageError, match="respin runs as root and builds as an unprivileged user"):
            Runner(load(pf)).run()
        return
    result = Runner(load(pf)).run()
    assert result.ran[-1] == "verify"
    assert "no private mount namespace" in caplog.text


def test_repro_command_exit_8_names_the_initrd_when_nothing_sets_the_epoch(tmp_path: Path) -> None:
    """network + initrd without a kernel SRPM and without SOURCE_DATE_EPOCH anywhere: the
    repacked initrd takes its files' real times, so the two runs differ, and repro says which."""
    base = base_initrd(tmp_path)
    pf = tmp_path / "net.toml"
    pf.write_text(f"""[pipeline]
stages = ["network", "initrd-extract", "initrd-modify", "initrd-pack"]

[network]
device = "eth0"
address = "192.0.2.10/24"
gateway = "192.0.2.1"

[initrd-extract]
image = "{base}"

[initrd-modify]
add = {{ "/" = "@netfiles" }}

[initrd-pack]
compress = "gzip"
""")
    proc = respin("repro", pf, "--base", tmp_path / "repro", "--keep", "--pause", "1.1", check=False,
                  env=_env_without_epoch())
    assert_one_line_error(proc, 8, "difference(s) between two runs", "stages/initrd-pack/initrd.img",
                          f"work dirs kept: {tmp_path / 'repro/first'} and")
    assert "differs: initrd-pack initrd stages/initrd-pack/initrd.img: content differs" in proc.stdout
    assert not any("network" in ln for ln in proc.stdout.splitlines()), proc.stdout
    # With the epoch set, the same pipeline is reproducible.
    proc = respin("repro", pf, "--pause", "1.1", env={"SOURCE_DATE_EPOCH": "1300000000"})
    assert proc.stdout.startswith("identical: ")


def test_repro_current_layout_kernel_identical(tmp_path: Path) -> None:
    """The current Fedora/CentOS Stream layout (configs as Sources, kernel-local) as well."""
    current = build_srpm("kernel-current", tmp_path / "srpm")
    pf = tmp_path / "kernel.toml"
    pf.write_text(f'[pipeline]\ntarget = "x86_64"\nworkdir = "work"\n\n[fetch]\nsrpm = "{current}"\n\n'
                  '[config]\nset = { CONFIG_DEFAULT_HOSTNAME = "respin" }\n\n'
                  '[rebuild]\nwithout = ["debug"]\nmode = "all"\n')
    report = json.loads(respin("repro", pf, "--json", "--pause", "1.1", env=_env_without_epoch()).stdout)
    assert report["identical"], report["differences"]
    assert {"srpm", "rpm", "spec"} <= {c.split()[1] for c in report["compared"]}


@pytest.mark.skipif(shutil.which("gpg") is None or shutil.which("createrepo_c") is None,
                    reason="gpg and createrepo_c are not installed")
def test_repro_of_a_signed_run_signed_packages_and_repository(tmp_path: Path) -> None:
    """Signed packages and a signed repository are reproducible too: each signature is dated by
    the build (or by the key, when the key is newer), and the second run publishes into the
    first run's repository, which refuses a package whose bytes differ."""
    current = build_srpm("kernel-current", tmp_path / "srpm")
    home, fpr = gpg_home(tmp_path, "repro")
    stages = ["fetch", "sign", "prep", "config", "diff", "inject", "rebuild", "verify", "publish"]
    pf = tmp_path / "signed.toml"
    pf.write_text(f'[pipeline]\ntarget = "x86_64"\nworkdir = "work"\nstages = {json.dumps(stages)}\n\n'
                  f'[fetch]\nsrpm = "{current}"\n\n[sign]\ngpg_key = "{fpr}"\ngpg_home = "{home}"\n\n'
                  '[config]\nset = { CONFIG_DEFAULT_HOSTNAME = "respin" }\n\n'
                  '[rebuild]\nwithout = ["debug"]\nmode = "all"\n\n'
                  f'[publish]\nrepo = "{tmp_path / "repo"}"\n')
    try:
        report = json.loads(respin("repro", pf, "--json", "--pause", "1.1", env=_env_without_epoch()).stdout)
    finally:
        stop_agent(home)
    assert report["identical"], report["differences"]
    compared = {c.split()[1] for c in report["compared"]}
    assert {"srpm", "rpm", "gpg-pubkey", "published-package", "repo-signature"} <= compared, compared
    # Each run published into its own copy of the repository (compared as above), none into it.
    assert not (tmp_path / "repo").exists()
    assert any(c.startswith("publish repo outside/publish.repo/repodata/") for c in report["compared"])


def test_repro_stages_an_image_root_into_each_runs_own_copy(tmp_path: Path) -> None:
    """A [network] root outside the work dir: each run stages into a copy of it in its own
    work dir (compared like every artifact), and the real image root is left as it was."""
    pf = tmp_path / "pipeline.toml"
    shutil.copy(Path(__file__).parent.parent / "fixtures/network/pipeline.toml", pf)
    (tmp_path / "image/etc").mkdir(parents=True)
    (tmp_path / "image/etc/hostname").write_text("mine\n")
    proc = respin("repro", pf, "--json", "--keep", "--base", tmp_path / "r", "--pause", "0")
    report = json.loads(proc.stdout)
    assert report["identical"], report["differences"]
    assert sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "image").rglob("*")) == \
        ["image/etc", "image/etc/hostname"]
    assert "network staged outside/network.root/etc/sysconfig/network-scripts/ifcfg-eth0" \
        in report["compared"]
    for workdir in map(Path, report["workdirs"]):
        assert (workdir / "outside/network.root/etc/hostname").read_text() == "mine\n"


@pytest.mark.parametrize("output", ["ABS/packed.img", "../../../packed.img"])
def test_repro_packs_an_initrd_output_outside_the_work_dir_into_each_runs_own_copy(
        tmp_path: Path, output: str) -> None:
    base = base_initrd(tmp_path)
    pf = tmp_path / "i.toml"
    output = output.replace("ABS", str(tmp_path))
    pf.write_text(f'[pipeline]\nstages = ["initrd-extract", "initrd-pack"]\n\n[initrd-extract]\n'
                  f'image = "{base}"\n\n[initrd-pack]\noutput = "{output}"\n')
    before = sorted(p.name for p in tmp_path.rglob("*"))
    report = json.loads(respin("repro", pf, "--json", "--keep", "--base", tmp_path / "r", "--pause", "0",
                               env={"SOURCE_DATE_EPOCH": "1300000000"}).stdout)
    assert report["identical"], report["differences"]
    assert "initrd-pack initrd outside/initrd-pack.output" in report["compared"]
    assert sorted(p.name for p in tmp_path.rglob("*") if "r" not in p.relative_to(tmp_path).parts[:1]) \
        == before


def _tmpdir(tmp_path: Path) -> dict[str, str]:
    """An environment whose TMPDIR is a fresh, empty directory: what repro leaves in it shows."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    return {"TMPDIR": str(tmp)}


def test_repro_of_a_failing_pipeline_leaves_nothing_unless_kept(tmp_path: Path) -> None:
    pf = tmp_path / "p.toml"
    pf.write_text("[example-write]\nsource = \"gone.txt\"\n")
    env = _tmpdir(tmp_path)
    proc = respin("repro", pf, "--pause", "0", "--json", check=False, env=env)
    assert_one_line_error(proc, 4, "repro run 1 of 2", "gone.txt", "work dirs removed; --keep keeps them")
    assert list(Path(env["TMPDIR"]).iterdir()) == []
    kept = respin("repro", pf, "--pause", "0", "--keep", "--base", tmp_path / "b", check=False, env=env)
    assert_one_line_error(kept, 4, f"work dir kept: {tmp_path / 'b/first'}")
    assert (tmp_path / "b/first/manifest.json").is_file()


def test_repro_json_lists_only_the_work_dirs_that_are_kept(tmp_path: Path) -> None:
    pf = tmp_path / "p.toml"
    pf.write_text('[example-write]\ntext = "x"\n')
    env = _tmpdir(tmp_path)
    report = json.loads(respin("repro", pf, "--pause", "0", "--json", env=env).stdout)
    assert report["identical"] and report["workdirs"] == []
    assert list(Path(env["TMPDIR"]).iterdir()) == []
    report = json.loads(respin("repro", pf, "--pause", "0", "--json", "--keep", env=env).stdout)
    assert len(report["workdirs"]) == 2 and all(Path(w).is_dir() for w in report["workdirs"])
    # A work dir an earlier --keep left in a named base is never replaced without being asked.
    base = Path(report["workdirs"][0]).parent
    before = sorted(p.name for p in base.rglob("*"))
    again = respin("repro", pf, "--pause", "0", "--base", base, check=False, env=env)
    assert_one_line_error(again, 2, f"--base {base}: first/ is already there")
    assert sorted(p.name for p in base.rglob("*")) == before
