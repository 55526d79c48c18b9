"""prep: `rpmbuild -bp` stopped cleanly by a hook right after the last patch application.

The 2010 recipe put `exit 1` there and ignored the failure, which also hides
real failures. The hook instead snapshots the kernel-*.config files as they
are at that point, leaves a sentinel and ends %prep with success; the stage
then checks that rpmbuild succeeded *and* the sentinel exists.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from respin.pipeline import fsutil
from respin.pipeline.errors import InputError
from respin.pipeline.stage import Artifact, Context, PipelineView, Problem, Stage
from respin.stages.kernel.kinds import KCONFIG_FILES, KERNEL_LOCAL, LOG, Layout, Snapshot
from respin.stages.kernel.lib import preview, topdir
from respin.stages.kernel.lib.rpmpkg import (
    FIXED_TOPDIR,
    build_trees,
    fixed_topdir_available,
    from_fixed,
    give_to_builder,
    in_fixed_topdir,
    must_drop_root,
    rpmbuild_argv,
    rpmbuild_reason,
    share_with_builder,
    to_fixed,
)
from respin.stages.kernel.lib.spectext import find_prep_point
from respin.stages.lib.rpmmacros import empty_home

SENTINEL = ".respin-hook-reached"
# The directory of BUILD/ the hook writes into, and of SPECS/ the hooked spec is in.
HOOK_DIR = ".respin-hook"
TREEFILE = ".respin-tree"
MACROS = ".respin-macros"
# Spec macros recorded at the hook, as rpmbuild evaluated them for this run (defines,
# target): which configs %prep keeps (primary_target), how the release and the
# module directory are spelled, whether the build signs the image (signkernel).
# Empty when the spec does not define one.
SPEC_MACROS = ("name", "version", "release", "_target_cpu", "dist", "fedora", "rhel", "primary_target",
               "buildid", "KVERREL", "specrelease", "with_debug", "debugbuildsenabled", "signkernel",
               "specrpmversion", "all_configs", "all_arch_configs")


def _q(path: Path) -> str:
    # Shell-quote for %prep, and double % so rpm does not expand it as a macro.
    return shlex.quote(str(path)).replace("%", "%%")


def hook_lines(snapdir: Path) -> list[str]:
    """The shell lines that snapshot the configs and end %prep with success."""
    d = _q(snapdir)
    return [
        "# respin: stop hook (snapshot kernel-*.config, then end %%prep cleanly)",
        f"mkdir -p {d}",
        "for respin_cfg in kernel-*.config; do",
        f'  if [ -f "$respin_cfg" ]; then cp -p "$respin_cfg" {d}/; fi',
        "done",
        f"pwd > {d}/{TREEFILE}",
        # A quoted here-document: rpm expands the macros, the shell copies the text.
        f"cat > {d}/{MACROS} <<'RESPIN_MACROS_END'",
        *(f"{name}=%{{?{name}}}" for name in SPEC_MACROS),
        "RESPIN_MACROS_END",
        f": > {d}/{SENTINEL}",
        "exit 0",
    ]


def hooked_spec(text: str, snapdir: Path, where: str) -> tuple[str, int]:
    """The spec text with the hook inserted; also the 1-based line it follows."""
    lines = text.splitlines()
    point = find_prep_point(lines, where)
    at = point.hook_at + 1
    return "\n".join(lines[:at] + hook_lines(snapdir) + lines[at:]) + "\n", at


class PrepStage(Stage["PrepStage.Options"]):
    """rpmbuild -bp with a clean stop hook; snapshots the kernel-*.config files."""

    name = "prep"
    summary = "rpmbuild -bp, stopped by a hook after the last patch; snapshot the kernel-*.config files"
    # 7: the record names the prepared tree `prepared`, the Kconfig archive is "kconfig-files";
    # 6: which configs %prep merges and checks; 5: signkernel; 4: the spec's macros as evaluated
    version = "7"

    @dataclass(frozen=True)
    class Options:
        nodeps: bool = True  # BuildRequires of a kernel are rarely installed on the build host


    def check(self, ctx: Context, pipeline: PipelineView) -> Iterator[Problem]:
        """Before any stage runs: the SRPM is a kernel whose %prep has a place for the hook."""
        spec = preview.source(ctx, pipeline)
        if spec is None:
            return
        why = preview.not_a_kernel(spec.spec_name, spec.files)
        if why is not None:
            yield InputError(why)
            return
        try:
            find_prep_point(spec.spec.splitlines(), spec.spec_name)
        except InputError as exc:
            yield exc

    def run(self, ctx: Context) -> list[Artifact]:
        # prep's own rpmbuild topdir: the prepared tree stays there for config (its make
        # check) until prep runs again; no other stage's build touches it.
        top = ctx.stagedir / "rpmbuild"
        pristine_spec, pristine_sources = topdir.pristine(ctx)
        spec = topdir.lay_out(top, pristine_spec, pristine_sources)
        where = pristine_spec.name
        why = preview.not_a_kernel(where, (p.name for p in (top / "SOURCES").iterdir()))
        if why is not None:
            raise InputError(why)
        fixed = fixed_topdir_available()
        must_drop_root(fixed)
        build_trees(top)
        # The hook writes into a directory of the build's own; respin reads it back as data.
        hook = top / "BUILD" / HOOK_DIR
        shutil.rmtree(hook, ignore_errors=True)
        hook.mkdir()
        give_to_builder(hook)
        seen = (lambda path: to_fixed(path, top)) if fixed else (lambda path: path)
        text, after_line = hooked_spec(spec.read_text(), seen(hook), where)
        # The hooked copy lives outside SPECS/<name>.spec: the spec there stays as shipped,
        # and %{_specdir}/<name>.spec (which ApplyPatch greps) is that one.
        hooked = top / "SPECS" / HOOK_DIR / spec.name
        fsutil.atomic_write(hooked, text)
        share_with_builder(top)
        log_file = ctx.stagedir / "prep.log"
        log_file.unlink(missing_ok=True)
        argv = rpmbuild_argv("-bp", seen(hooked), topdir=FIXED_TOPDIR if fixed else top, target=ctx.target,
                             nodeps=self.options.nodeps,
                             defines={**topdir.run_defines(ctx), "_specdir": str(seen(top / "SPECS"))})
        env = empty_home(ctx.stagedir)
        if fixed:
            env["TMPDIR"] = "/var/tmp"
        ctx.run(in_fixed_topdir(argv, top) or argv, log_file=log_file, env=env,
                what=f"rpmbuild -bp of {where}", summarize=rpmbuild_reason)
        found = _hook_files(hook)
        shutil.rmtree(hook, ignore_errors=True)
        if SENTINEL not in found:
            raise InputError(f"{where}: %prep finished without reaching the respin hook placed after "
                             f"line {after_line}; the last patch application is in a branch that "
                             f"did not run for target {ctx.target} (see {log_file})")
        said = found.get(TREEFILE, b"").decode(errors="replace").strip()
        tree = from_fixed(Path(said), top) if fixed else Path(said)
        build = (top / "BUILD").resolve()
        if not said or tree.is_symlink() or not tree.is_dir() or not tree.resolve().is_relative_to(build):
            raise InputError(f"{where}: %prep ended outside {top / 'BUILD'} (in {said[:200]!r}); "
                             "respin reads only a tree the build made there")
        macros = parse_macros(found.get(MACROS, b"").decode(errors="replace"))
        snapshot = ctx.stagedir / "snapshot"
        tmp = fsutil.fresh_dir(snapshot)
        for name, data in found.items():
            if _CONFIG_NAME.match(name):
                fsutil.atomic_write(tmp / name, data)
        at_hook = sorted(p.name for p in tmp.iterdir())
        kernel_local = (top / "SOURCES" / KERNEL_LOCAL).is_file()
        if not at_hook:
            # Today's layout: the configs are Sources copied in after the patches.
            # The shipped ones are what kernel-local is merged into; snapshot those.
            for src in sorted((top / "SOURCES").glob("kernel-*.config")):
                shutil.copyfile(src, tmp / src.name)
        configs = sorted(p.name for p in tmp.iterdir())
        if not configs:
            raise InputError(f"{where}: no kernel-*.config files, neither in {tree} when the patches "
                             "have been applied nor among the Sources: not a kernel spec respin knows")
        for name in configs:
            os.chmod(tmp / name, 0o644)
        kconfig_tar = ctx.stagedir / "kconfig.tar"
        copied = archive_kconfig(tree, kconfig_tar)
        fsutil.commit_dir(tmp, snapshot)
        layout: Layout = "configs-before-patches" if at_hook else "configs-as-sources"
        ctx.log.info("prep: hook reached in %s; %d kernel-*.config snapshotted (%s); %d Kconfig files "
                     "and scripts kept",
                     tree.name, len(configs), layout, copied)
        record = Snapshot(prepared=str(tree), configs=configs, layout=layout, kernel_local=kernel_local,
                          kconfig_files=copied, macros=macros,
                          release_takes_localversion=release_takes_localversion(tree))
        return [record.artifact(snapshot), Artifact(kconfig_tar, KCONFIG_FILES, meta={"files": copied}),
                Artifact(log_file, LOG)]


_CONFIG_NAME = re.compile(r"^kernel-[A-Za-z0-9_.+-]*\.config$")


# The hook writes configs (a few hundred KB each) and two short files; the build could write
# anything there, and root reads no more than this of one file.
_HOOK_LIMIT = 64 << 20


def _hook_files(hook: Path) -> dict[str, bytes]:
    """The regular files the hook left in `hook` (a directory the build wrote), by name: no
    link followed, nothing but a plain file read, as root reads what an unprivileged build made."""
    found: dict[str, bytes] = {}
    try:
        dir_fd = os.open(hook, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return found
    try:
        for name in os.listdir(dir_fd):
            with contextlib.suppress(fsutil.NotRegular, OSError):
                got = fsutil.read_at(dir_fd, name, _HOOK_LIMIT)
                if got is not None:
                    found[name] = got[0]
    finally:
        os.close(dir_fd)
    return found


def release_takes_localversion(tree: Path) -> bool:
    """Whether the tree's own kernel release (`make kernelrelease`, uname -r) appends
    CONFIG_LOCALVERSION, as Linux does through scripts/setlocalversion."""
    for name in ("Makefile", "scripts/setlocalversion"):
        # The build's tree: no link followed, no fifo opened (it would block).
        with contextlib.suppress(OSError, fsutil.NotRegular):
            if b"CONFIG_LOCALVERSION" in (fsutil.read_no_link(tree / name, _HOOK_LIMIT) or b""):
                return True
    return False


def parse_macros(text: str) -> dict[str, str]:
    """The hook's macro record: name -> value, only the macros the spec defines."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        if name in SPEC_MACROS and value.strip():
            out[name] = value.strip()
    return out


_SOURCE = re.compile(r'^\s*(source|rsource|osource|orsource)\s+"([^"]+)"', re.M)
_VAR = re.compile(r"\$\([A-Za-z_][A-Za-z0-9_]*\)|\$[A-Za-z_][A-Za-z0-9_]*")
_SRCTREE_FILE = re.compile(r"\$\(srctree\)/([A-Za-z0-9_./-]+)")
_SIBLING = re.compile(r"""\$\(dirname "?\$0"?\)/([A-Za-z0-9_.-]+)""")


def kconfig_files(tree: Path) -> list[str]:
    """The Kconfig files reachable from the top Kconfig through `source` lines.

    Following the sources reads about two thousand small files instead of
    walking a kernel tree's eighty thousand; a variable in a path (arch/$(SRCARCH))
    stands for every arch, so one archive serves any target.
    """
    if not (tree / "Kconfig").is_file():
        return []
    seen: set[str] = set()
    scripts: list[str] = []  # $(srctree)/... files the Kconfig runs
    todo = ["Kconfig"]
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        try:
            text = (tree / rel).read_text(errors="replace")
        except OSError:
            continue
        scripts += _SRCTREE_FILE.findall(text)
        for kind, target in _SOURCE.findall(text):
            base = PurePosixPath(rel).parent if kind.startswith(("r", "or")) else PurePosixPath()
            pattern = str(base / _VAR.sub("*", target))
            if ".." in PurePosixPath(pattern).parts or pattern.startswith("/"):
                continue
            for match in sorted(tree.glob(pattern)):
                if match.is_file():
                    todo.append(match.relative_to(tree).as_posix())
    # The preprocessor include files (scripts/Kconfig.include) come along when present.
    for include in tree.glob("scripts/Kconfig.include"):
        seen.add(include.relative_to(tree).as_posix())
        with contextlib.suppress(OSError):
            scripts += _SRCTREE_FILE.findall(include.read_text(errors="replace"))
    # The stand-in compiler a spec's config check may run make with (CROSS_COMPILE=
    # scripts/dummy-tools/): config predicts with it too.
    dummies = {p.relative_to(tree).as_posix() for p in tree.glob("scripts/dummy-tools/*") if p.is_file()}
    return sorted(seen | dummies | _helper_scripts(tree, scripts, seen))



def _helper_scripts(tree: Path, referenced: list[str], kconfigs: set[str]) -> set[str]:
    """The scripts the Kconfig files run ($(shell,$(srctree)/scripts/cc-version.sh ...)
    in a 6.x tree), and the helpers those find next to themselves ($(dirname $0)/...):
    without them a Kconfig reader stops at the compiler check."""
    found: set[str] = set()
    todo = list(referenced)
    while todo:
        rel = PurePosixPath(todo.pop()).as_posix()
        if rel in found or rel in kconfigs or ".." in PurePosixPath(rel).parts:
            continue
        path = tree / rel
        if not path.is_file() or path.is_symlink():
            continue
        found.add(rel)
        with contextlib.suppress(OSError):
            text = path.read_text(errors="replace")
            todo += [str(PurePosixPath(rel).parent / name) for name in _SIBLING.findall(text)]
    return found


def archive_kconfig(tree: Path, dest: Path) -> int:
    """Keep the tree's Kconfig files, and the scripts they run, in one tar (what
    kconfiglib reads).

    rpmbuild -ba removes the prepared tree when it succeeds; this archive lets
    a later run validate requests without preparing again. One file, so
    committing and fingerprinting it is cheap.
    """
    root = tree.resolve()
    # The tree is the build's: a link out of it (to a host file root may read) is not kept.
    names = [n for n in kconfig_files(tree) if (tree / n).resolve().is_relative_to(root)]
    with fsutil.atomic_open(dest) as out, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in names:
            data = (tree / name).read_bytes()
            info = tarfile.TarInfo(name)
            # Scripts stay runnable: Kconfig runs them through $(shell,...).
            mode = 0o755 if (tree / name).stat().st_mode & 0o111 else 0o644
            info.size, info.mode, info.mtime = len(data), mode, 0
            tar.addfile(info, io.BytesIO(data))
    return len(names)
