"""What every kernel stage of a run shares: its own rpmbuild tree (the work dir's
rpmbuild/, laid out from fetch's pristine copy), the rpm macros of every call, and
the one time its dated outputs carry."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from respin.pipeline import fsutil
from respin.pipeline.errors import ConfigError, InputError
from respin.pipeline.stage import Context
from respin.stages.kernel.kinds import PRISTINE_SPEC, SOURCE_SRPM, SOURCES, Fetched

# What rpm would not take literally in a path it is given (--define _topdir ...): a macro,
# a line break; and what the spec's own scripts, which use %{_sourcedir} and the like
# unquoted, would take for shell syntax.
_NOT_LITERAL = re.compile(r"""[%$`"'\\;&|<>()*?\[\]{}\s]""")


def check_workdir(ctx: Context) -> None:
    """Refuse a work dir whose path rpm or the spec's scripts would not take literally,
    before any rpm call is given it."""
    where = str(ctx.workdir.absolute())
    bad = _NOT_LITERAL.search(where) or next((c for c in where if not c.isprintable()), None)
    if bad is not None:
        char = bad if isinstance(bad, str) else bad.group(0)
        raise ConfigError(f"work dir {where}: holds {char!r}, which rpm cannot take "
                          "literally in a path (a macro, a line break, or shell syntax in the spec's "
                          "scripts): choose another ([pipeline] workdir or --workdir)")


def path(ctx: Context) -> Path:
    """The run's rpmbuild tree (a workspace of each stage that writes it)."""
    check_workdir(ctx)
    return ctx.workdir / "rpmbuild"


def lay_out(ctx: Context) -> Path:
    """Fresh SOURCES and the pristine spec in SPECS; return the spec path.

    SOURCES are hard links to fetch's copy (cheap for a 60 MB tarball);
    respin only ever replaces files there, never writes through a link.
    """
    top = path(ctx)
    for sub in ("BUILD", "RPMS", "SRPMS", "SPECS"):
        (top / sub).mkdir(parents=True, exist_ok=True)
    pristine_sources = ctx.artifact(SOURCES).path
    tmp = fsutil.fresh_dir(top / "SOURCES")
    for entry in sorted(pristine_sources.iterdir()):
        try:
            os.link(entry, tmp / entry.name)
        except OSError:
            shutil.copy2(entry, tmp / entry.name)
    fsutil.commit_dir(tmp, top / "SOURCES")
    spec = pristine_spec(ctx)
    dest = top / "SPECS" / spec.name
    fsutil.atomic_copy(spec, dest)
    return dest


def pristine_spec(ctx: Context) -> Path:
    """The spec as it came in the SRPM (fetch's copy)."""
    return ctx.artifact(PRISTINE_SPEC).path


def run_defines(ctx: Context) -> dict[str, str]:
    """The macros every rpm and rpmbuild call of the run gets: the dist macros fetch found
    the SRPM was made for, then [pipeline] define (which wins)."""
    _, fetched = Fetched.read(ctx)
    return {**fetched.dist_defines, **dict(ctx.settings.get("define") or {})}


def source_date(ctx: Context) -> int:
    """The time of every dated output of a kernel run (changelog entries, commits, the
    build's SOURCE_DATE_EPOCH): the user's ([pipeline] or the environment), else the one
    fetch published from the SRPM (its newest changelog entry, else its build time)."""
    given = ctx.source_date_epoch
    if given is None:
        raise InputError(f"{ctx.artifact(SOURCE_SRPM).path}: has neither a changelog nor a build time "
                         "to date the rebuild by: set source_date_epoch in [pipeline] or SOURCE_DATE_EPOCH")
    return given
