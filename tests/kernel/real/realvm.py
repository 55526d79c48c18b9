"""Booting the real kernel under qemu: a busybox initramfs tree, the boot, its console.

The tree is a container like `respin initrd extract` makes (main/ plus a
manifest holding /dev/console, which an unprivileged pack cannot mknod). Its
/init prints, between markers, what the tests assert:

- `uname -r`, the hostname, the first kernel message (with its timestamp when
  CONFIG_PRINTK_TIME is on) and the running kernel's /proc/config.gz;
- when the image carries the network stage's initscripts files, it applies
  them the way initscripts does with busybox `ip` (ifcfg addresses and the
  default route, each route- and rule- file line by line) on a dummy device
  renamed to the model's, then prints `ip -4 rule show`, the addresses, the
  main table and each table named in rt_tables.d.

Then it reboots: without ACPI a tinyconfig kernel cannot power off, and
qemu's -no-reboot turns the reboot into an exit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from respin.stages.initrd.lib.manifest import MANIFEST_NAME

QEMU = shutil.which("qemu-system-x86_64")
BUSYBOX = next((p for p in ("/bin/busybox", "/usr/bin/busybox") if os.path.exists(p)), None)
BOOT_TIMEOUT = 300.0  # TCG on a loaded machine; a boot takes seconds

APPLETS = ("sh", "mount", "uname", "hostname", "zcat", "cat", "dmesg", "ip", "reboot", "grep", "sed",
           "awk", "mkdir", "ls")

INIT = r"""#!/bin/sh
# respin real-kernel test init: print what the tests assert, apply the network files.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
run() { "$@" || echo "RESPIN-FAILED($?): $*"; }
# A line of its own: the firmware's screen escapes precede the first.
echo
echo "RESPIN-UNAME-R:$(uname -r)"
echo "RESPIN-HOSTNAME:$(hostname)"
echo "RESPIN-FIRST-MESSAGE:$(dmesg | sed -n 1p)"
echo "RESPIN-CONFIG-BEGIN"
zcat /proc/config.gz
echo "RESPIN-CONFIG-END"

scripts=/etc/sysconfig/network-scripts
if [ -d "$scripts" ]; then
  run ip link set dev lo up
  # A dummy interface stands in for the model's network card.
  dev=$(sed -n 's/^DEVICE=//p' "$scripts/ifcfg-eth0")
  run ip link set dev dummy0 name "$dev"
  # ifup: each device's address (an alias with its label), the default route from GATEWAY.
  for cfg in "$scripts"/ifcfg-*; do
    ( . "$cfg"
      parent=${DEVICE%%:*}
      [ "$parent" = lo ] && exit 0
      run ip link set dev "$parent" up
      if [ "$DEVICE" = "$parent" ]; then
        run ip -4 addr add "$IPADDR/$PREFIX" dev "$parent"
      else
        run ip -4 addr add "$IPADDR/$PREFIX" brd + dev "$parent" label "$DEVICE"
      fi
      if [ -n "${GATEWAY:-}" ]; then run ip -4 route replace default via "$GATEWAY" dev "$parent"; fi )
  done
  # busybox ip reads table names from /etc/iproute2/rt_tables only; iproute2 also
  # reads rt_tables.d/*.conf, where the network stage puts them.
  mkdir -p /etc/iproute2
  cat /etc/iproute2/rt_tables.d/*.conf >> /etc/iproute2/rt_tables
  # ifup-routes: each line after `ip route add` (replace: the same again is no error);
  # each rule line after `ip rule add`.
  for file in "$scripts"/route-*; do
    grep -v '^[[:space:]]*#' "$file" | while read -r line; do
      [ -n "$line" ] && run ip -4 route replace $line
    done
  done
  for file in "$scripts"/rule-*; do
    grep -v '^[[:space:]]*#' "$file" | while read -r line; do
      [ -n "$line" ] && run ip -4 rule add $line
    done
  done
  echo "RESPIN-IP-RULE-BEGIN"
  ip -4 rule show
  echo "RESPIN-IP-RULE-END"
  echo "RESPIN-IP-ADDR-BEGIN"
  ip -4 addr show dev "$dev"
  echo "RESPIN-IP-ADDR-END"
  echo "RESPIN-IP-ROUTE-main-BEGIN"
  ip -4 route show
  echo "RESPIN-IP-ROUTE-main-END"
  for table in $(awk '!/^[[:space:]]*#/ && NF >= 2 { print $2 }' /etc/iproute2/rt_tables.d/*.conf); do
    echo "RESPIN-IP-ROUTE-$table-BEGIN"
    ip -4 route show table "$table"
    echo "RESPIN-IP-ROUTE-$table-END"
  done
fi
echo "RESPIN-DONE"
reboot -f
"""


def busybox_tree(root: Path) -> Path:
    """The initramfs tree with static busybox, its applet links and the /init above."""
    main = root / "main"
    for d in ("bin", "dev", "proc", "sys", "etc", "root"):
        (main / d).mkdir(parents=True)
    assert BUSYBOX is not None
    shutil.copy(BUSYBOX, main / "bin" / "busybox")
    for applet in APPLETS:
        (main / "bin" / applet).symlink_to("busybox")
    (main / "init").write_text(INIT)
    (main / "init").chmod(0o755)
    manifest = {"format": "respin-initrd-manifest", "version": 1, "image": "", "parts": [],
                "trees": {"main": {"dev/console": {"kind": "chr", "mode": "0600", "rdev": [5, 1]}}}}
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))
    return root


def is_static(path: str | None) -> bool:
    if path is None:
        return False
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    # A dynamic executable names its interpreter (PT_INTERP); a static one does not.
    return head.startswith(b"\x7fELF") and b"ld-linux" not in head


def missing_boot_tools() -> list[str]:
    missing = [] if QEMU else ["qemu-system-x86_64 (qemu-system-x86)"]
    return missing + ([] if is_static(BUSYBOX) else ["a static busybox (busybox-static)"])


def boot(kernel: Path, image: Path) -> str:
    """Boot `kernel` with `image` under qemu (TCG, serial console); the console output."""
    assert QEMU is not None
    argv = [QEMU, "-kernel", str(kernel), "-initrd", str(image),
            "-append", "console=ttyS0 panic=-1 quiet", "-nographic", "-no-reboot", "-m", "256",
            "-accel", "tcg", "-monitor", "none"]
    proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=BOOT_TIMEOUT,
                          stdin=subprocess.DEVNULL, check=False)
    return proc.stdout.replace("\r\n", "\n") + proc.stderr


def marked(console: str, name: str) -> str:
    """The console's one-line `RESPIN-<name>:` value."""
    found = re.findall(rf"RESPIN-{re.escape(name)}:(.*)$", console, re.M)
    assert len(found) == 1, (name, console[-4000:])
    return str(found[0]).strip()


def between(console: str, name: str) -> list[str]:
    """The lines between `RESPIN-<name>-BEGIN` and `-END`."""
    found = re.search(rf"^RESPIN-{re.escape(name)}-BEGIN\n(.*?)^RESPIN-{re.escape(name)}-END$", console,
                      re.M | re.S)
    assert found is not None, (name, console[-4000:])
    return [ln.rstrip() for ln in found.group(1).splitlines() if ln.strip()]
