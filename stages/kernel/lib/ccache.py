"""A compile cache for the rebuild stage's rpmbuild: ccache through masquerade links.

Every rebuild unpacks a fresh tree and Fedora's spec runs `make mrproper` per
flavour, so without a cache each config-only rebuild is a full kernel compile.

The spec's `make` is left alone: a directory of links named like the
compilers on PATH (gcc, cc, x86_64-linux-gnu-gcc-12, clang...) pointing at
ccache goes first on PATH for the rpmbuild command only. The kernel's CC
(`$(CROSS_COMPILE)gcc`) and HOSTCC (gcc: fixdep, kconfig, objtool, modpost)
both find those links, and ccache runs the real compiler it finds further on.

The output must not change by a byte, so the settings that decide what a
compile produces or whether a hit is right are fixed here, whatever a
ccache.conf says (a shared cache dir's ccache.conf may still set its size):

- no `base_dir`: ccache would rewrite absolute paths under it into relative
  ones on the compiler's command line, changing `__FILE__` and the debug
  info. It is not needed for hits across work dirs either: rpmbuild already
  runs at one fixed topdir path, so the compiler sees the same paths (and
  the same working directory, which stays hashed) from every work dir;
- `compiler_check = content`: the key covers the compiler binary itself, not
  its mtime, so a cache dir shared between hosts or images is safe;
- no sloppiness, the second preprocessor run kept, and no hard links: the
  kernel's objtool rewrites objects in place, which would change a
  hard-linked cache entry.

The counters of this build alone come from ccache's stats log (one file per
build, in the stage's dir) rather than `--zero-stats`, which would reset the
counters of a cache dir other builds share while they run.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from respin.pipeline.errors import InputError
from respin.stages.kernel.lib.rpmpkg import give_to_builder

# Where a build in rpmbuild's mount namespace sees this build's links and stats log, and the
# cache dir (on its tmpfs over /var/tmp): paths that do not change what a compile produces.
SEEN_WORKSPACE = Path("/var/tmp/respin/ccache-run")
SEEN_CACHE = Path("/var/tmp/respin/ccache")

# Compiler names worth a link: gcc, g++, cc, c++, clang, clang++, with a
# target prefix (x86_64-linux-gnu-gcc) and/or a version (gcc-12, clang-16).
_COMPILER = re.compile(r"(?:[A-Za-z0-9_.]+-)*(?:gcc|g\+\+|cc|c\+\+|clang|clang\+\+)(?:-[0-9][0-9.]*)?")

# Counters in the stats log that are neither a hit, a miss nor storage traffic:
# calls ccache passed straight to the compiler (links, preprocessing, configure
# tests, failed compiles...).
_HITS = ("direct_cache_hit", "preprocessed_cache_hit")
_MISS = "cache_miss"
_NOT_CALLS = re.compile(r"(?:direct_cache_miss|preprocessed_cache_miss|local_storage_\w+|"
                        r"remote_storage_\w+|recache)")


@dataclass(frozen=True)
class CacheStats:
    """What ccache did during one build."""

    hits: int
    misses: int
    uncacheable: int  # calls ccache handed to the compiler uncached (links, -E, failed compiles...)

    @property
    def hit_rate(self) -> float | None:
        calls = self.hits + self.misses
        return self.hits / calls if calls else None

    def to_json(self) -> dict[str, Any]:
        rate = self.hit_rate
        return {"hits": self.hits, "misses": self.misses, "uncacheable": self.uncacheable,
                "hit_rate": round(rate, 4) if rate is not None else None}

    def summary(self) -> str:
        rate = self.hit_rate
        return (f"{self.hits} hits, {self.misses} misses"
                + (f" ({rate:.0%})" if rate is not None else "")
                + (f", {self.uncacheable} uncacheable" if self.uncacheable else ""))


def parse_stats_log(text: str) -> CacheStats:
    """Count hits and misses in a ccache stats log (`# source` lines, then one counter a line)."""
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            counts[line] += 1
    uncacheable = sum(n for name, n in counts.items()
                      if name not in (*_HITS, _MISS) and not _NOT_CALLS.fullmatch(name))
    return CacheStats(hits=sum(counts[h] for h in _HITS), misses=counts[_MISS], uncacheable=uncacheable)


def find_ccache(path: str) -> Path | None:
    """The ccache program on `path` (a PATH string), resolved, or None."""
    found = shutil.which("ccache", path=path)
    return Path(found).resolve() if found else None


def _is_ccache(candidate: Path, ccache: Path) -> bool:
    try:
        return candidate.resolve() == ccache or candidate.resolve().name == "ccache"
    except OSError:
        return False


def without_masquerade(path: str, ccache: Path | None) -> str:
    """`path` without directories whose gcc or cc is ccache (a host's own masquerade dir):
    the cache is respin's to decide, on or off."""
    kept = []
    for entry in path.split(os.pathsep):
        if entry and ccache is not None and any(
                _is_ccache(Path(entry) / name, ccache) for name in ("gcc", "cc")
                if (Path(entry) / name).exists()):
            continue
        kept.append(entry)
    return os.pathsep.join(kept)


def compiler_names(path: str, ccache: Path) -> list[str]:
    """Names of the C/C++ compilers on `path`, each once, ccache's own links left out."""
    names: set[str] = set()
    for entry in path.split(os.pathsep):
        try:
            listing = list(Path(entry or ".").iterdir())
        except OSError:
            continue
        for candidate in listing:
            if (_COMPILER.fullmatch(candidate.name) and os.access(candidate, os.X_OK)
                    and not candidate.is_dir() and not _is_ccache(candidate, ccache)):
                names.add(candidate.name)
    return sorted(names)


@dataclass(frozen=True)
class CompileCache:
    """ccache for one rpmbuild command: the cache dir, and this build's links and stats log."""

    ccache: Path  # the ccache program
    cache_dir: Path
    workspace: Path  # this build's own: bin/ (the links) and stats.log

    @property
    def bindir(self) -> Path:
        return self.workspace / "bin"

    @property
    def stats_log(self) -> Path:
        return self.workspace / "stats.log"

    def mounts(self) -> dict[Path, Path]:
        """Where a build in rpmbuild's mount namespace sees the two directories (seen path ->
        directory): at fixed paths, which an unprivileged build reaches wherever the work dir is."""
        return {SEEN_WORKSPACE: self.workspace, SEEN_CACHE: self.cache_dir}

    def prepare(self, path: str, *, seen: bool = False) -> dict[str, str]:
        """Make the links and an empty stats log, all the builder's; the environment for
        rpmbuild (`path` is the PATH it would have had; `seen`: the build sees the directories
        where `mounts` puts them)."""
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"[rebuild] ccache_dir {self.cache_dir}: cannot create it "
                             f"({exc.strerror})") from exc
        if not os.access(self.cache_dir, os.W_OK | os.X_OK):
            raise InputError(f"[rebuild] ccache_dir {self.cache_dir}: not writable")
        shutil.rmtree(self.workspace, ignore_errors=True)
        self.bindir.mkdir(parents=True)
        path = without_masquerade(path, self.ccache)
        for name in compiler_names(path, self.ccache):
            (self.bindir / name).symlink_to(self.ccache)
        self.stats_log.touch()
        give_to_builder(self.workspace)
        give_to_builder(self.cache_dir)
        workspace, cache_dir = (SEEN_WORKSPACE, SEEN_CACHE) if seen else (self.workspace, self.cache_dir)
        return {
            "PATH": os.pathsep.join([str(workspace / "bin"), path]),
            "CCACHE_DIR": str(cache_dir),
            "CCACHE_STATSLOG": str(workspace / "stats.log"),
            "CCACHE_BASEDIR": "",
            "CCACHE_HASHDIR": "true",
            "CCACHE_COMPILERCHECK": "content",
            "CCACHE_SLOPPINESS": "",
            "CCACHE_CPP2": "true",
            "CCACHE_NOHARDLINK": "true",
        }

    def stats(self) -> CacheStats:
        """This build's hits and misses."""
        try:
            return parse_stats_log(self.stats_log.read_text(errors="replace"))
        except FileNotFoundError:
            return CacheStats(0, 0, 0)
