"""One entry point over the backends: model in, files out."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from respin.pipeline.errors import ConfigError
from respin.stages.network.lib import (
    render_initscripts,
    render_networkd,
    render_nm,
    render_nmstate,
    rt_tables,
)
from respin.stages.network.lib.files import Files
from respin.stages.network.lib.model import NetworkModel
from respin.stages.network.lib.render_initscripts import RtTablesMode
from respin.stages.network.lib.root import read_image_dir, read_merge_base

Backend = Literal["initscripts", "networkmanager", "networkd", "nmstate"]
BACKENDS: tuple[str, ...] = get_args(Backend)


def render(model: NetworkModel, backend: Backend = "initscripts", *, rt_tables_mode: RtTablesMode = "d",
           rt_tables_base: str | None = None, rt_tables_source: str = "rt_tables") -> Files:
    """The files `backend` needs for `model`, as {image-relative path: (content, mode)}.

    `rt_tables_*` only matter to initscripts, the one stack that reads rt_tables.
    """
    if backend == "initscripts":
        return render_initscripts.render(model, rt_tables_mode=rt_tables_mode,
                                         rt_tables_base=rt_tables_base,
                                         rt_tables_source=rt_tables_source)
    if backend == "networkmanager":
        return render_nm.render(model)
    if backend == "networkd":
        return render_networkd.render(model)
    if backend == "nmstate":
        return render_nmstate.render(model)
    raise ValueError(f"unknown backend {backend!r}")


def render_for_root(model: NetworkModel, backend: Backend, rt_tables_mode: Literal["d", "merge"],
                    root: Path | None) -> tuple[Files, frozenset[str]]:
    """Render, reading the image's rt_tables when merging; also return the merged paths."""
    if rt_tables_mode == "merge" and backend == "initscripts":
        if root is None:
            raise ConfigError(f"{model.source}: rt_tables: 'merge' needs an image root to merge into")
        base, source = read_merge_base(root)
        files = render(model, backend, rt_tables_mode="merge", rt_tables_base=base,
                       rt_tables_source=source)
        merged = frozenset({rt_tables.RT_TABLES}) & frozenset(files)
        return files, merged
    files = render(model, backend)
    if backend == "initscripts" and root is not None:
        check_image_rt_tables(model, root, files)
    return files, frozenset()


def check_image_rt_tables(model: NetworkModel, root: Path, files: Files) -> None:
    """Refuse drop-ins whose id or name the image's rt_tables (or another drop-in) means otherwise."""
    tables = [a.table for a in model.aliases]
    base, source = read_merge_base(root)
    if base is not None:
        rt_tables.check_clashes(base, tables, source)
    for rel, text in read_image_dir(root, rt_tables.RT_TABLES_D, ".conf", "an rt_tables drop-in",
                                    skip=files):
        rt_tables.check_clashes(text, tables, str(root / rel))
