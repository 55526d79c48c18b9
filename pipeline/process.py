"""The one way respin runs an external command.

Every command gets an argv list (never a shell), a small clean environment,
stdin closed and a session of its own (so no controlling TTY: no tool
can stop to ask a question), and is logged. A failure raises CommandError
with the exit status and the last line of output; the tail of the output and
a line that can be pasted into a shell go in the error's hint.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol

from respin.pipeline.errors import CommandError, Interrupted

log = logging.getLogger("respin.run")

# Variables passed through from the caller's environment; everything else is dropped
# so a run does not depend on the user's shell set-up.
_PASSTHROUGH = ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "SOURCE_DATE_EPOCH", "http_proxy",
                "https_proxy", "no_proxy", "RESPIN_RUN")

# Set by the runner for the length of a run: every child carries it, so a later
# run can find and end the orphans of a run that was killed.
OWNER_VAR = "RESPIN_RUN"


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every command runs with."""
    env = {k: os.environ[k] for k in _PASSTHROUGH if k in os.environ}
    env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    env["LC_ALL"] = "C.UTF-8"
    env["TZ"] = "UTC"
    if extra:
        env.update(extra)
    return env


def _tail(text: str, lines: int = 12) -> str:
    kept = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(kept[-lines:])


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # The child leads its own process group: end the whole build, not just its first process.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


class Runs(Protocol):
    """What runs a command for a stage (`ctx.run`): `run` below, or a test's stand-in."""

    def __call__(self, argv: Sequence[str | os.PathLike[str]], *, cwd: Path | None = None,
                 env: Mapping[str, str] | None = None, log_file: Path | None = None, check: bool = True,
                 what: str | None = None, input_bytes: bytes | None = None,
                 summarize: Callable[[str], str] | None = None) -> subprocess.CompletedProcess[str]: ...


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log_file: Path | None = None,
    check: bool = True,
    what: str | None = None,
    input_bytes: bytes | None = None,
    summarize: Callable[[str], str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` and return the completed process (stdout and stderr as text).

    With `log_file`, stdout and stderr both go to that file (appended) and the
    returned stdout is what this command added to it: long builds stay on disk.
    `summarize` picks the line that says why a failed command failed, for tools
    whose last line is boilerplate.
    """
    args = [os.fspath(a) for a in argv]
    pretty = shlex.join(args)
    log.debug("run: %s%s", pretty, f" (in {cwd})" if cwd else "")
    full_env = clean_env(env)
    with contextlib.ExitStack() as stack:
        if log_file is not None:
            # A command with a log runs long and shows nothing meanwhile: say where to look.
            log.info("%s: running; its output goes to %s", what or args[0], log_file)
            log_file.parent.mkdir(parents=True, exist_ok=True)
            out_fh: IO[bytes] = stack.enter_context(open(log_file, "a+b"))
            start = out_fh.tell()
            err_fh: IO[bytes] = out_fh
        else:
            out_fh = stack.enter_context(tempfile.TemporaryFile())
            err_fh = stack.enter_context(tempfile.TemporaryFile())
            start = 0
        try:
            proc = subprocess.Popen(
                args, cwd=cwd, env=full_env,
                stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
                stdout=out_fh, stderr=err_fh, start_new_session=True)
        except FileNotFoundError as exc:
            raise CommandError(f"{args[0]}: command not found (needed for {what or 'this step'})") from exc
        try:
            if input_bytes is not None:
                assert proc.stdin is not None
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.write(input_bytes)
                proc.stdin.close()
            returncode = proc.wait()
        except BaseException as exc:
            _kill_group(proc)
            if isinstance(exc, KeyboardInterrupt):
                # `what` names the real command: argv[0] may be a wrapper (unshare around a build).
                raise Interrupted(f"interrupted while running {what or args[0]}") from exc
            raise
        out_fh.seek(start)
        out = out_fh.read().decode(errors="replace")
        if err_fh is out_fh:
            err = out
        else:
            err_fh.seek(0)
            err = err_fh.read().decode(errors="replace")
    result = subprocess.CompletedProcess(args, returncode, out, err)
    if check and returncode != 0:
        raise _failure(result, what=what, cwd=cwd, log_file=log_file, summarize=summarize)
    return result


def _failure(result: subprocess.CompletedProcess[str], *, what: str | None, cwd: Path | None,
             log_file: Path | None, summarize: Callable[[str], str] | None) -> CommandError:
    """The one-line error of a failed command: the line that says why, the full log's place;
    the output's tail and a line to paste into a shell go in the hint."""
    output = result.stderr or result.stdout
    tail = _tail(output)
    last = tail.splitlines()[-1].strip() if tail else ""
    if summarize is not None:
        last = summarize(output) or last
    full = [ln.strip() for ln in output.splitlines() if "No space left on device" in ln]
    if full:
        last = full[-1]  # a full disk explains the rest of the output
    msg = f"{what or result.args[0]} failed with exit status {result.returncode}"
    if last:
        msg += f": {last}"
    if log_file is not None:
        msg += f" (full log: {log_file})"
    where = f"cd {shlex.quote(str(cwd))} && " if cwd else ""
    return CommandError(msg, hint=f"{tail}\nto reproduce: {where}{shlex.join(result.args)}")


def end_orphans(owner_prefix: str) -> int:
    """Kill processes left by an earlier, killed run (their RESPIN_RUN starts with the prefix).

    Only called while holding the work dir's lock, so no live run owns them.
    """
    killed = 0
    needle = f"{OWNER_VAR}={owner_prefix}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if any(var.startswith(needle) for var in environ.split(b"\0")):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
    return killed
