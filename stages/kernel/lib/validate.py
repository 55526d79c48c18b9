"""Will the change pass the spec's own config checks? Two validators, one set of rules.

Before the long build, each chosen config is checked as the spec's %prep will check it:
every request survives oldconfig, the change opens no symbol without a value
(`listnewconfig`, Fedora's process_configs.sh -n), and it moves no other value
(process_configs.sh -c). What the config as shipped already does is not blamed on the
change. Two validators answer the questions the rules ask:

- `KconfigLib` evaluates prep's Kconfig files with kconfiglib, in a fraction of a second,
  and can say what an unmet request needs (so `resolve` can add it);
- `TreeMake` runs the tree's own make (olddefconfig, listnewconfig), where kconfiglib
  cannot read the tree, in config's own copy of prep's tree, as the builder.

The rules are written once, in `first_problem`; `settle` adds what resolve may add.
"""

from __future__ import annotations

import contextlib
import tarfile
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from respin.pipeline import fsutil
from respin.pipeline.errors import ConfigError, InputError
from respin.pipeline.stage import Context
from respin.stages.kernel.kinds import KCONFIG_FILES, SOURCES
from respin.stages.kernel.lib import kconfig, rpmpkg
from respin.stages.kernel.lib.configfiles import target_arch
from respin.stages.kernel.lib.kconfig import Request, not_of_its_type

if TYPE_CHECKING:
    import kconfiglib


@dataclass
class Verdict:
    """What a validator says of one request in one config."""

    request: Request
    survives: bool
    value: str | None  # the value after evaluation, in .config syntax
    needs: list[str] = field(default_factory=list)  # unmet dependencies, e.g. "CONFIG_A=y"
    unknown: bool = False
    limit: str = ""  # why else it moves: "its range is 100..1000", "CONFIG_HZ_250 is chosen"
    takes: str = ""  # set when the value is not one of the symbol's type: what it takes

    def explain(self) -> str:
        if self.takes:
            return not_of_its_type(self.request, self.takes)
        if self.unknown:
            return f"{self.request.name} is not a symbol of this kernel's Kconfig"
        if self.needs:
            return f"{self.request.line()} needs {' and '.join(self.needs)}"
        got = "not set" if self.value is None else self.value
        why = f" ({self.limit})" if self.limit else ""
        return f"{self.request.line()} would end up as {got} after oldconfig{why}"


Moved = dict[str, tuple[str | None, str | None]]  # name -> (value before, value after oldconfig)


@dataclass(frozen=True)
class Seen:
    """What the spec's checks see of one config: the symbols it leaves without a value (with
    the default oldconfig gives them) and the values oldconfig changes."""

    new: dict[str, str | None]
    moved: Moved


class CannotCheck(Exception):
    """The validator cannot answer (the tree's make fails and the check is not forced)."""


class Validator(ABC):
    """The questions the rules ask of one config, answered one way."""

    name: ClassVar[str]
    resolves: ClassVar[bool]  # whether it can say what an unmet request needs

    @abstractmethod
    def shipped(self, config: str, text: str) -> Seen:
        """What the checks see of the config as shipped (asked again in each resolve round)."""

    @abstractmethod
    def unmet(self, config: str, merged: str, reqs: Sequence[Request]) -> Verdict | None:
        """The first request oldconfig would not keep in the changed config, if any."""

    @abstractmethod
    def changed(self, config: str, merged: str) -> Seen:
        """What the checks see of the changed config (after `unmet` asked of the same)."""

    @abstractmethod
    def unmet_tail(self, verdict: Verdict) -> str:
        """What follows an unmet request's explanation: the next step a user can take."""


@dataclass
class Problem:
    """The first thing the spec's own config checks would refuse, in one config."""

    config: str
    kind: Literal["unmet", "new", "changed", "shipped"]
    verdict: Verdict | None = None  # "unmet"
    tail: str = ""  # "unmet": the validator's next step
    new: dict[str, str | None] = field(default_factory=dict)  # "new", "shipped": name -> default
    moved: Moved = field(default_factory=dict)  # "changed"

    def explain(self) -> str:
        if self.verdict is not None:
            if self.verdict.unknown:
                return f"{self.verdict.request.name}: unknown CONFIG symbol (not in the kernel's Kconfig)"
            if self.verdict.takes:
                return f"{self.verdict.explain()} (in {self.config})"
            return f"{self.verdict.explain()} (in {self.config}): {self.tail}"
        if self.kind == "shipped":
            listed = ", ".join(list(self.new)[:5]) + (f" and {len(self.new) - 5} more"
                                                       if len(self.new) > 5 else "")
            return (f"{self.config}, as shipped, already fails the spec's own check on this host: "
                    f"{len(self.new)} symbol(s) have no value ({listed}); not the change's doing, "
                    "but %prep would fail the build (a host tool Kconfig probes, such as pahole, "
                    "opens them)")
        if self.kind == "new":
            listed = ", ".join(f"{name} (default {_shown(value)})" for name, value in self.new.items())
            return (f"the change opens {len(self.new)} new symbol(s) with no value in {self.config}: "
                    f"{listed}; the spec's own check refuses unset new symbols")
        listed = ", ".join(f"{name} from {_shown(old)} to {_shown(new)}"
                           for name, (old, new) in self.moved.items())
        return (f"the change makes oldconfig move other values in {self.config}: {listed}; the spec's own "
                "check refuses values changed after oldconfig")

    def hint(self, resolving: bool, resolves: bool) -> str:
        """What a user can do next: set the values, or let resolve add them (where the
        validator can say what they are)."""
        verdict = self.verdict
        if self.kind == "shipped" or (verdict is not None and (verdict.unknown or verdict.takes)):
            return ""
        if not resolves:
            return "" if self.kind == "unmet" else ("; set each in [config] (resolve needs kconfiglib, "
                                                    "which cannot read this tree)")
        if resolving:
            return "; resolve cannot settle it: set the values yourself"
        if self.kind == "unmet":
            return "; set resolve = true to add it" if self.fixes() else ""
        return "; set each in [config], or resolve = true to add them"

    def fixes(self) -> list[tuple[Request, str]]:
        """The requests that would settle the problem, each with why it is added."""
        if self.verdict is not None:
            need = self.verdict.request.line()
            return [(r, f"needed by {need}") for r in resolvable(self.verdict.needs)]
        if self.kind == "new":
            return [(Request(name, value), "a new symbol the change opens, at its Kconfig default")
                    for name, value in self.new.items()]
        return [(Request(name, new), f"oldconfig moves it from {_shown(old)} as a consequence")
                for name, (old, new) in self.moved.items()]


def _shown(value: str | None) -> str:
    return "n" if value is None else value


def resolvable(needs: Sequence[str]) -> list[Request]:
    """The requests that would meet `needs`, or [] if some need is not a plain symbol."""
    out = []
    for need in needs:
        name, _, value = need.partition("=")
        if not name.startswith("CONFIG_") or value not in ("y", "m"):
            return []
        out.append(Request(name, value))
    return out


def first_problem(validator: Validator, texts: dict[str, str], reqs: Sequence[Request]) -> Problem | None:
    """The rules, in the order the spec's checks would fail: the config as shipped passes, every
    request survives oldconfig, no new symbol is left without a value, no other value moves."""
    asked = {r.name for r in reqs}
    for config, text in texts.items():
        before = validator.shipped(config, text)
        if before.new:
            return Problem(config, "shipped", new=before.new)
        merged = kconfig.apply(text, reqs)
        failing = validator.unmet(config, merged, reqs)
        if failing is not None:
            return Problem(config, "unmet", verdict=failing, tail=validator.unmet_tail(failing))
        after = validator.changed(config, merged)
        opened = {k: v for k, v in after.new.items() if k not in before.new}
        if opened:
            return Problem(config, "new", new=opened)
        moved = {k: v for k, v in after.moved.items() if k not in before.moved and k not in asked}
        if moved:
            return Problem(config, "changed", moved=moved)
    return None


_ROUNDS = 16  # each round of resolve may add dependencies of dependencies


def settle(validator: Validator, texts: dict[str, str], reqs: list[Request], *, resolve: bool,
           where: str) -> tuple[list[Request], dict[str, str]]:
    """The requests once every config passes the rules, adding what `resolve` may (where the
    validator resolves), and what was added (line -> why); else the first problem, one line."""
    added: dict[str, str] = {}
    for _ in range(_ROUNDS):
        problem = first_problem(validator, texts, reqs)
        if problem is None:
            return reqs, added
        fixes = problem.fixes() if resolve and validator.resolves else []
        fixes = [(r, why) for r, why in fixes if r.name not in {q.name for q in reqs}]
        if not fixes:
            raise ConfigError(f"{where}: {problem.explain()}{problem.hint(resolve, validator.resolves)}")
        added.update((r.line(), why) for r, why in fixes)
        reqs = sorted([*reqs, *(r for r, _ in fixes)], key=lambda r: r.name)
    # Never claim "survives" for what was not checked to the end.
    raise ConfigError(f"{where}: resolve: still not settled after {_ROUNDS} rounds "
                      f"({', '.join(list(added)[-3:])} were the last added)")


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


# --- kconfiglib ------------------------------------------------------------------------


class KconfigLib(Validator):
    """kconfiglib on prep's Kconfig files (the parse runs in a scratch dir)."""

    name = "kconfiglib"
    resolves = True

    def __init__(self, ctx: Context, tree: Path, scratch: Path, texts: dict[str, str]) -> None:
        self.ctx, self.tree, self.texts = ctx, tree, texts
        self.probe = scratch / ".respin-probe.config"
        self.kconfs: dict[str, kconfiglib.Kconfig] = {}
        self.baseline: dict[str, Seen] = {}

    @staticmethod
    @contextlib.contextmanager
    def tree_of(ctx: Context) -> Iterator[Path | None]:
        """prep's Kconfig files (its archive unpacked in a scratch dir for this run), or None."""
        arts = ctx.artifacts(KCONFIG_FILES)
        if not arts:
            yield None
            return
        if arts[0].path.is_dir():
            yield arts[0].path
            return
        with tempfile.TemporaryDirectory(dir=ctx.stagedir) as name:
            scratch = Path(name)
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
            yield scratch

    def _load(self, config: str, text: str) -> Any:
        from respin.stages.kernel.lib import kvalidate  # kconfiglib: only when a config is checked

        arch = kconfig.arch_of(self.texts[config], target_arch(self.ctx))
        if arch not in self.kconfs:
            self.kconfs[arch] = kvalidate.load(self.tree, arch, spec_cross_compile(self.ctx))
        kconf = self.kconfs[arch]
        self.probe.write_text(text)
        kconf.load_config(str(self.probe), replace=True)
        return kconf

    def shipped(self, config: str, text: str) -> Seen:
        from respin.stages.kernel.lib import kvalidate

        if config not in self.baseline:
            kconf = self._load(config, text)
            self.baseline[config] = Seen(kvalidate.new_symbols(kconf), kvalidate.changed_values(kconf, text))
        return self.baseline[config]

    def unmet(self, config: str, merged: str, reqs: Sequence[Request]) -> Verdict | None:
        from respin.stages.kernel.lib import kvalidate

        kconf = self._load(config, merged)
        return next((v for v in kvalidate.judge(kconf, self.probe, reqs) if not v.survives), None)

    def changed(self, config: str, merged: str) -> Seen:
        from respin.stages.kernel.lib import kvalidate

        kconf = self.kconfs[kconfig.arch_of(self.texts[config], target_arch(self.ctx))]  # loaded by unmet
        return Seen(kvalidate.new_symbols(kconf), kvalidate.changed_values(kconf, merged))

    def unmet_tail(self, verdict: Verdict) -> str:
        return "oldconfig would drop it"

    def close(self) -> None:
        self.probe.unlink(missing_ok=True)


# --- the tree's own make -----------------------------------------------------------------


# Where the builder sees prep's tree while it copies it (under the namespace's /var/tmp).
_PREPARED_SEEN = Path("/var/tmp/respin/prepared")


class TreeMake(Validator):
    """The tree's own make, as merge_config.sh and the spec's check run it, in `tree` (config's
    own copy of prep's tree: make writes .config there)."""

    name = "oldconfig"
    resolves = False

    def __init__(self, ctx: Context, tree: Path, *, strict: bool) -> None:
        self.ctx, self.tree, self.strict = ctx, tree, strict
        self.dot = tree / ".config"
        self.cross = spec_cross_compile(ctx)
        self.texts: dict[str, str] = {}
        self.after: dict[str, str] = {}

    @staticmethod
    @contextlib.contextmanager
    def copy_of(ctx: Context, prepared: Path) -> Iterator[Path]:
        """A copy of prep's tree for make to write in, made by the builder (as root): what the
        builder may read of its own tree, links as links; root follows no path in it."""
        with tempfile.TemporaryDirectory(dir=ctx.stagedir) as scratch:
            work = Path(scratch)
            rpmpkg.give_to_builder(work, 0o700)
            seen = _PREPARED_SEEN if rpmpkg.builder() is not None else prepared
            copy = ["cp", "-a", "--reflink=auto", "--", f"{seen}/.", "tree"]
            ctx.run(rpmpkg.as_builder(copy, work, mounts={_PREPARED_SEEN: prepared}), cwd=work,
                    what=f"copy of the prepared tree {prepared}")
            yield work / "tree"

    def _arch(self, config: str) -> str:
        return kconfig.make_arch(kconfig.arch_of(self.texts[config], target_arch(self.ctx)))

    def _olddefconfig(self, config: str, text: str) -> str:
        after = make_olddefconfig(self.ctx, self.tree, self.dot, self._arch(config), text, self.strict,
                                  self.cross)
        if after is None:
            raise CannotCheck()
        return after

    def _listnewconfig(self, config: str, text: str) -> dict[str, str | None]:
        return make_listnewconfig(self.ctx, self.tree, self.dot, self._arch(config), text, self.cross) or {}

    def shipped(self, config: str, text: str) -> Seen:
        self.texts[config] = text
        new = self._listnewconfig(config, text)
        if new:
            return Seen(new, {})  # refused as shipped: what oldconfig moves is not asked
        return Seen(new, moved(text, self._olddefconfig(config, text)))

    def unmet(self, config: str, merged: str, reqs: Sequence[Request]) -> Verdict | None:
        self.after[config] = self._olddefconfig(config, merged)
        bad = kconfig.mismatches(self.after[config], reqs)
        return Verdict(bad[0][0], False, bad[0][1]) if bad else None

    def changed(self, config: str, merged: str) -> Seen:
        return Seen(self._listnewconfig(config, merged), moved(merged, self.after[config]))

    def unmet_tail(self, verdict: Verdict) -> str:
        return f"check what {verdict.request.name} depends on"


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


def make_listnewconfig(ctx: Context, tree: Path, dot: Path, arch: str, text: str, cross: str = ""
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


def make_olddefconfig(ctx: Context, tree: Path, dot: Path, arch: str, text: str, strict: bool,
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


def moved(text: str, after: str) -> Moved:
    """Values of `text` that oldconfig changed, among the symbols both have (the rule of
    process_configs.sh -c)."""
    old, new = kconfig.parse(text), kconfig.parse(after)
    return {k: (v, new[k]) for k, v in old.items() if k in new and new[k] != v}
