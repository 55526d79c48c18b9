"""initrd-pack: the latest tree packed into a reproducible image (kind "initrd")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from respin.pipeline import fsutil
from respin.pipeline.errors import ConfigError
from respin.pipeline.options import Check, Invalid
from respin.pipeline.stage import Artifact, Context, Stage
from respin.stages.initrd.kinds import INITRD, TREE, Packed
from respin.stages.initrd.lib.codecs import PACK_COMPRESSIONS
from respin.stages.initrd.lib.writer import newc_epoch, pack


def _compression(value: Any) -> str:
    """[initrd-pack] compress: a compression pack writes (codecs.CODECS). Any TOML value is
    checked here, so a number is refused in the same line as a misspelt name."""
    if not isinstance(value, str) or value not in PACK_COMPRESSIONS:
        raise Invalid(f"expected {' or '.join(repr(name) for name in PACK_COMPRESSIONS)}, got {value!r}")
    return value


Compression = Annotated[str, Check(_compression, accepts=Any)]


def _epoch(value: int) -> int:
    """[initrd-pack] source_date_epoch, checked as the file is read: newc's mtime field holds
    0 to 2^32-1."""
    try:
        epoch = newc_epoch(value)
    except ConfigError as exc:
        raise Invalid(str(exc)) from None
    assert epoch is not None
    return epoch


class PackStage(Stage["PackStage.Options"]):
    """Pack the latest tree into a reproducible image in stagedir (kind "initrd")."""

    name = "initrd-pack"
    results = (INITRD,)
    summary = "pack a tree into a reproducible, kernel-readable initrd image"
    version = "2"  # 2: an extracted tree keeps its image's level (and xz dictionary)

    @dataclass(frozen=True)
    class Options:
        output: str = "initrd.img"  # relative: inside the stage's own directory
        compress: Compression | None = None  # default: the extracted image's, else gzip
        level: int | None = None
        early: str | None = None  # a tree to put first, uncompressed (relative to the pipeline file)
        source_date_epoch: Annotated[int | None, Check(_epoch, accepts=int)] = None

    def inputs(self, ctx: Context) -> Sequence[Path]:
        if self.options.early is None:
            return []
        early = ctx.resolve(self.options.early)
        return [p for p in fsutil.walk(early) if p.is_file()] if early.is_dir() else [early]

    def _output(self, ctx: Context) -> Path:
        output = Path(self.options.output)
        return output if output.is_absolute() else ctx.stagedir / output

    def outputs(self, ctx: Context) -> Mapping[str, Path]:
        return {"output": self._output(ctx)}

    def run(self, ctx: Context) -> list[Artifact]:
        tree = ctx.artifact(TREE).path
        output = self._output(ctx)
        epoch = self.options.source_date_epoch
        if epoch is None:
            epoch = newc_epoch(ctx.source_date_epoch)
        result = pack(tree, output, compress=self.options.compress, level=self.options.level,
                      early=ctx.resolve(self.options.early) if self.options.early else None, epoch=epoch)
        for warning in result.warnings:
            ctx.log.warning("%s", warning)
        return [Packed(compression=result.compression, level=result.level, entries=result.entries,
                       size=result.size).artifact(output)]
