"""initrd-extract: every part of an image, safely, into a tree (kind "tree").

With initrd-modify and initrd-pack after it, a Makefile rebuilds an initrd
after a kernel rebuild: extract, change files, pack again. Each stage writes
only inside its own stagedir.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from respin.pipeline.errors import ConfigError
from respin.pipeline.options import Check, Invalid
from respin.pipeline.stage import Artifact, Context, Stage
from respin.stages.initrd.kinds import INITRD, Extracted
from respin.stages.initrd.lib.reader import parse_count, parse_size
from respin.stages.initrd.lib.unpack import extract


def _size(text: str) -> int:
    """[initrd-extract] max_size, checked as the file is read: a size such as 512M or 4G."""
    try:
        return parse_size(text)
    except ConfigError:
        raise Invalid(f"{text!r}: want a positive size such as 512M or 4G") from None


def _count(value: int) -> int:
    try:
        return parse_count(value)
    except ConfigError:
        raise Invalid(f"{value}: want a positive whole number such as 2000000") from None


class ExtractStage(Stage["ExtractStage.Options"]):
    """Extract every part of an image safely into stagedir/tree (main/, early/, manifest)."""

    name = "initrd-extract"
    summary = "extract an initrd image (every part, safely) into a tree"
    version = "2"  # 2: the manifest records each part's level; the record of what was written

    @dataclass(frozen=True)
    class Options:
        image: str | None = None  # default: the "initrd" an earlier stage produced
        max_size: Annotated[int | None, Check(_size)] = None  # default 2G (lib/reader.py)
        max_entries: Annotated[int | None, Check(_count, accepts=int)] = None  # default 1000000
        privileged: bool = False

    def _image(self, ctx: Context) -> Path:
        if self.options.image is not None:
            return ctx.resolve(self.options.image)
        return ctx.artifact(INITRD).path

    def inputs(self, ctx: Context) -> Sequence[Path]:
        return [ctx.resolve(self.options.image)] if self.options.image is not None else []

    def run(self, ctx: Context) -> list[Artifact]:
        out = ctx.stagedir / "tree"
        # The tree is this stage's output in the work dir, which respin owns: the runner
        # reruns the stage when it was touched (`respin status` says so) and it is replaced.
        # Changes to the image belong in [initrd-modify].
        result = extract(self._image(ctx), out, privileged=self.options.privileged,
                         max_size=self.options.max_size or parse_size(None),
                         max_entries=self.options.max_entries or parse_count(None), force=True)
        for warning in result.warnings:
            ctx.log.warning("%s", warning)
        ctx.log.info("extracted %d entries from %d part(s)", result.entries, len(result.parts))
        return [Extracted(entries=result.entries, parts=len(result.parts), trees=result.trees).artifact(out)]
