"""How a kernel stage lays out an rpmbuild topdir of its own, from what an earlier stage
handed it (fetch's pristine copy, inject's build input); the rpm macros of every call;
and the one time the run's dated outputs carry."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from respin.pipeline import fsutil
from respin.pipeline.errors import ConfigError, InputError
from respin.pipeline.stage import Context
from respin.stages.kernel.kinds import BUILD_INPUT, PRISTINE_SPEC, SOURCE_SRPM, SOURCES, SPEC, Fetched

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


def lay_out(top: Path, spec: Path, sources: Path) -> Path:
    """`top`'s SPECS and SOURCES afresh: hard links to `spec` and to the files of `sources`
    (an earlier stage's, cheap for a 60 MB tarball); return the spec's path in `top`.

    Nothing is written through a link: respin replaces a file by rename, and a build
    reads them (as root, the builder may not write them). Only a regular file is taken:
    a symlink would be linked or copied as what it points to, which root may read and a
    build may not (fetch refuses them already; this is the rule where the tree is made).
    """
    given = (("SPECS", [spec]), ("SOURCES", sorted(sources.iterdir())))
    for entry in (e for _, files in given for e in files):  # all checked before any is laid out
        what = fsutil.not_regular(os.lstat(entry).st_mode)
        if what is not None:
            raise InputError(f"{entry}: is {what}; a build is given only regular files")
    for sub, files in given:
        tmp = fsutil.fresh_dir(top / sub)
        for entry in files:
            try:
                os.link(entry, tmp / entry.name, follow_symlinks=False)
            except OSError:
                shutil.copy2(entry, tmp / entry.name, follow_symlinks=False)
        fsutil.commit_dir(tmp, top / sub)
    return top / "SPECS" / spec.name


def pristine(ctx: Context) -> tuple[Path, Path]:
    """The spec and the SOURCES directory as they came in the SRPM (fetch's copy)."""
    check_workdir(ctx)
    return ctx.artifact(PRISTINE_SPEC).path, ctx.artifact(SOURCES).path


def build_input(ctx: Context) -> tuple[Path, Path]:
    """The spec and the SOURCES directory that build the change (inject's build input)."""
    check_workdir(ctx)
    top = ctx.artifact(BUILD_INPUT).path
    return ctx.artifact(SPEC).path, top / "SOURCES"


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
