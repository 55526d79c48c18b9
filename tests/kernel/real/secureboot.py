"""Booting a kernel EFI image under qemu + OVMF with UEFI Secure Boot enforcing.

The firmware trusts one certificate of our own: `make_test_key` makes it,
`enrolled_vars` writes an OVMF variable store with it as PK, KEK and db (no
Microsoft keys, so nothing else is allowed) and Secure Boot on. `sign`,
`unsigned` and `verify` are sbsigntool's sbsign, sbattach --remove and
sbverify. `boot_secure` puts the image at \\EFI\\BOOT\\BOOTX64.EFI on an ESP (a
directory qemu shows as a FAT disk) and boots it through a Boot0000 entry
whose optional data is the kernel command line: the boot manager hands that
data to the image as its load options, which the EFI stub reads as the
command line.
(The UEFI shell, a startup.nsh's way to pass one, is itself refused by the
Secure Boot build of OVMF.)

What the console shows, with the strings the tests assert on:

- allowed: `EFI stub: UEFI Secure Boot is enabled.`, then the kernel's own
  `secureboot: Secure boot enabled`; with no root file system the kernel
  panics, `panic=-1` reboots it and qemu's -no-reboot turns that into an exit;
- refused: `BdsDxe: failed to load Boot0000 ...: Access Denied`, then the
  firmware's `No bootable option or device was found.` (it would then wait for
  a key, so the boot stops at that line).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QEMU = shutil.which("qemu-system-x86_64")
OPENSSL = shutil.which("openssl")
SBSIGN = shutil.which("sbsign")
SBVERIFY = shutil.which("sbverify")
SBATTACH = shutil.which("sbattach")
# virt-firmware is a dev extra: its command sits next to the venv's python even when
# the venv's bin is not on PATH (`.venv/bin/python -m pytest`).
VIRT_FW_VARS = shutil.which("virt-fw-vars") or shutil.which("virt-fw-vars",
                                                            path=str(Path(sys.executable).parent))

# The Secure Boot code image and the empty variable store of the same size it pairs with:
# Debian/Ubuntu (ovmf), Fedora (edk2-ovmf), Arch (edk2-ovmf). The stores with keys already
# in them (*.ms.fd, *.secboot.fd) are not used: they trust Microsoft's or a distribution's keys.
FIRMWARE = [
    ("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    ("/usr/share/edk2/ovmf/OVMF_CODE.secboot.fd", "/usr/share/edk2/ovmf/OVMF_VARS.fd"),
    ("/usr/share/edk2/x64/OVMF_CODE.secboot.4m.fd", "/usr/share/edk2/x64/OVMF_VARS.4m.fd"),
]

SECURE_BOOT_TIMEOUT = 300.0  # TCG on a loaded machine; a boot to the kernel's panic takes ~20 s
# The owner of the enrolled certificates: any GUID will do, a fixed one keeps stores comparable.
OWNER_GUID = "5e1c7f3a-6b2d-4a8e-9c41-72d0b3e5a9f6"
EFI_GLOBAL_VARIABLE = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
ESP_IMAGE = "\\EFI\\BOOT\\BOOTX64.EFI"
# What OVMF prints when every boot option failed; it then waits for a key, forever.
FIRMWARE_GAVE_UP = "No bootable option or device was found"
# KVM_CHECK_EXTENSION (_IO(0xAE, 0x03)) for KVM_CAP_X86_SMM.
KVM_CHECK_EXTENSION = 0xAE03
KVM_CAP_X86_SMM = 117


def firmware() -> tuple[Path, Path] | None:
    """The Secure Boot OVMF code image and its empty variable store template, if installed."""
    for code, template in FIRMWARE:
        if os.path.exists(code) and os.path.exists(template):
            return Path(code), Path(template)
    return None


def missing_tools() -> list[str]:
    """What the harness needs and does not find, each with the package that has it."""
    wanted = [(QEMU, "qemu-system-x86_64 (qemu-system-x86)"),
              (firmware(), "the Secure Boot OVMF firmware (ovmf / edk2-ovmf)"),
              (SBSIGN, "sbsign (sbsigntool)"), (SBVERIFY, "sbverify (sbsigntool)"),
              (SBATTACH, "sbattach (sbsigntool)"), (VIRT_FW_VARS, "virt-fw-vars (pip: virt-firmware)"),
              (OPENSSL, "openssl")]
    return [name for found, name in wanted if found is None]


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """`argv`, its output captured; a failure raises with what the tool said."""
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def make_test_key(dir: Path, name: str) -> tuple[Path, Path]:
    """An RSA 2048 key and its self-signed certificate (PEM), `dir/<name>.key` and `.crt`.

    The certificate's common name is `name`; sbsign signs with the pair, and the
    certificate alone is what goes into PK, KEK and db.
    """
    assert OPENSSL is not None
    key, cert = dir / f"{name}.key", dir / f"{name}.crt"
    run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
         "-subj", f"/CN={name}/", "-keyout", str(key), "-out", str(cert)])
    return key, cert


def enrolled_vars(cert: Path, out: Path) -> Path:
    """An OVMF variable store trusting only `cert` (PK, KEK and db), with Secure Boot on."""
    found = firmware()
    assert VIRT_FW_VARS is not None and found is not None
    run([VIRT_FW_VARS, "--input", str(found[1]), "--output", str(out), "--secure-boot",
         "--set-pk", OWNER_GUID, str(cert), "--add-kek", OWNER_GUID, str(cert),
         "--add-db", OWNER_GUID, str(cert)])
    return out


def sign(image: Path, key: Path, cert: Path, out: Path) -> Path:
    """`image` signed with `key` (its signature names `cert`) as `out`."""
    assert SBSIGN is not None
    run([SBSIGN, "--key", str(key), "--cert", str(cert), "--output", str(out), str(image)])
    return out


def signatures(image: Path) -> int:
    """How many signatures `image` carries."""
    assert SBVERIFY is not None
    # An unsigned image lists nothing on stdout (and says so on stderr, exiting 0).
    listing = run([SBVERIFY, "--list", str(image)]).stdout
    return len(re.findall(r"^signature \d+$", listing, re.M))


def unsigned(image: Path, out: Path) -> Path:
    """A copy of `image` as `out` with every signature removed (a plain copy when it has none)."""
    assert SBATTACH is not None
    shutil.copyfile(image, out)
    # sbattach removes one signature at a time, the first.
    for _ in range(signatures(out)):
        run([SBATTACH, "--remove", str(out)])
    if signatures(out):
        raise RuntimeError(f"{image}: a signature is left after removing them all")
    return out


def verify(image: Path, cert: Path) -> bool:
    """Whether sbverify finds `image` signed by `cert`."""
    assert SBVERIFY is not None
    proc = subprocess.run([SBVERIFY, "--cert", str(cert), str(image)], capture_output=True,
                          stdin=subprocess.DEVNULL, check=False)
    return proc.returncode == 0


def ucs2(text: str) -> bytes:
    """`text` as UEFI strings are stored: UCS-2 little-endian, NUL-terminated."""
    return (text + "\0").encode("utf-16-le")


def load_option(description: str, path: str, options: str) -> bytes:
    """An EFI_LOAD_OPTION: active, a short-form file path (any device holding it), `options` as data."""
    name = ucs2(path)
    # The file path media node (type 4, subtype 4) and the end of the device path.
    device_path = struct.pack("<BBH", 4, 4, 4 + len(name)) + name + struct.pack("<BBH", 0x7F, 0xFF, 4)
    return struct.pack("<IH", 1, len(device_path)) + ucs2(description) + device_path + ucs2(options)


def set_boot_entry(vars: Path, cmdline: str) -> None:
    """Make `vars` boot the ESP's image first, with `cmdline` as its load options.

    Written as JSON for virt-fw-vars --set-json: its own --append-boot-filepath
    turns every '/' of the options into '\\' (root=/dev/vda would not survive).
    """
    assert VIRT_FW_VARS is not None
    attrs = 7  # non-volatile, boot service and runtime access
    entry = load_option("respin Secure Boot test", ESP_IMAGE, cmdline)
    variables = [{"name": "Boot0000", "guid": EFI_GLOBAL_VARIABLE, "attr": attrs, "data": entry.hex()},
                 {"name": "BootOrder", "guid": EFI_GLOBAL_VARIABLE, "attr": attrs,
                  "data": struct.pack("<H", 0).hex()}]
    spec = vars.with_suffix(".boot.json")
    spec.write_text(json.dumps({"version": 2, "variables": variables}))
    run([VIRT_FW_VARS, "--inplace", str(vars), "--set-json", str(spec)])


def accelerator() -> str:
    """kvm when it can run the Secure Boot firmware, tcg otherwise.

    That firmware guards its variables with SMM (q35,smm=on); a KVM without SMM
    emulation (a nested one, often) refuses the machine outright.
    """
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return "tcg"
    try:
        return "kvm" if fcntl.ioctl(fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_SMM) > 0 else "tcg"
    except OSError:
        return "tcg"
    finally:
        os.close(fd)


def qemu_argv(code: Path, vars: Path, esp: Path) -> list[str]:
    assert QEMU is not None
    return [QEMU, "-machine", "q35,smm=on", "-accel", accelerator(), "-m", "512",
            # Only SMM code may write the variable store: what makes Secure Boot enforceable.
            "-global", "driver=cfi.pflash01,property=secure,value=on",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={code}",
            "-drive", f"if=pflash,format=raw,unit=1,file={vars}",
            # The ESP, read-only (virtio: qemu's IDE/AHCI disks cannot be).
            "-drive", f"if=virtio,file=fat:{esp},format=raw,readonly=on",
            # No network card: the firmware would try PXE before giving up.
            "-nic", "none", "-nographic", "-no-reboot", "-monitor", "none"]


def console_text(raw: bytes) -> str:
    """The serial output as text: lines end in \\n, the firmware's screen escapes gone."""
    text = raw.decode(errors="replace").replace("\r\n", "\n")
    return re.sub(r"\x1b\[[0-9;=?]*[A-Za-z]", "", text)


def boot_secure(image: Path, vars: Path, cmdline: str, timeout: float = SECURE_BOOT_TIMEOUT) -> str:
    """Boot `image` with the firmware of `vars` (a copy: `vars` itself is left as it is); the console.

    qemu runs until it exits (a kernel that panics with panic=-1), the firmware
    gives up on every boot option, or `timeout` seconds pass; it is killed then,
    and what the serial console showed by that time is returned.
    """
    found = firmware()
    assert found is not None
    with tempfile.TemporaryDirectory(prefix="respin-secureboot-") as tmp:
        work = Path(tmp)
        esp = work / "esp"
        (esp / "EFI" / "BOOT").mkdir(parents=True)
        shutil.copyfile(image, esp / "EFI" / "BOOT" / "BOOTX64.EFI")
        run_vars = work / "vars.fd"
        shutil.copyfile(vars, run_vars)
        set_boot_entry(run_vars, cmdline)
        log = work / "console"
        with log.open("wb") as out:
            proc = subprocess.Popen(qemu_argv(found[0], run_vars, esp), stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for_end(proc, log, time.monotonic() + timeout)
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        return console_text(log.read_bytes())


def wait_for_end(proc: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    """Until qemu exits, the firmware has given up (it shows it on the console), or `deadline`."""
    while proc.poll() is None and time.monotonic() < deadline:
        if FIRMWARE_GAVE_UP.encode() in log.read_bytes():
            return
        time.sleep(0.25)
