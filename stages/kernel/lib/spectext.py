"""Reading a kernel spec's %prep as text: where patches are applied, where to add lines.

specfile gives us %prep as a list of raw lines; ApplyPatch calls are opaque
text to it, so finding "after the last patch application" is done here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from respin.pipeline.errors import InputError
from respin.pipeline.options import checked

# A line that applies a patch. `ApplyPatch()` (the function's definition) is not one.
_APPLY = re.compile(
    r"^\s*(ApplyPatch|ApplyOptionalPatch)\s+\S"
    r"|^\s*%(patch\d*|autopatch)\b"
    r"|^\s*%\{?(patch|autopatch)\b"
    r"|^\s*git\s+(apply|am)\b"
)
_FUNC_START = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*\(\)\s*\{?\s*$")
_FUNC_END = re.compile(r"^\s*\}\s*$")
_END_MARKER = re.compile(r"^\s*#\s*END OF PATCH APPLICATIONS\b")
_IF = re.compile(r"^\s*%if(arch|narch|os|nos)?\b")
_ENDIF = re.compile(r"^\s*%endif\b")
_SECTION = re.compile(
    r"^%(prep|build|install|check|clean|files|changelog|description|package|pre|post|preun|postun"
    r"|pretrans|posttrans|triggerin|triggerun|triggerpostun|verifyscript|generate_buildrequires"
    r"|conf)\b"
)


# What Python (and so specfile) takes for the end of a line; rpm ends one at "\n" only.
LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")


_IDENTITY = re.compile(r"([^<>]*[^<>\s])\s*<([^<>\s]+)>")


def identity(text: str) -> tuple[str, str] | None:
    """(name, email) of one printable "Name <email>" line (a %changelog entry's author,
    a commit's), else None."""
    m = _IDENTITY.fullmatch(text) if text.isprintable() else None
    return (m.group(1), m.group(2)) if m else None


# An option naming a person: a %changelog entry's author, a commit's.
Identity = Annotated[str, checked(identity, "is not one 'Name <email>' line")]


def rpm_literal(text: str) -> str:
    """`text` as rpm reads it back from a spec line: rpm expands macros in every line of a
    spec, %changelog included, so each `%` is doubled."""
    return text.replace("%", "%%")


def spec_line(text: str, where: str) -> str:
    """`text` as one literal spec line, or an error: a value respin writes into a spec is
    data, and a line break would let it start a section (%post) of its own."""
    if any(c in LINE_BREAKS or c == "\0" for c in text):
        raise InputError(f"{where}: '{text}': holds a line break or NUL, which a spec "
                         "line cannot carry")
    return rpm_literal(text)


_SOURCE_TAG = re.compile(r"^(Source|Patch)(\d*)\s*:\s*(\S+)\s*$", re.M | re.I)


def own_files(text: str, sources: Path) -> dict[str, str]:
    """The package's own files, by name, each with what names it: its SourceN or PatchN tag
    in the spec text (the URL's last part), else "a file of the SRPM" (in `sources`)."""
    owned = {p.name: "a file of the SRPM" for p in sources.iterdir()}
    for m in _SOURCE_TAG.finditer(text):
        owned[m.group(3).rsplit("/", 1)[-1]] = f"{m.group(1).capitalize()}{m.group(2)}"
    return owned


@dataclass(frozen=True)
class PrepPoint:
    """Where, in the spec's lines, patch application ends.

    `after_last_apply` is the index after which a new ApplyPatch line goes
    (outside any conditional the last one sits in); `hook_at` is the index
    after which prep may be stopped (the END marker if present, else the same).
    """

    prep_start: int
    prep_end: int
    last_apply: int
    after_last_apply: int
    hook_at: int
    command: str  # ApplyPatch | ApplyOptionalPatch | %patch


def prep_bounds(lines: list[str], where: str) -> tuple[int, int]:
    """Index of the `%prep` line and of the line that starts the next section."""
    start = next((i for i, ln in enumerate(lines) if re.match(r"^%prep\b", ln)), None)
    if start is None:
        raise InputError(f"{where}: no %prep section")
    end = next((i for i in range(start + 1, len(lines)) if _SECTION.match(lines[i])), len(lines))
    return start, end


def _close_conditionals(lines: list[str], start: int, index: int, end: int) -> int:
    """Move `index` forward past the %endif of every conditional open at `index`."""
    depth = 0
    for ln in lines[start + 1:index + 1]:
        if _IF.match(ln):
            depth += 1
        elif _ENDIF.match(ln):
            depth -= 1
    i = index
    while depth > 0 and i + 1 < end:
        i += 1
        if _IF.match(lines[i]):
            depth += 1
        elif _ENDIF.match(lines[i]):
            depth -= 1
    return i


def _function_bodies(lines: list[str], start: int, end: int) -> set[int]:
    """Line indexes inside shell function definitions (ApplyOptionalPatch() { ... git apply ... })."""
    inside: set[int] = set()
    i = start + 1
    while i < end:
        if _FUNC_START.match(lines[i]):
            j = i + 1
            while j < end and not _FUNC_END.match(lines[j]):
                inside.add(j)
                j += 1
            i = j
        i += 1
    return inside


def find_prep_point(lines: list[str], where: str) -> PrepPoint:
    """Find the end of patch application in %prep, or say clearly that there is none."""
    start, end = prep_bounds(lines, where)
    applies = [i for i in range(start + 1, end) if _APPLY.match(lines[i]) and i not in
               _function_bodies(lines, start, end)]
    if not applies:
        raise InputError(f"{where}: %prep applies no patch (no ApplyPatch, ApplyOptionalPatch, "
                         "%patch or %autopatch line): cannot place the config patch")
    last = applies[-1]
    after = _close_conditionals(lines, start, last, end)
    marker = next((i for i in range(last, end) if _END_MARKER.match(lines[i])), None)
    hook_at = marker if marker is not None else after
    text = lines[last].strip()
    command = ("ApplyOptionalPatch" if text.startswith("ApplyOptionalPatch") else
               "ApplyPatch" if text.startswith("ApplyPatch") else "%patch")
    if command == "%patch" and any(re.match(r"^\s*ApplyPatch\(\)", ln) for ln in lines[start:end]):
        command = "ApplyPatch"
    return PrepPoint(start, end, last, after, hook_at, command)
