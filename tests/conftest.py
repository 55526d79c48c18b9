"""Session set-up shared by every test: the plugins the engine tests load.

examples/plugin (the README's example) and tests/plugin_squatter (a plugin
that tries to take a built-in command's name) are third-party distributions
the engine tests load through entry points.  They are installed (a real `pip
install`, so their entry points are real dist-info) into a temp directory of
this test run's own, put on sys.path and on PYTHONPATH for the `respin`
subprocesses: the user's venv never lists their stages or commands.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PLUGINS = (REPO / "examples" / "plugin", REPO / "tests" / "plugin_squatter")
# One per session (test runs may overlap), readable by the unprivileged CI-mode user.
PLUGIN_DIR = Path(os.environ.get("RESPIN_TEST_PLUGINS") or tempfile.mkdtemp(prefix="respin-test-plugins-"))


def _install_plugin() -> None:
    # --no-build-isolation: the venv's own setuptools builds it, no index needed.
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--no-deps", "--no-build-isolation", "--target", str(PLUGIN_DIR), *map(str, PLUGINS)],
                   check=True, stdin=subprocess.DEVNULL)
    # pip leaves a build/ beside the sources; the checkout stays as it was.
    for src in PLUGINS:
        shutil.rmtree(src / "build", ignore_errors=True)
        for info in src.glob("*.egg-info"):
            shutil.rmtree(info, ignore_errors=True)
    PLUGIN_DIR.chmod(0o755)


def pytest_configure(config: pytest.Config) -> None:
    if "RESPIN_TEST_PLUGINS" not in os.environ:
        _install_plugin()
        os.environ["RESPIN_TEST_PLUGINS"] = str(PLUGIN_DIR)  # nested pytest runs reuse it
        config.add_cleanup(lambda: shutil.rmtree(PLUGIN_DIR, ignore_errors=True))
    sys.path.insert(0, str(PLUGIN_DIR))
    paths = [str(PLUGIN_DIR), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(paths)


def _ci_as_root() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") and os.geteuid() == 0


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test marked `root` says so when it cannot run, whatever its own skip conditions.
    if os.geteuid() != 0:
        for item in items:
            if item.get_closest_marker("root"):
                item.add_marker(pytest.mark.skip(reason="needs root (CI runs the tests as root)"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    # CI runs as root with everything `make test` installs: there, a root test that skips is
    # a failure, unless it skipped by design (respin_cli.skip_by_design).
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and _ci_as_root() and item.get_closest_marker("root") \
            and not item.get_closest_marker("skips_by_design"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"a root test skipped in CI, where it must run: {reason}"
    return None
