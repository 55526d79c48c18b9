"""rpmbuild options shared by every stage that runs it: the macros that make a build
repeatable, and the switches rpmbuild and mock take alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
