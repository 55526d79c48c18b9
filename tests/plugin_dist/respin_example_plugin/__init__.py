"""A third-party stage distribution: writes a text file, then upper-cases it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline import fsutil
from pipeline.stage import Artifact, Context, Stage

PIPELINE = ("example-write", "example-upper")


class WriteStage(Stage):
    """Write `text` (or the content of `source`) to out.txt."""

    name = "example-write"
    summary = "write a text file (example plugin)"

    @dataclass(frozen=True)
    class Options:
        text: str = "hello"
        source: str | None = None
        fail: bool = False

    def inputs(self, ctx: Context) -> list[Path]:
        return [ctx.resolve(self.options.source)] if self.options.source else []

    def run(self, ctx: Context) -> list[Artifact]:
        if self.options.fail:
            raise RuntimeError("asked to fail")
        text = ctx.resolve(self.options.source).read_text() if self.options.source else self.options.text
        out = ctx.stagedir / "out.txt"
        fsutil.atomic_write(out, text)
        return [Artifact(out, "text")]


class UpperStage(Stage):
    """Upper-case the earlier stage's text."""

    name = "example-upper"
    summary = "upper-case the text (example plugin)"

    @dataclass(frozen=True)
    class Options:
        pass

    def run(self, ctx: Context) -> list[Artifact]:
        src = ctx.artifact("text").path
        out = ctx.stagedir / "upper.txt"
        fsutil.atomic_write(out, src.read_text().upper())
        return [Artifact(out, "text")]
