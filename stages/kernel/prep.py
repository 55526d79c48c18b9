"""prep: `rpmbuild -bp` stopped cleanly by a hook right after the last patch application.

The 2010 recipe put `exit 1` there and ignored the failure, which also hides
real failures. The hook instead snapshots the kernel-*.config files as they
are at that point, leaves a sentinel and ends %prep with success; the stage
then checks that rpmbuild succeeded *and* the sentinel exists.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from pipeline import fsutil
from pipeline.errors import InputError
from pipeline.stage import Artifact, Context, Stage
from stages.kernel import topdir
from stages.kernel.rpmpkg import rpmbuild_argv, rpmbuild_reason
from stages.kernel.spectext import find_prep_point

SENTINEL = ".respin-hook-reached"
TREEFILE = ".respin-tree"
KERNEL_LOCAL = "kernel-local"  # the Source today's kernel specs merge into every config


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
        f": > {d}/{SENTINEL}",
        "exit 0",
    ]


def hooked_spec(text: str, snapdir: Path, where: str) -> tuple[str, int]:
    """The spec text with the hook inserted; also the 1-based line it follows."""
    lines = text.splitlines()
    point = find_prep_point(lines, where)
    at = point.hook_at + 1
    return "\n".join(lines[:at] + hook_lines(snapdir) + lines[at:]) + "\n", at


class PrepStage(Stage):
    """rpmbuild -bp with a clean stop hook; snapshots the kernel-*.config files."""

    name = "prep"
    summary = "rpmbuild -bp, stopped by a hook after the last patch; snapshot the kernel-*.config files"
    version = "2"

    @dataclass(frozen=True)
    class Options:
        nodeps: bool = True  # BuildRequires of a kernel are rarely installed on the build host

    options: Options

    def run(self, ctx: Context) -> list[Artifact]:
        spec = topdir.lay_out(ctx)
        where = str(topdir.pristine_spec(ctx).name)
        snapshot = ctx.stagedir / "snapshot"
        tmp = fsutil.fresh_dir(snapshot)
        text, after_line = hooked_spec(spec.read_text(), tmp, where)
        # The hooked copy lives outside SPECS/: the spec there stays as shipped,
        # and %{_specdir}/<name>.spec (which ApplyPatch greps) is that one.
        hooked = ctx.stagedir / "hooked" / spec.name
        fsutil.atomic_write(hooked, text)
        log_file = ctx.stagedir / "prep.log"
        log_file.unlink(missing_ok=True)
        argv = rpmbuild_argv("-bp", hooked, topdir=ctx.topdir, target=ctx.target,
                             nodeps=self.options.nodeps,
                             defines={"_specdir": str(ctx.topdir / "SPECS")})
        ctx.run(argv, log_file=log_file, what=f"rpmbuild -bp of {where}", summarize=rpmbuild_reason)
        if not (tmp / SENTINEL).exists():
            raise InputError(f"{where}: %prep finished without reaching the respin hook placed after "
                             f"line {after_line}; the last patch application is in a branch that "
                             f"did not run for target {ctx.target} (see {log_file})")
        tree = Path((tmp / TREEFILE).read_text().strip())
        (tmp / SENTINEL).unlink()
        (tmp / TREEFILE).unlink()
        at_hook = sorted(p.name for p in tmp.iterdir())
        kernel_local = (ctx.topdir / "SOURCES" / KERNEL_LOCAL).is_file()
        if not at_hook:
            # Today's layout: the configs are Sources copied in after the patches.
            # The shipped ones are what kernel-local is merged into; snapshot those.
            for src in sorted((ctx.topdir / "SOURCES").glob("kernel-*.config")):
                shutil.copyfile(src, tmp / src.name)
        configs = sorted(p.name for p in tmp.iterdir())
        if not configs:
            raise InputError(f"{where}: no kernel-*.config files, neither in {tree} when the patches "
                             "have been applied nor among the Sources: not a kernel spec respin knows")
        for name in configs:
            os.chmod(tmp / name, 0o644)
        kconfig_tree = ctx.stagedir / "kconfig-tree"
        kconfig_tmp = fsutil.fresh_dir(kconfig_tree)
        copied = copy_kconfig_files(tree, kconfig_tmp)
        fsutil.commit_dir(tmp, snapshot)
        fsutil.commit_dir(kconfig_tmp, kconfig_tree)
        layout = "configs-before-patches" if at_hook else "configs-as-sources"
        ctx.log.info("prep: hook reached in %s; %d kernel-*.config snapshotted (%s); %d Kconfig files kept",
                     tree.name, len(configs), layout, copied)
        meta = {"tree": str(tree), "configs": configs, "layout": layout, "kernel_local": kernel_local,
                "kconfig_files": copied}
        return [Artifact(snapshot, "kconfig-snapshot", meta=meta),
                Artifact(kconfig_tree, "kconfig-tree", meta={"files": copied}),
                Artifact(log_file, "log")]


def copy_kconfig_files(tree: Path, dest: Path) -> int:
    """Copy the Kconfig language files of a prepared tree (what kconfiglib reads).

    rpmbuild -ba removes the prepared tree when it succeeds; keeping these few
    files lets a later run validate requests without preparing again.
    """
    count = 0
    for root, dirs, files in os.walk(tree):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("Kconfig") or (name == "Kconfig.include"):
                src = Path(root, name)
                out = dest / src.relative_to(tree)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, out)
                count += 1
    return count
