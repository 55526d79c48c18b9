"""initrd-modify: add, replace or remove files in the latest extracted tree.

`add` sources may be files beside the pipeline file or "@kind" artifacts other
stages made (the network stage's "netfiles", a kernel's modules).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from respin.pipeline import fsutil
from respin.pipeline.errors import ConfigError, InputError
from respin.pipeline.stage import Artifact, Context, Stage
from respin.stages.initrd.kinds import TREE
from respin.stages.initrd.lib import newc
from respin.stages.initrd.lib.manifest import MANIFEST_NAME, Manifest, Record
from respin.stages.initrd.lib.tree import Unresolved, resolve
from respin.stages.initrd.lib.unpack import RECORD_NAME, Refused, split_name


def _checked_rel(value: str, where: str, allow_root: bool = False) -> list[str]:
    try:
        comps, _ = split_name(os.fsencode(value))
    except Refused as exc:
        raise ConfigError(f"{where}: '{value}' {exc}") from None
    if not comps and not allow_root:
        raise ConfigError(f"{where}: '{value}' names the root of the tree")
    return comps


def _safe_parent(root: Path, comps: list[str], where: str, create: bool) -> Path:
    """The parent dir of `comps` under `root`, refusing to go through any symlink in the tree
    (an absolute one like lib64 -> /lib would otherwise lead onto the host)."""
    cur = root
    for comp in comps[:-1]:
        cur = cur / comp
        if cur.is_symlink():
            raise ConfigError(f"{where}: '{'/'.join(comps)}' goes through the symlink "
                              f"'{cur.relative_to(root)}' in the tree; name the real path")
        if not cur.exists():
            if not create:
                break
            cur.mkdir(mode=0o755)
        elif not cur.is_dir():
            raise ConfigError(f"{where}: '{cur.relative_to(root)}' in the tree is not a directory")
    return root.joinpath(*comps[:-1])


def _link_target(root: Path, comps: list[str], where: str) -> list[str]:
    """Where the symlink at `comps` leads in the tree, which must be a directory there.

    Looked up as the booted image would (lib/tree.py): an absolute target from the tree's
    root, `..` never above it, so the answer is always inside the tree, never the host's.
    """
    def kind_of(rel: str) -> str | None:
        try:
            return newc.file_kind(os.lstat(root / rel).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def target_of(rel: str) -> str:
        return os.readlink(root / rel)

    link = "/".join(comps)
    try:
        real, _ = resolve(link, kind_of, target_of)
    except Unresolved as exc:
        raise ConfigError(f"{where}: '{link}' is a symlink to '{os.readlink(root / link)}', which "
                          f"is no directory in the tree ({exc})") from None
    kind = kind_of(real) if real else "dir"
    if kind != "dir":
        raise ConfigError(f"{where}: '{link}' is a symlink to '{real}', a {kind}, not a directory")
    return real.split("/") if real else []


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _copy_in(src: Path, dst: Path, root: Path | None = None) -> None:
    """Copy a file, symlink or directory (merged) from outside the tree (`root`) to `dst`."""
    if src.is_symlink():
        if dst.is_symlink() or dst.exists():
            _remove(dst)
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        if dst.exists() and not dst.is_dir():
            _remove(dst)
        dst.mkdir(mode=0o755, exist_ok=True)
        for child in fsutil.walk(src):
            target = dst / child.relative_to(src)
            if child.is_symlink() or not child.is_dir():
                _copy_in(child, target)
            elif target.is_symlink():
                # Merging through it could write outside the tree (lib64 -> /lib).
                shown = target.relative_to(root) if root is not None else target
                raise ConfigError(f"[initrd-modify] add: '{shown}' is a symlink in the tree; "
                                  f"refusing to merge the directory {child} through it")
            else:
                target.mkdir(mode=0o755, exist_ok=True)
    else:
        if dst.is_symlink() or dst.is_dir():
            _remove(dst)
        fsutil.atomic_copy(src, dst)


def _not_around_workdir(ctx: Context, source: Path, where: str) -> None:
    """Refuse a source directory that holds the work dir: copying it would copy the tree
    being written into itself, deeper each round, until names grow too long."""
    if source.is_dir() and not source.is_symlink() and ctx.workdir.resolve().is_relative_to(source):
        raise ConfigError(f"{where}: source directory {source} holds the work dir {ctx.workdir}; "
                          "name a directory beside it")


class ModifyStage(Stage["ModifyStage.Options"]):
    """Copy the tree, then remove and add files; `add` sources may be "@kind" artifacts."""

    name = "initrd-modify"
    summary = "add, replace or remove files in an extracted initrd tree"
    version = "1"

    @dataclass(frozen=True)
    class Options:
        # dest (path in the image) -> source: a path relative to the pipeline file (copied
        # to dest), "@kind" (every artifact of that kind an earlier stage made, put into the
        # directory dest), or "@kind/sub/path" (that path inside the artifact, copied to dest).
        add: Mapping[str, str] = field(default_factory=dict)
        remove: tuple[str, ...] = ()
        # dest -> octal permission bits, e.g. {"init" = "0755"}
        modes: Mapping[str, str] = field(default_factory=dict)

    def _sources(self, ctx: Context, dest: str, src: str) -> list[Path]:
        where = f"[{self.name}] add.{dest}"
        if src.startswith("@"):
            kind, _, sub = src[1:].partition("/")
            found = ctx.artifacts(kind)
            if not found:
                raise ConfigError(f"{where}: no earlier stage produced a '{kind}' artifact")
            paths = [a.path / sub if sub else a.path for a in found]
        else:
            paths = [ctx.resolve(src)]
        for p in paths:
            if not (p.exists() or p.is_symlink()):
                raise InputError(f"{where}: source {p} does not exist")
            _not_around_workdir(ctx, p, where)
        return paths

    def inputs(self, ctx: Context) -> Sequence[Path]:
        found: list[Path] = []
        for src in self.options.add.values():
            if src.startswith("@"):
                continue
            p = ctx.resolve(src)
            _not_around_workdir(ctx, p, f"[{self.name}] add")
            found.extend([x for x in fsutil.walk(p) if x.is_file()] if p.is_dir() else [p])
        return found

    def run(self, ctx: Context) -> list[Artifact]:
        source = ctx.artifact(TREE).path
        out = ctx.stagedir / "tree"
        manifest_path = source / MANIFEST_NAME
        manifest = Manifest.load(manifest_path) if manifest_path.is_file() else None
        tmp = fsutil.fresh_dir(out)
        try:
            ctx.run(["cp", "-a", "--", f"{source}/.", str(tmp)], what="copying the initrd tree")
            # The record of what extract wrote describes the source tree, not this one.
            (tmp / RECORD_NAME).unlink(missing_ok=True)
            root = tmp / "main" if manifest else tmp
            for rel in self.options.remove:
                self._remove_one(root, rel, manifest)
            for dest, src in sorted(self.options.add.items()):
                self._add_one(ctx, root, dest, src, manifest)
            for dest, mode in sorted(self.options.modes.items()):
                self._set_mode(root, dest, mode, manifest)
            if manifest:
                manifest.write(tmp / MANIFEST_NAME)
            fsutil.commit_dir(tmp, out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return [Artifact(out, TREE)]

    def _remove_one(self, root: Path, rel: str, manifest: Manifest | None) -> None:
        comps = _checked_rel(rel, f"[{self.name}] remove")
        target = _safe_parent(root, comps, f"[{self.name}] remove", create=False) / comps[-1]
        recorded = manifest is not None and "/".join(comps) in manifest.records("main")
        if not (target.exists() or target.is_symlink()) and not recorded:
            raise ConfigError(f"[{self.name}] remove: '{rel}' is not in the tree")
        if target.exists() or target.is_symlink():
            _remove(target)
        if manifest:
            manifest.forget("main", "/".join(comps))

    def _add_one(self, ctx: Context, root: Path, dest: str, src: str, manifest: Manifest | None) -> None:
        # "@kind" and "dest/" mean "into this directory" ("/" is the tree's root, for
        # artifacts laid out like an image root): artifact directories are merged into
        # it, files land in it under their own names.
        into = (src.startswith("@") and "/" not in src) or dest.endswith("/")
        comps = _checked_rel(dest, f"[{self.name}] add", allow_root=into)
        parent = _safe_parent(root, comps, f"[{self.name}] add", create=True)
        sources = self._sources(ctx, dest, src)
        target = parent / comps[-1] if comps else root
        if into and target.is_symlink():
            # lib -> usr/lib (merged /usr): add into the directory it names, keeping the link.
            comps = _link_target(root, comps, f"[{self.name}] add")
            target = root.joinpath(*comps)
        if into:
            stale = _merge_into(target, sources, root)
            forget = [comps] if stale is None else [comps + rel.split("/") for rel in stale]
        else:
            _copy_in(sources[0], target)
            forget = [comps]
        if manifest:
            for path in forget:
                manifest.forget("main", "/".join(path))

    def _set_mode(self, root: Path, dest: str, mode: str, manifest: Manifest | None) -> None:
        comps = _checked_rel(dest, f"[{self.name}] modes")
        target = _safe_parent(root, comps, f"[{self.name}] modes", create=False) / comps[-1]
        try:
            bits = int(mode, 8)
        except ValueError:
            raise ConfigError(f"[{self.name}] modes.{dest}: '{mode}' is not an octal mode") from None
        if target.is_symlink() or not target.exists():
            raise ConfigError(f"[{self.name}] modes: '{dest}' is not a file or directory in the tree")
        os.chmod(target, bits & 0o777 | (stat.S_IRUSR | stat.S_IWUSR))
        if manifest:
            # The manifest keeps the exact bits (the tree keeps owner read/write).
            manifest.records("main").setdefault("/".join(comps), Record()).mode = bits


def _merge_into(target: Path, sources: list[Path], root: Path) -> list[str] | None:
    """Copy `sources` into the directory `target` (made, or replacing a file there); the paths
    written, relative to `target`, whose records are stale (None: all of `target`'s, as it
    replaced a file)."""
    replaced = target.is_symlink() or (target.exists() and not target.is_dir())
    if replaced:
        _remove(target)
    target.mkdir(mode=0o755, exist_ok=True)
    copied: list[str] = []
    for s in sources:
        if s.is_dir() and not s.is_symlink():
            _copy_in(s, target, root)
            copied += [str(p.relative_to(s)) for p in fsutil.walk(s) if p.is_symlink() or not p.is_dir()]
        else:
            _copy_in(s, target / s.name)
            copied.append(s.name)
    # A merge keeps the rest of the directory, and the records of the rest.
    return None if replaced else copied
