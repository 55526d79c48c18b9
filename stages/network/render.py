"""One entry point over the backends: model in, files out."""

from __future__ import annotations

from typing import Literal, get_args

from respin.stages.network import render_initscripts, render_networkd, render_nm, render_nmstate
from respin.stages.network.files import Files
from respin.stages.network.model import NetworkModel
from respin.stages.network.render_initscripts import RtTablesMode

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
