"""initrd-extract: every part of an image, safely, into a tree (kind "tree").

With initrd-modify and initrd-pack after it, a Makefile rebuilds an initrd
after a kernel rebuild: extract, change files, pack again. Each stage writes
only inside its own stagedir.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from respin.pipeline.errors import ConfigError
from respin.pipeline.stage import Artifact, Context, Stage
from respin.stages.initrd.kinds import INITRD, Extracted
from respin.stages.initrd.lib.extract import extract
from respin.stages.initrd.lib.reader import parse_count, parse_size


class ExtractStage(Stage["ExtractStage.Options"]):
    """Extract every part of an image safely into stagedir/tree (main/, early/, manifest)."""

    name = "initrd-extract"
    summary = "extract an initrd image (every part, safely) into a tree"
    version = "2"  # 2: the manifest records each part's level; the record of what was written

    @dataclass(frozen=True)
    class Options:
        image: str | None = None  # default: the "initrd" an earlier stage produced
        max_size: str | None = None
        max_entries: int | None = None  # default 1000000 (lib/reader.py says why)
        privileged: bool = False

    def _image(self, ctx: Context) -> Path:
        if self.options.image is not None:
            return ctx.resolve(self.options.image)
        return ctx.artifact(INITRD).path

    def _max_entries(self) -> int:
        try:
            return parse_count(self.options.max_entries)
        except ConfigError:
            raise ConfigError(f"[{self.name}] max_entries: {self.options.max_entries}: want a "
                              "positive whole number") from None

    def inputs(self, ctx: Context) -> Sequence[Path]:
        return [ctx.resolve(self.options.image)] if self.options.image is not None else []

    def run(self, ctx: Context) -> list[Artifact]:
        out = ctx.stagedir / "tree"
        # The tree is this stage's output in the work dir, which respin owns: the runner
        # reruns the stage when it was touched (`respin status` says so) and it is replaced.
        # Changes to the image belong in [initrd-modify].
        result = extract(self._image(ctx), out, privileged=self.options.privileged,
                         max_size=parse_size(self.options.max_size),
                         max_entries=self._max_entries(), force=True)
        for warning in result.warnings:
            ctx.log.warning("%s", warning)
        ctx.log.info("extracted %d entries from %d part(s)", result.entries, len(result.parts))
        return [Extracted(entries=result.entries, parts=len(result.parts), trees=result.trees).artifact(out)]
