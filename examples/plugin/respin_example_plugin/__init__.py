"""An example respin plugin: two stages, a pipeline template and a sub-command.

`example-write` writes a text file (from `text`, or the content of `source`);
`example-upper` upper-cases what the stage before it wrote. Installed next to
respin (`pip install examples/plugin`), `respin stages` lists them and a
pipeline file uses them as it uses the built-in ones:

    [example-write]
    source = "notes.txt"

    [example-upper]
    suffix = "!"
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from respin import Artifact, Context, Stage
from respin.pipeline import fsutil

# A named stage sequence: a pipeline file with `template = "example"` (or only these
# stages' tables) runs them in this order.
PIPELINE = ("example-write", "example-upper")

TEXT = "text"  # the kind both stages publish: what a later stage asks for


class WriteStage(Stage["WriteStage.Options"]):
    """Write `text` (or the content of `source`) to out.txt."""

    name = "example-write"
    summary = "write a text file (example plugin)"

    @dataclass(frozen=True)
    class Options:
        text: str = "hello"
        source: str | None = None  # relative to the pipeline file
        fail: bool = False  # fail on purpose (the engine's tests use it)

    def inputs(self, ctx: Context) -> list[Path]:
        # A file outside the work dir whose content decides the output: an edit reruns us.
        return [ctx.resolve(self.options.source)] if self.options.source else []

    def run(self, ctx: Context) -> list[Artifact]:
        if self.options.fail:
            raise RuntimeError("asked to fail")
        text = ctx.resolve(self.options.source).read_text() if self.options.source else self.options.text
        out = ctx.stagedir / "out.txt"
        fsutil.atomic_write(out, text)
        return [Artifact(out, TEXT)]


class UpperStage(Stage["UpperStage.Options"]):
    """Upper-case the earlier stage's text."""

    name = "example-upper"
    summary = "upper-case the text (example plugin)"
    results = (TEXT,)  # what `respin run` prints as the run's result

    @dataclass(frozen=True)
    class Options:
        suffix: str = ""

    def run(self, ctx: Context) -> list[Artifact]:
        src = ctx.artifact(TEXT).path
        out = ctx.stagedir / "upper.txt"
        fsutil.atomic_write(out, src.read_text().upper() + self.options.suffix)
        return [Artifact(out, TEXT)]


def register(sub: Any) -> None:
    """The plugin's own sub-command, `respin example-hello`."""
    p = sub.add_parser("example-hello", help="say hello (example plugin)")
    p.set_defaults(func=_hello)


def _hello(args: argparse.Namespace) -> int:
    sys.stdout.write("hello from the example plugin\n")
    return 0
