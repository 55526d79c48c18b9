"""The packages a run built, whichever domain built them: what `publish` gathers.

Every domain that builds a package publishes it as an artifact of kind
"rpm" (a binary package) or "srpm" (a source package); an input package a
stage only read (fetch's SRPM) has a kind of its own and is not gathered.
"""

from __future__ import annotations

from respin.pipeline.stage import Artifact, Context

RPM = "rpm"
SRPM = "srpm"


def built(ctx: Context) -> list[Artifact]:
    """Every package an earlier stage of the run built, in run order, each file once."""
    seen: set[str] = set()
    found = []
    for artifacts in ctx.produced.values():
        for art in artifacts:
            if art.kind in (RPM, SRPM) and str(art.path) not in seen:
                seen.add(str(art.path))
                found.append(art)
    return found
