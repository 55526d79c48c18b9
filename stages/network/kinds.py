"""What the network stage hands the stages after it.

NETFILES is the rendered files as a tree of image-relative paths (what
`[initrd-modify] add = { "/" = "@netfiles" }` merges into an image); with an
image root, NETSTATE (respin's record of what it staged there) and one STAGED
artifact per file staged; with `rpm`, the noarch RPM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from respin.pipeline.stage import Handoff

NETFILES = "netfiles"
NETSTATE = "netstate"
# Each file staged into an image root is an output: a hand edit of it makes the runner
# rerun the stage (`status` names the file), and the rerun refuses.
STAGED = "staged"
RPM = "network-rpm"  # a package of its own kind: verify reads the kernel's "rpm" alone


@dataclass(frozen=True)
class Rendered(Handoff):
    """The files rendered, for one network stack."""

    kind: ClassVar[str] = NETFILES
    backend: str
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class InRoot(Handoff):
    """A file staged into (or the record kept in) an image root."""

    kind: ClassVar[str] = STAGED
    root: str
