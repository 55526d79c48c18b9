"""Will a requested value survive oldconfig? Asked of kconfiglib, before the long build.

oldconfig silently drops a value whose dependencies are unmet; finding that
out after a 40-minute rpmbuild is the expensive way. kconfiglib evaluates
the tree's own Kconfig files with the edited config, so each request can be
answered, and an unmet dependency named, in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import kconfiglib

from respin.pipeline.errors import InputError
from respin.pipeline.process import run  # probes of the host only; a stage's commands go through ctx.run
from respin.stages.kernel.lib import rpmpkg
from respin.stages.kernel.lib.kconfig import SRCARCH, Request, parse
from respin.stages.kernel.lib.validate import Verdict


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    # kconfiglib reads $srctree, $ARCH, $SRCARCH from os.environ.
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


# Linux 6.x marks MODULES with a bare `modules` line; kconfiglib 14.1 knows only the
# older `option modules`, which means the same. Translated as the files are read.
_BARE_MODULES = re.compile(r"^([ \t]+)modules[ \t]*$", re.M)


class Kconfig(kconfiglib.Kconfig):  # type: ignore[misc]
    """kconfiglib, reading today's spelling of the modules flag."""

    def _open(self, filename: str, mode: str) -> Any:
        if mode != "r":
            return super()._open(filename, mode)
        # The tree is the builder's when respin runs as root: read no link out of it.
        real, tree = os.path.realpath(filename), os.path.realpath(".")
        if real != os.path.abspath(filename) and not real.startswith(tree + os.sep):
            raise OSError(errno.ELOOP, "a link out of the tree", filename)
        fd = os.open(filename, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, encoding=self._encoding) as fh:
            text = fh.read()
        return io.StringIO(_BARE_MODULES.sub(r"\1option modules", text))


def _shell_fn(kconf: Any, _name: str, command: str) -> str:
    """Kconfig's $(shell,...), run as the builder when respin runs as root: the command
    comes from the package's Kconfig (its scripts), and package code never runs as root.
    The tree is the current directory (srctree is "."), so the command's paths hold there."""
    argv = rpmpkg.as_builder(["sh", "-c", command], Path.cwd())
    proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    try:
        out = proc.stdout.decode(kconf._encoding)
    except UnicodeDecodeError as exc:
        raise kconfiglib.KconfigError(f"{kconf.filename}:{kconf.linenr}: $(shell,...) output is "
                                      f"not {kconf._encoding}") from exc
    # kconfiglib's own rule: trailing newlines dropped, the others made spaces.
    return "\n".join(out.splitlines()).rstrip("\n").replace("\n", " ")


# kconfiglib adds the functions of the module KCONFIG_FUNCTIONS names over its own.
functions = {"shell": (_shell_fn, 1, 1)}


def _toolchain(tree: Path, cross: str) -> dict[str, str]:
    """What the kernel's top Makefile hands Kconfig: the tools (from the environment,
    else the kernel's defaults) and the compiler's banner. Kconfig probes them
    ($(cc-option,...)) as the build's own oldconfig will, on this machine.

    `cross`: the CROSS_COMPILE the spec's config check runs make with ("scripts/dummy-tools/"
    for Fedora's process_configs.sh: a compiler that claims every option; pahole, which
    CROSS_COMPILE does not prefix, is still the host's)."""
    tools = {"CC": "gcc", "LD": "ld", "AR": "ar", "NM": "nm", "OBJCOPY": "objcopy",
             "PAHOLE": "pahole", "RUSTC": "rustc", "BINDGEN": "bindgen", "HOSTCC": "gcc",
             "HOSTCXX": "g++", "CLANG_FLAGS": ""}
    env = {key: os.environ.get(key, default) for key, default in tools.items()}
    if cross:
        env.update({key: cross + tools[key] for key in ("CC", "LD", "AR", "NM", "OBJCOPY")})
        # The tree's own script, so package code: run as the builder where respin is root.
        argv = rpmpkg.as_builder(["sh", "-c", 'LC_ALL=C "$0" --version 2>/dev/null | head -n 1', env["CC"]],
                                 tree)
        out = subprocess.run(argv, cwd=tree, capture_output=True, text=True, errors="replace",
                             stdin=subprocess.DEVNULL, check=False).stdout
        env["CC_VERSION_TEXT"] = out.strip().replace("#", "")
        return env
    banner = ""
    cc = shutil.which(env["CC"].split()[0]) if env["CC"].strip() else None
    if cc:
        out = run([cc, *env["CC"].split()[1:], "--version"], check=False, what="the C compiler").stdout
        banner = out.splitlines()[0] if out else ""
    env["CC_VERSION_TEXT"] = os.environ.get("CC_VERSION_TEXT", banner)
    return env


def load(tree: Path, arch: str, cross: str = "") -> Any:
    """Parse the tree's Kconfig for `arch`, or fail in one line naming the tree.

    `tree` is a scratch copy: Kconfig's compiler probes write temporary files in
    the current directory, so the parse runs there.
    """
    top = tree / "Kconfig"
    if not top.is_file():
        raise InputError(f"{tree}: no Kconfig at the top of the prepared tree")
    # srctree "." (the parse runs in the tree): the $(shell,...) commands then name the
    # tree's scripts by relative paths, which hold where the builder sees the tree.
    env = {"srctree": ".", "KCONFIG_FUNCTIONS": __name__, "ARCH": arch, "SRCARCH": SRCARCH.get(arch, arch),
           "KERNELVERSION": "0", **_toolchain(tree, cross)}
    with _environment(env), contextlib.chdir(tree):
        try:
            # suppress_traceback would call sys.exit: keep it off and say it ourselves.
            return Kconfig(str(top), warn=False, warn_to_stderr=False)
        except (kconfiglib.KconfigError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{tree}: kconfiglib cannot read this Kconfig: {first}") from exc


def _value_line(sym: Any) -> str | None:
    value: str = sym.str_value
    if sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
        return None if value in ("n", "") else value
    if sym.orig_type == kconfiglib.STRING:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value or None


def _wanted_level(sym: Any, value: str | None) -> int:
    """How high `sym`'s dependencies must evaluate for it to take `value`: a bool, and a
    tristate at m, need only m (Kconfig lifts a bool's m visibility to y); y needs y."""
    if value == "y" and sym.orig_type == kconfiglib.TRISTATE:
        return 2
    return 1


def _unmet(sym: Any, value: str | None) -> list[str]:
    """The operands of `sym`'s dependencies that keep it from `value`, each as the weakest
    assignment that would meet it ("CONFIG_A=m" where m is enough), else as an expression."""
    level = _wanted_level(sym, value)
    needs: list[str] = []
    for operand in kconfiglib.split_expr(sym.direct_dep, kconfiglib.AND):
        if kconfiglib.expr_value(operand) >= level:
            continue
        if isinstance(operand, kconfiglib.Symbol) and operand.orig_type in (kconfiglib.BOOL,
                                                                              kconfiglib.TRISTATE):
            # m only where modules are on: without MODULES a tristate is n or y.
            modules = operand.kconfig.modules.tri_value == 2
            weakest = "m" if level == 1 and modules and operand.orig_type == kconfiglib.TRISTATE else "y"
            needs.append(f"CONFIG_{operand.name}={weakest}")
        else:
            needs.append(f"({kconfiglib.expr_str(operand)})")
    return needs


def new_symbols(kconf: Any) -> dict[str, str | None]:
    """What `make listnewconfig` lists for the loaded config: symbols a user could set
    that the config gives no value, with the value oldconfig would pick (their default).

    A spec's own config check (Fedora's process_configs.sh -n) fails on each.
    """
    out: dict[str, str | None] = {}
    for sym in kconf.unique_defined_syms:
        if sym.choice is not None or not any(node.prompt for node in sym.nodes):
            continue
        if sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE):
            new = sym.user_value is None and len(sym.assignable) > 1
        else:  # a number out of its (new) range counts as unset, as conf treats it
            new = bool(sym.visibility) and (sym.user_value is None or (
                sym.orig_type in (kconfiglib.INT, kconfiglib.HEX) and sym.str_value != sym.user_value))
        if new:
            out[f"CONFIG_{sym.name}"] = _value_line(sym)
    for choice in kconf.unique_choices:
        if choice.visibility:
            out.update((f"CONFIG_{sym.name}", _value_line(sym)) for sym in choice.syms
                       if sym.visibility and sym.user_value is None)
    return out


def changed_values(kconf: Any, text: str) -> dict[str, tuple[str | None, str | None]]:
    """Symbols whose value in `text` (the loaded config) oldconfig would change:
    name -> (before, after). Fedora's process_configs.sh -c fails on each; a symbol
    oldconfig drops altogether is not one (the spec's check compares what both have)."""
    before = parse(text)
    out: dict[str, tuple[str | None, str | None]] = {}
    for name, value in before.items():
        sym = kconf.syms.get(name.removeprefix("CONFIG_"))
        if sym is None or sym.orig_type == kconfiglib.UNKNOWN or not sym.config_string:
            continue  # unknown, or not written by oldconfig at all
        after = _value_line(sym)
        if after != value and not _same_number(sym, value, after):
            out[name] = (value, after)
    return out


def _same_number(sym: Any, a: str | None, b: str | None) -> bool:
    if sym.orig_type not in (kconfiglib.INT, kconfiglib.HEX) or a is None or b is None:
        return False
    try:
        return int(a, 0) == int(b, 0)
    except ValueError:
        return False


def judge(kconf: Any, config: Path, reqs: Sequence[Request]) -> list[Verdict]:
    """Load `config` (already edited) and say, per request, whether oldconfig keeps it."""
    kconf.load_config(str(config), replace=True)
    verdicts = []
    for req in reqs:
        sym = kconf.syms.get(req.name.removeprefix("CONFIG_"))
        if sym is None or sym.orig_type == kconfiglib.UNKNOWN:
            verdicts.append(Verdict(req, False, None, unknown=True))
            continue
        value = _value_line(sym)
        wanted = req.value
        takes = _takes(sym, wanted)
        if takes:
            verdicts.append(Verdict(req, False, value, takes=takes))
            continue
        if _same_number(sym, wanted, value):
            value = wanted
        verdicts.append(Verdict(req, value == wanted, value,
                                needs=_unmet(sym, wanted) if value != wanted else [],
                                limit=_limit(sym, wanted) if value != wanted else ""))
    return verdicts


# What each type of symbol takes in .config syntax, and how to say it.
_TYPE_VALUES = {kconfiglib.BOOL: (r"y", "y or n"), kconfiglib.TRISTATE: (r"[ym]", "y, m or n"),
                kconfiglib.INT: (r"-?[0-9]+", "a decimal number"),
                kconfiglib.HEX: (r"(0[xX])?[0-9a-fA-F]+", "a hex number"),
                kconfiglib.STRING: (r'".*"', "a string")}


def _takes(sym: Any, wanted: str | None) -> str:
    """What `sym` takes, when `wanted` is not of its type ("abc" for an int, which oldconfig
    would replace by the default); else ""."""
    pattern, takes = _TYPE_VALUES.get(sym.orig_type, (r".*", ""))
    return "" if wanted is None or re.fullmatch(pattern, wanted, re.S) else takes


def _limit(sym: Any, wanted: str | None) -> str:
    """What besides a dependency keeps `sym` from `wanted`: a range, or another member of
    its choice (the one to unset)."""
    for low, high, cond in sym.ranges:
        if kconfiglib.expr_value(cond):
            return f"its range is {low.str_value}..{high.str_value}"
    choice = sym.choice
    if choice is not None and wanted == "y" and choice.selection is not None and choice.selection is not sym:
        rival = f"CONFIG_{choice.selection.name}"
        return f"{rival} is chosen in its choice: unset {rival} in the same request"
    return ""
