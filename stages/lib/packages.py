"""The packages a run built, whichever domain built them: what `publish` gathers.

The kernel's builds publish theirs as artifacts of kind "rpm" (a binary
package) and "srpm" (a source package); another domain's package has a kind
of its own ending in "-rpm" (the network stage's "network-rpm"), so a stage
that reads the kernel's packages (verify) never takes it for one, and
publish still gathers it. An input package a stage only read (fetch's SRPM)
has a kind of its own and is not gathered.
"""

from __future__ import annotations

from respin.pipeline.stage import Artifact, Context

RPM = "rpm"
SRPM = "srpm"


def is_package(kind: str) -> bool:
    """Whether an artifact of `kind` is a package the run built."""
    return kind in (RPM, SRPM) or kind.endswith("-rpm")


def built(ctx: Context) -> list[Artifact]:
    """Every package an earlier stage of the run built, in run order, each file once."""
    seen: set[str] = set()
    found = []
    for artifacts in ctx.produced.values():
        for art in artifacts:
            if is_package(art.kind) and str(art.path) not in seen:
                seen.add(str(art.path))
                found.append(art)
    return found
