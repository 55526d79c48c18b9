"""Session set-up for the real-kernel tests: one source package, one respin build, shared.

The source package is fixtures/kernel-real made from Debian's Linux 6.1 tree
(fixtures.realkernel); `respin run` changes three config values and marks the
release with a buildid, then builds the binary kernel package with rpmbuild
(--with baseonly), its modules signed with a module key of the session's and
its image with a Secure Boot key of the session's ([sign]). That build is a
real kernel compile of a few CPU minutes, so it runs once per session and
every test here reads its result. The
compile cache lives in pytest's cache dir (`.pytest_cache`, removed by `make
clean`): a later session compiles from it, with the same bytes.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The helpers the tests here share (realbuild.py, realvm.py) import as top-level modules.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from realbuild import Keys, RealBuild, missing_build_tools, run_real_build
from signkeys import stop_agent

from fixtures.realkernel import build_real_srpm

# Each real build's work dir keeps prep's unpacked tree (1.5 GB) and fetch's copy (0.3 GB),
# holds a second tree and its objects while it compiles, and a session makes two builds.
NEEDS_FREE = 6 << 30


@pytest.fixture(scope="session")
def real_srpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fixtures/kernel-real built into a source package from Debian's tree, once."""
    missing = missing_build_tools()
    if missing:
        pytest.skip(f"the real-kernel build needs {', '.join(missing)}")
    base = tmp_path_factory.getbasetemp()
    free = shutil.disk_usage(base).free
    if free < NEEDS_FREE:
        pytest.skip(f"the real-kernel tests need about {NEEDS_FREE >> 30} GiB free under {base}, "
                    f"which has {free >> 30} GiB (set --basetemp to a larger disk)")
    return build_real_srpm(tmp_path_factory.mktemp("real-srpm"))


@pytest.fixture(scope="session")
def real_build(real_srpm: Path, tmp_path_factory: pytest.TempPathFactory,
               pytestconfig: pytest.Config) -> Iterator[RealBuild]:
    """`respin run` of the whole kernel pipeline on the real-kernel SRPM, once per session."""
    # Without pytest's cache (-p no:cacheprovider) the cache starts empty in the session's temp dir.
    cache = getattr(pytestconfig, "cache", None)
    ccache_dir = (cache.mkdir("respin-real-kernel-ccache") if cache is not None
                  else tmp_path_factory.mktemp("ccache"))
    keys = Keys.make(tmp_path_factory.mktemp("real-keys"))
    try:
        yield run_real_build(real_srpm, tmp_path_factory.mktemp("real-build"), ccache_dir, keys)
    finally:
        stop_agent(keys.gpg_home)
