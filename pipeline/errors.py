"""One error root for respin; each class carries the exit code the CLI uses.

Only the CLI entry point turns these into exit codes and one-line messages.
"""

from __future__ import annotations

from collections.abc import Iterable


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


def describe(exc: BaseException) -> tuple[str, int]:
    """The one-line message (`one_line`) and the exit code respin reports for `exc`."""
    if isinstance(exc, RespinError):
        return one_line(exc.message), exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", Interrupted.exit_code
    if isinstance(exc, OSError):
        name = f"{exc.filename}: " if exc.filename is not None else ""
        return one_line(f"{name}{exc.strerror or exc}"), InputError.exit_code
    return one_line(f"internal error: {type(exc).__name__}: {exc}"), 1


def restated(exc: RespinError, message: str) -> RespinError:
    """`exc` with a new message (more context), as the nearest class of this module: the
    same exit code, and a subclass elsewhere may take other arguments."""
    cls: type[RespinError] = next(c for c in type(exc).__mro__ if c.__module__ == __name__)
    return cls(message, hint=exc.hint)
