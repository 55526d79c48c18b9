"""The compile cache changes no byte of a real kernel package.

The session's `real_build` compiled Debian's Linux 6.1 tree through ccache (a
cold cache on a fresh clone: every object a miss; a warm one later: every
object a hit). Here the same pipeline runs in a work dir of its own with
`ccache = false`, a full compile without any cache, and the kernel image,
config and System.map, then the whole package, must be the same bytes. When
the session's build was not mostly hits, a pure rerun of this work dir's
build from the session's (now warm) cache checks the hit path too.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from realbuild import BUILD_TIMEOUT, RealBuild, pipeline_text
from respin_cli import respin

from respin.stages.kernel.lib.rpmpkg import payload_files

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("ccache") is None, reason="ccache is not installed")]


def _cache_meta(manifest: dict[str, Any]) -> dict[str, Any] | None:
    (log,) = [a for a in manifest["artifacts"]
              if a["stage"] == "rebuild" and a["path"].endswith("/rebuild.log")]
    meta: dict[str, Any] | None = log.get("meta", {}).get("ccache")
    return meta


def _rpm(manifest: dict[str, Any]) -> Path:
    (rpm,) = [Path(a["path"]) for a in manifest["artifacts"] if a["kind"] == "rpm"]
    return rpm


def _boot_files(rpm: Path, kverrel: str) -> dict[str, bytes]:
    wanted = re.compile(rf"^/boot/(vmlinuz|config|System\.map)-{re.escape(kverrel)}$")
    files = dict(payload_files(rpm, wanted))
    assert len(files) == 3, sorted(files)
    return files


def test_real_kernel_bytes_are_the_same_with_and_without_the_cache(real_build: RealBuild,
                                                                   tmp_path: Path) -> None:
    cached = _cache_meta(real_build.manifest)  # type: ignore[arg-type]
    assert cached is not None, "the session's build did not go through the compile cache"
    assert cached["hits"] + cached["misses"] > 500, cached  # a real kernel's objects
    marker = Path("/respin-test-no-cache")
    # The session's keys: a build makes a module key of its own otherwise, and differs.
    text = pipeline_text(real_build.srpm, marker, real_build.keys)
    line = f'ccache_dir = "{marker}"\n'
    assert text.count(line) == 1
    pf = tmp_path / "kernel.toml"
    pf.write_text(text.replace(line, "ccache = false\n"))

    plain = json.loads(respin("run", pf, "--json", cwd=tmp_path, timeout=BUILD_TIMEOUT).stdout)
    assert _cache_meta(plain) is None and "ccache" not in plain["tools"]
    assert not (tmp_path / "work/ccache").exists()
    plain_rpm = _rpm(plain).read_bytes()
    files = _boot_files(_rpm(plain), real_build.kverrel)
    session = _boot_files(real_build.rpm, real_build.kverrel)
    for name, content in files.items():
        assert session[name] == content, f"{name} differs between the cached and the uncached build"
    assert real_build.rpm.read_bytes() == plain_rpm

    if cached["hit_rate"] is not None and cached["hit_rate"] >= 0.9:
        return  # the session's package was itself built from hits
    # A pure rerun from the session's cache, now warm: every object a hit, the same bytes.
    pf.write_text(pf.read_text().replace("ccache = false\n", f'ccache_dir = "{cached["dir"]}"\n'))
    warm = json.loads(respin("run", pf, "--json", "--only", "rebuild", "--force", cwd=tmp_path,
                             timeout=BUILD_TIMEOUT).stdout)
    meta = _cache_meta(warm)
    assert meta is not None and meta["hit_rate"] >= 0.9, meta
    assert _rpm(warm).read_bytes() == plain_rpm
