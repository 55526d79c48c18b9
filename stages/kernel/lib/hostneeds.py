"""What a spec's build scripts need from this host that it lacks, found by reading the spec.

A kernel build fails late when the host lacks a piece the spec takes for
granted: a bash-only `pushd` in %build under Debian's dash (rpm's build shell
is /bin/sh there) fails after the whole compile, a `sha512hmac` in %install
(Fedora's FIPS hmac) after the build too. Both are in the spec text: this
reads the lines of %build, %install and %check that run whatever the switches
(outside any %if, and in the %ifarch branches the target takes) and names each
missing piece, so the build is refused in one pass before it starts.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass

_SECTION = re.compile(r"^%(\w+)\b")
_BUILD_SECTIONS = {"build", "install", "check"}
# Sections that end a build section (scriptlets, %files, %changelog ... ); macros are not sections.
_OTHER_SECTIONS = re.compile(r"^(?:prep|conf|clean|files|changelog|description|package|verifyscript|"
                             r"sourcelist|patchlist|generate_buildrequires|"
                             r"(?:pre|post|trigger|filetrigger|transfiletrigger)\w*)$")
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
# A case label ("x86_64)", "fedora | rhel)"): words there are patterns, not commands.
_CASE_LABEL = re.compile(r"^\s*\(?[\w.*?\[\]\"'|+ -]+\)(\s|$)")
# Where a command word stands: a line's start, after ; & | ( ` $( and after if/then/do/...
_COMMAND = re.compile(r"(?:^|[;&|(`]|\$\(|\b(?:if|then|do|else|elif|while|until|!)\s)\s*"
                      r"([A-Za-z_][\w.+-]*)(?=[ \t;&|)]|$)")
# A quoted string on one line: its words are data (a grep pattern with |), not commands.
_QUOTED = re.compile(r"'[^']*'|\"(?:[^\"\\]|\\.)*\"")
_FUNCTION = re.compile(r"^\s*(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\)", re.M)
# Shell words and builtins (POSIX sh, dash, and bash's that specs use): never looked up on PATH.
_SHELL_WORDS = frozenset((
    "if", "then", "else", "elif", "fi", "case", "esac", "for", "while", "until", "do", "done", "in",
    "function", "select", "time", "alias", "bg", "break", "cd", "command", "continue", "eval", "exec",
    "exit", "export", "false", "fg", "getopts", "hash", "jobs", "kill", "local", "printf", "pwd", "read",
    "readonly", "return", "set", "shift", "test", "times", "trap", "true", "type", "ulimit", "umask",
    "unalias", "unset", "wait", "echo", "let", "declare", "typeset", "source", "pushd", "popd", "shopt",
    "builtin",
))
# Constructs dash does not take: bash builtins and bash syntax.
_BASHISMS = (
    (re.compile(r"(?:^|[;&|(]|\b(?:then|do|else)\s)\s*(pushd|popd|shopt)\b"), None),
    (re.compile(r"\[\[\s"), "[["),
    (re.compile(r"<<<"), "<<<"),
    (re.compile(r"^\s*function\s+[A-Za-z_]"), "function"),
)


@dataclass(frozen=True)
class Line:
    """A line of a build section that runs whatever the switches: its number and text."""

    number: int
    section: str
    text: str


def unconditional_lines(spec: str, target_cpu: str | None) -> Iterator[Line]:
    """The shell lines of %build, %install and %check outside any %if block (and in the
    %ifarch/%ifnarch branches `target_cpu` takes), comments and here-documents left out."""
    section = ""
    # One entry per open conditional: does this branch run for sure?
    branches: list[bool | None] = []  # True/False for a decided %ifarch, None for an %if
    heredoc: str | None = None
    for number, raw in enumerate(spec.splitlines(), 1):
        stripped = raw.strip()
        if heredoc is not None:
            if stripped == heredoc:
                heredoc = None
            continue
        directive = _SECTION.match(stripped)
        word = directive.group(1) if directive else ""
        if word in _BUILD_SECTIONS or _OTHER_SECTIONS.match(word):
            section = word if word in _BUILD_SECTIONS else ""
            continue
        if word in ("if", "ifarch", "ifnarch", "ifos", "ifnos"):
            branches.append(_arch_branch(word, stripped, target_cpu))
            continue
        if word in ("else", "elif", "elifarch", "elifos"):
            if branches:
                branches[-1] = (not branches[-1]) if word == "else" and branches[-1] is not None else None
            continue
        if word == "endif":
            if branches:
                branches.pop()
            continue
        if not section or stripped.startswith("#") or not stripped:
            continue
        if heredoc_start := _HEREDOC.search(raw):
            heredoc = heredoc_start.group(2)
        if all(b is True for b in branches):
            yield Line(number, section, raw)


def _arch_branch(word: str, line: str, target_cpu: str | None) -> bool | None:
    """Whether an %ifarch/%ifnarch branch runs for `target_cpu`; None when that is unknown."""
    if word not in ("ifarch", "ifnarch") or target_cpu is None:
        return None
    arches = line.split()[1:]
    if any("%" in a for a in arches):
        return None  # an arch list in a macro: not read here
    return (target_cpu in arches) == (word == "ifarch")


def _is_bash(shell: str) -> bool:
    """Whether `shell` is bash (itself, or /bin/sh linked to it, as on Fedora)."""
    return os.path.basename(os.path.realpath(shell)).startswith("bash")


def spec_buildshell(spec: str) -> str | None:
    """The build shell the spec sets itself (`%global _buildshell /bin/bash`), if it does."""
    found = re.search(r"^%(?:define|global)\s+_buildshell\s+(\S+)\s*$", spec, re.M)
    return found.group(1) if found else None


def problems(spec: str, spec_name: str, *, target_cpu: str | None, buildshell: str,
             path: str) -> list[str]:
    """One line per thing the spec's build needs and this host lacks: a bash-only construct
    under a build shell that is not bash, a command not on the build's `path`."""
    lines = list(unconditional_lines(spec, target_cpu))
    out: list[str] = []
    if not _is_bash(buildshell):
        for line in lines:
            text = _QUOTED.sub("''", line.text)
            found = next(((m, what) for rx, what in _BASHISMS if (m := rx.search(text))), None)
            if found is not None:
                match, what = found
                construct = what or match.group(1)
                out.append(f"{spec_name} line {line.number}: %{line.section} uses {construct}, which "
                           f"rpm's build shell here, {buildshell} (%_buildshell), does not have: "
                           "give [pipeline] define = { _buildshell = \"/bin/bash\" }")
                break  # one line says it: the remedy is the same for every other use
    functions = set(_FUNCTION.findall(spec))
    seen: set[str] = set()
    for line in lines:
        if _CASE_LABEL.match(line.text):
            continue
        for command in _COMMAND.findall(_QUOTED.sub("''", line.text)):
            if command in _SHELL_WORDS or command in functions or command in seen:
                continue
            seen.add(command)
            if shutil.which(command, path=path) is None:
                out.append(f"{spec_name} line {line.number}: %{line.section} runs {command}, which is not "
                           "on the build's PATH here: install the package that has it")
    return out
