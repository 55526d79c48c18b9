"""Kernel .config files: parse, validate requested values, edit in place of the old line."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from respin.pipeline.errors import ConfigError
from respin.stages.kernel.lib.spectext import LINE_BREAKS

# Each matched whole (fullmatch): `$` would also match before a final newline.
NAME = re.compile(r"CONFIG_[A-Za-z0-9_]+")
_SET = re.compile(r"(CONFIG_[A-Za-z0-9_]+)=(.*)")
_UNSET = re.compile(r"# (CONFIG_[A-Za-z0-9_]+) is not set")
_NUMBER = re.compile(r"-?[0-9]+|0x[0-9a-fA-F]+")

UNSET = None  # the value of a symbol that is "not set"

# How the merge scripts of kernel specs read an override file (kernel-local): Fedora's takes
# "# NAME is not set" anywhere in a line, else "NAME=" at its start; others take
# "#<blanks>NAME<blanks>is not set" at the start. Each keeps the first line for a symbol.
_MERGE_UNSET = re.compile(r"#\s*(\w+)\s+is\s+not\s+set")
_MERGE_SET = re.compile(r"\s*(\w+)\s*=")


@dataclass(frozen=True)
class Request:
    """One requested value: `value` None means "# CONFIG_X is not set"."""

    name: str
    value: str | None

    def line(self) -> str:
        return f"# {self.name} is not set" if self.value is None else f"{self.name}={self.value}"


def recorded(requests: Mapping[str, str | None]) -> list[Request]:
    """Requests as the config stage recorded them (name -> value), in name order."""
    return [Request(k, v) for k, v in sorted(requests.items())]


def parse(text: str) -> dict[str, str | None]:
    """Symbol -> value ("y", "m", "1000", '"str"') or None when not set. Later lines win."""
    values: dict[str, str | None] = {}
    for line in text.splitlines():
        if m := _SET.fullmatch(line):
            values[m.group(1)] = m.group(2)
        elif m := _UNSET.fullmatch(line):
            values[m.group(1)] = None
    return values


def merge_symbols(line: str) -> set[str]:
    """Every symbol a spec's merge script may take an override `line` for, by the loosest
    of their readings (a line respin's own parse would not count, such as
    "#  CONFIG_X is not set" or "# CONFIG_X is not set  # why")."""
    names = {m.group(1) for m in _MERGE_UNSET.finditer(line)}
    if m := _MERGE_SET.match(line):
        names.add(m.group(1))
    return names


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def normalize(name: str, value: object, existing: str | None, where: str) -> Request:
    """Turn a pipeline-file value into .config syntax, refusing what .config cannot hold.

    y/m/n and true/false are tristates; integers and hex stay numbers; any
    other string is a quoted string. When the symbol already has a value, its
    kind decides ("1000" for a number symbol stays a number). A value that
    starts with a double quote is taken as an already quoted string.
    """
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ConfigError(f"{where}: '{name}' is not a kernel config symbol (expected CONFIG_[A-Z0-9_]+)")
    if isinstance(value, bool):
        return _of_kind(Request(name, "y" if value else UNSET), existing, where)
    if isinstance(value, int):
        return _of_kind(Request(name, str(value)), existing, where)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {name}: value must be a string, integer or boolean, got {value!r}")
    if any(c in LINE_BREAKS or c == "\0" for c in value):
        raise ConfigError(f"{where}: {name}: value contains a line break or NUL")
    if "$" in value:
        # The kernel's include/config/auto.conf keeps string values unquoted, and its
        # Makefiles include it: a '$' there is make syntax ($(shell ...) runs a command).
        raise ConfigError(f"{where}: {name}: a '$' in a value would reach the kernel's make as "
                          "syntax (auto.conf keeps strings unquoted): refused")
    if value == "n":
        return Request(name, UNSET)
    if value in ("y", "m"):
        return _of_kind(Request(name, value), existing, where)
    if value.startswith('"'):
        if not re.fullmatch(r'"(?:[^"\\]|\\.)*"', value):
            raise ConfigError(f"{where}: {name}: malformed quoted string {value!r}")
        return _of_kind(Request(name, value), existing, where)
    existing_is_string = existing is not None and existing.startswith('"')
    if _NUMBER.fullmatch(value) and not existing_is_string:
        return _of_kind(Request(name, value), existing, where)
    return _of_kind(Request(name, _quote(value)), existing, where)


def kind(value: str | None) -> str:
    """What a .config value says of its symbol: "tristate" (y, m), "number", "string" (quoted),
    or "" (not set: any kind)."""
    if value is None:
        return ""
    if value in ("y", "m"):
        return "tristate"
    return "number" if _NUMBER.fullmatch(value) else "string"


def _of_kind(req: Request, existing: str | None, where: str) -> Request:
    """`req`, unless the symbol's current value shows it cannot take it: "abc" for a number or
    a bool symbol would leave oldconfig to put the default back."""
    have, want = kind(existing), kind(req.value)
    if have in ("tristate", "number") and want not in ("", have):
        takes = "y, m or n" if have == "tristate" else "a number"
        raise ConfigError(f"{where}: {not_of_its_type(req, takes)} (it is {existing} now)")
    return req


def not_of_its_type(req: Request, takes: str) -> str:
    """The words for a value its symbol's type cannot hold."""
    return f"{req.line()} is not a valid value for {req.name}, which takes {takes}"


def requests(set_: Mapping[str, object], unset: Sequence[str], current: Mapping[str, str | None],
             where: str) -> list[Request]:
    """Validate `[config] set` and `unset` into requests, in a stable order."""
    out: dict[str, Request] = {}
    for name, value in set_.items():
        out[name] = normalize(name, value, current.get(name), f"{where} set")
    for name in unset:
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise ConfigError(f"{where} unset: '{name}' is not a kernel config symbol "
                              "(expected CONFIG_[A-Z0-9_]+)")
        if name in out:
            raise ConfigError(f"{where}: {name} is both set and unset")
        out[name] = Request(name, UNSET)
    return [out[k] for k in sorted(out)]


def apply(text: str, reqs: Sequence[Request]) -> str:
    """Rewrite each requested symbol's line where it stands; append symbols not present."""
    wanted = {r.name: r for r in reqs}
    seen: set[str] = set()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _SET.fullmatch(line) or _UNSET.fullmatch(line)
        if m and m.group(1) in wanted:
            lines[i] = wanted[m.group(1)].line()
            seen.add(m.group(1))
    lines.extend(r.line() for r in reqs if r.name not in seen)
    return "\n".join(lines) + "\n"


def mismatches(text: str, reqs: Sequence[Request]) -> list[tuple[Request, str | None]]:
    """Requests whose value is not what `text` holds: (request, value found)."""
    values = parse(text)
    return [(r, values.get(r.name)) for r in reqs if values.get(r.name) != r.value]


# The first line of a generated config names the arch ("# i386"); Kconfig wants SRCARCH.
SRCARCH = {"i386": "x86", "i686": "x86", "x86_64": "x86", "x86": "x86", "aarch64": "arm64",
           "arm64": "arm64", "ppc64le": "powerpc", "powerpc": "powerpc", "s390x": "s390", "s390": "s390",
           "riscv64": "riscv", "riscv": "riscv"}
# rpm's arch names where the kernel's make wants its own (ARCH=arm64, not aarch64).
_MAKE_ARCH = {"i686": "i386", "i586": "i386", "aarch64": "arm64", "ppc64le": "powerpc",
              "s390x": "s390", "riscv64": "riscv"}


def make_arch(arch: str) -> str:
    """The ARCH= the kernel's Makefile takes for an rpm or config arch name."""
    return _MAKE_ARCH.get(arch, arch)


def arch_of(config_text: str, fallback: str) -> str:
    """The ARCH a config was generated for: its first line "# i386", else the fallback."""
    first = config_text.split("\n", 1)[0].strip()
    if first.startswith("# ") and first[2:].strip() in SRCARCH:
        return first[2:].strip()
    return fallback
