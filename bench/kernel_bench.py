"""respin's kernel path on a real kernel tree, against the 2010 recipe and a bare rpmbuild -bp.

Inputs are made here, in bench/_work/kernel/: a source package built like the
2010 fixture's (Source0 is Debian's linux-source-6.1 tarball, a hard-linked
build tree, kernel-*.config files generated from config-* Sources *before*
the patches, an ApplyPatch function, two small patches against the 6.1 tree,
`# END OF PATCH APPLICATIONS`), and a pipeline file for it.

Two comparisons, each side by side in one run:
- prep: `respin run --only prep` (rpmbuild -bp with the stop hook) against a
  bare `rpmbuild -bp --nodeps` of the same spec in a topdir of its own; one
  untimed warm-up of each, then three runs each, interleaved; medians;
- the config edit: respin's config and diff stages against the recipe's
  `cp -a` of the prepared tree, `sed` on the same kernel-*.config files and
  `diff -urN` of the two whole trees; both patches must change the same lines.

Prints a markdown table at the end.
"""

from __future__ import annotations

import dataclasses
import difflib
import glob
import hashlib
import json
import os
import pstats
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "_work" / "kernel"
TARBALL = Path("/usr/src/linux-source-6.1.tar.xz")
TOPDIR_IN_TARBALL = "linux-source-6.1"
TARGET = "x86_64"
RUNS = 3
# The edit, in .config syntax: one bool that is "not set" in the config, one string.
EDIT = {"CONFIG_IKCONFIG": "y", "CONFIG_LOCALVERSION": '"-respinbench"'}
PREP_BAR = 0.05  # respin's prep at most 5% over the bare rpmbuild -bp
DIFF_BAR = 100.0  # respin's config+diff at least 100x faster than cp -a + diff -urN

# merge.awk OVERRIDE BASE: lines of OVERRIDE replace the same symbol's line in
# BASE; symbols BASE lacks are appended (what the 2010 spec's merge.pl did).
MERGE_AWK = r"""function sym(line) {
  if (match(line, /^CONFIG_[A-Za-z0-9_]+=/)) return substr(line, 1, RLENGTH - 1)
  if (match(line, /^# CONFIG_[A-Za-z0-9_]+ is not set$/)) return substr(line, 3, RLENGTH - 13)
  return ""
}
NR == FNR { s = sym($0); if (s != "") { over[s] = $0; order[++n] = s }; next }
{ s = sym($0); if (s != "" && (s in over)) { print over[s]; done[s] = 1 } else print }
END { for (i = 1; i <= n; i++) if (!(order[i] in done)) print over[order[i]] }
"""

FRAGMENTS = {
    "config-x86_64": "CONFIG_64BIT=y\nCONFIG_X86_64=y\n",
    "config-i686": "# CONFIG_64BIT is not set\nCONFIG_X86_32=y\n# CONFIG_X86_64 is not set\n",
    "config-debug": "CONFIG_PROVE_LOCKING=y\nCONFIG_DEBUG_ATOMIC_SLEEP=y\nCONFIG_SLUB_DEBUG_ON=y\n",
}

SPEC = """\
# kernel.spec: Debian's linux-source-{major} tarball packaged in the shape of a
# 2010 (Fedora 10) kernel spec, for respin's benchmark. kernel-*.config files
# are generated from config-* Sources before the patches are applied.

Summary: The Linux kernel (respin benchmark)
Name: kernel
Version: {version}
Release: 1
License: GPLv2
Group: System Environment/Kernel
URL: https://www.kernel.org/
ExclusiveArch: x86_64 i686
BuildRequires: make, patch, gawk, diffutils, xz

%define debug_package %{{nil}}

Source0: {tarball}
Source15: merge.awk
Source21: config-generic
Source22: config-debug
Source30: config-x86_64
Source31: config-i686

Patch10: {patch1}
Patch20: {patch2}

%description
The Linux kernel {version}, from Debian's linux-source-{major} tarball.

%prep
# ApplyPatch FILE: apply a patch from the sources directory, refusing any
# file that the spec does not list as a PatchN tag.
ApplyPatch()
{{
  local patch=$1
  shift
  if [ ! -f "$RPM_SOURCE_DIR/$patch" ]; then
    echo "ApplyPatch: $patch: no such file in $RPM_SOURCE_DIR" >&2
    exit 1
  fi
  if ! grep -Eq "^Patch[0-9]+: $patch\\$" %{{_specdir}}/%{{name}}.spec; then
    echo "ApplyPatch: patch $patch is not listed as a PatchN: tag in %{{_specdir}}/%{{name}}.spec" >&2
    exit 1
  fi
  case "$patch" in
  *.bz2) bunzip2 < "$RPM_SOURCE_DIR/$patch" | patch -p1 -F1 -s "$@" ;;
  *.gz) gunzip < "$RPM_SOURCE_DIR/$patch" | patch -p1 -F1 -s "$@" ;;
  *) patch -p1 -F1 -s "$@" < "$RPM_SOURCE_DIR/$patch" ;;
  esac
}}

# MergeConfig ARCH NAME FRAGMENT...: config-generic with each fragment laid
# over it, as kernel-%{{version}}-NAME.config; the first line names the ARCH.
MergeConfig()
{{
  local arch=$1 out=kernel-%{{version}}-$2.config frag
  shift 2
  cp config-generic .merged
  for frag in "$@"; do
    awk -f merge.awk $frag .merged > .merged.new
    mv .merged.new .merged
  done
  echo "# $arch" > $out
  cat .merged >> $out
  rm -f .merged
}}

%setup -q -c -n kernel-{major}
# The unpacked tree stays pristine; the build tree is a hard-linked copy.
mv {topdir} vanilla-{major}
cp -rl vanilla-{major} linux-{major}.%{{_target_cpu}}

cd linux-{major}.%{{_target_cpu}}

# Every arch's kernel-*.config, before the patches.
cp $RPM_SOURCE_DIR/config-* %{{SOURCE15}} .
MergeConfig x86_64 x86_64 config-x86_64
MergeConfig x86_64 x86_64-debug config-x86_64 config-debug
MergeConfig i386 i686 config-i686

ApplyPatch {patch1}
ApplyPatch {patch2}

# END OF PATCH APPLICATIONS

# Keep this arch's configs, in configs/. (No oldconfig: this host has no
# flex/bison to build scripts/kconfig, and it would only lengthen the part
# of %%prep that respin's hook skips.)
mkdir configs
for cfg in kernel-*.config; do
  case "$cfg" in
  *-%{{_target_cpu}}.config|*-%{{_target_cpu}}-*.config) mv $cfg configs/ ;;
  *) rm -f $cfg ;;
  esac
done
cd ..

%build
# The benchmark runs %%prep only.

%changelog
* Mon Nov 16 2026 respin bench <bench@respin.invalid> - {version}-1
- Linux {version} from Debian's linux-source-{major}.
"""


@dataclass
class Row:
    step: str
    respin: str
    peer: str
    ratio: str
    bar: str
    verdict: str


SHIM = WORK / "shim"
SHIM_LOG = WORK / "rpmbuild-times"


def _env() -> dict[str, str]:
    path = f"{SHIM}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    return {**os.environ, "PATH": path, "PYTHONPATH": str(REPO), "LC_ALL": "C",
            "SOURCE_DATE_EPOCH": "1700000000"}


def write_shim() -> None:
    """An `rpmbuild` first on PATH that logs when the real one starts and ends.

    respin passes PATH on to the commands it runs, so respin's own time in a
    run is its wall time minus the rpmbuild interval of that same run: no
    second, differently loaded run to subtract.
    """
    real = shutil.which("rpmbuild", path=os.environ.get("PATH"))
    if real is None:
        raise RuntimeError("rpmbuild is not installed")
    SHIM.mkdir(parents=True, exist_ok=True)
    script = SHIM / "rpmbuild"
    script.write_text(f"#!/bin/sh\nstart=$(date +%s.%N)\nrc=0\n{real} \"$@\" || rc=$?\n"
                      f"echo \"$start $(date +%s.%N)\" >> {SHIM_LOG}\nexit $rc\n")
    script.chmod(0o755)


def rpmbuild_seconds() -> float:
    """Seconds of the rpmbuild runs logged by the shim since the last call."""
    try:
        pairs = [line.split() for line in SHIM_LOG.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return 0.0
    SHIM_LOG.unlink()
    return sum(float(end) - float(start) for start, end in pairs)


@dataclass
class Timed:
    wall: float  # seconds
    cpu: float  # user + system seconds of the command and everything it waited for
    proc: subprocess.CompletedProcess[str]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(argv: list[str], *, cwd: Path | None = None, ok: tuple[int, ...] = (0,),
        log: Path | None = None) -> Timed:
    """Run a command without a TTY and stdin closed (as respin runs rpmbuild)."""
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=_env(), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, check=False, start_new_session=True)
    took = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    if log is not None:
        log.write_text(proc.stdout + proc.stderr)
    if proc.returncode not in ok:
        tail = (proc.stderr or proc.stdout).strip()[-800:]
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}: {tail}")
    return Timed(took, cpu, proc)


def shell(cmd: str, cwd: Path, ok: tuple[int, ...] = (0,)) -> float:
    """A step of the 2010 recipe, as a user types it; seconds."""
    return run(["sh", "-c", cmd], cwd=cwd, ok=ok).wall


def respin_argv() -> list[str]:
    script = REPO / ".venv" / "bin" / "respin"
    return [str(script)] if script.exists() else [sys.executable, "-m", "respin.pipeline.cli"]


def respin(*args: str) -> tuple[Timed, dict[str, float], dict[str, object]]:
    """`respin ARGS --json -q`: (its times, seconds per stage that ran, manifest)."""
    timed = run([*respin_argv(), *args, "--json", "-q"], cwd=WORK)
    manifest = json.loads(timed.proc.stdout)
    seconds = {s["name"]: float(s["seconds"]) for s in manifest["stages"] if s["status"] == "ran"}
    return timed, seconds, manifest


# --- inputs -------------------------------------------------------------------


def tarball_files(names: list[str]) -> dict[str, str]:
    """A few files of the tarball (one xz pass, cached under WORK)."""
    cache = WORK / "from-tarball"
    stamp = cache / ".stamp"
    want = f"{TARBALL.stat().st_size} {TARBALL.stat().st_mtime_ns} {' '.join(names)}"
    if not stamp.exists() or stamp.read_text() != want:
        shutil.rmtree(cache, ignore_errors=True)
        cache.mkdir(parents=True)
        run(["tar", "-xJf", str(TARBALL), "-C", str(cache), *(f"{TOPDIR_IN_TARBALL}/{n}" for n in names)])
        stamp.write_text(want)
    return {n: (cache / TOPDIR_IN_TARBALL / n).read_text() for n in names}


def make_patch(path: str, old: str, new: str) -> str:
    """A `patch -p1` unified diff of one file of the tree."""
    lines = difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}")
    text = "".join(lines)
    if not text:
        raise RuntimeError(f"the bench's patch to {path} changes nothing: the tree moved; adjust it")
    return text


def base_config(version: str) -> tuple[str, str]:
    """The full config the spec's configs are generated from: (text, where it came from)."""
    major = ".".join(version.split(".")[:2])
    for path in sorted(glob.glob(f"/boot/config-{major}.*"), reverse=True):
        return Path(path).read_text(), path
    return kconfiglib_defconfig(), "x86_64_defconfig through kconfiglib"


def kconfiglib_defconfig() -> str:
    """`make ARCH=x86_64 defconfig` without building scripts/kconfig (no flex/bison needed)."""
    scratch = WORK / "defconfig-tree"
    out = WORK / "x86_64_defconfig.full"
    if out.exists():
        return out.read_text()
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    run(["tar", "-xJf", str(TARBALL), "-C", str(scratch)])
    tree = scratch / TOPDIR_IN_TARBALL
    code = ("import kconfiglib, sys\n"
            "k = kconfiglib.Kconfig('Kconfig', warn=False)\n"
            "k.load_config('arch/x86/configs/x86_64_defconfig')\n"
            "k.write_config(sys.argv[1])\n")
    env = {**_env(), "srctree": str(tree), "ARCH": "x86_64", "SRCARCH": "x86", "CC": "gcc", "LD": "ld",
           "KERNELVERSION": "6.1"}
    subprocess.run([sys.executable, "-c", code, str(out)], cwd=tree, env=env, check=True,
                   stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    shutil.rmtree(scratch)
    return out.read_text()


def build_srpm() -> tuple[Path, str]:
    """Write the spec, its Sources and patches, and build the SRPM once; (srpm, version)."""
    files = tarball_files(["Makefile", "init/Kconfig"])
    make = files["Makefile"]
    nums = {k: re.search(rf"^{k} = (\d+)$", make, re.M) for k in ("VERSION", "PATCHLEVEL", "SUBLEVEL")}
    if not all(nums.values()):
        raise RuntimeError(f"{TARBALL}: no VERSION/PATCHLEVEL/SUBLEVEL in the Makefile")
    version = ".".join(m.group(1) for m in nums.values() if m)
    major = ".".join(version.split(".")[:2])
    config, origin = base_config(version)
    patch1 = f"linux-{major}-ikconfig-help.patch"
    patch2 = f"linux-{major}-extraversion.patch"
    kconfig_new = files["init/Kconfig"].replace(
        "\t  /proc/config.gz if enabled (below).\n",
        "\t  /proc/config.gz if enabled (below).\n\n"
        "\t  Distribution kernels rebuilt with a config patch usually enable it.\n", 1)
    make_new = re.sub(r"^EXTRAVERSION =.*$", "EXTRAVERSION = -bench", make, count=1, flags=re.M)
    sources = {
        TARBALL.name: None,
        "merge.awk": MERGE_AWK,
        "config-generic": config,
        **FRAGMENTS,
        patch1: make_patch("init/Kconfig", files["init/Kconfig"], kconfig_new),
        patch2: make_patch("Makefile", make, make_new),
    }
    spec = SPEC.format(version=version, major=major, tarball=TARBALL.name, topdir=TOPDIR_IN_TARBALL,
                       patch1=patch1, patch2=patch2)
    top = WORK / "srpm-build"
    digest = hashlib.sha256(json.dumps([spec, sources, TARBALL.stat().st_size,
                                        TARBALL.stat().st_mtime_ns]).encode()).hexdigest()
    srpm = WORK / f"kernel-{version}-1.src.rpm"
    stamp = WORK / "srpm.stamp"
    if srpm.exists() and stamp.exists() and stamp.read_text() == digest:
        return srpm, version
    print(f"building {srpm.name} (base config: {origin})", flush=True)
    shutil.rmtree(top, ignore_errors=True)
    (top / "SOURCES").mkdir(parents=True)
    (top / "SPECS").mkdir()
    for name, text in sources.items():
        if text is None:
            shutil.copyfile(TARBALL, top / "SOURCES" / name)
        else:
            (top / "SOURCES" / name).write_text(text)
    (top / "SPECS" / "kernel.spec").write_text(spec)
    took = run(["rpmbuild", "-bs", "--nodeps", "--define", f"_topdir {top}",
                str(top / "SPECS" / "kernel.spec")]).wall
    built = top / "SRPMS" / srpm.name
    built.replace(srpm)
    shutil.rmtree(top)
    stamp.write_text(digest)
    print(f"rpmbuild -bs: {took:.1f} s, {srpm.stat().st_size / 1e6:.0f} MB", flush=True)
    return srpm, version


def pipeline_file(srpm: Path, extra: str = "") -> Path:
    """The pipeline file: target, the SRPM, the edit (`extra`: more [config] lines)."""
    path = WORK / "bench.toml"
    edit = ", ".join(f"{k} = {json.dumps(v)}" for k, v in EDIT.items())
    path.write_text(f'[pipeline]\ntarget = "{TARGET}"\nworkdir = "respin"\n\n'
                    f'[fetch]\nsrpm = "{srpm}"\n\n[config]\nset = {{ {edit} }}\n{extra}')
    return path


def config_option_names() -> set[str]:
    """The [config] keys this checkout's config stage takes."""
    from respin.stages.kernel.config import ConfigStage

    return {f.name for f in dataclasses.fields(ConfigStage.Options)}


def install_srpm(srpm: Path, top: Path) -> Path:
    """`rpm -i` the source package into a topdir of its own (as a user would); the spec."""
    shutil.rmtree(top, ignore_errors=True)
    top.mkdir(parents=True)
    run(["rpm", "-i", "--nodeps", "--define", f"_topdir {top}", str(srpm)])
    return top / "SPECS" / "kernel.spec"


def bare_argv(spec: Path, top: Path) -> list[str]:
    return ["rpmbuild", "-bp", "--nodeps", f"--target={TARGET}", "--define", f"_topdir {top}", str(spec)]


def cpu_pressure() -> str:
    """The share of the last 5 minutes in which some runnable task waited for a CPU (PSI)."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return "n/a"
    m = re.search(r"avg300=([0-9.]+)", some)
    return f"{m.group(1)}%" if m else "n/a"


def settle(*dirs: Path) -> None:
    """Untimed, before every timed run: remove the last run's tree and flush the disk.

    rpm's %setup would remove the old tree inside the timed run; on this
    disk (ext4, online discard) deleting 160,000 entries while the next tree
    is written makes the figures swing, and it is the same work for both sides.
    """
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)
    os.sync()


def prepared_tree(top: Path) -> Path:
    """The tree under BUILD that has the Makefile (rpm versions differ on where it lands)."""
    for makefile in sorted((top / "BUILD").glob("*/*/Makefile")):
        if not makefile.parent.name.startswith("vanilla-"):
            return makefile.parent
    raise RuntimeError(f"no prepared tree under {top / 'BUILD'}")


# --- comparing the patches -------------------------------------------------------


def changed_lines(patch: str) -> dict[str, list[str]]:
    """Per file (base name): hunk headers and changed lines; context and headers left out."""
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in patch.splitlines():
        if line.startswith("+++ "):
            current = Path(line[4:].split("\t")[0]).name
            out.setdefault(current, [])
        elif line.startswith(("--- ", "diff ", "Only in ")):
            continue
        elif current is not None and (line.startswith("@@") or line[:1] in ("+", "-")):
            out[current].append(line)
    return out


# --- profiling -------------------------------------------------------------------


def profile_prep(toml: Path) -> list[str]:
    """Where respin's prep spends what rpmbuild does not: cProfile of one `--only prep --force`."""
    out = WORK / "prep.prof"
    settle(WORK / "respin" / "stages" / "prep" / "rpmbuild" / "BUILD")
    cmd = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "respin.pipeline.cli", "run", str(toml),
           "--only", "prep", "--force", "-q"]
    wall = run(cmd, cwd=WORK).wall
    stats = pstats.Stats(str(out))
    table = stats.stats  # type: ignore[attr-defined]
    external = sum(v[3] for k, v in table.items() if k[2] == "run" and k[0].endswith("pipeline/process.py"))
    lines = [f"profile of one `respin run --only prep --force` (under cProfile): {wall:.2f} s wall, "
             f"{external:.2f} s waiting for rpmbuild, {wall - external:.2f} s in respin itself; "
             "respin's own costs, by cumulative time (the chain that waits for rpmbuild left out):"]
    # respin's functions whose time is not mostly the wait for rpmbuild.
    mine = [(v[3], k) for k, v in table.items() if k[0].startswith(str(REPO)) and v[3] < external / 2]
    for ct, (fname, lineno, func) in sorted(mine, reverse=True)[:8]:
        lines.append(f"  {ct:6.2f} s  {func}  ({fname.replace(str(REPO) + '/', '')}:{lineno})")
    return lines


# --- the bench -------------------------------------------------------------------


def main() -> int:
    bench_start = time.perf_counter()
    if not TARBALL.exists():
        print(f"{TARBALL} is missing: install linux-source-6.1 (`make bench` does)", file=sys.stderr)
        return 1
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"work dir: {WORK}", flush=True)
    write_shim()
    srpm, version = build_srpm()
    toml = pipeline_file(srpm)
    rows: list[Row] = []
    notes: list[str] = []

    # --- (a) prep: respin (hook included) against a bare rpmbuild -bp -----------------
    bare_top = WORK / "bare"
    bare_spec = install_srpm(srpm, bare_top)
    respin("run", str(toml), "--until", "fetch", "--force")
    print("prep: warm-up of each", flush=True)
    respin("run", str(toml), "--only", "prep", "--force")
    run(bare_argv(bare_spec, bare_top), log=WORK / "bare-prep.log")
    r_wall: list[float] = []
    r_cpu: list[float] = []
    r_stage: list[float] = []
    bare: list[Timed] = []
    r_own: list[float] = []
    respin_build = WORK / "respin" / "stages" / "prep" / "rpmbuild" / "BUILD"
    for i in range(RUNS):
        settle(respin_build)
        rpmbuild_seconds()
        ours, secs, _ = respin("run", str(toml), "--only", "prep", "--force")
        inner = rpmbuild_seconds()
        r_wall.append(ours.wall)
        r_cpu.append(ours.cpu)
        r_stage.append(secs["prep"])
        r_own.append(ours.wall - inner)
        settle(bare_top / "BUILD")
        bare.append(run(bare_argv(bare_spec, bare_top), log=WORK / "bare-prep.log"))
        print(f"  run {i + 1}: respin {ours.wall:.2f} s (stage {secs['prep']:.2f} s, its rpmbuild "
              f"{inner:.2f} s, CPU {ours.cpu:.2f} s), bare {bare[-1].wall:.2f} s "
              f"(CPU {bare[-1].cpu:.2f} s)", flush=True)
    m_bare = statistics.median(b.wall for b in bare)
    m_bare_cpu = statistics.median(b.cpu for b in bare)
    over_wall = statistics.median(r_wall) / m_bare - 1
    for label, times, base in (("prep: `respin run --only prep`, wall", r_wall, m_bare),
                               ("prep: prep stage (manifest seconds), wall", r_stage, m_bare),
                               ("prep: `respin run --only prep`, CPU (user+sys)", r_cpu, m_bare_cpu)):
        med = statistics.median(times)
        over = med / base - 1
        rows.append(Row(f"{label} vs bare `rpmbuild -bp --nodeps`", f"{med:.2f}", f"{base:.2f}",
                        f"{med / base:.3f}x ({over:+.1%})", f"< +{PREP_BAR:.0%}",
                        "ok" if over < PREP_BAR else "over"))
    pressure = cpu_pressure()
    own = statistics.median(r_own) / m_bare
    rows.append(Row("prep: respin's own time in a run (wall minus its rpmbuild -bp, same run) "
                    "over bare `rpmbuild -bp --nodeps`", f"{statistics.median(r_own):.2f}", f"{m_bare:.2f}",
                    f"{own:+.1%}", f"< +{PREP_BAR:.0%}", "ok" if own < PREP_BAR else "over"))
    if over_wall >= PREP_BAR or own >= PREP_BAR:
        notes += profile_prep(toml)

    # --- (b) the config edit: config+diff stages against cp -a + sed + diff -urN ------
    print("config+diff: respin", flush=True)
    # Like for like: the recipe checks nothing before its build, so the timed rows run
    # with `validate = false`; the check before the build is timed on its own row.
    checked: list[float] = []
    validator = "?"
    try:
        respin("run", str(toml), "--from", "config", "--until", "diff", "--force")  # warm-up
        for _ in range(RUNS):
            _, secs, got = respin("run", str(toml), "--from", "config", "--until", "diff", "--force")
            checked.append(secs["config"] + secs["diff"])
            arts = got["artifacts"]
            assert isinstance(arts, list)
            validator = next(str(a["meta"].get("validator", "?")) for a in arts
                             if a["kind"] == "kconfig-edited")
    except RuntimeError as exc:
        notes.append(f"PROBLEM: the config stage with its defaults fails on this tree: {exc}")
    toml = pipeline_file(srpm, "validate = false\n")
    respin("run", str(toml), "--from", "config", "--until", "diff", "--force")
    d_wall: list[float] = []
    d_stage: list[float] = []
    manifest: dict[str, object] = {}
    for _ in range(RUNS):
        ours, secs, manifest = respin("run", str(toml), "--from", "config", "--until", "diff", "--force")
        d_wall.append(ours.wall)
        d_stage.append(secs["config"] + secs["diff"])
    arts = manifest["artifacts"]
    assert isinstance(arts, list)
    respin_patch = Path(next(a["path"] for a in arts if a["kind"] == "patch")).read_text()

    print("config+diff: the 2010 recipe (`exit 1` after the last ApplyPatch, rpmbuild -bp)", flush=True)
    recipe_top = WORK / "recipe"
    settle(bare_top / "BUILD", respin_build)
    recipe_spec = install_srpm(srpm, recipe_top)
    text = recipe_spec.read_text()
    last = text.rindex("\nApplyPatch ")
    end = text.index("\n", last + 1)
    recipe_spec.write_text(text[:end + 1] + "exit 1\n" + text[end + 1:])
    run(bare_argv(recipe_spec, recipe_top), ok=(1,), log=WORK / "recipe-prep.log")
    tree = prepared_tree(recipe_top)
    configs = sorted(p.name for p in tree.glob(f"kernel-*-{TARGET}*.config"))
    if not configs:
        raise RuntimeError(f"{tree}: no kernel-*-{TARGET}*.config after the `exit 1` prep")
    sed = " ".join(f"-e 's|^\\(# \\)\\?{k}[= ].*$|{k}={v}|'" for k, v in EDIT.items())
    new = f"{tree.name}.new"
    cp_t: list[float] = []
    sed_t: list[float] = []
    diff_t: list[float] = []
    recipe_patch = ""
    for i in range(RUNS + 1):  # the first is the warm-up
        settle(tree.parent / new)
        c = shell(f"cp -a {tree.name} {new}", cwd=tree.parent)
        s = shell(f"sed -i {sed} {' '.join(configs)}", cwd=tree.parent / new)
        d = shell(f"diff -urN {tree.name} {new} > ../newpatch", cwd=tree.parent, ok=(1,))
        if i:
            cp_t.append(c)
            sed_t.append(s)
            diff_t.append(d)
            print(f"  run {i}: cp -a {c:.2f} s, sed {s:.3f} s, diff -urN {d:.2f} s", flush=True)
    recipe_patch = (tree.parent.parent / "newpatch").read_text()
    shutil.rmtree(tree.parent / new, ignore_errors=True)
    peer = [c + s + d for c, s, d in zip(cp_t, sed_t, diff_t, strict=True)]
    m_peer = statistics.median(peer)
    got_ours, got_theirs = changed_lines(respin_patch), changed_lines(recipe_patch)
    same = got_ours == got_theirs and bool(got_ours)
    for label, times in (("config+diff: `respin run --from config --until diff` wall", d_wall),
                         ("config+diff: config + diff stages (manifest seconds)", d_stage)):
        med = statistics.median(times)
        ratio = m_peer / med
        rows.append(Row(f"{label} vs `cp -a` + sed + `diff -urN`", f"{med:.2f}", f"{m_peer:.2f}",
                        f"{ratio:.0f}x faster", f">= {DIFF_BAR:.0f}x",
                        "ok" if ratio >= DIFF_BAR and same else "short" if same else "patches differ"))
    if checked:
        med = statistics.median(checked)
        rows.append(Row(f"config+diff with the check before the build (stage seconds; checked by "
                        f"{validator})", f"{med:.2f}", f"{m_peer:.2f}",
                        f"{m_peer / med:.0f}x faster", "info", "info"))
    notes.append(f"recipe medians: cp -a {statistics.median(cp_t):.2f} s, "
                 f"sed {statistics.median(sed_t):.3f} s, diff -urN {statistics.median(diff_t):.2f} s; "
                 f"patch changes the same lines as respin's: {'yes' if same else 'NO'} "
                 f"({', '.join(sorted(got_theirs)) or 'none'})")
    if not same:
        with tempfile.NamedTemporaryFile("w", dir=WORK, prefix="recipe-", suffix=".patch",
                                         delete=False) as fh:
            fh.write(recipe_patch)
        notes.append(f"  respin: {sorted(got_ours.items())}\n  recipe: {sorted(got_theirs.items())} "
                     f"(recipe patch kept in {fh.name})")

    # The trees are 1.5 GB each; keep the SRPM and the small files.
    settle(bare_top / "BUILD", recipe_top / "BUILD", respin_build)

    total = time.perf_counter() - bench_start
    print()
    print(f"kernel {version} ({TARBALL.name}), target {TARGET}, medians of {RUNS} runs after a warm-up")
    print()
    print("| step | respin s | peer s | ratio | bar | verdict |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.step} | {r.respin} | {r.peer} | {r.ratio} | {r.bar} | {r.verdict} |")
    print()
    for line in notes:
        print(line)
    print(f"\n(whole kernel bench: {total:.0f} s on {os.cpu_count()} CPUs; CPU pressure, share of "
          f"time some task waited for a CPU over 5 min: {pressure} after prep, {cpu_pressure()} at the end)")
    return 0 if all(r.verdict == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
