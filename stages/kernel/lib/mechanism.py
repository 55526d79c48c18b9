"""How the change reaches the build: chosen once, by config, from what prep saw; carried
in config's record; every later stage asks the one object what to do.

- "patch" (the 2010 layout): the configs exist in the tree when the patches run, so a
  patch to them applies: diff writes it (the diff to review is what the build applies),
  inject declares and applies it, verify finds it in the source package.
- "kernel-local" (today's layout): the configs are Sources copied in after the patches,
  so a patch has nothing to apply to; the supported hook is the kernel-local Source,
  merged into every config by the spec itself: config writes it, diff shows what it
  gains (for review), inject replaces the Source, verify reads it in the source package.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from respin.pipeline import fsutil
from respin.pipeline.errors import CommandError, ConfigError, InputError, VerifyError
from respin.pipeline.stage import Artifact, Context
from respin.stages.kernel.kinds import (
    KERNEL_LOCAL,
    LOCAL,
    LOCAL_DIFF,
    PATCH,
    SNAPSHOT,
    SOURCES,
    Edited,
    Injected,
    Mechanism,
    Snapshot,
)
from respin.stages.kernel.lib import kconfig
from respin.stages.kernel.lib.rpmpkg import payload_files


@dataclass(frozen=True)
class Carried:
    """What inject put into the build input's SOURCES, and what the spec must say of it."""

    source: str | None  # the Source file that carries the change; None: nothing to carry
    declare: bool  # a Patch tag and its application go into the spec for it
    entry: str  # the %changelog entry


class Carrier(ABC):
    """The steps of one mechanism, as config, diff, inject and verify ask them."""

    name: ClassVar[Mechanism]
    # config's words for where the configs are when the change reaches them.
    where: ClassVar[str]
    # Whether %prep merges the change into every config it keeps, of every arch (and checks
    # each): then config checks all of them, not only the edited ones.
    merged_everywhere: ClassVar[bool] = False
    # The key verify's report names the carried Source under, for a source package.
    report_key: ClassVar[str]

    def written(self, ctx: Context, reqs: list[kconfig.Request]) -> list[Artifact]:
        """config: what it writes for the change besides the edited configs."""
        return []

    @abstractmethod
    def review(self, ctx: Context, edited_path: Path, edited: Edited) -> list[Artifact]:
        """diff: the change as a diff to review, proven to apply to what it changes."""

    @abstractmethod
    def carry(self, ctx: Context, sources: Path, patch_name: Callable[[], str], summary: str) -> Carried:
        """inject: put the change's Source into `sources` (the build input's SOURCES, being made);
        `patch_name` gives the name a patch gets ([inject] patch, checked), `summary` what
        the change is, for the %changelog entry."""

    def check_source(self, package: Path, reqs: list[kconfig.Request], injected: Injected,
                     build_sources: Path) -> dict[str, object]:
        """verify: the source package carries the Source, byte for byte as inject wrote it into
        the build input (`build_sources`, its SOURCES); the entry the report gets for it."""
        name = injected.source
        if name is None:
            return {self.report_key: None}
        found = dict(payload_files(package, re.compile(rf"(^|/){re.escape(name)}$")))
        data = next(iter(found.values()), None)
        if data is None:
            raise VerifyError(f"{package.name}: the source package lacks {name}")
        try:
            written = (build_sources / name).read_bytes()  # inject's own file, in respin's work dir
        except OSError as exc:
            raise VerifyError(f"{build_sources / name}: cannot read the {name} inject wrote, to compare "
                              f"with {package.name}'s ({exc.strerror})") from None
        if data != written:
            raise VerifyError(f"{package.name}: its {name} is not the one respin wrote "
                              f"({build_sources / name})")
        self._check_text(package, data.decode(errors="replace"), reqs)
        return {self.report_key: name}

    @abstractmethod
    def _check_text(self, package: Path, text: str, reqs: list[kconfig.Request]) -> None:
        """What the carried file must say of each request, beyond being the one written."""


class ByPatch(Carrier):
    """The 2010 layout: a patch to the configs, applied after the last patch."""

    name = "patch"
    where = "configs are in the tree when patches apply"
    report_key = "patch"

    def review(self, ctx: Context, edited_path: Path, edited: Edited) -> list[Artifact]:
        snapshot = ctx.artifact(SNAPSHOT).path
        parts = [unified(ctx, snapshot / name, edited_path / name, name) for name in sorted(edited.changed)]
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

    def carry(self, ctx: Context, sources: Path, patch_name: Callable[[], str], summary: str) -> Carried:
        patch = ctx.artifact(PATCH)
        if not patch.meta.get("files", True):
            # Every value already set (config said so): a patch would hold no hunk and fail.
            return Carried(source=None, declare=False, entry=f"Rebuilt with {summary} (already set)")
        name = patch_name()
        fsutil.atomic_copy(patch.path, sources / name)
        return Carried(source=name, declare=True, entry=f"Add {name} ({summary})")

    def _check_text(self, package: Path, text: str, reqs: list[kconfig.Request]) -> None:
        # The patch's header lists every request (review writes it); a value the configs
        # already had is in no hunk, so the header is where each one shows.
        header = text.split("\n\n", 1)[0].splitlines()
        missing = [r for r in reqs if f"  {r.line()}" not in header]
        if missing:
            raise VerifyError(f"{package.name}: its config patch does not carry {missing[0].line()}")


class ByKernelLocal(Carrier):
    """Today's layout: the kernel-local Source, which %prep merges into every config."""

    name = "kernel-local"
    where = "configs are Sources merged with kernel-local after the patches"
    merged_everywhere = True
    report_key = "kernel_local"

    def written(self, ctx: Context, reqs: list[kconfig.Request]) -> list[Artifact]:
        """The requested lines, then kernel-local as shipped without any line a merge script
        could take for a requested symbol: whether the spec's merge keeps the first line
        for a symbol (Fedora's, the fixture's) or the last, the requested one is the only."""
        shipped = ctx.artifact(SOURCES).path / KERNEL_LOCAL  # fetch's copy, as shipped
        try:
            original = shipped.read_text()
        except UnicodeDecodeError:
            raise InputError(f"{shipped}: the package's kernel-local is not UTF-8 text") from None
        lines = [ln for ln in original.splitlines() if ln.strip()]
        ours = {r.name for r in reqs}
        kept = [ln for ln in lines if not kconfig.merge_symbols(ln) & ours]
        text = "\n".join(["# respin: requested values", *(r.line() for r in reqs), *kept]) + "\n"
        out = ctx.stagedir / KERNEL_LOCAL
        fsutil.atomic_write(out, text)
        return [Artifact(out, LOCAL)]

    def review(self, ctx: Context, edited_path: Path, edited: Edited) -> list[Artifact]:
        new = ctx.artifact(LOCAL).path
        old = ctx.artifact(SOURCES).path / KERNEL_LOCAL
        text = unified(ctx, old, new, KERNEL_LOCAL)
        with tempfile.TemporaryDirectory(dir=ctx.stagedir) as scratch:
            shutil.copy(old, Path(scratch) / KERNEL_LOCAL)
            (Path(scratch) / "kernel-local.patch").write_text(text)
            ctx.run(["patch", "-p1", "--dry-run", "--batch", "-F0", "-i", "kernel-local.patch"],
                    cwd=Path(scratch), what="patch --dry-run of the kernel-local change")
        out = ctx.stagedir / "kernel-local.diff"
        fsutil.atomic_write(out, text)
        ctx.log.info("diff: kernel-local gains %d line(s)",
                     sum(1 for ln in text.splitlines() if ln.startswith("+") and not ln.startswith("+++")))
        return [Artifact(out, LOCAL_DIFF)]

    def carry(self, ctx: Context, sources: Path, patch_name: Callable[[], str], summary: str) -> Carried:
        fsutil.atomic_copy(ctx.artifact(LOCAL).path, sources / KERNEL_LOCAL)
        return Carried(source=KERNEL_LOCAL, declare=False, entry=f"Set through kernel-local: {summary}")

    def _check_text(self, package: Path, text: str, reqs: list[kconfig.Request]) -> None:
        missing = [r for r in reqs if r.line() not in text.splitlines()]
        if missing:
            raise VerifyError(f"{package.name}: its kernel-local lacks {missing[0].line()}")


CARRIERS: dict[str, Carrier] = {c.name: c for c in (ByPatch(), ByKernelLocal())}


def of(edited: Edited) -> Carrier:
    """The mechanism config chose, as its record names it."""
    return CARRIERS[edited.mechanism]


def choose(wanted: str, snapshot: Snapshot, where: str) -> Carrier:
    """Pick "patch" or "kernel-local" for this spec, or explain why the forced one cannot work."""
    before = snapshot.layout == "configs-before-patches"
    has_local = snapshot.kernel_local
    if wanted == "auto":
        if before:
            return CARRIERS["patch"]
        if has_local:
            return CARRIERS["kernel-local"]
        raise InputError(f"{where}: neither mechanism can work: the spec copies its configs in after "
                         "the patches and ships no kernel-local Source")
    if wanted == "patch" and not before:
        raise ConfigError(f"{where} mechanism: 'patch' cannot work on this spec: its kernel-*.config "
                          "files are Sources copied into the tree after the patches, so a config patch "
                          "would have nothing to apply to and the RPM would lack the change; use "
                          "'kernel-local' (or 'auto')")
    if wanted == "kernel-local" and not has_local:
        raise ConfigError(f"{where} mechanism: 'kernel-local' cannot work on this spec: it ships no "
                          "kernel-local Source; use 'patch' (or 'auto')")
    return CARRIERS[wanted]


def unified(ctx: Context, old: Path, new: Path, name: str) -> str:
    """GNU diff -u with a/ b/ labels and no timestamps: same edit, same bytes."""
    result = ctx.run(["diff", "-u", "--label", f"a/{name}", "--label", f"b/{name}", str(old), str(new)],
                     check=False, what="diff")
    if result.returncode not in (0, 1):
        raise CommandError(f"diff of {name} failed with exit status {result.returncode}: "
                           f"{result.stderr.strip()}")
    return str(result.stdout)
