"""The run's own rpmbuild tree (work dir's rpmbuild/), laid out from fetch's pristine copy."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from respin.pipeline import fsutil
from respin.pipeline.stage import Context


def lay_out(ctx: Context) -> Path:
    """Fresh SOURCES and the pristine spec in SPECS; return the spec path.

    SOURCES are hard links to fetch's copy (cheap for a 60 MB tarball);
    respin only ever replaces files there, never writes through a link.
    """
    top = ctx.topdir
    for sub in ("BUILD", "RPMS", "SRPMS", "SPECS"):
        (top / sub).mkdir(parents=True, exist_ok=True)
    pristine_sources = ctx.artifact("sources").path
    tmp = fsutil.fresh_dir(top / "SOURCES")
    for entry in sorted(pristine_sources.iterdir()):
        try:
            os.link(entry, tmp / entry.name)
        except OSError:
            shutil.copy2(entry, tmp / entry.name)
    fsutil.commit_dir(tmp, top / "SOURCES")
    spec = ctx.artifacts("spec")[0].path
    dest = top / "SPECS" / spec.name
    fsutil.atomic_copy(spec, dest)
    return dest


def pristine_spec(ctx: Context) -> Path:
    """The spec as it came in the SRPM (fetch's copy)."""
    for art in ctx.produced.get("fetch", []):
        if art.kind == "spec":
            return art.path
    return ctx.artifacts("spec")[0].path


def run_defines(ctx: Context) -> dict[str, str]:
    """The macros every rpm and rpmbuild call of the run gets: the dist macros fetch found
    the SRPM was made for, then [pipeline] define (which wins)."""
    fetched = ctx.artifact("source-srpm").meta
    return {**dict(fetched.get("dist_defines") or {}), **dict(ctx.settings.get("define") or {})}
