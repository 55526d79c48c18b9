"""The real-kernel fixture itself: configs made from Debian's tree, and a %prep that checks like Fedora's.

The configs ship the way Fedora's do (`# x86_64`, then every symbol sorted by
name), one per flavour and primary target. Its %prep, run by a plain
`rpmbuild -bp` here (respin itself refuses such a change before any build),
keeps only the primary target's configs, merges kernel-local into each and
fails, as Fedora's process_configs.sh does, on symbols the change makes
visible without a value and on requested values oldconfig does not keep.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from realbuild import REQUEST

from fixtures.realkernel import ARCH, DIST_MACROS
from respin.stages.kernel.lib.rpmpkg import payload_files

pytestmark = pytest.mark.slow

CONFIGS = [f"kernel-{ARCH}-{flavour}.config" for flavour in ("fedora", "debug-fedora", "rhel", "debug-rhel")]


def shipped(srpm: Path) -> dict[str, str]:
    found = dict(payload_files(srpm, re.compile(r"^kernel-.*\.config$")))
    return {name: data.decode() for name, data in found.items()}


def test_configs_ship_like_fedoras(real_srpm: Path) -> None:
    configs = shipped(real_srpm)
    assert sorted(configs) == sorted(CONFIGS)
    for name, text in configs.items():
        lines = text.splitlines()
        assert lines[0] == f"# {ARCH}", name
        symbols = [re.sub(r"^# (CONFIG_\w+) is not set$|^(CONFIG_\w+)=.*$", r"\1\2", ln) for ln in lines[1:]]
        assert all(s.startswith("CONFIG_") for s in symbols), name
        assert symbols == sorted(symbols), f"{name} is not sorted by symbol"
    base = configs[f"kernel-{ARCH}-fedora.config"].splitlines()
    for line in ("CONFIG_SERIAL_8250_CONSOLE=y", "CONFIG_BLK_DEV_INITRD=y", "CONFIG_IKCONFIG_PROC=y",
                 "CONFIG_IP_MULTIPLE_TABLES=y", "CONFIG_DUMMY=y", "CONFIG_MODULES=y", "CONFIG_MODULE_SIG=y",
                 "CONFIG_CRC_CCITT=m", "CONFIG_EFI_STUB=y", "# CONFIG_RHEL_DIFFERENCES is not set"):
        assert line in base, line
    assert "CONFIG_RHEL_DIFFERENCES=y" in configs[f"kernel-{ARCH}-rhel.config"].splitlines()
    assert "CONFIG_DEBUG_KERNEL=y" in configs[f"kernel-{ARCH}-debug-fedora.config"].splitlines()
    # The change the session build makes is a change: the base has other values.
    for symbol in REQUEST:
        assert not any(ln.startswith(f"{symbol}={REQUEST[symbol]}") for ln in base), symbol


def test_prep_fails_on_new_symbols_and_on_moved_values(real_srpm: Path, tmp_path: Path) -> None:
    top = tmp_path / "top"
    env = {**os.environ, "HOME": str(tmp_path), "LC_ALL": "C"}
    subprocess.run(["rpm", "-i", "--nodeps", "--define", f"_topdir {top}", str(real_srpm)], env=env,
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    # IP_MULTICAST opens IP_MROUTE and AMT, which no config gives a value; without
    # IKCONFIG, oldconfig drops the IKCONFIG_PROC=y every config asks for.
    (top / "SOURCES" / "kernel-local").write_text("CONFIG_IP_MULTICAST=y\n# CONFIG_IKCONFIG is not set\n")
    defines = [arg for name, value in DIST_MACROS.items() for arg in ("--define", f"{name} {value}")]
    proc = subprocess.run(["rpmbuild", "-bp", "--nodeps", f"--target={ARCH}", "--with", "baseonly",
                           "--define", f"_topdir {top}", *defines, str(top / "SPECS" / "kernel.spec")],
                          env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=1800)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log[-3000:]
    assert "Found unset config items in x86_64 base, please set them to an appropriate value" in log
    assert "Found unset config items in x86_64 debug, please set them to an appropriate value" in log
    for line in ("CONFIG_IP_MROUTE=n", "CONFIG_AMT=n",
                 "Found # CONFIG_IKCONFIG_PROC is not set, after generation, "
                 "had CONFIG_IKCONFIG_PROC=y in Source tree"):
        assert line in log.splitlines(), line
    # A Fedora build keeps only the fedora configs, renamed for this version.
    # (rpm 4.20 puts the tree one level deeper under BUILD than 4.18.)
    configs = sorted(p.name for pattern in ("BUILD/*/linux-*/configs", "BUILD/*/*/linux-*/configs")
                     for p in top.glob(f"{pattern}/kernel-*.config"))
    assert [re.sub(r"-\d+\.\d+\.\d+-", "-V-", n) for n in configs] == [
        f"kernel-V-{ARCH}-debug.config", f"kernel-V-{ARCH}.config"]
