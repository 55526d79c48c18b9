"""diff: the edited configs as a unified patch against the pristine snapshot, proven to apply."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from respin.pipeline import fsutil
from respin.pipeline.errors import CommandError
from respin.pipeline.stage import Artifact, Context, NoOptions, Stage
from respin.stages.kernel.kinds import KERNEL_LOCAL, LOCAL, LOCAL_DIFF, PATCH, SNAPSHOT, SOURCES, Edited
from respin.stages.kernel.lib import kconfig


def unified(ctx: Context, old: Path, new: Path, name: str) -> str:
    """GNU diff -u with a/ b/ labels and no timestamps: same edit, same bytes."""
    result = ctx.run(["diff", "-u", "--label", f"a/{name}", "--label", f"b/{name}", str(old), str(new)],
                     check=False, what="diff")
    if result.returncode not in (0, 1):
        raise CommandError(f"diff of {name} failed with exit status {result.returncode}: "
                           f"{result.stderr.strip()}")
    return str(result.stdout)


class DiffStage(Stage[NoOptions]):
    """Write the config patch: only configs that changed, applicable with patch -p1."""

    name = "diff"
    summary = "diff edited configs against the snapshot into a patch; prove it with patch --dry-run"
    version = "1"


    def run(self, ctx: Context) -> list[Artifact]:
        snapshot = ctx.artifact(SNAPSHOT).path
        edited_path, edited = Edited.read(ctx)
        if edited.mechanism == "kernel-local":
            return self._kernel_local(ctx)
        parts = []
        for name in sorted(edited.changed):
            parts.append(unified(ctx, snapshot / name, edited_path / name, name))
        reqs = kconfig.recorded(edited.requests)
        header = "respin config patch:\n" + "".join(f"  {r.line()}\n" for r in reqs) + "\n"
        text = header + "".join(parts)
        out = ctx.stagedir / "config.patch"
        if not parts:  # every value already set: no hunk, and inject adds no patch
            fsutil.atomic_write(out, text)
            ctx.log.info("diff: no config changed; no config patch")
            return [Artifact(out, PATCH, meta={"files": []})]
        with tempfile.TemporaryDirectory(dir=ctx.stagedir) as scratch:
            tree = Path(scratch) / "tree"
            shutil.copytree(snapshot, tree)
            patch_file = Path(scratch) / "config.patch"
            patch_file.write_text(text)
            ctx.run(["patch", "-p1", "--dry-run", "--batch", "-F0", "-i", str(patch_file)], cwd=tree,
                    what="patch --dry-run of the config patch against the pristine configs")
        fsutil.atomic_write(out, text)
        ctx.log.info("diff: %d config(s) in the patch", len(parts))
        return [Artifact(out, PATCH, meta={"files": sorted(edited.changed)})]

    def _kernel_local(self, ctx: Context) -> list[Artifact]:
        """Today's layout: the change is the kernel-local Source; its diff is kept for review."""
        new = ctx.artifact(LOCAL).path
        old = ctx.artifact(SOURCES).path / KERNEL_LOCAL
        text = unified(ctx, old, new, "kernel-local")
        with tempfile.TemporaryDirectory(dir=ctx.stagedir) as scratch:
            shutil.copy(old, Path(scratch) / "kernel-local")
            (Path(scratch) / "kernel-local.patch").write_text(text)
            ctx.run(["patch", "-p1", "--dry-run", "--batch", "-F0", "-i", "kernel-local.patch"],
                    cwd=Path(scratch), what="patch --dry-run of the kernel-local change")
        out = ctx.stagedir / "kernel-local.diff"
        fsutil.atomic_write(out, text)
        ctx.log.info("diff: kernel-local gains %d line(s)",
                     sum(1 for ln in text.splitlines() if ln.startswith("+") and not ln.startswith("+++")))
        return [Artifact(out, LOCAL_DIFF)]
