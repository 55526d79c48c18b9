"""The Secure Boot harness enforces: only an image signed with the enrolled test key boots.

Proved on the distribution's own kernel image (/boot/vmlinuz-*, an EFI stub
kernel; on Debian signed by Debian, whose key the firmware does not trust):
with its signature stripped and signed with the test key it boots with Secure
Boot enforcing, while the stripped image and the distribution's original are
refused by the firmware before any kernel code runs. The kernel has no root
file system here: it panics, and `panic=-1` with qemu's -no-reboot ends the run.
"""

from __future__ import annotations

import glob
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from secureboot import boot_secure, enrolled_vars, make_test_key, missing_tools, sign, unsigned, verify

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(missing_tools()),
                                 reason=f"Secure Boot boots need {', '.join(missing_tools())}")]

KEY_NAME = "respin-test-secure-boot"
CMDLINE = "console=ttyS0 panic=-1 respin.secureboot=test"
# Within it the firmware's refusal or the kernel's panic ends the run; this only bounds a hang.
TIMEOUT = 180.0


def distribution_kernel() -> Path | None:
    """The newest installed kernel image that is a PE image (has an EFI stub), if any: Fedora's
    kernel-core carries it as /lib/modules/<kver>/vmlinuz (its /boot copy is %ghost, made by
    kernel-install), Debian's linux-image package as /boot/vmlinuz-<kver>."""
    names = glob.glob("/lib/modules/*/vmlinuz") + glob.glob("/boot/vmlinuz-*")
    # By the kernel release each names: <kver>/vmlinuz or vmlinuz-<kver>.
    for name in sorted(names, reverse=True, key=lambda n: Path(n).parent.name if n.endswith("/vmlinuz")
                       else Path(n).name.removeprefix("vmlinuz-")):
        with open(name, "rb") as fh:
            head = fh.read(0x40)
        if len(head) == 0x40 and head[:2] == b"MZ":
            return Path(name)
    return None


@dataclass(frozen=True)
class Images:
    """The distribution's image as shipped, stripped of its signature, and signed with the test key."""

    original: Path
    unsigned: Path
    signed: Path
    cert: Path  # the test key's certificate
    vars: Path  # an OVMF variable store trusting that certificate alone


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    kernel = distribution_kernel()
    if kernel is None:
        pytest.skip("no kernel image with an EFI stub on this machine (/lib/modules/*/vmlinuz or "
                    "/boot/vmlinuz-*: linux-image-amd64 / kernel-core)")
    work = tmp_path_factory.mktemp("secureboot")
    key, cert = make_test_key(work, KEY_NAME)
    original = work / "original.efi"
    shutil.copyfile(kernel, original)
    bare = unsigned(original, work / "unsigned.efi")
    return Images(original=original, unsigned=bare, signed=sign(bare, key, cert, work / "signed.efi"),
                  cert=cert, vars=enrolled_vars(cert, work / "vars.fd"))


def test_sbverify_accepts_only_the_test_signature(images: Images) -> None:
    assert verify(images.signed, images.cert)
    assert not verify(images.unsigned, images.cert)
    assert not verify(images.original, images.cert)


def test_the_signed_kernel_boots_with_secure_boot_enforcing(images: Images) -> None:
    vars_before = images.vars.read_bytes()
    console = boot_secure(images.signed, images.vars, CMDLINE, TIMEOUT)
    # The EFI stub sees Secure Boot on, the kernel then runs with it (and locks itself down).
    assert "EFI stub: UEFI Secure Boot is enabled." in console, console[-4000:]
    assert "Linux version " in console, console[-4000:]
    assert "secureboot: Secure boot enabled" in console, console[-4000:]
    # The command line came through the boot entry's load options.
    assert f"Kernel command line: {CMDLINE}" in console, console[-4000:]
    # The firmware's db is ours: the kernel loads its certificates into the platform keyring.
    assert f"Loaded X.509 cert '{KEY_NAME}" in console, console[-4000:]
    # It ran up to mounting a root file system, and the panic ended the run.
    assert "Kernel panic - not syncing: VFS: Unable to mount root fs" in console, console[-4000:]
    assert images.vars.read_bytes() == vars_before  # the boot ran on a copy


@pytest.mark.parametrize("which", ["unsigned", "original"])
def test_an_image_not_signed_with_the_test_key_is_refused(images: Images, which: str) -> None:
    console = boot_secure(getattr(images, which), images.vars, CMDLINE, TIMEOUT)
    # The firmware refuses our boot entry's image, finds nothing else to boot and gives up;
    # nothing of the kernel ran, not even its EFI stub.
    assert "failed to load Boot0000" in console, console[-4000:]
    refusal = [ln for ln in console.splitlines() if "failed to load Boot0000" in ln]
    assert refusal[0].rstrip().endswith("Access Denied"), refusal
    assert "No bootable option or device was found" in console, console[-4000:]
    assert "EFI stub" not in console, console[-4000:]
    assert "Linux version" not in console, console[-4000:]
