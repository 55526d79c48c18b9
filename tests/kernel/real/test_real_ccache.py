"""The compile cache changes no byte of a real kernel package.

The session's `real_build` compiled Debian's Linux 6.1 tree through ccache: on
a fresh clone the cache is cold, so gcc compiled every object (each a miss).
Here the same pipeline, with the same signing keys, runs in a work dir of its
own from that cache, now warm: every object a hit, and the kernel image, config
and System.map, then the whole signed package, must be the same bytes. That is
also two builds in two directories with one module key giving one package.
(The benchmark compares a build without the cache too; `ccache = false` itself
is tested on the small fixtures.)
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


def _kernel_files(rpm: Path, kverrel: str) -> dict[str, bytes]:
    wanted = re.compile(rf"^/lib/modules/{re.escape(kverrel)}/(vmlinuz|config|System\.map)$")
    files = dict(payload_files(rpm, wanted))
    assert len(files) == 3, sorted(files)
    return files


def test_real_kernel_bytes_are_the_same_compiled_or_from_the_cache(real_build: RealBuild,
                                                                   tmp_path: Path) -> None:
    cached = _cache_meta(real_build.manifest)  # type: ignore[arg-type]
    assert cached is not None, "the session's build did not go through the compile cache"
    assert cached["hits"] + cached["misses"] > 500, cached  # a real kernel's objects
    # The session's keys: a build makes a module key of its own otherwise, and differs.
    pf = tmp_path / "kernel.toml"
    pf.write_text(pipeline_text(real_build.srpm, Path(cached["dir"]), real_build.keys))
    warm = json.loads(respin("run", pf, "--json", cwd=tmp_path, timeout=BUILD_TIMEOUT).stdout)
    meta = _cache_meta(warm)
    assert meta is not None and meta["hit_rate"] >= 0.9, meta
    files = _kernel_files(_rpm(warm), real_build.kverrel)
    session = _kernel_files(real_build.rpm, real_build.kverrel)
    for name, content in files.items():
        assert session[name] == content, f"{name} differs between the compiled and the cached build"
    assert real_build.rpm.read_bytes() == _rpm(warm).read_bytes()
