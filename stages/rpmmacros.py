"""rpm macros that make a build repeatable, for every stage that runs rpmbuild."""

from __future__ import annotations

REPRO_MACROS: dict[str, str] = {
    # rpm's own reproducibility switches: build time and file mtimes from
    # SOURCE_DATE_EPOCH, and one build host whatever machine builds.
    "use_source_date_epoch_as_buildtime": "1",
    "clamp_mtime_to_source_date_epoch": "1",
    "_buildhost": "respin.build",
}
