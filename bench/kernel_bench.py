"""respin's kernel path on a real kernel tree, against the 2010 recipe and a bare rpmbuild -bp.

Inputs are made here, in bench/_work/kernel/: the source package of
fixtures/benchkernel.py (Debian's linux-source-6.1 tarball in a spec shaped
like the 2010 fixture's: a hard-linked build tree, kernel-*.config files
generated from config-* Sources *before* the patches, an ApplyPatch function,
two small patches against the 6.1 tree, `# END OF PATCH APPLICATIONS`), and a
pipeline file for it.

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
from dataclasses import dataclass, field
from pathlib import Path

from fixtures.benchkernel import build_bench_srpm
from fixtures.realkernel import TARBALL

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "_work" / "kernel"
TARGET = "x86_64"
RUNS = 3
# The edit, in .config syntax: one bool that is "not set" in the config, one string.
EDIT = {"CONFIG_IKCONFIG": "y", "CONFIG_LOCALVERSION": '"-respinbench"'}
PREP_BAR = 0.05  # respin's prep at most 5% over the bare rpmbuild -bp
DIFF_BAR = 100.0  # respin's config+diff at least 100x faster than cp -a + diff -urN
# The config edit, as `respin run` arguments: the two stages it times, rerun each time.
EDIT_STAGES = ("--from", "config", "--until", "diff", "--force")
# The three topdirs' BUILD trees (1.5 GB each): removed before each timed run and at the end.
BARE_TOP = WORK / "bare"
RECIPE_TOP = WORK / "recipe"
RESPIN_BUILD = WORK / "respin" / "stages" / "prep" / "rpmbuild" / "BUILD"


@dataclass
class Row:
    step: str
    respin: str
    peer: str
    ratio: str
    bar: str
    verdict: str


SHIM = WORK / "shim"
# Where the shim logs: a directory given to the builder (as root, respin runs rpmbuild as an
# unprivileged builder, which cannot write in the bench's work dir), read without links.
SHIM_LOG = WORK / "shim-log" / "rpmbuild-times"


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
    SHIM_LOG.parent.mkdir(exist_ok=True)
    from respin.stages.kernel.lib.rpmpkg import give_to_builder

    give_to_builder(SHIM_LOG.parent, 0o700)  # the builder's alone (root's when respin runs as a user)
    script = SHIM / "rpmbuild"
    script.write_text(f"#!/bin/sh\nstart=$(date +%s.%N)\nrc=0\n{real} \"$@\" || rc=$?\n"
                      f"echo \"$start $(date +%s.%N)\" >> {SHIM_LOG}\nexit $rc\n")
    script.chmod(0o755)


def rpmbuild_seconds() -> float:
    """Seconds of the rpmbuild runs logged by the shim since the last call."""
    try:
        from respin.pipeline.fsutil import read_no_link

        # The builder's directory: read no link it may have put there.
        text = (read_no_link(SHIM_LOG, 1 << 20) or b"").decode()
        pairs = [line.split() for line in text.splitlines() if line.strip()]
    except FileNotFoundError:
        return 0.0
    SHIM_LOG.unlink(missing_ok=True)
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


def pipeline_file(srpm: Path, extra: str = "") -> Path:
    """The pipeline file: target, the SRPM, the edit (`extra`: more [config] lines)."""
    path = WORK / "bench.toml"
    edit = ", ".join(f"{k} = {json.dumps(v)}" for k, v in EDIT.items())
    path.write_text(f'[pipeline]\ntarget = "{TARGET}"\nworkdir = "respin"\n\n'
                    f'[fetch]\nsrpm = "{srpm}"\n\n[config]\nset = {{ {edit} }}\n{extra}')
    return path


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


@dataclass
class Inputs:
    srpm: Path
    version: str
    toml: Path  # the pipeline file, with the edit


@dataclass
class Part:
    """What one comparison adds to the report."""

    rows: list[Row]
    notes: list[str] = field(default_factory=list)


def make_inputs() -> Inputs | None:
    """The work dir, the rpmbuild shim, the SRPM (built once) and its pipeline file; None: no tarball."""
    if not TARBALL.exists():
        print(f"{TARBALL} is missing: install linux-source-6.1 (`make bench` does)", file=sys.stderr)
        return None
    WORK.mkdir(parents=True, exist_ok=True)
    print(f"work dir: {WORK}", flush=True)
    write_shim()
    srpm, version = build_bench_srpm(WORK, log=lambda line: print(line, flush=True))
    return Inputs(srpm, version, pipeline_file(srpm))


# --- (a) prep: respin (hook included) against a bare rpmbuild -bp ---


@dataclass
class PrepRuns:
    """Seconds per timed run of each side."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    stage: list[float] = field(default_factory=list)  # the manifest's prep seconds
    own: list[float] = field(default_factory=list)  # wall minus the same run's rpmbuild
    bare: list[Timed] = field(default_factory=list)

    def bare_wall(self) -> float:
        return statistics.median(b.wall for b in self.bare)

    def over_bare(self) -> float:
        return statistics.median(self.wall) / self.bare_wall() - 1

    def own_over_bare(self) -> float:
        return statistics.median(self.own) / self.bare_wall()


def time_prep(toml: Path, bare_spec: Path) -> PrepRuns:
    """One untimed warm-up of each side, then RUNS of each, interleaved (load drifts hit both)."""
    respin("run", str(toml), "--until", "fetch", "--force")
    print("prep: warm-up of each", flush=True)
    respin("run", str(toml), "--only", "prep", "--force")
    run(bare_argv(bare_spec, BARE_TOP), log=WORK / "bare-prep.log")
    runs = PrepRuns()
    for i in range(RUNS):
        settle(RESPIN_BUILD)
        rpmbuild_seconds()
        ours, secs, _ = respin("run", str(toml), "--only", "prep", "--force")
        inner = rpmbuild_seconds()
        runs.wall.append(ours.wall)
        runs.cpu.append(ours.cpu)
        runs.stage.append(secs["prep"])
        runs.own.append(ours.wall - inner)
        settle(BARE_TOP / "BUILD")
        bare = run(bare_argv(bare_spec, BARE_TOP), log=WORK / "bare-prep.log")
        runs.bare.append(bare)
        print(f"  run {i + 1}: respin {ours.wall:.2f} s (stage {secs['prep']:.2f} s, its rpmbuild "
              f"{inner:.2f} s, CPU {ours.cpu:.2f} s), bare {bare.wall:.2f} s "
              f"(CPU {bare.cpu:.2f} s)", flush=True)
    return runs


def prep_rows(runs: PrepRuns) -> list[Row]:
    m_bare = runs.bare_wall()
    m_bare_cpu = statistics.median(b.cpu for b in runs.bare)
    rows = []
    for label, times, base in (("prep: `respin run --only prep`, wall", runs.wall, m_bare),
                               ("prep: prep stage (manifest seconds), wall", runs.stage, m_bare),
                               ("prep: `respin run --only prep`, CPU (user+sys)", runs.cpu, m_bare_cpu)):
        med = statistics.median(times)
        over = med / base - 1
        rows.append(Row(f"{label} vs bare `rpmbuild -bp --nodeps`", f"{med:.2f}", f"{base:.2f}",
                        f"{med / base:.3f}x ({over:+.1%})", f"< +{PREP_BAR:.0%}",
                        "ok" if over < PREP_BAR else "over"))
    own = runs.own_over_bare()
    rows.append(Row("prep: respin's own time in a run (wall minus its rpmbuild -bp, same run) "
                    "over bare `rpmbuild -bp --nodeps`", f"{statistics.median(runs.own):.2f}",
                    f"{m_bare:.2f}",
                    f"{own:+.1%}", f"< +{PREP_BAR:.0%}", "ok" if own < PREP_BAR else "over"))
    return rows


def compare_prep(inputs: Inputs) -> tuple[Part, str]:
    """The prep rows (a profile of respin's prep in the notes when over the bar); the CPU pressure."""
    runs = time_prep(inputs.toml, install_srpm(inputs.srpm, BARE_TOP))
    part = Part(prep_rows(runs))
    # Read before the profile run: the pressure the timed runs saw.
    pressure = cpu_pressure()
    if runs.over_bare() >= PREP_BAR or runs.own_over_bare() >= PREP_BAR:
        part.notes += profile_prep(inputs.toml)
    return part, pressure


# --- (b) the config edit: config+diff stages against cp -a + sed + diff -urN ---


@dataclass
class Checked:
    """The config stage with its defaults: the check before the build included."""

    seconds: list[float] = field(default_factory=list)  # config + diff stage seconds
    validator: str = "?"
    problem: str | None = None


def time_checked_edit(toml: Path) -> Checked:
    """A warm-up and RUNS of respin's edit as a user runs it; timed on a row of its own (info only)."""
    checked = Checked()
    try:
        respin("run", str(toml), *EDIT_STAGES)  # warm-up
        for _ in range(RUNS):
            _, secs, got = respin("run", str(toml), *EDIT_STAGES)
            checked.seconds.append(secs["config"] + secs["diff"])
            arts = got["artifacts"]
            assert isinstance(arts, list)
            checked.validator = next(str(a["meta"].get("validator", "?")) for a in arts
                                     if a["kind"] == "kconfig-edited")
    except RuntimeError as exc:
        checked.problem = f"PROBLEM: the config stage with its defaults fails on this tree: {exc}"
    return checked


@dataclass
class EditRuns:
    """Seconds per timed run, and the patch made."""

    wall: list[float] = field(default_factory=list)
    stage: list[float] = field(default_factory=list)  # config + diff stage seconds
    patch: str = ""


def time_unchecked_edit(srpm: Path) -> EditRuns:
    """Like for like: the recipe checks nothing before its build, so respin runs with `validate = false`."""
    toml = pipeline_file(srpm, "validate = false\n")
    respin("run", str(toml), *EDIT_STAGES)  # warm-up
    runs = EditRuns()
    manifest: dict[str, object] = {}
    for _ in range(RUNS):
        ours, secs, manifest = respin("run", str(toml), *EDIT_STAGES)
        runs.wall.append(ours.wall)
        runs.stage.append(secs["config"] + secs["diff"])
    arts = manifest["artifacts"]
    assert isinstance(arts, list)
    runs.patch = Path(next(a["path"] for a in arts if a["kind"] == "patch")).read_text()
    return runs


@dataclass
class RecipeRuns:
    """Seconds per timed run of each step of the 2010 recipe, and the patch made."""

    cp: list[float] = field(default_factory=list)
    sed: list[float] = field(default_factory=list)
    diff: list[float] = field(default_factory=list)
    patch: str = ""

    def totals(self) -> list[float]:
        return [c + s + d for c, s, d in zip(self.cp, self.sed, self.diff, strict=True)]


def recipe_tree(srpm: Path) -> tuple[Path, list[str]]:
    """The 2010 way to a tree to edit: `exit 1` after the last ApplyPatch, rpmbuild -bp; (tree, configs)."""
    spec = install_srpm(srpm, RECIPE_TOP)
    text = spec.read_text()
    last = text.rindex("\nApplyPatch ")
    end = text.index("\n", last + 1)
    spec.write_text(text[:end + 1] + "exit 1\n" + text[end + 1:])
    run(bare_argv(spec, RECIPE_TOP), ok=(1,), log=WORK / "recipe-prep.log")
    tree = prepared_tree(RECIPE_TOP)
    configs = sorted(p.name for p in tree.glob(f"kernel-*-{TARGET}*.config"))
    if not configs:
        raise RuntimeError(f"{tree}: no kernel-*-{TARGET}*.config after the `exit 1` prep")
    return tree, configs


def time_recipe_edit(tree: Path, configs: list[str]) -> RecipeRuns:
    """`cp -a` the tree, `sed` its configs, `diff -urN` the two trees: a warm-up, then RUNS times."""
    sed = " ".join(f"-e 's|^\\(# \\)\\?{k}[= ].*$|{k}={v}|'" for k, v in EDIT.items())
    new = f"{tree.name}.new"
    runs = RecipeRuns()
    for i in range(RUNS + 1):  # the first is the warm-up
        settle(tree.parent / new)
        c = shell(f"cp -a {tree.name} {new}", cwd=tree.parent)
        s = shell(f"sed -i {sed} {' '.join(configs)}", cwd=tree.parent / new)
        d = shell(f"diff -urN {tree.name} {new} > ../newpatch", cwd=tree.parent, ok=(1,))
        if i:
            runs.cp.append(c)
            runs.sed.append(s)
            runs.diff.append(d)
            print(f"  run {i}: cp -a {c:.2f} s, sed {s:.3f} s, diff -urN {d:.2f} s", flush=True)
    runs.patch = (tree.parent.parent / "newpatch").read_text()
    shutil.rmtree(tree.parent / new, ignore_errors=True)
    return runs


Lines = dict[str, list[str]]  # a patch's changed lines per file (changed_lines)


def same_lines(ours: Lines, theirs: Lines) -> bool:
    return ours == theirs and bool(ours)


def edit_rows(checked: Checked, ours: EditRuns, m_peer: float, same: bool) -> list[Row]:
    """respin's config+diff against the recipe's median `m_peer`; `same`: the patches agree."""
    rows = []
    for label, times in (("config+diff: `respin run --from config --until diff` wall", ours.wall),
                         ("config+diff: config + diff stages (manifest seconds)", ours.stage)):
        med = statistics.median(times)
        ratio = m_peer / med
        rows.append(Row(f"{label} vs `cp -a` + sed + `diff -urN`", f"{med:.2f}", f"{m_peer:.2f}",
                        f"{ratio:.0f}x faster", f">= {DIFF_BAR:.0f}x",
                        "ok" if ratio >= DIFF_BAR and same else "short" if same else "patches differ"))
    if checked.seconds:
        med = statistics.median(checked.seconds)
        rows.append(Row(f"config+diff with the check before the build (stage seconds; checked by "
                        f"{checked.validator})", f"{med:.2f}", f"{m_peer:.2f}",
                        f"{m_peer / med:.0f}x faster", "info", "info"))
    return rows


def edit_notes(recipe: RecipeRuns, got_ours: Lines, got_theirs: Lines) -> list[str]:
    """The recipe's medians and whether its patch changes respin's lines (if not: both, and its file)."""
    same = same_lines(got_ours, got_theirs)
    notes = [f"recipe medians: cp -a {statistics.median(recipe.cp):.2f} s, "
             f"sed {statistics.median(recipe.sed):.3f} s, diff -urN {statistics.median(recipe.diff):.2f} s; "
             f"patch changes the same lines as respin's: {'yes' if same else 'NO'} "
             f"({', '.join(sorted(got_theirs)) or 'none'})"]
    if not same:
        # Kept for a look: the recipe's tree is removed at the end.
        with tempfile.NamedTemporaryFile("w", dir=WORK, prefix="recipe-", suffix=".patch",
                                         delete=False) as fh:
            fh.write(recipe.patch)
        notes.append(f"  respin: {sorted(got_ours.items())}\n  recipe: {sorted(got_theirs.items())} "
                     f"(recipe patch kept in {fh.name})")
    return notes


def edit_part(checked: Checked, ours: EditRuns, recipe: RecipeRuns) -> Part:
    got_ours, got_theirs = changed_lines(ours.patch), changed_lines(recipe.patch)
    rows = edit_rows(checked, ours, statistics.median(recipe.totals()), same_lines(got_ours, got_theirs))
    problem = [checked.problem] if checked.problem else []
    return Part(rows, problem + edit_notes(recipe, got_ours, got_theirs))


def compare_config_edit(inputs: Inputs) -> Part:
    print("config+diff: respin", flush=True)
    checked = time_checked_edit(inputs.toml)
    ours = time_unchecked_edit(inputs.srpm)
    print("config+diff: the 2010 recipe (`exit 1` after the last ApplyPatch, rpmbuild -bp)", flush=True)
    # The prep trees go now, untimed: three 1.5 GB trees crowd the disk, and deleting
    # them during the recipe's timed `cp -a` would skew it (see settle).
    settle(BARE_TOP / "BUILD", RESPIN_BUILD)
    recipe = time_recipe_edit(*recipe_tree(inputs.srpm))
    return edit_part(checked, ours, recipe)


# --- the report ---


def print_table(version: str, parts: list[Part], pressure: str, started: float) -> None:
    total = time.perf_counter() - started
    print()
    print(f"kernel {version} ({TARBALL.name}), target {TARGET}, medians of {RUNS} runs after a warm-up")
    print()
    print("| step | respin s | peer s | ratio | bar | verdict |")
    print("|---|---|---|---|---|---|")
    for r in (r for part in parts for r in part.rows):
        print(f"| {r.step} | {r.respin} | {r.peer} | {r.ratio} | {r.bar} | {r.verdict} |")
    print()
    for line in (line for part in parts for line in part.notes):
        print(line)
    print(f"\n(whole kernel bench: {total:.0f} s on {os.cpu_count()} CPUs; CPU pressure, share of "
          f"time some task waited for a CPU over 5 min: {pressure} after prep, {cpu_pressure()} at the end)")


def main() -> int:
    started = time.perf_counter()
    inputs = make_inputs()
    if inputs is None:
        return 1
    prep, pressure = compare_prep(inputs)
    edit = compare_config_edit(inputs)
    # The trees are 1.5 GB each; keep the SRPM and the small files.
    settle(BARE_TOP / "BUILD", RECIPE_TOP / "BUILD", RESPIN_BUILD)
    print_table(inputs.version, [prep, edit], pressure, started)
    return 0 if all(r.verdict == "ok" for part in (prep, edit) for r in part.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
