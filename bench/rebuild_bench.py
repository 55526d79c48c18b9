"""Rebuilding a real kernel: what the compile cache saves, side by side in one run.

Every config-only rebuild of a kernel package is a full compile: rpmbuild
unpacks a fresh tree each time. respin's rebuild stage compiles through
ccache. On the real-kernel fixture (Debian's Linux 6.1 tree in today's
Fedora layout, a tinyconfig-sized boot config), one `respin run` per row:

- cold: an empty cache, the whole pipeline;
- pure rerun: the same build again (a failed later stage, a changelog edit);
- a one-value change that few files see (CONFIG_LOG_BUF_SHIFT);
- a one-value change that most files see (the timer frequency, CONFIG_HZ);
- the few-files change again without the cache;
- the floor: in-tree incremental `make` after the same change, no packaging;
- where the time of a build goes: unpacking, config, the rpmbuild stage.

CPU seconds (respin and every process under it) stand beside wall seconds:
wall times on a shared two-core machine move with load. The goals: a pure
rerun at least 5x cheaper than the cold build, a one-value change at least
2x, and the kernel image the same bytes with and without the cache.
"""

from __future__ import annotations

import json
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fixtures.realkernel import TARBALL, build_real_srpm
from respin.stages.kernel.lib.rpmpkg import payload_files

RESPIN = Path(sys.executable).with_name("respin")
BASE = {"CONFIG_DEFAULT_HOSTNAME": '"respin"'}
FEW = {"CONFIG_LOG_BUF_SHIFT": "16"}  # read by kernel/printk alone
# HZ reaches every jiffies user; CONFIG_HZ moves with the choice, so it is set too (the
# check before the build refuses a value oldconfig would move).
MANY = {"CONFIG_HZ_1000": '"y"', "CONFIG_HZ_250": '"n"', "CONFIG_HZ": "1000"}


@dataclass
class Row:
    """One measured build."""

    name: str
    wall: float
    cpu: float
    rebuild: float  # seconds of the rebuild stage alone
    hits: int | None
    misses: int | None
    image: bytes


def module_key(where: Path) -> Path:
    """One module signing key for every row: without it each build makes its own, and the
    images (which embed its certificate) could not be compared."""
    key = where / "module-signing.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=respin bench",
                    "-days", "36500", "-keyout", str(key), "-out", str(key)], check=True, capture_output=True)
    return key


def pipeline(where: Path, srpm: Path, cache: Path, values: dict[str, str], ccache: bool = True) -> Path:
    setting = ", ".join(f"{k} = {v}" for k, v in values.items())
    path = where / "kernel.toml"
    key = where.parent / "module-signing.pem"
    stages = '["fetch", "sign", "prep", "config", "diff", "inject", "rebuild", "verify"]'
    path.write_text(f'[pipeline]\ntarget = "x86_64"\nworkdir = "work"\nstages = {stages}\n\n'
                    f'[fetch]\nsrpm = "{srpm}"\n\n[sign]\nmodule_key = "{key}"\n\n'
                    f"[config]\nset = {{ {setting} }}\n\n[inject]\nbuildid = \".bench\"\n\n"
                    f'[rebuild]\nmode = "binary"\nccache = {str(ccache).lower()}\nccache_dir = "{cache}"\n')
    return path


def timed(argv: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc


def respin_row(name: str, pf: Path, *args: str) -> tuple[Row, dict[str, Any]]:
    wall, cpu, proc = timed([str(RESPIN), "run", str(pf), "--json", *args], pf.parent)
    manifest = json.loads(proc.stdout)
    stage = {s["name"]: s["seconds"] for s in manifest["stages"]}
    cache = next((a.get("meta", {}).get("ccache") for a in manifest["artifacts"]
                  if a["stage"] == "rebuild" and a["path"].endswith("/rebuild.log")), None) or {}
    rpm = next(Path(a["path"]) for a in manifest["artifacts"] if a["kind"] == "rpm")
    # The fixture's package is laid out as Fedora's kernel-core: /boot/vmlinuz-* is %ghost.
    image = next(data for _, data in payload_files(rpm, re.compile(r"^/lib/modules/[^/]+/vmlinuz$")))
    row = Row(name, wall, cpu, stage.get("rebuild", 0.0), cache.get("hits"), cache.get("misses"), image)
    # Each row as it is measured: a run takes most of an hour.
    print(f"  measured: {row.name}: {row.wall:.0f} s wall, {row.cpu:.0f} s CPU", flush=True)
    return row, manifest


def floor(work: Path, config: str) -> tuple[float, float]:
    """In-tree incremental make after the few-files change: what no packaged build can beat."""
    tree = work / "tree"
    tree.mkdir()
    subprocess.run(["tar", "-xJf", str(TARBALL), "-C", str(tree), "--strip-components=1"], check=True)
    (tree / ".config").write_text(config)
    make = ["make", "-s", "ARCH=x86_64", "-j2"]
    subprocess.run([*make, "olddefconfig"], cwd=tree, check=True, capture_output=True)
    subprocess.run([*make, "bzImage"], cwd=tree, check=True, capture_output=True)
    text = (tree / ".config").read_text()
    (tree / ".config").write_text(re.sub(r"^CONFIG_LOG_BUF_SHIFT=.*$", "CONFIG_LOG_BUF_SHIFT=16", text,
                                         flags=re.M))
    wall, cpu, _ = timed(["sh", "-c", "make -s ARCH=x86_64 olddefconfig && make -s ARCH=x86_64 -j2 bzImage"],
                         tree)
    return wall, cpu


def main() -> int:
    if not TARBALL.is_file() or shutil.which("ccache") is None:
        print(f"needs {TARBALL} (linux-source-6.1) and ccache: `make bench` installs both", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="respin-rebuild-bench-") as scratch:
        work = Path(scratch)
        srpm = build_real_srpm(work / "srpm")
        cache = work / "ccache"
        cache.mkdir()
        untar = ["tar", "-xJf", str(TARBALL), "-C", str(work), "--one-top-level=unpack"]
        unpack, unpack_cpu, _ = timed(untar, work)
        shutil.rmtree(work / "unpack")
        build = work / "build"
        build.mkdir()
        module_key(work)
        cold, manifest = respin_row("cold build, empty cache", pipeline(build, srpm, cache, BASE))
        stages = {s["name"]: s["seconds"] for s in manifest["stages"]}
        rerun, _ = respin_row("pure rerun (same build again)", build / "kernel.toml", "--only", "rebuild",
                              "--force")
        few, few_manifest = respin_row("one value, few files (LOG_BUF_SHIFT)",
                                       pipeline(build, srpm, cache, {**BASE, **FEW}))
        config = next(data for _, data in payload_files(
            next(Path(a["path"]) for a in few_manifest["artifacts"] if a["kind"] == "rpm"),
            re.compile(r"^/lib/modules/[^/]+/config$")))
        many, _ = respin_row("one value, most files (HZ 250 -> 1000)",
                             pipeline(build, srpm, cache, {**BASE, **MANY}))
        nocache, _ = respin_row("one value, few files, no cache",
                                pipeline(build, srpm, cache, {**BASE, **FEW}, ccache=False))
        floor_wall, floor_cpu = floor(work, config.decode().replace("CONFIG_LOG_BUF_SHIFT=16",
                                                                    "CONFIG_LOG_BUF_SHIFT=17"))
    rows = [cold, rerun, few, many, nocache]
    print(f"kernel: fixtures/kernel-real ({TARBALL.name}), x86_64, -bb, ccache in the run's own cache dir")
    print("| build | wall s | CPU s | CPU vs cold | rebuild stage s | ccache hits / misses |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        counts = f"{row.hits} / {row.misses}" if row.hits is not None else "-"
        print(f"| {row.name} | {row.wall:.0f} | {row.cpu:.0f} | {row.cpu / cold.cpu:.2f} | "
              f"{row.rebuild:.0f} | {counts} |")
    print(f"| floor: in-tree incremental make (no packaging) | {floor_wall:.0f} | {floor_cpu:.0f} | "
          f"{floor_cpu / cold.cpu:.2f} | - | - |")
    print(f"where a cold run's time goes: unpacking the tarball alone {unpack:.0f} s "
          f"({unpack_cpu:.0f} s CPU, done by prep and again by rebuild), prep {stages.get('prep', 0):.0f} s, "
          f"config {stages.get('config', 0):.1f} s, rebuild (unpack, compile, package) "
          f"{stages.get('rebuild', 0):.0f} s")
    same = few.image == nocache.image
    print(f"pure rerun {cold.cpu / rerun.cpu:.1f}x less CPU than cold (goal 5x); few-files change "
          f"{cold.cpu / few.cpu:.1f}x (goal 2x); kernel image with and without the cache: "
          f"{'identical' if same else 'DIFFERENT'}")
    return 0 if same else 1
