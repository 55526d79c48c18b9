"""The session's real kernel, signed with [sign] keys: its modules with the module key, its image
for Secure Boot, and both proven with the tools that enforce them.

- every module in the package carries a signature openssl verifies against the
  module key's certificate alone (the verify stage checked the same);
- the image boots under OVMF with Secure Boot enforcing when the firmware's db
  holds the session's certificate, and the same image unsigned is refused;
- the package, signed with the GnuPG key and published, installs with dnf
  checking every signature;
- without a module key the build makes one on the spot: respin says the builds
  will differ, and two builds of one input do differ (with the key, the
  compile-cache test shows a second build in another directory is identical).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from dnfrepo import dnf
from realbuild import BUILD_TIMEOUT, RealBuild, pipeline_text
from respin_cli import respin
from secureboot import boot_secure, enrolled_vars, missing_tools, unsigned
from signkeys import key_lines

from respin.pipeline.process import run
from respin.stages.kernel.lib import signing
from respin.stages.kernel.lib.rpmpkg import payload_files

pytestmark = pytest.mark.slow

CMDLINE = "console=ttyS0 panic=-1"
MODULE = re.compile(r"^/lib/modules/[^/]+/kernel/.*\.ko$")


def _keys(real_build: RealBuild) -> tuple[Path, Path, Path]:
    keys = real_build.keys
    assert keys is not None, "the session's build is the signed one"
    return keys.module, keys.secureboot_key, keys.secureboot_cert


def test_every_module_is_signed_with_the_module_key(real_build: RealBuild) -> None:
    module_pem, _, _ = _keys(real_build)
    modules = dict(payload_files(real_build.rpm, MODULE))
    assert any(name.endswith("/crc-ccitt.ko") for name in modules), sorted(modules)
    for name, data in modules.items():
        assert signing.module_problem(name, data, module_pem, run) is None, name
    report = json.loads((real_build.workdir / "stages/verify/report.json").read_text())
    assert report["signatures"]["modules"]["count"] == len(modules)
    assert report["signatures"]["secureboot"]["images"] == 1


def test_a_module_signed_by_another_key_is_told_apart(real_build: RealBuild, tmp_path: Path) -> None:
    """The check that passes above fails for another certificate and for no signature at all."""
    other = tmp_path / "other.pem"
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=other", "-days", "1",
         "-keyout", str(other), "-out", str(other)])
    name, data = next(iter(payload_files(real_build.rpm, MODULE)))
    assert "not by the [sign] module_key" in str(signing.module_problem(name, data, other, run))
    body = signing.split_module(data)
    assert body is not None
    assert "carries no module signature" in str(signing.module_problem(name, body[0], other, run))


@pytest.mark.skipif(bool(missing_tools()), reason=f"Secure Boot boots need {', '.join(missing_tools())}")
def test_the_signed_image_boots_with_secure_boot_enforcing(real_build: RealBuild, tmp_path: Path) -> None:
    _, _, cert = _keys(real_build)
    image = real_build.kernel_image(tmp_path)
    vars_store = enrolled_vars(cert, tmp_path / "vars.fd")
    console = boot_secure(image, vars_store, CMDLINE)
    assert f"Linux version {real_build.kverrel} " in console, console[-2000:]
    assert "secureboot: Secure boot enabled" in console, console[-2000:]

    refused = boot_secure(unsigned(image, tmp_path / "unsigned.efi"), vars_store, CMDLINE)
    assert "Linux version" not in refused and "EFI stub" not in refused, refused[-2000:]
    assert "Access Denied" in refused or "Security Violation" in refused, refused[-2000:]


def test_without_a_module_key_two_builds_differ_and_respin_says_so(real_build: RealBuild,
                                                                   tmp_path: Path) -> None:
    cache = next(a for a in real_build.manifest["artifacts"]  # type: ignore[union-attr]
                 if a["kind"] == "log" and "ccache" in a.get("meta", {}))["meta"]["ccache"]["dir"]
    pf = tmp_path / "kernel.toml"
    pf.write_text(pipeline_text(real_build.srpm, Path(cache), None))
    first = respin("run", pf, "--json", cwd=tmp_path, timeout=BUILD_TIMEOUT)
    assert "CONFIG_MODULE_SIG is set and [sign] module_key is not" in first.stderr
    assert "will not be byte-identical" in first.stderr
    rpm = next(Path(a["path"]) for a in json.loads(first.stdout)["artifacts"] if a["kind"] == "rpm")
    image = re.compile(rf"^/lib/modules/{re.escape(real_build.kverrel)}/vmlinuz$")
    before = dict(payload_files(rpm, image)), dict(payload_files(rpm, MODULE))
    second = respin("run", pf, "--json", "--only", "rebuild", "--force", cwd=tmp_path, timeout=BUILD_TIMEOUT)
    assert "will not be byte-identical" in second.stderr
    after = dict(payload_files(rpm, image)), dict(payload_files(rpm, MODULE))
    # Another key each build: the image embeds its certificate, each module its signature.
    assert before[0] != after[0]
    assert before[1].keys() == after[1].keys() and before[1] != after[1]


def test_no_private_key_in_the_package_the_logs_or_the_manifest(real_build: RealBuild) -> None:
    """The keys went into the build through a private directory: none of their private lines is in
    any file of the package, or in the work dir (logs, manifest, hand-offs; the compile cache aside)."""
    module_pem, sb_key, _ = _keys(real_build)
    secrets = [line.encode() for line in key_lines(module_pem) + key_lines(sb_key)]
    assert secrets
    payload = dict(payload_files(real_build.rpm, re.compile(".")))
    assert len(payload) > 5
    leaked = [name for name, data in payload.items() if any(s in data for s in secrets)]
    work = [p for p in real_build.workdir.rglob("*") if p.is_file() and "ccache" not in p.parts]
    assert any(p.name == "manifest.json" for p in work) and any(p.name == "rebuild.log" for p in work)
    leaked += [str(p) for p in work if any(s in p.read_bytes() for s in secrets)]
    assert not leaked, leaked


@pytest.mark.skipif(shutil.which("dnf") is None, reason="dnf is not installed")
def test_the_signed_package_installs_from_the_published_repository(real_build: RealBuild,
                                                                  tmp_path: Path) -> None:
    """The session's run signed the package with its GnuPG key and published it: dnf, checking
    the repository's and the package's signatures, installs the kernel with its signed module."""
    repo = real_build.workdir.parent / "repo"
    assert (repo / "repodata/repomd.xml.asc").is_file() and (repo / real_build.rpm.name).is_file()
    installed = dnf(tmp_path / "root", repo, "install", "kernel")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    root = tmp_path / "root"
    # The image in the module directory; the /boot copies are %ghost: rpm installs no content
    # there (kernel-install would copy them), it only owns the names.
    assert (root / f"lib/modules/{real_build.kverrel}/vmlinuz").is_file()
    assert not (root / f"boot/vmlinuz-{real_build.kverrel}").exists()
    module = next((root / f"lib/modules/{real_build.kverrel}").rglob("crc-ccitt.ko"))
    module_pem, _, _ = _keys(real_build)
    assert signing.module_problem(module.name, module.read_bytes(), module_pem, run) is None
