"""The work dir's lock: one run at a time in a work dir, and a way to see that one holds it.

An exclusive flock on `<workdir>/.lock` for as long as a run lasts; the system drops it
when the process ends, however it ends, so a killed run leaves no stale lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from respin.pipeline.errors import LockedError
from respin.pipeline.workdirs import LOCK


@contextlib.contextmanager
def hold(workdir: Path, name: str = LOCK, busy: str = "another respin run is using this work dir"
         ) -> Iterator[None]:
    """Hold `workdir`'s lock (the directory exists) or raise LockedError at once, saying `busy`
    (a domain locks a directory of its own the same way, under a name of its own)."""
    fd = os.open(workdir / name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise LockedError(f"{workdir}: {busy}") from exc
        yield
    finally:
        os.close(fd)


def held(workdir: Path) -> bool:
    """Whether a run holds `workdir`'s lock now (its state is half updated)."""
    try:
        fd = os.open(workdir / LOCK, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # and the shared lock with it, at once: a run starting now takes it
    return False
