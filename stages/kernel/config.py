"""config: set and unset symbols in the kernel-*.config files, and check they will survive.

It also chooses, once, the mechanism that carries the change into the build ("patch" or
"kernel-local", lib/mechanism.py) from what prep saw, and names it in its record.
"""

from __future__ import annotations

import fnmatch
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from respin.pipeline import fsutil
from respin.pipeline.errors import ConfigError, InputError, RespinError
from respin.pipeline.options import Invalid
from respin.pipeline.stage import Artifact, Context, PipelineView, Problem, Stage
from respin.stages.kernel.kinds import LOCAL, Edited, Snapshot
from respin.stages.kernel.lib import kconfig, mechanism, preview, validate
from respin.stages.kernel.lib.configfiles import (
    choice_problem,
    matching,
    prep_checked,
    target_arch,
    used_configs,
)


def check_localversion(reqs: list[kconfig.Request], snapshot: Snapshot, where: str) -> None:
    """Refuse CONFIG_LOCALVERSION where the package would not find its own modules.

    A spec that names the module directory from its release (KVERREL
    6.1.0-200.fc37.x86_64: /lib/modules/<that>) while the tree appends
    CONFIG_LOCALVERSION to the kernel's release would boot a kernel whose
    uname -r (...x86_64-respin) names no module directory. buildid marks a
    rebuild in both places at once.
    """
    req = next((r for r in reqs if r.name == "CONFIG_LOCALVERSION"), None)
    if req is None or req.value in (None, '""'):
        return
    kverrel, release = snapshot.macros.get("KVERREL", ""), snapshot.macros.get("release", "")
    if release and release in kverrel and snapshot.release_takes_localversion:
        raise ConfigError(
            f"{where}: CONFIG_LOCALVERSION={req.value} cannot work with this spec: it installs the "
            f"modules under /lib/modules/{kverrel}, named from the package release, while the kernel "
            f"would call itself {kverrel}{req.value.strip(chr(34))}; set [inject] buildid (say "
            "\".respin\") to mark the rebuild in both")


class ConfigStage(Stage["ConfigStage.Options"]):
    """Edit the kernel-*.config files of the target arch and validate the result."""

    name = "config"
    results = (LOCAL,)
    summary = "set and unset CONFIG symbols; check with kconfiglib that each value survives oldconfig"
    version = "4"  # 4: only the configs %prep keeps; new symbols and moved values refused

    @dataclass(frozen=True)
    class Options:
        set: dict[str, str | int | bool] = field(default_factory=dict)
        unset: tuple[str, ...] = ()
        fragment: str | None = None  # a file in .config syntax (as merge_config.sh and kernel-local)
        files: tuple[str, ...] = ()  # globs; default: every config of the target arch
        allow_new: bool = False  # allow symbols absent from every chosen config
        validate: bool = True  # check, before the build, that each value survives oldconfig
        validator: Literal["auto", "kconfiglib", "oldconfig"] = "auto"  # auto: kconfiglib if Kconfig
        resolve: bool = False  # add the unmet dependencies a request needs
        mechanism: Literal["auto", "patch", "kernel-local"] = "auto"

        def __post_init__(self) -> None:
            if not self.set and not self.unset and not self.fragment:
                raise Invalid("nothing to do: give `set`, `unset` and/or `fragment`")


    def options_json(self) -> dict[str, object]:
        data = dict(super().options_json())
        data["set"] = dict(sorted(self.options.set.items()))
        data["unset"] = sorted(self.options.unset)
        return data

    def inputs(self, ctx: Context) -> list[Path]:
        return [ctx.resolve(self.options.fragment)] if self.options.fragment else []

    def check(self, ctx: Context, pipeline: PipelineView) -> Iterator[Problem]:
        """Before any stage runs: the fragment reads, every name and value is one .config can
        hold, and `files` picks configs the target's build uses (where the configs are known
        before prep: today's layout ships them as Sources)."""
        where = f"{ctx.source} [config]"
        frag_set: dict[str, object] = {}
        frag_unset: list[str] = []
        try:
            frag_set, frag_unset = self._fragment(ctx, where)
        except RespinError as exc:
            yield exc
        wanted = {**frag_set, **self.options.set}
        for name, value in wanted.items():
            yield from _refused({name: value}, [], where)
        for name in [*frag_unset, *self.options.unset]:
            yield from _refused({}, [name], where)
            if name in wanted:
                yield f"{where}: {name} is both set and unset"
        names, macros = _known_configs(ctx, pipeline)
        problem = names and choice_problem(self.options.files, names, target_arch(ctx), macros, where)
        if problem:
            yield problem

    def _fragment(self, ctx: Context, where: str) -> tuple[dict[str, object], list[str]]:
        if not self.options.fragment:
            return {}, []
        path = ctx.resolve(self.options.fragment)
        try:
            text = path.read_text()
        except OSError as exc:
            raise InputError(f"{path}: cannot read the config fragment: {exc.strerror}") from exc
        except UnicodeDecodeError:
            raise InputError(f"{path}: the config fragment is not UTF-8 text") from None
        values: dict[str, object] = {}
        unset: list[str] = []
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            parsed = kconfig.parse(stripped)
            if not parsed:
                if stripped and not stripped.startswith("#"):
                    raise ConfigError(f"{path}:{number}: not a .config line: {stripped!r}")
                continue
            (name, value), = parsed.items()
            if name in self.options.set or name in self.options.unset:
                raise ConfigError(f"{where}: {name} is given both inline and in {path.name}")
            if value is None:
                unset.append(name)
            else:
                values[name] = value
        return values, unset

    def run(self, ctx: Context) -> list[Artifact]:
        where = f"{ctx.source} [config]"
        snap_path, snap = Snapshot.read(ctx)
        carrier = mechanism.choose(self.options.mechanism, snap, where)
        names = sorted(p.name for p in snap_path.iterdir())
        chosen = self._choose(ctx, names, snap, where)
        texts = {n: (snap_path / n).read_text() for n in chosen}
        current: dict[str, str | None] = {}
        for text in texts.values():
            current.update(kconfig.parse(text))
        frag_set, frag_unset = self._fragment(ctx, where)
        reqs = kconfig.requests({**frag_set, **self.options.set}, [*frag_unset, *self.options.unset],
                                current, where)
        check_localversion(reqs, snap, where)
        edited = ctx.stagedir / "edited"
        tmp = fsutil.fresh_dir(edited)
        for name in names:
            shutil.copy2(snap_path / name, tmp / name)
        # kernel-local is merged into every config %prep keeps, of every arch it keeps, and
        # the spec's check runs on each: all of them are checked, the edited ones first.
        checked = dict(texts)
        if carrier.merged_everywhere:
            for name in prep_checked(names, target_arch(ctx), snap.macros):
                checked.setdefault(name, (snap_path / name).read_text())
        reqs, added, verdicts, validator = self._check(ctx, snap, checked, reqs, current, where)
        changed = self._apply(ctx, texts, reqs, tmp)
        artifacts = carrier.written(ctx, reqs)
        fsutil.commit_dir(tmp, edited)
        ctx.log.info("config: %d symbol(s) in %s (mechanism: %s, %s)", len(reqs),
                     ", ".join(changed) or "no config", carrier.name, carrier.where)
        for line, why in added.items():
            ctx.log.info("config: resolve: added %s (%s)", line, why)
        record = Edited(requests={r.name: r.value for r in reqs}, chosen=list(texts), changed=changed,
                        mechanism=carrier.name, resolved=added, validation=verdicts, validator=validator)
        return [record.artifact(edited), *artifacts]

    def _choose(self, ctx: Context, names: list[str], snap: Snapshot, where: str) -> list[str]:
        """The configs to check and edit: those [config] files names, else those the build's
        %prep keeps for the target (saying which and why)."""
        arch = target_arch(ctx)
        problem = choice_problem(self.options.files, names, arch, snap.macros, where)
        if problem is not None:
            raise ConfigError(problem)
        if self.options.files:
            return matching(self.options.files, names)
        chosen, why = used_configs(names, arch, snap.macros)
        ctx.log.info("config: checking %s: %s (built or not, %%prep checks each)", ", ".join(chosen), why)
        return chosen

    def _check(self, ctx: Context, snap: Snapshot, texts: dict[str, str], reqs: list[kconfig.Request],
               known: dict[str, str | None], where: str
               ) -> tuple[list[kconfig.Request], dict[str, str], dict[str, str], str]:
        """Check each config as the spec's own checks will (lib/validate.py): with kconfiglib on
        prep's Kconfig files where the validator chosen allows, else with the tree's own make.
        Returns the final requests, what resolve added (line -> why), the verdicts and the
        validator that gave them ("none" when validate is off)."""
        chosen = self.options.validator
        if self.options.validate and chosen != "oldconfig":
            with validate.KconfigLib.tree_of(ctx) as kdir, \
                    tempfile.TemporaryDirectory(dir=ctx.stagedir) as scratch:
                has_kconfig = kdir is not None and (kdir / "Kconfig").is_file()
                if chosen == "kconfiglib" and not has_kconfig:
                    raise ConfigError(f"{where} validator: the prepared tree has no Kconfig for kconfiglib")
                if has_kconfig:
                    assert kdir is not None
                    checker = validate.KconfigLib(ctx, kdir, Path(scratch), texts)
                    try:
                        reqs, added = validate.settle(checker, texts, reqs, resolve=self.options.resolve,
                                                      where=where)
                        return reqs, added, _survive(reqs), checker.name
                    except InputError as exc:
                        if chosen != "auto":
                            raise
                        # Kconfig syntax newer than kconfiglib (say 6.18's `transitional`).
                        ctx.log.warning("config: %s; checking with the tree's own oldconfig instead", exc)
                    finally:
                        checker.close()
        if not self.options.allow_new:
            unknown = [r.name for r in reqs if r.name not in known]
            if unknown:
                raise ConfigError(f"{where}: {unknown[0]} is not a symbol of {next(iter(texts))} (or any "
                                  "chosen config): unknown CONFIG symbol; set allow_new = true to add it")
        if not self.options.validate:
            return reqs, {}, {}, "none"
        return reqs, {}, self._with_make(ctx, Path(snap.prepared), texts, reqs, where,
                                         strict=chosen == "oldconfig"), validate.TreeMake.name

    @staticmethod
    def _with_make(ctx: Context, prepared: Path, texts: dict[str, str], reqs: list[kconfig.Request],
                   where: str, *, strict: bool) -> dict[str, str]:
        """No Kconfig kconfiglib reads: the tree's own make on each config, in config's own copy
        of prep's tree (make writes there), never in prep's."""
        if not (prepared / "Makefile").is_file():
            ctx.log.warning("config: cannot check values before the build: the prepared tree %s is "
                            "gone (run prep again); verify checks them after", prepared)
            return {}
        with validate.TreeMake.copy_of(ctx, prepared) as tree:
            try:
                validate.settle(validate.TreeMake(ctx, tree, strict=strict), texts, reqs, resolve=False,
                                where=where)
            except validate.CannotCheck:
                return {}
        return _survive(reqs)

    @staticmethod
    def _apply(ctx: Context, texts: dict[str, str], reqs: list[kconfig.Request], tmp: Path) -> list[str]:
        """Write each chosen config with the requests applied; the names of those that changed."""
        changed = []
        for name, text in texts.items():
            new = kconfig.apply(text, reqs)
            if new != text:
                changed.append(name)
                fsutil.atomic_write(tmp / name, new)
        if not changed:
            # Not an error: the day upstream turns the option on, a CI job still builds and
            # verify still checks the values.
            ctx.log.warning("config: every requested value is already set in %s; nothing to change",
                            ", ".join(texts))
        return changed


def _survive(reqs: list[kconfig.Request]) -> dict[str, str]:
    return {r.name: "survives oldconfig" for r in reqs}


def _refused(set_: dict[str, object], unset: list[str], where: str) -> list[str]:
    """Why .config cannot hold these requests, if it cannot (kconfig.requests' refusal)."""
    try:
        kconfig.requests(set_, unset, {}, where)
    except ConfigError as exc:
        return [exc.message]
    return []


def _known_configs(ctx: Context, pipeline: PipelineView) -> tuple[list[str], dict[str, str]]:
    """The config names and the spec's macros as far as they are known before any stage runs:
    an up-to-date prep's snapshot, else the kernel-*.config Sources of the package."""
    try:
        snap = Snapshot.find(ctx)
    except RespinError:
        snap = None
    if snap is not None:
        return list(snap.configs), dict(snap.macros)
    source = preview.source(ctx, pipeline)
    if source is None:
        return [], {}
    return sorted(n for n in source.files if fnmatch.fnmatch(n, "kernel-*.config")), {}
