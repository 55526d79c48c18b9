"""config: set and unset symbols in the snapshotted kernel-*.config files."""

from __future__ import annotations

import fnmatch
import os
import shutil
from dataclasses import dataclass, field

from pipeline import fsutil
from pipeline.errors import ConfigError
from pipeline.stage import Artifact, Context, Stage
from stages.kernel import kconfig


def target_arch(ctx: Context) -> str:
    """The arch whose configs are edited: [pipeline] target, else this machine's."""
    return ctx.target or os.uname().machine


def configs_for(names: list[str], arch: str) -> list[str]:
    """kernel-*.config names of `arch`, all flavours (kernel-2.6.27.5-i686-PAE.config, ...)."""
    return [n for n in names if arch in n.removesuffix(".config").split("-")[1:]]


class ConfigStage(Stage):
    """Edit the kernel-*.config files of the target arch (or those matching `files`)."""

    name = "config"
    summary = "set and unset CONFIG symbols in the chosen kernel-*.config files"
    version = "1"

    @dataclass(frozen=True)
    class Options:
        set: dict[str, str | int | bool] = field(default_factory=dict)
        unset: tuple[str, ...] = ()
        files: tuple[str, ...] = ()  # globs; default: every config of the target arch
        allow_new: bool = False  # allow symbols absent from every chosen config

        def __post_init__(self) -> None:
            if not self.set and not self.unset:
                raise ValueError("nothing to do: give `set` and/or `unset`")

    options: Options

    def options_json(self) -> dict[str, object]:
        return {"set": dict(sorted(self.options.set.items())), "unset": sorted(self.options.unset),
                "files": list(self.options.files), "allow_new": self.options.allow_new}

    def run(self, ctx: Context) -> list[Artifact]:
        where = f"{ctx.source} [config]"
        snapshot = ctx.artifact("kconfig-snapshot")
        names = sorted(p.name for p in snapshot.path.iterdir())
        if self.options.files:
            chosen = sorted({n for n in names for g in self.options.files if fnmatch.fnmatch(n, g)})
            if not chosen:
                raise ConfigError(f"{where} files: {list(self.options.files)} match none of "
                                  f"{', '.join(names)}")
        else:
            arch = target_arch(ctx)
            chosen = configs_for(names, arch)
            if not chosen:
                raise ConfigError(f"{where}: no kernel-*.config for target {arch} among "
                                  f"{', '.join(names)}; set [pipeline] target or [config] files")
        texts = {n: (snapshot.path / n).read_text() for n in chosen}
        current: dict[str, str | None] = {}
        for text in texts.values():
            current.update(kconfig.parse(text))
        reqs = kconfig.requests(self.options.set, self.options.unset, current, where)
        if not self.options.allow_new:
            unknown = [r.name for r in reqs if r.name not in current]
            if unknown:
                raise ConfigError(f"{where}: {unknown[0]} is not a symbol of {chosen[0]} (or any chosen "
                                  "config): unknown CONFIG symbol; set allow_new = true to add it")
        edited = ctx.stagedir / "edited"
        tmp = fsutil.fresh_dir(edited)
        changed = []
        for name in names:
            shutil.copy2(snapshot.path / name, tmp / name)
        for name in chosen:
            new = kconfig.apply(texts[name], reqs)
            if new != texts[name]:
                changed.append(name)
                fsutil.atomic_write(tmp / name, new)
        if not changed:
            raise ConfigError(f"{where}: nothing to change: every requested value is already in "
                              f"{', '.join(chosen)}")
        fsutil.commit_dir(tmp, edited)
        ctx.log.info("config: %d symbol(s) in %s", len(reqs), ", ".join(changed))
        meta = {"requests": {r.name: r.value for r in reqs}, "chosen": chosen, "changed": changed}
        return [Artifact(edited, "kconfig-edited", meta=meta)]


def requested(ctx: Context) -> list[kconfig.Request]:
    """The validated requests the config stage recorded."""
    art = ctx.artifact("kconfig-edited")
    return [kconfig.Request(k, v) for k, v in sorted(art.meta["requests"].items())]



