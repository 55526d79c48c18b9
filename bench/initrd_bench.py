"""respin initrd against the tools a user would use instead, side by side in one run.

Inputs are made here: a real distro initrd from Debian's `mkinitramfs`, a
~100 MB tree of real files (kernel modules and libraries), and a 1 GB tree
for memory. Each respin command runs in a child process that reports its own
peak RSS (resource.getrusage). Prints a markdown table at the end.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

WORK = Path(__file__).resolve().parent / "_work" / "initrd"
REPO = Path(__file__).resolve().parent.parent
TREE_BYTES = 100 << 20
BIG_COPIES = 10  # 10 x ~100 MB = the 1 GB image

_WRAPPER = (
    "import resource, sys\n"
    "from pipeline.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "sys.stderr.write(f'MAXRSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n')\n"
    "sys.exit(code)\n"
)


@dataclass
class Row:
    what: str
    respin: str
    peer: str
    ratio: str
    verdict: str


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "SOURCE_DATE_EPOCH": "1700000000", "LC_ALL": "C"}


def respin(*argv: str | Path) -> tuple[float, int]:
    """Run `respin ...` in a child; (seconds, peak RSS in KiB)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _WRAPPER, *map(str, argv)], env=_env(),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    took = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"respin {' '.join(map(str, argv))} failed: {proc.stderr.strip()[-500:]}")
    m = re.search(r"MAXRSS (\d+)", proc.stderr)
    return took, int(m.group(1)) if m else 0


def shell(cmd: str, cwd: Path | None = None) -> float:
    """Run a shell pipeline (the peers' own recipes); seconds."""
    start = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=cwd, env=_env(), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def mb(n: int) -> str:
    return f"{n / 1e6:.2f} MB"


def kernel_version() -> str | None:
    for vmlinuz in sorted(glob.glob("/boot/vmlinuz-*"), reverse=True):
        kver = vmlinuz.split("vmlinuz-", 1)[1]
        if Path(f"/lib/modules/{kver}").is_dir():
            return kver
    release = os.uname().release
    return release if Path(f"/lib/modules/{release}").is_dir() else None


def make_tree(dest: Path, budget: int) -> Path:
    """Copy real files (kernel modules, then libraries) until `budget` bytes; sorted, so stable."""
    if dest.exists():
        return dest
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    used = 0
    roots = sorted(glob.glob("/lib/modules/*")) + ["/usr/lib/x86_64-linux-gnu", "/usr/lib/python3"]
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                src = Path(dirpath) / name
                if src.is_symlink() or not src.is_file() or used >= budget:
                    continue
                target = tmp / src.relative_to("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.copyfile(src, target)
                except OSError:
                    continue
                used += target.stat().st_size
            if used >= budget:
                break
    (tmp / "init").write_text("#!/bin/sh\nexec /sbin/init\n")
    tmp.rename(dest)
    return dest


def main() -> int:
    WORK.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    bench_start = time.perf_counter()
    print(f"work dir: {WORK}", flush=True)

    # --- a real distro initrd ------------------------------------------------
    kver = kernel_version()
    real = WORK / "mkinitramfs.img"
    if not real.exists() and kver and shutil.which("mkinitramfs"):
        print(f"making a real initrd: mkinitramfs -o {real} {kver}", flush=True)
        subprocess.run(["mkinitramfs", "-o", str(real), kver], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    if real.exists():
        compression = "zstd" if real.read_bytes()[:4] == b"\x28\xb5\x2f\xfd" else "gzip"
        dec = {"zstd": "zstd -dc", "gzip": "gzip -dc"}[compression]
        decompress = min(shell(f"{dec} < {real} > /dev/null") for _ in range(3))
        py_decompress = min(shell(f"{sys.executable} -c 'import zstandard,sys; "
                                  f"zstandard.ZstdDecompressor().copy_stream(open(\"{real}\",\"rb\"), "
                                  f"open(\"/dev/null\",\"wb\"))'") for _ in range(3)) \
            if compression == "zstd" else decompress
        listed = [respin("initrd", "list", real) for _ in range(3)]
        t_list = min(t for t, _ in listed)
        rows.append(Row(f"list {real.name} ({mb(real.stat().st_size)} {compression})", f"{t_list:.2f} s",
                        f"`{dec}` {decompress:.2f} s; python decompress only {py_decompress:.2f} s",
                        f"{t_list / decompress:.2f}x / {t_list / py_decompress:.2f}x",
                        "ok" if t_list <= 1.3 * py_decompress else "over 1.3x (start-up)"))
        inproc = in_process_list(real, compression)
        if inproc is not None:
            walk, only = inproc
            rows.append(Row("list, in process (no interpreter start-up): walk vs decompress only",
                            f"{walk:.2f} s", f"{only:.2f} s", f"{walk / only:.2f}x",
                            "ok" if walk <= 1.3 * only else "over 1.3x"))
        if shutil.which("lsinitramfs"):
            t_ls = min(shell(f"lsinitramfs {real}") for _ in range(2))
            rows.append(Row("list vs lsinitramfs", f"{t_list:.2f} s", f"{t_ls:.2f} s",
                            f"{t_ls / t_list:.1f}x faster", "ok" if t_list < t_ls else "slower"))
        if shutil.which("lsinitrd"):
            t_lsd = min(shell(f"lsinitrd {real}") for _ in range(2))
            rows.append(Row("list vs lsinitrd", f"{t_list:.2f} s", f"{t_lsd:.2f} s",
                            f"{t_lsd / t_list:.1f}x faster", "ok" if t_list < t_lsd else "slower"))
        x_ours, x_theirs = WORK / "x-respin", WORK / "x-unmkinitramfs"
        shutil.rmtree(x_ours, ignore_errors=True)
        shutil.rmtree(x_theirs, ignore_errors=True)
        t_x, _ = respin("initrd", "extract", real, x_ours)
        if shutil.which("unmkinitramfs"):
            t_un = shell(f"unmkinitramfs {real} {x_theirs}")
            rows.append(Row("extract vs unmkinitramfs", f"{t_x:.2f} s", f"{t_un:.2f} s",
                            f"{t_un / t_x:.1f}x faster", "ok" if t_x < t_un else "slower"))
        rows.append(repack_row(f"repack {real.name} to gzip", x_ours, x_ours / "main"))

    # --- a ~100 MB tree --------------------------------------------------------
    tree = make_tree(WORK / "tree100", TREE_BYTES)
    rows.append(repack_row("repack ~100 MB tree to gzip", tree, tree))

    # --- 1 GB image: peak memory -------------------------------------------------
    big = WORK / "tree1g"
    if not big.exists():
        tmp = WORK / "tree1g.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        for i in range(BIG_COPIES):
            shutil.copytree(tree, tmp / f"copy{i}", symlinks=True)
        tmp.rename(big)
    big_img = WORK / "big.img"
    t_pack, rss_pack = respin("initrd", "pack", big, "-o", big_img, "--compress", "zstd", "--level", "3")
    size = big_img.stat().st_size
    t_list_big, rss_list = respin("initrd", "list", big_img)
    xbig = WORK / "x-big"
    shutil.rmtree(xbig, ignore_errors=True)
    t_x_big, rss_x = respin("initrd", "extract", big_img, xbig)
    unpacked = sum(f.stat().st_size for f in (xbig / "main").rglob("*") if f.is_file())
    for what, took, rss in (("pack", t_pack, rss_pack), ("list", t_list_big, rss_list),
                            ("extract", t_x_big, rss_x)):
        verdict = "ok" if rss < 100 * 1024 else "over 100 MB"
        rows.append(Row(f"peak memory: {what} {mb(unpacked)} tree / {mb(size)} zstd image",
                        f"{rss / 1024:.0f} MB, {took:.1f} s", "", "", verdict))
    shutil.rmtree(xbig, ignore_errors=True)
    big_img.unlink(missing_ok=True)

    total = time.perf_counter() - bench_start
    print()
    print("| what | respin | peer | ratio | verdict |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.what} | {r.respin} | {r.peer} | {r.ratio} | {r.verdict} |")
    print(f"\n(whole initrd bench: {total:.0f} s on {os.cpu_count()} CPUs)")
    return 0 if all(r.verdict == "ok" for r in rows) else 1


_INPROC = (
    "import sys, time, zlib\n"
    "from pathlib import Path\n"
    "from stages.initrd.reader import ImageReader\n"
    "import zstandard\n"
    "path, kind = sys.argv[1], sys.argv[2]\n"
    "def only():\n"
    "    with open(path, 'rb') as fh:\n"
    "        if kind == 'zstd':\n"
    "            r = zstandard.ZstdDecompressor().stream_reader(fh, read_across_frames=False)\n"
    "            while r.read(1 << 20): pass\n"
    "        else:\n"
    "            d = zlib.decompressobj(31)\n"
    "            while chunk := fh.read(1 << 20): d.decompress(chunk)\n"
    "def walk():\n"
    "    for _ in ImageReader(Path(path)).entries(): pass\n"
    "def best(f):\n"
    "    times = []\n"
    "    for _ in range(3):\n"
    "        t = time.perf_counter(); f(); times.append(time.perf_counter() - t)\n"
    "    return min(times)\n"
    "print(best(walk), best(only))\n"
)


def in_process_list(image: Path, kind: str) -> tuple[float, float] | None:
    """(walk every entry, decompress only) in one child, after imports; None if it fails."""
    proc = subprocess.run([sys.executable, "-c", _INPROC, str(image), kind], env=_env(),
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return None
    walk, only = proc.stdout.split()
    return float(walk), float(only)


def repack_row(what: str, container: Path, tree: Path) -> Row:
    """respin pack (gzip -9, threaded zlib-ng) against `find . | cpio -o -H newc | gzip -9`."""
    ours = WORK / "ours.img"
    theirs = WORK / "theirs.img"
    t_ours, _ = respin("initrd", "pack", container, "-o", ours, "--compress", "gzip", "--level", "9")
    t_theirs = shell(f"find . | cpio -o -H newc --quiet | gzip -9 > {theirs}", cwd=tree)
    s_ours, s_theirs = ours.stat().st_size, theirs.stat().st_size
    ok = s_ours <= s_theirs and t_theirs >= 4 * t_ours
    ours.unlink()
    theirs.unlink()
    return Row(what, f"{t_ours:.1f} s, {mb(s_ours)}", f"{t_theirs:.1f} s, {mb(s_theirs)}",
               f"{t_theirs / t_ours:.1f}x faster, size {s_ours / s_theirs:.4f}x",
               "ok" if ok else "short of 4x / larger")


if __name__ == "__main__":
    sys.exit(main())
