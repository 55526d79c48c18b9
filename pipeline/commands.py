"""The `repro` and `makefile` sub-commands (registered by the CLI; the engine loads on use)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from respin.pipeline.cli import overrides
from respin.pipeline.errors import CheckFailed


def _cmd_repro(args: argparse.Namespace) -> int:
    from respin.pipeline.progress import Progress
    from respin.pipeline.repro import repro

    report = repro(Path(args.file), overrides(args), base=Path(args.base).resolve() if args.base else None,
                   pause=args.pause, keep=args.keep, progress=Progress(quiet=args.quiet or args.json))
    if args.json:
        json.dump(report.to_json(), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        for diff in report.differences:
            sys.stdout.write(f"differs: {diff.line()}\n")
        if report.identical:
            sys.stdout.write(f"identical: {len(report.compared)} artifact(s) the same in both runs\n")
    if not report.identical:
        names = ", ".join(sorted({d.path for d in report.differences}))
        where = (f"work dirs kept: {' and '.join(str(w) for w in report.workdirs)}" if report.workdirs
                 else "work dirs removed; --keep keeps them")
        raise CheckFailed(f"{len(report.differences)} difference(s) between two runs: {names} ({where})")
    return 0


def _cmd_makefile(args: argparse.Namespace) -> int:
    from respin.pipeline import fsutil
    from respin.pipeline.makefile import render
    from respin.pipeline.pipelinefile import load

    pipeline = load(Path(args.file), overrides(args))
    out = Path(args.output).absolute() if args.output else None
    text = render(pipeline, out.parent if out else Path.cwd(), prefix=args.prefix, target=args.target)
    if out is None:
        sys.stdout.write(text)
    else:
        fsutil.atomic_write(out, text)
    return 0


def register(sub: Any) -> None:
    """Add `repro` and `makefile` to the CLI's sub-parsers."""
    p = sub.add_parser("repro", help="run a pipeline twice in fresh dirs; name every artifact that differs")
    p.add_argument("file", help="pipeline file (TOML)")
    p.add_argument("--target", help="override [pipeline] target")
    p.add_argument("--base", help="make the two work dirs here (default: a fresh temp dir)")
    p.add_argument("--keep", action="store_true",
                   help="keep the two work dirs (default: removed, whatever the outcome)")
    p.add_argument("--pause", type=float, default=1.5, help="seconds between the runs (default 1.5)")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON on stdout")
    p.set_defaults(func=_cmd_repro)

    p = sub.add_parser("makefile", help="a make include: one target per stage, with stamp files")
    p.add_argument("file", help="pipeline file (TOML)")
    p.add_argument("--target", help="override [pipeline] target")
    p.add_argument("-o", "--output", help="write here (default: stdout); paths are relative to its folder")
    p.add_argument("--prefix", default="", help="prefix of the target names (default: none)")
    p.set_defaults(func=_cmd_makefile)
