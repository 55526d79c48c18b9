"""What the initrd stages hand each other (and any stage after them).

initrd-extract and initrd-modify publish a TREE (main/, early/ and the
manifest of what the disk cannot keep); initrd-pack reads the latest and
publishes an INITRD, which initrd-extract also reads when no image is named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from respin.pipeline.stage import Handoff

TREE = "tree"  # an extracted image: main/, early/, the manifest
INITRD = "initrd"  # a packed image


@dataclass(frozen=True)
class Extracted(Handoff):
    """initrd-extract: what the image held."""

    kind: ClassVar[str] = TREE
    entries: int
    parts: int
    trees: list[str] = field(default_factory=list)  # "early", "main": those the image has


@dataclass(frozen=True)
class Packed(Handoff):
    """initrd-pack: how the image was written."""

    kind: ClassVar[str] = INITRD
    compression: str
    level: int
    entries: int
    size: int
