"""config: set and unset symbols in the kernel-*.config files, and check they will survive.

It also chooses, once, the mechanism that carries the change into the build ("patch" or
"kernel-local", lib/mechanism.py) from what prep saw, and names it in its record.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import shutil
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from respin.pipeline import fsutil
from respin.pipeline.errors import ConfigError, InputError, RespinError
from respin.pipeline.options import Invalid
from respin.pipeline.stage import Artifact, Context, PipelineView, Problem, Stage
from respin.stages.kernel.kinds import KCONFIG_TREE, LOCAL, SOURCES, Edited, Snapshot
from respin.stages.kernel.lib import kconfig, mechanism, preview, rpmpkg


def target_arch(ctx: Context) -> str:
    """The arch whose configs are edited: [pipeline] target, else this machine's."""
    return ctx.target or os.uname().machine


def configs_for(names: list[str], arch: str) -> list[str]:
    """kernel-*.config names of `arch`, all flavours (kernel-2.6.27.5-i686-PAE.config, ...)."""
    return [n for n in names if arch in n.removesuffix(".config").split("-")[1:]]


# The config flavours a Fedora-style %prep knows: it keeps the primary target's configs
# (renamed to kernel-<version>-<arch>[-variant].config) and deletes the other's.
_TARGET_FLAVOURS = ("fedora", "rhel")


def used_configs(names: list[str], arch: str, macros: dict[str, str]) -> tuple[list[str], str]:
    """The configs of `arch` that the build's %prep keeps, and why those.

    `macros` are the spec's, as rpmbuild evaluated them for this run: with
    %primary_target fedora, the *-rhel.config files are deleted before any
    config is processed, so checking or editing them would only mislead.
    """
    chosen = configs_for(names, arch)
    primary = macros.get("primary_target", "")

    def flavour(name: str) -> str:
        last = name.removesuffix(".config").rsplit("-", 1)[-1]
        return last if last in _TARGET_FLAVOURS else ""

    if primary and any(flavour(n) == primary for n in chosen):
        dropped = [n for n in chosen if flavour(n) not in ("", primary)]
        chosen = [n for n in chosen if flavour(n) in ("", primary)]
        if dropped:
            return chosen, (f"the {arch} configs of primary target {primary}; %prep deletes "
                            f"{', '.join(dropped)}")
        return chosen, f"the {arch} configs of primary target {primary}"
    return chosen, f"every {arch} config"


def prep_checked(names: list[str], arch: str, macros: dict[str, str]) -> list[str]:
    """The configs the build's %prep merges kernel-local into and checks: those its
    %{all_configs} (today's Fedora: every arch) or %{all_arch_configs} (the target's) glob
    names, once renamed as %prep renames them (kernel-x86_64-debug-fedora.config ->
    kernel-<specrpmversion>-x86_64-debug.config); the target's configs where neither is set."""
    glob = macros.get("all_configs") or macros.get("all_arch_configs") or ""
    used = used_configs(names, arch, macros)[0]
    if not glob:
        return used
    primary = macros.get("primary_target", "")
    version = macros.get("specrpmversion") or macros.get("version", "")
    prefix = macros.get("name") or "kernel"
    kept = []
    for name in names:
        rest = name.removesuffix(".config").removeprefix(f"{prefix}-")
        if primary:
            if not rest.endswith(f"-{primary}"):
                continue
            rest = rest.removesuffix(f"-{primary}")
        if fnmatch.fnmatchcase(f"{prefix}-{version}-{rest}.config", Path(glob).name):
            kept.append(name)
    return sorted(set(kept) | set(used))


def choice_problem(files: Sequence[str], names: list[str], arch: str, macros: dict[str, str],
                   where: str) -> str | None:
    """Why the configs to edit cannot be chosen among `names`, or None: `[config] files` matches
    none of them, or only configs the target's build does not use (its change would be
    lost); without `files`, no config is the target's."""
    used = used_configs(names, arch, macros)[0]
    if not files:
        if used:
            return None
        return (f"{where}: no kernel-*.config for target {arch} among {', '.join(names)}; set "
                "[pipeline] target or [config] files")
    chosen = matching(files, names)
    if not chosen:
        return f"{where} files: {list(files)} match none of {', '.join(names)}"
    if used and not set(chosen) & set(used):
        return (f"{where} files: {list(files)} match only configs the {arch} build does not use "
                f"({', '.join(chosen)}), so the built kernel would lack the change; it uses "
                f"{', '.join(used)}")
    return None


def matching(files: Sequence[str], names: list[str]) -> list[str]:
    """The config names `[config] files` (globs) matches."""
    return sorted({n for n in names for g in files if fnmatch.fnmatch(n, g)})


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
        reqs, added, verdicts, validator = self._check(ctx, tmp, checked, reqs, where)
        if not self.options.allow_new and validator != "kconfiglib":
            unknown = [r.name for r in reqs if r.name not in current]
            if unknown:
                raise ConfigError(f"{where}: {unknown[0]} is not a symbol of {chosen[0]} (or any chosen "
                                  "config): unknown CONFIG symbol; set allow_new = true to add it")
        if validator == "oldconfig":
            verdicts = self._validate_with_make(ctx, Path(snap.tree), checked, reqs, where,
                                                strict=self.options.validator == "oldconfig")
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

    def _check(self, ctx: Context, scratch: Path, texts: dict[str, str], reqs: list[kconfig.Request],
               where: str) -> tuple[list[kconfig.Request], dict[str, str], dict[str, str], str]:
        """Validate with kconfiglib on prep's Kconfig files where the validator chosen allows.
        Returns the final requests, what resolve added (line -> why), the verdicts and the
        validator: "kconfiglib" (done), "oldconfig" (the tree's own, still to run) or "none"."""
        if not self.options.validate:
            return reqs, {}, {}, "none"
        validator = self.options.validator
        if validator != "oldconfig":
            with contextlib.ExitStack() as stack:
                kdir = self._kconfig_dir(ctx, stack)
                has_kconfig = kdir is not None and (kdir / "Kconfig").is_file()
                if validator == "kconfiglib" and not has_kconfig:
                    raise ConfigError(f"{where} validator: the prepared tree has no Kconfig for kconfiglib")
                if has_kconfig:
                    assert kdir is not None
                    try:
                        return (*self._validate(ctx, kdir, scratch, texts, reqs, where), "kconfiglib")
                    except InputError as exc:
                        if validator != "auto":
                            raise
                        # Kconfig syntax newer than kconfiglib (say 6.18's `transitional`).
                        ctx.log.warning("config: %s; checking with the tree's own oldconfig instead", exc)
        return reqs, {}, {}, "oldconfig"

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

    def _validate(self, ctx: Context, tree: Path, scratch: Path, texts: dict[str, str],
                  reqs: list[kconfig.Request], where: str
                  ) -> tuple[list[kconfig.Request], dict[str, str], dict[str, str]]:
        """Check each config as the spec's own checks will, adding what `resolve` may add.

        Returns the final requests, the added ones (line -> why) and the verdicts."""
        checker = _Checker(ctx, tree, scratch, texts)
        added: dict[str, str] = {}
        try:
            for _ in range(16):  # each round may add dependencies of dependencies
                problem = checker.first_problem(reqs)
                if problem is None:
                    break
                fixes = problem.fixes() if self.options.resolve else []
                fixes = [(r, why) for r, why in fixes if r.name not in {q.name for q in reqs}]
                if not fixes:
                    raise ConfigError(f"{where}: {problem.explain()}{problem.hint(self.options.resolve)}")
                added.update((r.line(), why) for r, why in fixes)
                reqs = sorted([*reqs, *(r for r, _ in fixes)], key=lambda r: r.name)
            else:  # never claim "survives" for what was not checked to the end
                raise ConfigError(f"{where}: resolve: still not settled after 16 rounds "
                                  f"({', '.join(list(added)[-3:])} were the last added)")
        finally:
            checker.close()
        return reqs, added, {r.name: "survives oldconfig" for r in reqs}

    @staticmethod
    def _kconfig_dir(ctx: Context, stack: contextlib.ExitStack) -> Path | None:
        """prep's Kconfig archive, unpacked in a scratch dir for this stage's run."""
        arts = ctx.artifacts(KCONFIG_TREE)
        if not arts:
            return None
        if arts[0].path.is_dir():
            return arts[0].path
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=ctx.stagedir)))
        with tarfile.open(arts[0].path) as tar:
            # Our own archive of plain files; still, write nothing outside the scratch dir.
            for member in tar:
                parts = Path(member.name).parts
                if not member.isfile() or member.name.startswith("/") or ".." in parts:
                    continue
                data = tar.extractfile(member)
                assert data is not None
                out = scratch.joinpath(*parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data.read())
                if member.mode & 0o111:  # a script Kconfig runs
                    out.chmod(0o755)
        # The builder's: Kconfig's $(shell,...) commands run as it when respin runs as root,
        # and the compiler probes write in the tree (kvalidate reads it without links).
        rpmpkg.give_to_builder(scratch, 0o755)
        return scratch

    def _validate_with_make(self, ctx: Context, prepared: Path, texts: dict[str, str],
                            reqs: list[kconfig.Request], where: str, *, strict: bool) -> dict[str, str]:
        """No Kconfig to read: run the tree's own oldconfig on each edited config and compare,
        as merge_config.sh does, and its listnewconfig, as the spec's check does. make writes
        in the tree it runs in: it runs in config's own copy of prep's tree, never in prep's."""
        if not (prepared / "Makefile").is_file():
            ctx.log.warning("config: cannot check values before the build: the prepared tree %s is "
                            "gone (run prep again); verify checks them after", prepared)
            return {}
        with tempfile.TemporaryDirectory(dir=ctx.stagedir) as scratch:
            # The copy is the builder's (as root): what the builder may read of its own tree,
            # copied by it, links as links; root follows no path in a tree the builder made.
            work = Path(scratch)
            rpmpkg.give_to_builder(work, 0o700)
            seen = _PREPARED_SEEN if rpmpkg.builder() is not None else prepared
            copy = ["cp", "-a", "--reflink=auto", "--", f"{seen}/.", "tree"]
            ctx.run(rpmpkg.as_builder(copy, work, mounts={_PREPARED_SEEN: prepared}), cwd=work,
                    what=f"copy of the prepared tree {prepared}")
            return self._make_verdicts(ctx, work / "tree", texts, reqs, where, strict=strict)

    def _make_verdicts(self, ctx: Context, tree: Path, texts: dict[str, str],
                       reqs: list[kconfig.Request], where: str, *, strict: bool) -> dict[str, str]:
        """The tree's make on each config, before and after the change: the three rules."""
        dot = tree / ".config"
        asked = {r.name for r in reqs}
        cross = spec_cross_compile(ctx)
        for name, text in texts.items():
            arch = kconfig.make_arch(kconfig.arch_of(text, target_arch(ctx)))
            merged = kconfig.apply(text, reqs)
            before_new = _make_listnewconfig(ctx, tree, dot, arch, text, cross)
            if before_new:
                raise ConfigError(f"{where}: {_Problem(name, 'shipped', values=before_new).explain()}")
            after_new = _make_listnewconfig(ctx, tree, dot, arch, merged, cross)
            before = _make_olddefconfig(ctx, tree, dot, arch, text, strict, cross)
            after = _make_olddefconfig(ctx, tree, dot, arch, merged, strict, cross)
            if before is None or after is None:
                return {}
            bad = kconfig.mismatches(after, reqs)
            if bad:
                req, found = bad[0]
                got = "not set" if found is None else found
                raise ConfigError(f"{where}: {req.line()} would end up as {got} after oldconfig "
                                  f"(in {name}): check what {req.name} depends on")
            opened = {k: v for k, v in (after_new or {}).items() if k not in (before_new or {})}
            moved = {k: v for k, v in _moved(merged, after).items()
                     if k not in _moved(text, before) and k not in asked}
            problems = (_Problem(name, "new", values=opened), _Problem(name, "changed", values=moved))
            for problem in problems:
                if problem.values:
                    raise ConfigError(f"{where}: {problem.explain()}; set each in [config] (resolve "
                                      "needs kconfiglib, which cannot read this tree)")
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


@dataclass
class _Problem:
    """The first thing the spec's own config checks would refuse, in one config."""

    config: str
    kind: Literal["unmet", "new", "changed", "shipped"]
    verdict: Any = None  # kvalidate.Verdict, for "unmet"
    values: dict[str, Any] = field(default_factory=dict)  # "new": name -> default; "changed": (old, new)

    def explain(self) -> str:
        if self.kind == "unmet":
            if self.verdict.unknown:
                return f"{self.verdict.request.name}: unknown CONFIG symbol (not in the kernel's Kconfig)"
            if self.verdict.takes:
                return f"{self.verdict.explain()} (in {self.config})"
            return f"{self.verdict.explain()} (in {self.config}): oldconfig would drop it"
        if self.kind == "shipped":
            listed = ", ".join(list(self.values)[:5]) + (f" and {len(self.values) - 5} more"
                                                          if len(self.values) > 5 else "")
            return (f"{self.config}, as shipped, already fails the spec's own check on this host: "
                    f"{len(self.values)} symbol(s) have no value ({listed}); not the change's doing, "
                    "but %prep would fail the build (a host tool Kconfig probes, such as pahole, "
                    "opens them)")
        if self.kind == "new":
            listed = ", ".join(f"{name} (default {_shown(value)})" for name, value in self.values.items())
            return (f"the change opens {len(self.values)} new symbol(s) with no value in {self.config}: "
                    f"{listed}; the spec's own check refuses unset new symbols")
        listed = ", ".join(f"{name} from {_shown(old)} to {_shown(new)}"
                           for name, (old, new) in self.values.items())
        return (f"the change makes oldconfig move other values in {self.config}: {listed}; the spec's own "
                "check refuses values changed after oldconfig")

    def hint(self, resolving: bool) -> str:
        if self.kind == "shipped" or (self.kind == "unmet" and (self.verdict.unknown or self.verdict.takes)):
            return ""
        if resolving:
            return "; resolve cannot settle it: set the values yourself"
        if self.kind == "unmet":
            return "; set resolve = true to add it" if self.fixes() else ""
        return "; set each in [config], or resolve = true to add them"

    def fixes(self) -> list[tuple[kconfig.Request, str]]:
        from respin.stages.kernel.lib import kvalidate

        if self.kind == "unmet":
            need = self.verdict.request.line()
            return [(r, f"needed by {need}") for r in kvalidate.resolvable(self.verdict.needs)]
        if self.kind == "shipped":
            return []
        if self.kind == "new":
            return [(kconfig.Request(name, value), "a new symbol the change opens, at its Kconfig default")
                    for name, value in self.values.items()]
        return [(kconfig.Request(name, new), f"oldconfig moves it from {_shown(old)} as a consequence")
                for name, (old, new) in self.values.items()]


def _shown(value: str | None) -> str:
    return "n" if value is None else value


class _Checker:
    """Each chosen config checked as the spec's %prep will: every request survives
    oldconfig, no new symbol is left without a value (listnewconfig), and no other value
    moves (process_configs.sh -c). What the pristine config already does is not blamed
    on the change."""

    def __init__(self, ctx: Context, tree: Path, scratch: Path, texts: dict[str, str]) -> None:
        self.ctx, self.tree, self.texts = ctx, tree, texts
        self.probe = scratch / ".respin-probe.config"
        self.kconfs: dict[str, Any] = {}
        self.baseline: dict[str, tuple[set[str], set[str]]] = {}

    def _load(self, name: str, text: str) -> Any:
        from respin.stages.kernel.lib import kvalidate

        arch = kconfig.arch_of(self.texts[name], target_arch(self.ctx))
        if arch not in self.kconfs:
            self.kconfs[arch] = kvalidate.load(self.tree, arch, spec_cross_compile(self.ctx))
        kconf = self.kconfs[arch]
        self.probe.write_text(text)
        kconf.load_config(str(self.probe), replace=True)
        return kconf

    def first_problem(self, reqs: list[kconfig.Request]) -> _Problem | None:
        from respin.stages.kernel.lib import kvalidate

        asked = {r.name for r in reqs}
        for name, text in self.texts.items():
            if name not in self.baseline:
                kconf = self._load(name, text)
                self.baseline[name] = (set(kvalidate.new_symbols(kconf)),
                                       set(kvalidate.changed_values(kconf, text)))
            before_new, before_changed = self.baseline[name]
            if before_new:
                kconf = self._load(name, text)
                return _Problem(name, "shipped", values=kvalidate.new_symbols(kconf))
            merged = kconfig.apply(text, reqs)
            kconf = self._load(name, merged)
            failing = [v for v in kvalidate.judge(kconf, self.probe, reqs) if not v.survives]
            if failing:
                return _Problem(name, "unmet", verdict=failing[0])
            opened = {k: v for k, v in kvalidate.new_symbols(kconf).items() if k not in before_new}
            if opened:
                return _Problem(name, "new", values=opened)
            moved = {k: v for k, v in kvalidate.changed_values(kconf, merged).items()
                     if k not in before_changed and k not in asked}
            if moved:
                return _Problem(name, "changed", values=moved)
        return None

    def close(self) -> None:
        self.probe.unlink(missing_ok=True)


def spec_cross_compile(ctx: Context) -> str:
    """The CROSS_COMPILE the spec's config check runs the tree's make with: Fedora's
    process_configs.sh gives scripts/dummy-tools/ (a compiler claiming every option), so the
    check predicts with those; the host's compiler otherwise."""
    sources = ctx.artifacts(SOURCES)
    if not sources:
        return ""
    for script in sorted(sources[0].path.glob("process_configs*.sh")):
        with contextlib.suppress(OSError):
            if "scripts/dummy-tools/" in script.read_text(errors="replace"):
                return "scripts/dummy-tools/"
    return ""


# Where the builder sees prep's tree while it copies it (under the namespace's /var/tmp).
_PREPARED_SEEN = Path("/var/tmp/respin/prepared")


def _tree_make(tree: Path, dot: Path, arch: str, target: str, cross: str = "") -> list[str]:
    """The tree's own make of a config target: the tree's Makefile and Kconfig scripts are
    the package's code, run as the builder when respin runs as root."""
    assert dot.parent == tree, "the config make writes is in the tree"
    seen = rpmpkg.FIXED_TOPDIR if rpmpkg.builder() is not None else tree
    argv = ["make", "-s", f"ARCH={arch}", *([f"CROSS_COMPILE={cross}"] if cross else []),
            f"KCONFIG_CONFIG={seen / dot.name}", target]
    return rpmpkg.as_builder(argv, tree)


# No kernel config comes near this; what the build wrote is not read further.
_CONFIG_LIMIT = 64 << 20


def _read_no_link(path: Path) -> bytes | None:
    """A file the builder may have replaced, read without following a link (None if absent)."""
    try:
        return fsutil.read_no_link(path, _CONFIG_LIMIT)
    except fsutil.NotRegular as exc:
        raise InputError(f"{path}: the build tree's config is {exc.what}") from None


def _make_listnewconfig(ctx: Context, tree: Path, dot: Path, arch: str, text: str, cross: str = ""
                        ) -> dict[str, str | None] | None:
    """The tree's own `make listnewconfig` of `text`, or None where the tree has none
    (before Linux 2.6.36)."""
    fsutil.atomic_write(dot, text)
    result = ctx.run(_tree_make(tree, dot, arch, "listnewconfig", cross), cwd=tree, check=False,
                     what="make listnewconfig")
    if result.returncode != 0:
        return None
    out: dict[str, str | None] = {}
    for line in result.stdout.splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and kconfig.NAME.fullmatch(name):
            out[name] = None if value == "n" else value
    return out


def _make_olddefconfig(ctx: Context, tree: Path, dot: Path, arch: str, text: str, strict: bool,
                       cross: str = "") -> str | None:
    """`text` after the tree's own olddefconfig (or oldconfig), or None when neither works
    and the check is not forced."""
    fsutil.atomic_write(dot, text)
    for target in ("olddefconfig", "oldconfig"):
        result = ctx.run(_tree_make(tree, dot, arch, target, cross), cwd=tree, check=False,
                         what=f"make {target}")
        if result.returncode == 0:
            return (_read_no_link(dot) or b"").decode(errors="replace")
    reason = (result.stdout.strip().splitlines() or ["no output"])[-1]
    if strict:
        raise InputError(f"{tree}: neither 'make olddefconfig' nor 'make oldconfig' works there: {reason}")
    ctx.log.warning("config: cannot check values before the build (make oldconfig failed: %s); verify "
                    "checks them after", reason)
    return None


def _moved(text: str, after: str) -> dict[str, tuple[str | None, str | None]]:
    """Values of `text` that oldconfig changed, among the symbols both have (the rule of
    process_configs.sh -c)."""
    old, new = kconfig.parse(text), kconfig.parse(after)
    return {k: (v, new[k]) for k, v in old.items() if k in new and new[k] != v}
