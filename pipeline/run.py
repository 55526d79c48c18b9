"""The one way respin runs an external command.

Every command gets an argv list (never a shell), a small clean environment,
stdin closed and a new session (so no controlling TTY: GNU patch cannot stop
to ask a question), and is logged. A failure raises CommandError with the exit
status, the tail of stderr and a line that can be pasted into a shell.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline.errors import CommandError, Interrupted

log = logging.getLogger("respin.run")

# Variables passed through from the caller's environment; everything else is dropped
# so a run does not depend on the user's shell set-up.
_PASSTHROUGH = ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "SOURCE_DATE_EPOCH", "http_proxy",
                "https_proxy", "no_proxy")


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


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    log_file: Path | None = None,
    check: bool = True,
    what: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `argv` and return the completed process (stdout and stderr as text).

    With `log_file`, stdout and stderr both go to that file (appended), and the
    returned stdout is the file's new content; useful for long builds.
    """
    args = [os.fspath(a) for a in argv]
    pretty = shlex.join(args)
    log.debug("run: %s%s", pretty, f" (in {cwd})" if cwd else "")
    full_env = clean_env(env)
    try:
        if log_file is not None:
            log_file.parent.mkdir(parents=True, exist_ok=True)
            with open(log_file, "ab") as fh:
                start = fh.tell()
                proc = subprocess.run(args, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                                      stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                      check=False)
            with open(log_file, "rb") as fh:
                fh.seek(start)
                out = fh.read().decode(errors="replace")
            result = subprocess.CompletedProcess(args, proc.returncode, out, out)
        else:
            result = subprocess.run(args, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                                    capture_output=True, text=True, errors="replace",
                                    start_new_session=True, check=False)
    except FileNotFoundError as exc:
        raise CommandError(f"{args[0]}: command not found (needed for {what or 'this step'})") from exc
    except KeyboardInterrupt as exc:
        raise Interrupted(f"interrupted while running {args[0]}") from exc
    if check and result.returncode != 0:
        tail = _tail(result.stderr or result.stdout)
        last = tail.splitlines()[-1].strip() if tail else ""
        msg = f"{what or args[0]} failed with exit status {result.returncode}"
        if last:
            msg += f": {last}"
        if log_file is not None:
            msg += f" (full log: {log_file})"
        where = f"cd {shlex.quote(str(cwd))} && " if cwd else ""
        raise CommandError(msg, hint=f"{tail}\nto reproduce: {where}{pretty}")
    return result
