"""rpmbuild options shared by every stage that runs it: the macros that make a build
repeatable, the run's own macros, and the switches rpmbuild and mock take alike.

One set of macros for the whole run: every rpm and rpmbuild call gets the same
definitions ([pipeline] define, plus the dist macros the SRPM was made for) and an
empty HOME, so no call reads the user's ~/.rpmmacros and a build does not depend on
who runs it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

REPRO_MACROS: dict[str, str] = {
    # rpm's own reproducibility switches: build time and file mtimes from
    # SOURCE_DATE_EPOCH, and one build host whatever machine builds.
    "use_source_date_epoch_as_buildtime": "1",
    "clamp_mtime_to_source_date_epoch": "1",
    "_buildhost": "respin.build",
}


def build_switches(target: str | None, with_: Sequence[str], without: Sequence[str],
                   macros: Mapping[str, str]) -> list[str]:
    """--target, --with/--without and --define options, as rpmbuild and mock both take them."""
    argv = [f"--target={target}"] if target else []
    for sw in with_:
        argv += ["--with", sw]
    for sw in without:
        argv += ["--without", sw]
    for key, value in macros.items():
        argv += ["--define", f"{key} {value}"]
    return argv


# The distribution tag a release ends with (.fc37, .el9_2, .eln126), and the macro that
# names its version where rpm has one.
DIST_TAG = re.compile(r"\.(fc|eln|el|mga|amzn)(\d+)(?:_\d+)*$")
_DIST_MACRO = {"fc": "fedora", "el": "rhel"}


def dist_defines(release: str, host_dist: str, given: Mapping[str, str]) -> dict[str, str]:
    """%dist and %fedora/%rhel as the SRPM was made (release 200.fc37: dist .fc37, fedora 37),
    when the host's rpm defines no %dist and the run does not define them itself.

    Without them a Fedora kernel spec quietly builds its RHEL flavour, and the rebuilt
    package loses its .fc37.
    """
    m = DIST_TAG.search(release)
    if m is None or host_dist or "dist" in given:
        return {}
    out = {"dist": m.group(0)}
    macro = _DIST_MACRO.get(m.group(1))
    if macro and macro not in given:
        out[macro] = m.group(2)
    return out


def empty_home(stagedir: Path) -> dict[str, str]:
    """The environment entry that keeps ~/.rpmmacros out: HOME at a fresh, empty directory."""
    home = stagedir / "home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    return {"HOME": str(home)}
