"""Which kernel-*.config files a build uses: those of the target arch that its %prep keeps
(and, for kernel-local, merges into and checks), or those `[config] files` names."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from pathlib import Path

from respin.pipeline.stage import Context


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
