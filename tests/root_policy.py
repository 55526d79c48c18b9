"""What a test that needs root does where it cannot run, as a pytest plugin.

A test marked `root` skips, saying so, when not run as root. CI runs the tests
as root with everything `make test` installs: there (CI=true, root) a `root`
test that skips for any reason is a failure, unless it skipped by design
(respin_cli.skip_by_design: a package the Makefile leaves out on purpose).
"""

from __future__ import annotations

import os

import pytest


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
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and _ci_as_root() and item.get_closest_marker("root") \
            and not item.get_closest_marker("skips_by_design"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"a root test skipped in CI, where it must run: {reason}"
    return None
