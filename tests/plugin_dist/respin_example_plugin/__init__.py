"""A third-party stage distribution: writes a text file, then upper-cases it."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from respin.pipeline import fsutil
from respin.pipeline.stage import Artifact, Context, Stage

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


def register(sub: Any) -> None:
    """The plugin's own sub-command, `respin example-hello`."""
    p = sub.add_parser("example-hello", help="say hello (example plugin)")
    p.set_defaults(func=_hello)


def _hello(args: argparse.Namespace) -> int:
    sys.stdout.write("hello from the example plugin\n")
    return 0


def register_initrd(sub: Any) -> None:
    """A plugin trying to take a built-in command's name: respin must ignore it."""
    p = sub.add_parser("initrd", help="NOT respin's initrd (example plugin)")
    p.set_defaults(func=lambda args: 99)
