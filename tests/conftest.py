"""Session set-up shared by every test: the plugins the engine tests load.

examples/plugin (the README's example) and tests/plugin_squatter (a plugin
that tries to take a built-in command's name) are third-party distributions
the engine tests load through entry points.  They are installed (a real `pip
install`, so their entry points are real dist-info) into a temp directory of
this test run's own, put on sys.path and on PYTHONPATH for the `respin`
subprocesses: the user's venv never lists their stages or commands.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# CI's rule for tests that need root (tests/root_policy.py), as this run's hooks.
from root_policy import pytest_collection_modifyitems, pytest_runtest_makereport  # noqa: F401

REPO = Path(__file__).resolve().parent.parent


def _import_fixtures() -> None:
    """The fixture builders as the package `fixtures`, without the checkout on sys.path
    (where `import pipeline` would load a second copy of the engine)."""
    spec = importlib.util.spec_from_file_location("fixtures", REPO / "fixtures" / "__init__.py",
                                                  submodule_search_locations=[str(REPO / "fixtures")])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fixtures"] = module
    spec.loader.exec_module(module)


_import_fixtures()
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

