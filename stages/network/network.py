"""The `network` stage: render the model and stage the files.

Its `[network]` table holds the model (device, address, gateway,
`[[network.alias]]`) and where the files go:

- always: a `netfiles` directory in the stage dir, paths relative to an
  image root, for the initrd stages to add to an initrd (`[initrd-modify]
  add = { "/" = "@netfiles" }` merges it into the image's root);
- `root = "DIR"`: staged into that image root (see lib/root.py);
- `rpm = { name = "...", version = "..." }`: a noarch RPM that installs them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from respin.pipeline.errors import ConfigError
from respin.pipeline.stage import Artifact, Context, Stage
from respin.stages.network.kinds import NETFILES, NETSTATE, RPM, InRoot, Rendered
from respin.stages.network.lib.model import ModelOptions, NetworkModel, model_of, read_model
from respin.stages.network.lib.options import StageOptions
from respin.stages.network.lib.render import render_for_root
from respin.stages.network.lib.root import STATE_PATH, stage_into_root, write_tree
from respin.stages.network.lib.rpm import build_rpm

NETFILES_DIR = "netfiles"
# What replaces a changed file in a pipeline. `respin run --force` only reruns stages: it
# does not mean "overwrite my edits", so a stage option must say so.
PIPELINE_REPLACE_HINT = ("set force = true in [network] to replace it; "
                         "`respin run --force` only reruns the stage")


class NetworkStage(Stage[StageOptions]):
    """Render policy-routing files for a second gateway and stage them."""

    name = "network"
    results = (NETFILES,)
    summary = "render policy-routing files (two gateways on one host) and stage them"
    version = "3"  # 2: the noarch RPM shares the kernel builds' build host; 3: staged files are outputs

    Options = StageOptions

    def __init__(self, options: StageOptions, where: str = "[network]",
                 model: NetworkModel | None = None) -> None:
        super().__init__(options)
        opts = options
        self.model = model if model is not None else model_of(opts, where)
        if opts.rpm is not None and opts.rt_tables == "merge":
            raise ConfigError(f"{where}: rt_tables: 'merge' cannot go into an RPM (rt_tables belongs "
                              "to the iproute package); use the default 'd'")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], where: str) -> Stage[Any]:
        """The options and the model in one pass, every problem in either found."""
        model, options = read_model(table, where, "", cls.Options)
        return cls(options, where, model)

    def options_json(self) -> dict[str, Any]:
        """The normalised model plus the staging keys."""
        opts = self.options
        data = self.model.to_json()
        model_keys = {f.name for f in dataclasses.fields(ModelOptions)}
        data.update({k: v for k, v in dataclasses.asdict(opts).items() if k not in model_keys})
        return data

    def _root(self, ctx: Context) -> Path | None:
        opts = self.options
        return ctx.resolve(opts.root) if opts.root is not None else None

    def outputs(self, ctx: Context) -> Mapping[str, Path]:
        root = self._root(ctx)
        return {"root": root} if root is not None else {}

    def run(self, ctx: Context) -> list[Artifact]:
        """Render once; write the netfiles tree, then the root and the RPM if asked for."""
        opts = self.options
        root = self._root(ctx)
        files, merged = render_for_root(self.model, opts.backend, opts.rt_tables, root)
        paths = sorted(files)
        netfiles = ctx.stagedir / NETFILES_DIR
        write_tree(files, netfiles)
        out = [Rendered(backend=opts.backend, files=paths).artifact(netfiles)]
        if root is not None:
            changes = stage_into_root(files, root, merged=merged, force=opts.force,
                                      replace_hint=PIPELINE_REPLACE_HINT)
            for change in changes:
                if change.action != "unchanged":
                    ctx.log.info("%s %s", change.action, change.path)
            out.append(InRoot(root=str(root)).artifact(root / STATE_PATH, NETSTATE))
            # rt_tables merged into counts too (not as an input, which the merge itself would
            # change, making the next run rerun): an edit of it reruns the merge, which keeps it.
            out += [InRoot(root=str(root)).artifact(root / rel) for rel in paths]
        if opts.rpm is not None:
            description = (f"Policy-routing configuration for {self.model.device} "
                           f"({opts.backend} files), rendered by respin.")
            rpm_path = build_rpm(files, opts.rpm, ctx.stagedir, description=description,
                                 epoch=ctx.source_date_epoch,
                                 log_file=ctx.logdir / "network-rpm.log", run=ctx.run)
            out.append(Artifact(rpm_path, RPM, meta={"files": paths}))
        return out
