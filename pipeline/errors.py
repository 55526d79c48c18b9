"""One error root for respin; each class carries the exit code the CLI uses.

`report` is the one way an error becomes a line and an exit code: the CLI prints it, a
failed run's manifest records it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple


class RespinError(Exception):
    """Root of every error respin raises on purpose."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(RespinError):
    """The command line or pipeline file asks for something that does not exist."""

    exit_code = 2


class ConfigError(RespinError):
    """A pipeline or model file is malformed: unknown key, wrong type, bad value."""

    exit_code = 3


class InputError(RespinError):
    """An input (a package, an archive, an address) is unusable as given."""

    exit_code = 4


class CommandError(RespinError):
    """An external command failed; the message has its status and stderr tail."""

    exit_code = 5


class VerifyError(RespinError):
    """A result does not carry what was asked for (a config value, a file)."""

    exit_code = 6


class LockedError(RespinError):
    """Another run holds the work directory."""

    exit_code = 7


class CheckFailed(RespinError):
    """A `check` command found problems in otherwise readable input."""

    exit_code = 8


class Interrupted(RespinError):
    """The run was interrupted (SIGINT/SIGTERM); nothing half written was kept."""

    exit_code = 130


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "internal error (a bug: please report it with --debug output); from status: a stage would run",
    UsageError.exit_code: "usage: unknown command, stage, option or selection",
    ConfigError.exit_code: "pipeline or model file invalid (not UTF-8, not TOML, unknown key, wrong type, "
                           "bad value), or it asks for a change that cannot work (a name the input does "
                           "not know, a value the input's own checks would refuse)",
    InputError.exit_code: "bad input (a corrupt or wrong package, archive, address), or a file "
                          "that cannot be written (a full disk)",
    CommandError.exit_code: "an external tool failed (its exit status and the line that says why are shown)",
    VerifyError.exit_code: "verification failed: the result lacks a requested change",
    LockedError.exit_code: "the work directory is locked by another run",
    CheckFailed.exit_code: "a check found problems",
    Interrupted.exit_code: "interrupted",
}


# An error or log line is one line of a few hundred characters: a value that holds a newline
# or runs to megabytes is shown escaped and cut, never whole.
LINE_LIMIT = 400


def _escaped(char: str) -> str:
    return char if char.isprintable() else repr(char)[1:-1]


def _take(chars: Iterable[str], budget: int) -> list[str]:
    """The escaped pieces of `chars`, in order, while they fit in `budget` characters."""
    pieces: list[str] = []
    for char in chars:
        piece = _escaped(char)
        budget -= len(piece)
        if budget < 0:
            break
        pieces.append(piece)
    return pieces


def one_line(text: str, limit: int = LINE_LIMIT) -> str:
    """`text` as one printable line: control characters escaped as Python's repr writes
    them (a newline as \\n), and when longer than `limit`, its middle cut out with a marker
    saying how many characters are missing (the start names the input, the end the problem)."""
    if len(text) <= limit:
        if text.isprintable():
            return text
        escaped = "".join(map(_escaped, text))
        if len(escaped) <= limit:
            return escaped
    head = _take(text, limit // 2)
    tail = _take(reversed(text), limit // 2)
    cut = len(text) - len(head) - len(tail)
    return f"{''.join(head)}[...{cut} characters cut...]{''.join(reversed(tail))}"


def as_error(exc: BaseException) -> RespinError | None:
    """What respin reports `exc` as: a RespinError as it is; Ctrl-C (or SIGTERM) as an
    interruption; a file system error as the file it names and the reason, in respin's
    words (exit 4); None for anything else, which is a bug."""
    if isinstance(exc, RespinError):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted("interrupted")
    if isinstance(exc, OSError):
        name = f"{exc.filename}: " if exc.filename is not None else ""
        reason = exc.strerror or str(exc)
        return InputError(f"{name}{reason[:1].lower()}{reason[1:]}")
    return None


class Report(NamedTuple):  # not a dataclass: every command loads this (pipeline/startup.py)
    """An error as respin reports it: one line and an exit code, the same on stderr and in a
    manifest's "error"."""

    message: str  # one line (`one_line`)
    exit_code: int
    bug: bool = False  # not an error respin raised on purpose: the line says to rerun with --debug

    def line(self) -> str:
        """The line the CLI writes on stderr."""
        if self.bug:
            return f"respin: {self.message} (rerun with --debug for details)"
        return f"respin: error: {self.message}"

    def to_json(self, stage: str | None) -> dict[str, Any]:
        """The manifest's "error": the stage it happened in (None: before any), line, code."""
        return {"stage": stage, "message": self.message, "exit_code": self.exit_code}


def report(exc: BaseException) -> Report:
    """The one way an error becomes a line and an exit code (the CLI and the manifest both)."""
    error = as_error(exc)
    if error is None:
        return Report(one_line(f"internal error: {type(exc).__name__}: {exc}"), 1, bug=True)
    return Report(one_line(error.message), error.exit_code)


def restated(exc: RespinError, message: str) -> RespinError:
    """`exc` with a new message (more context), as the nearest class of this module: the
    same exit code, and a subclass elsewhere may take other arguments."""
    cls: type[RespinError] = next(c for c in type(exc).__mro__ if c.__module__ == __name__)
    return cls(message, hint=exc.hint)
