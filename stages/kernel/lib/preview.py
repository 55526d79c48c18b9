"""The source package as the stages' checks see it before any stage runs (Stage.check).

What is read, and from where: fetch's output when the work dir holds it up to
date (its spec and Sources), else a local SRPM's header and payload, read in
memory through the rpm bindings (nothing unpacked, nothing written). None when
neither is at hand (an SRPM by URL or from a repository, before fetch ran):
the check that needs it is left to the stage's own run.
"""

from __future__ import annotations

import difflib
import functools
import re
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from respin.pipeline.errors import RespinError
from respin.pipeline.stage import Context, PipelineView
from respin.stages.kernel.kinds import PRISTINE_SPEC, SOURCES


@dataclass(frozen=True)
class Source:
    """The spec (its file name and text) and the names of the files the package carries."""

    spec_name: str
    spec: str
    files: tuple[str, ...]


_KERNEL_TARBALL = re.compile(r"linux-[^/]*\.tar(\.\w+)?")


def not_a_kernel(spec_name: str, files: Iterable[str]) -> str | None:
    """Why the package is not a kernel that prep can respin, or None: a kernel SRPM carries
    the Linux tree as a linux-*.tar* source (linux-6.1.tar.xz, linux-source-6.1.tar.xz)."""
    if any(_KERNEL_TARBALL.fullmatch(name) for name in files):
        return None
    return f"{spec_name}: not a kernel package (the SRPM carries no linux-*.tar* source)"


def local_srpm(srpm: str, repo: str | None, resolve: Callable[[str], Path]) -> Path | None:
    """The local file `[fetch] srpm` names (a path or file:// URL); None for a download or a
    package name in a repository."""
    if repo is not None:
        return None
    url = urllib.parse.urlparse(srpm)
    if url.scheme in ("http", "https"):
        return None
    if url.scheme == "file":
        return Path(urllib.parse.unquote(url.path))
    return resolve(srpm)


def source(ctx: Context, pipeline: PipelineView) -> Source | None:
    """The package the run builds, as far as it can be read now (see the module's docstring)."""
    specs, sources = ctx.artifacts(PRISTINE_SPEC), ctx.artifacts(SOURCES)
    if specs and sources:
        spec = specs[0].path
        try:
            return Source(spec.name, spec.read_text(errors="replace"),
                          tuple(sorted(p.name for p in sources[0].path.iterdir())))
        except OSError:
            return None
    fetch = pipeline.stage("fetch")
    options = fetch.options_json() if fetch is not None else {}
    srpm, repo = options.get("srpm"), options.get("repo")
    if not isinstance(srpm, str) or not isinstance(repo, str | None):
        return None
    path = local_srpm(srpm, repo, ctx.resolve)
    if path is None or not path.is_file():
        return None
    st = path.stat()
    return _read(str(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read(path: str, size: int, mtime_ns: int) -> Source | None:
    """The SRPM's spec and file names (cached by path, size and time: each check asks)."""
    from respin.stages.kernel.lib.rpmpkg import payload_files, read_package

    try:
        pkg = read_package(Path(path))
        specs = [f for f in pkg.files if f.endswith(".spec")]
        if not pkg.is_source or len(specs) != 1:
            return None  # fetch refuses it, naming why
        wanted = re.compile(r"(^|/)" + re.escape(specs[0]) + "$")
        for _, data in payload_files(Path(path), wanted):
            return Source(specs[0], data.decode(errors="replace"), tuple(pkg.files))
    except RespinError:
        return None  # a damaged package: fetch says so
    return None


# --- what the spec reads of rpmbuild's --with and --without switches ------------------------

_BCOND = re.compile(r"^[ \t]*%\{?bcond(_with|_without)?\}?[ \t]+([A-Za-z0-9_]+)(?:[ \t]+(\S+))?", re.M)
# `--with X` defines %_with_X and `--without X` %_without_X; a spec reads them directly
# (%{?_with_X:...}, %{!?_without_X:...}) or through %bcond_with / %bcond_without / %bcond.
_READ = re.compile(r"(?<![A-Za-z0-9_])_(with|without)_([A-Za-z0-9_]+)")


def switches(spec: str) -> dict[str, set[str]]:
    """The switch names the spec reads: {"with": {...}, "without": {...}}."""
    read: dict[str, set[str]] = {"with": set(), "without": set()}
    for kind, name in _READ.findall(spec):
        read[kind].add(name)
    for form, name, default in _BCOND.findall(spec):
        if form == "_with" or (form == "" and default.strip() == "0"):
            read["with"].add(name)  # off unless --with
        elif form == "_without" or (form == "" and default.strip() == "1"):
            read["without"].add(name)  # on unless --without
        else:  # a default rpm evaluates: either switch may matter
            read["with"].add(name)
            read["without"].add(name)
    return read


def unread_switch(spec: Source, kind: str, name: str) -> str | None:
    """Why `--<kind> <name>` would change nothing in this spec's build, or None when it reads it."""
    read = switches(spec.spec)[kind]
    if name in read:
        return None
    close = difflib.get_close_matches(name, sorted(read), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    listed = ", ".join(sorted(read)[:12]) + (", ..." if len(read) > 12 else "")
    return (f"'{name}': {spec.spec_name} never reads --{kind} {name}, so the build would ignore it "
            f"({hint}its --{kind} switches: {listed or 'none'})")
