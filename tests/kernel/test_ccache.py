"""The rebuild stage's compile cache: ccache through the real rpmbuild backend.

The kernel-current fixture compiles nothing, so these tests add fixtures/ccbuild (a
host tool built with HOSTCC, objects with $(CROSS_COMPILE)gcc and -g, one by its
absolute path) to its spec's BuildKernel as an extra Source, and build that package
through `respin run`: cold, warm, from another work dir sharing the cache, after a
config change, and without the cache, comparing the RPM bytes.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from respin_cli import REPO, respin

from fixtures.build import build_srpm
from respin.pipeline.errors import ConfigError, UsageError
from respin.pipeline.process import run
from respin.pipeline.stage import Context
from respin.stages.kernel.lib.ccache import CompileCache, compiler_names, parse_stats_log, without_masquerade
from respin.stages.kernel.lib.rpmpkg import (
    fixed_topdir_available,
    give_to_builder,
    in_fixed_topdir,
    payload_files,
)
from respin.stages.kernel.rebuild import RebuildStage

pytestmark = pytest.mark.slow  # builds packages or runs whole pipelines

CCACHE = shutil.which("ccache")

needs_build = pytest.mark.skipif(
    shutil.which("rpmbuild") is None or CCACHE is None or shutil.which("gcc") is None,
    reason="needs rpmbuild, ccache and gcc")

# The cached objects: confgen.o (HOSTCC), main.o, util.o, lib.o; the two links are uncacheable.
OBJECTS = 4


@pytest.fixture(scope="module")
def cc_srpm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """kernel-current with fixtures/ccbuild built and packaged by BuildKernel."""
    out = tmp_path_factory.mktemp("cc-srpm")
    srpm = build_srpm("kernel-current", out)
    top = out / "top"
    run(["rpm", "-i", "--nodeps", "--define", f"_topdir {top}", str(srpm)])
    with tarfile.open(top / "SOURCES/ccbuild.tar.gz", "w:gz") as tar:
        tar.add(REPO / "fixtures/ccbuild", arcname="ccbuild", filter=_fixed_owner)
    spec = top / "SPECS/kernel.spec"
    text = spec.read_text()
    steps = [("Source81: process_configs.sh\n", "Source90: ccbuild.tar.gz\n"),
             ("  make -s ARCH=$Arch olddefconfig > /dev/null\n",
              "  rm -rf ccbuild\n  tar -xzf %{SOURCE90}\n  make -s -C ccbuild\n"),
             ("  install -m 644 .config $RPM_BUILD_ROOT/lib/modules/$KernelVer/config\n",
              "  install -m 755 ccbuild/image $RPM_BUILD_ROOT/lib/modules/$KernelVer/ccbuild-image\n")]
    for anchor, added in steps:
        assert text.count(anchor) == 1, anchor
        text = text.replace(anchor, anchor + added)
    spec.write_text(text)
    run(["rpmbuild", "-bs", "--nodeps", "--define", f"_topdir {top}", str(spec)])
    return next((top / "SRPMS").glob("*.src.rpm"))


def _fixed_owner(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 1670846400
    return info


@pytest.fixture
def shared_cache() -> Iterator[Path]:
    """A cache dir under /var/tmp, which rpmbuild's mount namespace hides unless it is kept."""
    path = Path(tempfile.mkdtemp(prefix="respin-ccache-test-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def pipeline(where: Path, srpm: Path, rebuild: str = "",
             features: str = 'CONFIG_RESPIN_FEATURE_A = "y"') -> Path:
    where.mkdir(parents=True, exist_ok=True)
    path = where / "kernel.toml"
    path.write_text(f'[pipeline]\ntarget = "x86_64"\nworkdir = "work"\n\n[fetch]\nsrpm = "{srpm}"\n\n'
                    f"[config]\nset = {{ {features} }}\n\n"
                    f'[rebuild]\nwithout = ["debug"]\nmode = "binary"\n{rebuild}')
    return path


def build(pf: Path, *args: str) -> tuple[dict[str, Any], str]:
    proc = respin("run", pf, "--json", *args)
    return json.loads(proc.stdout), proc.stderr


def cache_meta(manifest: dict[str, Any]) -> dict[str, Any] | None:
    (log,) = [a for a in manifest["artifacts"]
              if a["stage"] == "rebuild" and a["kind"] == "log" and a["path"].endswith("rebuild.log")]
    meta: dict[str, Any] | None = log.get("meta", {}).get("ccache")
    return meta


def rpm_bytes(manifest: dict[str, Any]) -> dict[str, bytes]:
    rpms = [Path(a["path"]) for a in manifest["artifacts"] if a["kind"] == "rpm"]
    assert rpms
    return {p.name: p.read_bytes() for p in rpms}


def image(manifest: dict[str, Any]) -> bytes:
    rpm = next(Path(a["path"]) for a in manifest["artifacts"] if a["kind"] == "rpm")
    (content,) = dict(payload_files(rpm, re.compile(r"/ccbuild-image$"))).values()
    return content


@needs_build
@pytest.mark.skipif(not fixed_topdir_available(), reason="no private mount namespace: builds in two "
                    "work dirs differ anyway, and share no cache hits")
def test_cache_hits_survive_work_dirs_and_never_change_a_byte(tmp_path: Path, cc_srpm: Path,
                                                              shared_cache: Path) -> None:
    shared = f'ccache_dir = "{shared_cache}"\n'
    first, err = build(pipeline(tmp_path / "a", cc_srpm, shared))
    meta = cache_meta(first)
    assert meta is not None and meta["dir"] == str(shared_cache)
    assert (meta["hits"], meta["misses"], meta["uncacheable"]) == (0, OBJECTS, 2), meta
    assert f"ccache: 0 hits, {OBJECTS} misses (0%), 2 uncacheable in {shared_cache}" in err
    # lib.c's __FILE__: the absolute path the compiler was given, under the fixed topdir.
    assert re.search(rb"/var/tmp/respin/rpmbuild/BUILD/\S+/ccbuild/lib\.c\0", image(first))
    assert "ccache" in first["tools"]

    # Another work dir sharing the cache: every object a hit, the same bytes.
    other, _ = build(pipeline(tmp_path / "b", cc_srpm, shared))
    meta = cache_meta(other)
    assert meta is not None and (meta["hits"], meta["misses"]) == (OBJECTS, 0), meta
    assert rpm_bytes(other) == rpm_bytes(first)

    # Without the cache: the same bytes, and no trace of ccache.
    plain, err = build(pipeline(tmp_path / "c", cc_srpm, "ccache = false\n"))
    assert rpm_bytes(plain) == rpm_bytes(first)
    assert cache_meta(plain) is None and "ccache" not in plain["tools"] and "ccache" not in err
    work = tmp_path / "c/work"
    assert not (work / "ccache").exists() and not (work / "stages/rebuild/ccache").exists()


@needs_build
def test_default_cache_in_the_work_dir_a_rerun_hits_a_config_change_misses_one(
        tmp_path: Path, cc_srpm: Path) -> None:
    pf = pipeline(tmp_path, cc_srpm)
    cold, _ = build(pf)
    meta = cache_meta(cold)
    assert meta is not None and meta["dir"] == str(tmp_path / "work/ccache")
    assert (meta["hits"], meta["misses"]) == (0, OBJECTS)
    assert b"features: a\0" in image(cold)

    # A pure rerun of the build (what a spec or changelog edit costs).
    warm, _ = build(pf, "--only", "rebuild", "--force")
    meta = cache_meta(warm)
    assert meta is not None and (meta["hits"], meta["misses"], meta["hit_rate"]) == (OBJECTS, 0, 1.0)
    assert rpm_bytes(warm) == rpm_bytes(cold)

    # One value changed: only the file that includes the generated header recompiles.
    both = 'CONFIG_RESPIN_FEATURE_A = "y", CONFIG_RESPIN_FEATURE_B = "y"'
    changed, _ = build(pipeline(tmp_path, cc_srpm, features=both))
    meta = cache_meta(changed)
    assert meta is not None and (meta["hits"], meta["misses"]) == (OBJECTS - 1, 1), meta
    assert b"features: a b\0" in image(changed)


@needs_build
def test_turning_the_cache_off_or_moving_it_rebuilds_nothing(tmp_path: Path, cc_srpm: Path) -> None:
    pf = pipeline(tmp_path, cc_srpm)
    build(pf)
    for rebuild in ("ccache = false\n", f'ccache_dir = "{tmp_path / "elsewhere"}"\n'):
        pf.write_text(pf.read_text() + rebuild)
        again, _ = build(pf)
        assert [s["status"] for s in again["stages"]] == ["up to date"] * 7
        pf.write_text(pf.read_text().replace(rebuild, ""))


# --- units ------------------------------------------------------------------------


def test_stats_log_counts_hits_misses_and_uncacheable_calls() -> None:
    text = ("# a.c\ncache_miss\ndirect_cache_miss\nlocal_storage_miss\nlocal_storage_write\n"
            "preprocessed_cache_miss\n# b.c\ndirect_cache_hit\nlocal_storage_hit\nlocal_storage_read_hit\n"
            "# c.c\npreprocessed_cache_hit\ndirect_cache_miss\nlocal_storage_hit\n"
            "# \ncalled_for_link\n# d.c\ncompile_failed\n")
    stats = parse_stats_log(text)
    assert (stats.hits, stats.misses, stats.uncacheable) == (2, 1, 2)
    assert stats.summary() == "2 hits, 1 misses (67%), 2 uncacheable"
    assert parse_stats_log("").to_json() == {"hits": 0, "misses": 0, "uncacheable": 0, "hit_rate": None}


@pytest.mark.skipif(CCACHE is None, reason="ccache is not installed")
def test_links_for_each_compiler_name_and_none_for_ccaches_own(tmp_path: Path) -> None:
    ccache = Path(str(CCACHE)).resolve()
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("gcc", "x86_64-linux-gnu-gcc-12", "clang", "aarch64-linux-gnu-gcc", "gcc-ar", "ld", "cc1"):
        (tools / name).write_text("#!/bin/sh\n")
        (tools / name).chmod(0o755)
    (tools / "notexec-gcc").write_text("")
    host_masq = tmp_path / "masq"
    host_masq.mkdir()
    (host_masq / "gcc").symlink_to(ccache)
    path = f"{host_masq}:{tools}"
    assert without_masquerade(path, ccache) == str(tools)
    assert compiler_names(path, ccache) == ["aarch64-linux-gnu-gcc", "clang", "gcc",
                                            "x86_64-linux-gnu-gcc-12"]

    cache = CompileCache(ccache=ccache, cache_dir=tmp_path / "cache", workspace=tmp_path / "ws")
    env = cache.prepare(path)
    assert env["PATH"] == f"{cache.bindir}:{tools}"
    assert sorted(p.name for p in cache.bindir.iterdir()) == compiler_names(path, ccache)
    assert all((cache.bindir / n).resolve() == ccache for n in compiler_names(path, ccache))
    # What decides the bytes is fixed whatever a ccache.conf says.
    assert env["CCACHE_BASEDIR"] == "" and env["CCACHE_COMPILERCHECK"] == "content"
    assert env["CCACHE_NOHARDLINK"] == "true" and env["CCACHE_SLOPPINESS"] == ""


def _context(tmp_path: Path) -> Context:
    source = tmp_path / "kernel.toml"
    source.write_text("")
    return Context(workdir=tmp_path / "work", source=source, settings={},
                   stagedir=tmp_path / "work/stages/rebuild", log=logging.getLogger("respin.rebuild"))


def test_ccache_true_without_ccache_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    stage = RebuildStage(RebuildStage.Options(ccache=True))
    with pytest.raises(UsageError, match=r"kernel.toml \[rebuild\] ccache = true: ccache is not installed"):
        stage._compile_cache(_context(tmp_path))
    # Not asked for: no cache, no error.
    assert RebuildStage(RebuildStage.Options())._compile_cache(_context(tmp_path)) is None


@pytest.mark.skipif(CCACHE is None, reason="ccache is not installed")
def test_ccache_dir_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "cachefile").write_text("")
    stage = RebuildStage(RebuildStage.Options(ccache_dir="cachefile"))
    with pytest.raises(ConfigError, match=r"\[rebuild\] ccache_dir .*cachefile: not a directory"):
        stage._compile_cache(_context(tmp_path))


def test_cache_options_are_not_in_the_fingerprint() -> None:
    plain = RebuildStage(RebuildStage.Options()).options_json()
    assert RebuildStage(RebuildStage.Options(ccache=False, ccache_dir="/srv/cache")).options_json() == plain
    assert "ccache" not in plain and "ccache_dir" not in plain


@pytest.mark.skipif(not fixed_topdir_available(), reason="no private mount namespace here")
def test_dirs_mounted_in_rpmbuilds_namespace_are_reachable_by_the_build(tmp_path: Path) -> None:
    """The build (the unprivileged builder, when respin runs as root) reaches the directories
    mounted for it at their seen paths, wherever they are (here under root's 0700 tmp dir)."""
    top, shared = tmp_path / "top", tmp_path / "shared"
    for where in (top, shared):
        where.mkdir()
        give_to_builder(where)
    (top / "marker").write_text("topdir\n")
    (shared / "in").write_text("from the host\n")
    seen = Path("/var/tmp/respin/seen")
    argv = in_fixed_topdir(["sh", "-c", f'cat marker "{seen}/in" && echo back > "{seen}/out"'],
                           top, mounts={seen: shared})
    assert argv is not None
    assert run(argv).stdout == "topdir\nfrom the host\n"
    assert (shared / "out").read_text() == "back\n"
