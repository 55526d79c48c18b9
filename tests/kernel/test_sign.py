"""Signed packages and a signed repository: the sign, rebuild, verify and publish stages with
real GnuPG keys, rpmsign, `rpm -K` against a private rpmdb, createrepo_c and dnf."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dnfrepo import dnf
from respin_cli import RESPIN, assert_one_line_error, respin
from signkeys import encrypted, gpg_home, key_lines, stop_agent, x509_pair

from fixtures.build import build_srpm
from respin.pipeline.errors import ConfigError, InputError, VerifyError

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("rpmbuild") is None, reason="rpmbuild is not installed"),
              pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")]
SIGNED_STAGES = ["fetch", "sign", "prep", "config", "diff", "inject", "rebuild", "verify", "publish"]


@pytest.fixture(scope="module")
def srpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_srpm("kernel-current", tmp_path_factory.mktemp("kernel-current"))


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    where = tmp_path_factory.mktemp("keys")
    home, fpr = gpg_home(where, "release")
    other_home, other_fpr = gpg_home(where, "other")
    yield {"home": home, "fpr": fpr, "other_home": other_home, "other_fpr": other_fpr, "where": where}
    for gnupg in (home, other_home):
        stop_agent(gnupg)


def pipeline(where: Path, srpm: Path, sign: str, repo: str = "repo",
             stages: list[str] = SIGNED_STAGES) -> Path:
    """A pipeline file; a [sign] and a [publish] table for those stages when in `stages`."""
    text = (f'[pipeline]\ntarget = "x86_64"\nworkdir = "work"\nstages = {json.dumps(stages)}\n\n'
            f'[fetch]\nsrpm = "{srpm}"\n\n' + (f"[sign]\n{sign}\n" if "sign" in stages else "") +
            '[config]\nset = { CONFIG_RESPIN_FEATURE_A = "y" }\n\n'
            '[rebuild]\nwithout = ["debug"]\nmode = "all"\n\n'
            + (f'[publish]\nrepo = "{repo}"\n' if "publish" in stages else ""))
    path = where / "kernel.toml"
    path.write_text(text)
    return path


def gpg_table(home: Path, fpr: str) -> str:
    return f'gpg_key = "{fpr}"\ngpg_home = "{home}"\n'


def respun(srpm: Path, top: Path, edit: Callable[[str], str]) -> Path:
    """`srpm` built again with its spec edited by `edit`."""
    subprocess.run(["rpm", "-i", "--nodeps", "--define", f"_topdir {top}", str(srpm)], check=True,
                   capture_output=True)
    spec = top / "SPECS/kernel.spec"
    spec.write_text(edit(spec.read_text()))
    subprocess.run(["rpmbuild", "-bs", "--nodeps", "--define", f"_topdir {top}", str(spec)], check=True,
                   capture_output=True)
    return next((top / "SRPMS").glob("*.src.rpm"))


def rpm_k(pubkey: Path, package: Path, db: Path) -> subprocess.CompletedProcess[str]:
    db.mkdir(exist_ok=True)
    subprocess.run(["rpm", "--dbpath", str(db), "--import", str(pubkey)], check=True, capture_output=True)
    return subprocess.run(["rpm", "--dbpath", str(db), "-Kv", str(package)], capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("createrepo_c") is None or shutil.which("dnf") is None,
                    reason="createrepo_c and dnf are not installed")
def test_signed_packages_in_a_signed_repository_dnf_installs(tmp_path: Path, srpm: Path,
                                                              keys: dict[str, object]) -> None:
    home, fpr = Path(str(keys["home"])), str(keys["fpr"])
    pf = pipeline(tmp_path, srpm, gpg_table(home, fpr))
    manifest = json.loads(respin("run", pf, "--json").stdout)
    assert [s["status"] for s in manifest["stages"]] == ["ran"] * len(SIGNED_STAGES)
    packages = [Path(a["path"]) for a in manifest["artifacts"] if a["kind"] in ("rpm", "srpm")]
    assert len(packages) == 2
    pubkey = tmp_path / "repo" / "RPM-GPG-KEY-respin"
    # Each package is signed by that key, as rpm itself checks it against that key alone.
    for pkg in packages:
        checked = rpm_k(pubkey, pkg, tmp_path / "rpmdb")
        assert checked.returncode == 0 and "Signature, key ID " + fpr[-8:].lower() + ": OK" in checked.stdout
    report = json.loads((tmp_path / "work/stages/verify/report.json").read_text())
    assert report["signatures"]["packages"] == {"signed_by": fpr, "count": 2}

    repo = tmp_path / "repo"
    assert sorted(p.name for p in repo.glob("*.rpm")) == sorted(p.name for p in packages)
    assert (repo / "repodata/repomd.xml.asc").read_text().startswith("-----BEGIN PGP SIGNATURE-----")
    installed = dnf(tmp_path / "root", repo, "install", "kernel")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert list((tmp_path / "root/boot").glob("vmlinuz-*"))

    # The same run again changes nothing; published again into the repository, each package is kept.
    again = json.loads(respin("run", pf, "--json").stdout)
    assert [s["status"] for s in again["stages"]] == ["up to date"] * len(SIGNED_STAGES)
    repomd = (repo / "repodata/repomd.xml").read_bytes()
    forced = respin("run", pf, "--force", "--only", "publish", "--json")
    meta = next(a["meta"] for a in json.loads(forced.stdout)["artifacts"] if a["kind"] == "repo")
    assert meta["added"] == [] and len(meta["kept"]) == 2
    assert (repo / "repodata/repomd.xml").read_bytes() == repomd


@pytest.mark.skipif(shutil.which("createrepo_c") is None or shutil.which("dnf") is None,
                    reason="createrepo_c and dnf are not installed")
def test_dnf_refuses_a_package_signed_by_another_key(tmp_path: Path, srpm: Path,
                                                     keys: dict[str, object]) -> None:
    """The repository signed by one key, a package in it by another: dnf refuses the package."""
    other = pipeline(tmp_path, srpm, gpg_table(Path(str(keys["other_home"])), str(keys["other_fpr"])),
                     repo="other-repo")
    respin("run", other)
    good = tmp_path / "good"
    good.mkdir()
    respin("run", pipeline(good, srpm, gpg_table(Path(str(keys["home"])), str(keys["fpr"])), repo="repo"))
    repo = good / "repo"
    # Swap in the other key's kernel package under the same name, and remake the signed metadata.
    kernel = next(p for p in repo.glob("kernel-*.x86_64.rpm"))
    shutil.copyfile(next((tmp_path / "other-repo").glob("kernel-*.x86_64.rpm")), kernel)
    subprocess.run(["createrepo_c", "-q", "--no-database", str(repo)], check=True)
    subprocess.run(["gpg", "--homedir", str(keys["home"]), "--batch", "--yes", "--armor", "--detach-sign",
                    "--local-user", str(keys["fpr"]), str(repo / "repodata/repomd.xml")], check=True,
                   capture_output=True)
    stop_agent(Path(str(keys["home"])))
    refused = dnf(tmp_path / "root", repo, "install", "kernel")
    assert refused.returncode != 0
    assert "GPG" in refused.stdout + refused.stderr or "gpg" in refused.stdout + refused.stderr
    assert not list((tmp_path / "root/boot").glob("vmlinuz-*"))


def test_a_published_package_is_never_replaced_by_other_bytes(tmp_path: Path, srpm: Path,
                                                              keys: dict[str, object]) -> None:
    first = pipeline(tmp_path, srpm, gpg_table(Path(str(keys["home"])), str(keys["fpr"])),
                     stages=SIGNED_STAGES[:-1] + ["publish"])
    respin("run", first)
    repo = tmp_path / "repo"
    before = {p.name: p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    # The same NEVRA signed by another key is other bytes.
    second = tmp_path / "second"
    second.mkdir()
    pf = pipeline(second, srpm, gpg_table(Path(str(keys["other_home"])), str(keys["other_fpr"])),
                  repo=str(repo))
    proc = respin("run", pf, check=False)
    assert_one_line_error(proc, InputError.exit_code, "already holds kernel-", "never replaced")
    assert {p.name: p.read_bytes() for p in repo.rglob("*") if p.is_file()} == before


def test_signed_runs_give_the_same_bytes(tmp_path: Path, srpm: Path, keys: dict[str, object]) -> None:
    """Signatures are dated by the build, so two runs with one key are byte-identical, repository
    metadata included."""
    digests = []
    for name in ("a", "b"):
        where = tmp_path / name
        where.mkdir()
        manifest = json.loads(respin("run", pipeline(where, srpm, gpg_table(Path(str(keys["home"])),
                                                                             str(keys["fpr"]))),
                                     "--json").stdout)
        digests.append(sorted((Path(a["path"]).name, a["sha256"]) for a in manifest["artifacts"]
                              if a["kind"] in ("rpm", "srpm", "repo", "repo-signature")))
    assert digests[0] == digests[1] and len(digests[0]) == 4


@pytest.mark.parametrize("case", ["missing", "encrypted", "mismatch", "no-gpg-key", "gpg-passphrase"])
def test_bad_keys_fail_in_one_line_before_any_build(tmp_path: Path, srpm: Path, keys: dict[str, object],
                                                    case: str) -> None:
    key, cert = x509_pair(tmp_path, "sb")
    _, other_cert = x509_pair(tmp_path, "other")
    sign, needles = {
        "missing": (f'secureboot_key = "{tmp_path}/nope.key"\nsecureboot_cert = "{cert}"\n',
                    [f"{tmp_path}/nope.key: no such file (an input of stage 'sign')"]),
        "encrypted": (f'module_key = "{encrypted(key, tmp_path / "enc.pem")}"\n',
                      [f"{tmp_path}/enc.pem", "encrypted"]),
        "mismatch": (f'secureboot_key = "{key}"\nsecureboot_cert = "{other_cert}"\n',
                     [str(other_cert), "does not match the key"]),
        "no-gpg-key": (gpg_table(Path(str(keys["home"])), "nobody@respin.invalid"),
                       [str(keys["home"]), "no secret key 'nobody@respin.invalid'"]),
        "gpg-passphrase": ("", ["cannot sign without a passphrase"]),
    }[case]
    if case == "gpg-passphrase":
        home, fpr = gpg_home(tmp_path, "locked", passphrase="secret")
        sign = gpg_table(home, fpr)
    pf = pipeline(tmp_path, srpm, sign)
    proc = respin("run", pf, "--json", check=False)
    assert_one_line_error(proc, InputError.exit_code, *needles)
    manifest = json.loads((tmp_path / "work/manifest.json").read_text())
    assert [s["status"] for s in manifest["stages"]][:3] == ["ran", "failed", "not reached"]


def test_the_module_key_never_lands_in_outputs(tmp_path: Path, srpm: Path, keys: dict[str, object]) -> None:
    """The module key goes into the build and out again: this text-kernel fixture's modules are
    text, never signed, so verify refuses the run (no signature it did not find is claimed), and
    no line of the private key is left in the work dir, the logs or the manifest."""
    module, _ = x509_pair(tmp_path, "module", combined=True)
    pf = pipeline(tmp_path, srpm, f'module_key = "{module}"\n' + gpg_table(Path(str(keys["home"])),
                                                                           str(keys["fpr"])))
    proc = respin("run", pf, check=False)
    assert_one_line_error(proc, VerifyError.exit_code, ".ko carries no module signature")
    secrets = key_lines(module)
    assert secrets
    for path in (tmp_path / "work").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s.encode() in data for s in secrets), path


def test_a_secureboot_key_for_a_spec_that_never_signs_is_refused_before_the_build(
        tmp_path: Path, srpm: Path) -> None:
    sb_key, sb_cert = x509_pair(tmp_path, "sb")
    pf = pipeline(tmp_path, srpm, f'secureboot_key = "{sb_key}"\nsecureboot_cert = "{sb_cert}"\n')
    proc = respin("run", pf, check=False)
    assert_one_line_error(proc, ConfigError.exit_code, "[sign] secureboot_key", "never signs its kernel")
    manifest = json.loads((tmp_path / "work/manifest.json").read_text())
    statuses = {s["name"]: s["status"] for s in manifest["stages"]}
    rpms = tmp_path / "work/stages/rebuild/rpmbuild/RPMS"
    assert statuses["rebuild"] == "failed" and not list(rpms.rglob("*.rpm"))


# A stand-in for mock that records its call and fails as mock does.
FAILING_MOCK = """#!/bin/sh
echo "$@" > "$(dirname "$0")/called"
echo "ERROR: Exception(kernel.src.rpm) Config(default) build failed" >&2
exit 30
"""


@pytest.mark.parametrize("builds", ["here", "source only", "in mock"])
def test_a_spec_that_always_signs_its_image_needs_a_secureboot_key_here(
        tmp_path: Path, srpm: Path, monkeypatch: pytest.MonkeyPatch, builds: str) -> None:
    """Fedora's spec signs the image with %pesign on x86_64 whatever the host; a host without
    pesign's macros and no [sign] pair is told so before the build, not by a failed build. That
    check, and the warning about a module key made on the spot, are about what this host
    compiles: a source build runs no %pesign, and mock builds with the chroot's macros."""
    signing = respun(srpm, tmp_path / "top", lambda text: "%global signkernel 1\n" + text.replace(
        "\n%build\n", "\n%build\n%if %{signkernel}\n"
        "%pesign -s -i IMAGE -o IMAGE.signed -a CA -c CERT -n NAME\n%endif\n", 1))
    stages = [s for s in SIGNED_STAGES if s not in ("sign", "publish")]
    pf = pipeline(tmp_path, signing, "", stages=stages)
    made_key = "signs its modules with a key it makes on the spot"
    if builds == "here":
        proc = respin("run", pf, check=False)
        assert_one_line_error(proc, ConfigError.exit_code, "signs the kernel image for Secure Boot with "
                              "%pesign", "give [sign] secureboot_key")
        assert made_key in proc.stderr
        return
    if builds == "source only":
        pf.write_text(pf.read_text().replace('mode = "all"', 'mode = "source"'))
        proc = respin("run", pf, "--until", "rebuild")
        assert list((tmp_path / "work/stages/rebuild/rpmbuild/SRPMS").glob("kernel-*.src.rpm"))
    else:
        bindir = tmp_path / "bin"
        bindir.mkdir()
        (bindir / "mock").write_text(FAILING_MOCK)
        (bindir / "mock").chmod(0o755)
        monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
        pf.write_text(pf.read_text().replace('mode = "all"', 'backend = "mock"'))
        proc = respin("run", pf, "--until", "rebuild", check=False)
        assert_one_line_error(proc, 5, "mock --rebuild of kernel-", "exit status 30")
        assert "--rebuild" in (bindir / "called").read_text()
    assert "%pesign" not in proc.stderr and made_key not in proc.stderr


# --- the module key in the build --------------------------------------------------------

# What the kernel's certs/Makefile and Fedora's spec do with the module key (make it from
# x509.genkey, copy it per variant), then wait at a gate the test opens: `go` lets the build
# go on, `go` and `fail` make it fail.
_MAKES_KEY = """\
mkdir -p certs
openssl req -new -nodes -utf8 -sha256 -days 36500 -batch -x509 -config certs/x509.genkey \\
  -outform PEM -out certs/signing_key.pem -keyout certs/signing_key.pem
cp certs/signing_key.pem certs/signing_key.pem.sign
while [ ! -e {gate}/go ]; do sleep 0.1; done
if [ -e {gate}/fail ]; then exit 1; fi
"""


@pytest.fixture
def gate() -> Iterator[Path]:
    """A directory the build (whoever it runs as) can look into: not under pytest's 0700 tmp."""
    where = Path(tempfile.mkdtemp(prefix="respin-gate-"))
    where.chmod(0o755)
    yield where
    (where / "go").touch()  # a build still waiting ends
    shutil.rmtree(where, ignore_errors=True)


def gated_run(tmp_path: Path, srpm: Path, gate: Path) -> tuple[Path, Path]:
    """A pipeline file whose build makes the module key as the kernel does and waits at
    `gate`; and the module key."""
    key_srpm = respun(srpm, tmp_path / "top", lambda text: text.replace(
        "%{log_msg Start of build stage}\ncd linux-%{KVERREL}\n",
        "%{log_msg Start of build stage}\ncd linux-%{KVERREL}\n" + _MAKES_KEY.format(gate=gate), 1))
    module, _ = x509_pair(tmp_path, "module", combined=True)
    stages = [s for s in SIGNED_STAGES if s != "publish"]
    return pipeline(tmp_path, key_srpm, f'module_key = "{module}"\n', stages=stages), module


def wait_for(path: Callable[[], list[Path]], proc: subprocess.Popen[str]) -> list[Path]:
    deadline = time.monotonic() + 120
    while not (found := path()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the build never made its key"
        time.sleep(0.05)
    return found


def key_files(work: Path) -> list[Path]:
    return sorted(work.glob("stages/rebuild/rpmbuild/BUILD/*/linux-*/certs/signing_key.pem*"))


def assert_no_key_in(work: Path, module: Path) -> None:
    secrets = [s.encode() for s in key_lines(module)]
    for path in work.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            assert not any(s in data for s in secrets), path


@pytest.mark.root
@pytest.mark.parametrize("ends", ["succeeds", "fails", "SIGTERM"])
def test_the_module_key_in_the_build_is_the_builds_alone_and_gone_when_it_ends(
        tmp_path: Path, srpm: Path, gate: Path, ends: str) -> None:
    """The key the build makes (the stand-in openssl's copy of [sign] module_key) and the
    spec's copy of it are 0600: another user cannot read them during the compile; and no
    file holding the key is left in the build trees once the build ends, however it ends."""
    pf, module = gated_run(tmp_path, srpm, gate)
    work = tmp_path / "work"
    proc = subprocess.Popen([str(RESPIN), "run", str(pf)], stdin=subprocess.DEVNULL, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        made = wait_for(lambda: [p for p in key_files(work) if p.name.endswith(".sign")], proc)
        for path in [*key_files(work), *made]:
            assert path.stat().st_mode & 0o777 == 0o600, path
            read = subprocess.run(["runuser", "-u", "nobody", "--", "cat", str(path)],
                                  capture_output=True, text=True)
            assert read.returncode != 0 and "PRIVATE KEY" not in read.stdout, path
        if ends == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        else:
            if ends == "fails":
                (gate / "fail").touch()
            (gate / "go").touch()
        _, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    # The text kernel's modules are never signed, so verify refuses a build that succeeded.
    code = {"succeeds": VerifyError.exit_code, "fails": 5, "SIGTERM": 130}[ends]
    assert_one_line_error(subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr), code)
    assert (work / "stages/rebuild/rpmbuild/BUILD").is_dir() and not key_files(work)
    assert_no_key_in(work, module)


@pytest.mark.root
def test_key_copies_of_a_killed_run_are_removed_by_the_next_run(tmp_path: Path, srpm: Path,
                                                                gate: Path) -> None:
    """kill -9 of a signing run's process group mid-build: the key copies stay only in the
    rebuild's private directory, which the next run of the work dir removes first thing."""
    pf, module = gated_run(tmp_path, srpm, gate)
    work = tmp_path / "work"
    before = set(Path(tempfile.gettempdir()).glob("respin-keys-*"))
    proc = subprocess.Popen([str(RESPIN), "run", str(pf)], stdin=subprocess.DEVNULL, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: key_files(work), proc)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    (private,) = work.glob("stages/rebuild/.respin-keys.*.tmp")
    assert private.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in private.rglob("*.pem"))
    assert set(Path(tempfile.gettempdir()).glob("respin-keys-*")) == before
    # Any later run of the work dir removes them, even one that runs no stage.
    respin("run", pf, "--until", "fetch")
    assert not list(work.rglob(".respin-keys.*"))
    # ...and the build the killed run left, still waiting at the gate, is ended.
    (gate / "go").touch()
    respin("run", pf, check=False)
    assert not key_files(work)
    assert_no_key_in(work, module)
