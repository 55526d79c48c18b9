"""`respin net`: render, script and check from the command line.

    respin net render net.toml --root IMAGE_ROOT [--backend B] [--rt-tables d|merge] [--force]
    respin net script net.toml > setup.sh
    respin net check net.toml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from respin.pipeline.cli import lists_problems
from respin.stages.network.lib import script
from respin.stages.network.lib.model import load_model, load_model_options
from respin.stages.network.lib.options import StageOptions
from respin.stages.network.lib.render import BACKENDS, render_for_root
from respin.stages.network.lib.root import stage_into_root


def _render(args: argparse.Namespace) -> int:
    # The file's own `backend` and `rt_tables` count, as in `respin run`; options override them.
    model, options = load_model_options(Path(args.file), StageOptions)
    backend = args.backend or options.backend
    rt_tables_mode = args.rt_tables or options.rt_tables
    root = Path(args.root)
    files, merged = render_for_root(model, backend, rt_tables_mode, root)
    changes = stage_into_root(files, root, merged=merged, force=args.force)
    for change in changes:
        sys.stdout.write(f"{change.action:9} {change.path}\n")
    return 0


def _script(args: argparse.Namespace) -> int:
    model = load_model(Path(args.file))
    sys.stdout.write(script.render(model))
    return 0


@lists_problems  # one line per problem, as `respin check` gives a pipeline file's
def _check(args: argparse.Namespace) -> int:
    model = load_model(Path(args.file))
    parts = [f"{model.device} {model.address} via {model.gateway}"]
    parts += [f"{a.label} {a.address} via {a.gateway} table {a.table.name} ({a.table.id})"
              for a in model.aliases]
    sys.stdout.write(f"{args.file}: ok: {'; '.join(parts)}\n")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `net` and its sub-commands to the main parser's sub-commands."""
    net = sub.add_parser("net", help="policy-routing files for two gateways on one host",
                         description="Render, script or check a network model (a file of its own "
                                     "or a pipeline file's [network] section).")
    net_sub = net.add_subparsers(dest="net_command", metavar="NET_COMMAND", required=True)

    p = net_sub.add_parser("render", help="render the files and stage them into an image root")
    p.add_argument("file", help="network model (TOML)")
    p.add_argument("--root", required=True, help="image root to stage into")
    p.add_argument("--backend", choices=BACKENDS,
                   help="network stack to render for (default: the file's `backend`, else initscripts)")
    p.add_argument("--rt-tables", choices=("d", "merge"),
                   help="initscripts: stage rt_tables.d/<name>.conf or merge into rt_tables "
                        "(default: the file's `rt_tables`, else d)")
    p.add_argument("--force", action="store_true",
                   help="replace files respin did not write or that were changed since")
    p.set_defaults(func=_render)

    p = net_sub.add_parser("script", help="print an idempotent `ip` script for a running host")
    p.add_argument("file", help="network model (TOML)")
    p.set_defaults(func=_script)

    p = net_sub.add_parser("check", help="validate the model only")
    p.add_argument("file", help="network model (TOML)")
    p.set_defaults(func=_check)
