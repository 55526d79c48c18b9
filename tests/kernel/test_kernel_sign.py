"""Signed packages and a signed repository: the sign, rebuild, verify and publish stages with
real GnuPG keys, rpmsign, `rpm -K` against a private rpmdb, createrepo_c and dnf."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from dnfrepo import dnf
from respin_cli import assert_one_line_error, respin
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
                    [f"{tmp_path}/nope.key", "does not exist"]),
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
    assert statuses["rebuild"] == "failed" and not list((tmp_path / "work/rpmbuild/RPMS").rglob("*.rpm"))


def test_a_spec_that_always_signs_its_image_needs_a_secureboot_key_here(tmp_path: Path, srpm: Path) -> None:
    """Fedora's spec signs the image with %pesign on x86_64 whatever the host; a host without
    pesign's macros and no [sign] pair is told so before the build, not by a failed build."""
    top = tmp_path / "top"
    subprocess.run(["rpm", "-i", "--nodeps", "--define", f"_topdir {top}", str(srpm)], check=True,
                   capture_output=True)
    spec = top / "SPECS/kernel.spec"
    text = spec.read_text().replace("\n%build\n", "\n%build\n%if %{signkernel}\n"
                                    "%pesign -s -i IMAGE -o IMAGE.signed -a CA -c CERT -n NAME\n%endif\n", 1)
    spec.write_text("%global signkernel 1\n" + text)
    subprocess.run(["rpmbuild", "-bs", "--nodeps", "--define", f"_topdir {top}", str(spec)], check=True,
                   capture_output=True)
    signing = next((top / "SRPMS").glob("*.src.rpm"))
    stages = [s for s in SIGNED_STAGES if s not in ("sign", "publish")]
    proc = respin("run", pipeline(tmp_path, signing, "", stages=stages), check=False)
    assert_one_line_error(proc, ConfigError.exit_code, "signs the kernel image for Secure Boot with %pesign",
                          "give [sign] secureboot_key")
