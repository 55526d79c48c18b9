"""Will a requested value survive oldconfig? Asked of kconfiglib, before the long build.

oldconfig silently drops a value whose dependencies are unmet; finding that
out after a 40-minute rpmbuild is the expensive way. kconfiglib evaluates
the tree's own Kconfig files with the edited config, so each request can be
answered, and an unmet dependency named, in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kconfiglib

from pipeline.errors import InputError
from pipeline.run import run
from stages.kernel.kconfig import SRCARCH, Request


@dataclass
class Verdict:
    """What kconfiglib says of one request in one config."""

    request: Request
    survives: bool
    value: str | None  # the value after evaluation, in .config syntax
    needs: list[str] = field(default_factory=list)  # unmet dependencies, e.g. "CONFIG_A=y"
    unknown: bool = False

    def explain(self) -> str:
        if self.unknown:
            return f"{self.request.name} is not a symbol of this kernel's Kconfig"
        if self.needs:
            return f"{self.request.line()} needs {' and '.join(self.needs)}"
        got = "not set" if self.value is None else self.value
        return f"{self.request.line()} would end up as {got} after oldconfig"


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


class _Kconfig(kconfiglib.Kconfig):  # type: ignore[misc]
    """kconfiglib, reading today's spelling of the modules flag."""

    def _open(self, filename: str, mode: str) -> Any:
        if mode != "r":
            return super()._open(filename, mode)
        with super()._open(filename, mode) as fh:
            text = fh.read()
        return io.StringIO(_BARE_MODULES.sub(r"\1option modules", text))


def _toolchain() -> dict[str, str]:
    """What the kernel's top Makefile hands Kconfig: the tools (from the environment,
    else the kernel's defaults) and the compiler's banner. Kconfig probes them
    ($(cc-option,...)) as the build's own oldconfig will, on this machine."""
    tools = {"CC": "gcc", "LD": "ld", "AR": "ar", "NM": "nm", "OBJCOPY": "objcopy",
             "PAHOLE": "pahole", "RUSTC": "rustc", "BINDGEN": "bindgen", "HOSTCC": "gcc",
             "HOSTCXX": "g++", "CLANG_FLAGS": ""}
    env = {key: os.environ.get(key, default) for key, default in tools.items()}
    banner = ""
    cc = shutil.which(env["CC"].split()[0]) if env["CC"].strip() else None
    if cc:
        out = run([cc, *env["CC"].split()[1:], "--version"], check=False, what="the C compiler").stdout
        banner = out.splitlines()[0] if out else ""
    env["CC_VERSION_TEXT"] = os.environ.get("CC_VERSION_TEXT", banner)
    return env


def load(tree: Path, arch: str) -> Any:
    """Parse the tree's Kconfig for `arch`, or fail in one line naming the tree.

    `tree` is a scratch copy: Kconfig's compiler probes write temporary files in
    the current directory, so the parse runs there.
    """
    top = tree / "Kconfig"
    if not top.is_file():
        raise InputError(f"{tree}: no Kconfig at the top of the prepared tree")
    env = {"srctree": str(tree), "ARCH": arch, "SRCARCH": SRCARCH.get(arch, arch),
           "KERNELVERSION": "0", **_toolchain()}
    with _environment(env), contextlib.chdir(tree):
        try:
            # suppress_traceback would call sys.exit: keep it off and say it ourselves.
            return _Kconfig(str(top), warn=False, warn_to_stderr=False)
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


def _unmet(sym: Any) -> list[str]:
    needs: list[str] = []
    for operand in kconfiglib.split_expr(sym.direct_dep, kconfiglib.AND):
        if kconfiglib.expr_value(operand) != 0:
            continue
        if isinstance(operand, kconfiglib.Symbol) and operand.orig_type in (kconfiglib.BOOL,
                                                                              kconfiglib.TRISTATE):
            needs.append(f"CONFIG_{operand.name}=y")
        else:
            needs.append(f"({kconfiglib.expr_str(operand)})")
    return needs


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
        if sym.orig_type in (kconfiglib.INT, kconfiglib.HEX) and wanted is not None and value is not None:
            with contextlib.suppress(ValueError):
                same = int(wanted, 0) == int(value, 0)
                value = wanted if same else value
        verdicts.append(Verdict(req, value == wanted, value,
                                needs=_unmet(sym) if value != wanted else []))
    return verdicts


def resolvable(needs: Sequence[str]) -> list[Request]:
    """The requests that would meet `needs`, or [] if some need is not a plain symbol."""
    out = []
    for need in needs:
        if not need.startswith("CONFIG_") or not need.endswith("=y"):
            return []
        out.append(Request(need.removesuffix("=y"), "y"))
    return out
