"""Shared fixtures: the respin CLI run as a user would, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RESPIN = Path(sys.executable).with_name("respin")


def respin(*args: str | os.PathLike[str], cwd: Path | None = None, check: bool = True,
           env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the installed `respin` command with no TTY and stdin closed."""
    proc = subprocess.run([str(RESPIN), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})}, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"respin {' '.join(map(str, args))} exited {proc.returncode}:\n"
                             f"{proc.stdout}\n{proc.stderr}")
    return proc


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    """The bad-input contract: exit code, one error line naming the problem, no traceback."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("respin: error:")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


@pytest.fixture
def run_respin() -> object:
    return respin


def skip_by_design(request: pytest.FixtureRequest, reason: str) -> None:
    """Skip a test that may not run even in CI, by design (a package `make test` leaves out
    on purpose): CI fails a root test that skips for any other reason."""
    request.node.add_marker(pytest.mark.skips_by_design)
    pytest.skip(reason)
