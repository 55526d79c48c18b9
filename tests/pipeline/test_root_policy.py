"""CI's rule for root tests (tests/root_policy.py), tried on a test file of its own in a
pytest run of its own: as root with CI=true a root test that skips fails the run,
unless it skips by design; elsewhere it skips and says why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from respin_cli import REPO

CASES = """
import pytest
from respin_cli import skip_by_design

@pytest.mark.root
def test_needs_a_missing_tool():
    pytest.skip("the tool is not installed")

@pytest.mark.root
def test_left_out_on_purpose(request):
    skip_by_design(request, "left out on purpose")

def test_not_a_root_test():
    pytest.skip("no reason to run here")
"""


def run_cases(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_cases.py").write_text(CASES)
    path = os.pathsep.join(filter(None, [str(REPO / "tests"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "CI": ci, "PYTHONPATH": path}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "root_policy", "-p",
                           "no:cacheprovider", "-W", "ignore::pytest.PytestUnknownMarkWarning",
                           str(tmp_path / "test_cases.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def test_in_ci_a_root_test_that_skips_fails_unless_by_design(tmp_path: Path) -> None:
    proc = run_cases(tmp_path, "true")
    if os.geteuid() == 0:
        assert proc.returncode == 1, proc.stdout
        assert "a root test skipped in CI, where it must run: the tool is not installed" in proc.stdout
        assert "1 failed, 2 skipped" in proc.stdout
    else:
        assert proc.returncode == 0, proc.stdout
        assert proc.stdout.count("needs root (CI runs the tests as root)") == 2


def test_outside_ci_a_root_test_that_skips_only_skips(tmp_path: Path) -> None:
    proc = run_cases(tmp_path, "")
    assert proc.returncode == 0, proc.stdout
    assert "3 skipped" in proc.stdout
