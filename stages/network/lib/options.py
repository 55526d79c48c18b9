"""The keys of a `[network]` table (or a model file): the model's, then where and how to
stage. The stage's options, and what `respin net render` reads of a file too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from respin.stages.network.lib.model import ModelOptions
from respin.stages.network.lib.render import Backend
from respin.stages.network.lib.rpm import RpmOptions


@dataclass(frozen=True)
class StageOptions(ModelOptions):
    """The model's keys (checked as the model's), then where and how to stage."""

    root: str | None = None
    backend: Backend = "initscripts"
    rt_tables: Literal["d", "merge"] = "d"
    force: bool = False
    rpm: RpmOptions | None = None
