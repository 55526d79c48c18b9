"""respin: rebuild RPM kernels with config changes, repack initrds, stage network files.

The API a script needs::

    import respin

    result = respin.Runner(respin.load("kernel.toml")).run()

`respin.RespinError` is the root of every error respin reports (its `exit_code`
is the command's), and `respin.Stage`, `respin.Context` and `respin.Artifact`
are the contract a stage plugin implements. The engine is `respin.pipeline`,
the built-in stages `respin.stages`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from respin.pipeline import __version__
from respin.pipeline.errors import RespinError

if TYPE_CHECKING:
    from respin.pipeline.pipelinefile import PipelineFile, load
    from respin.pipeline.runner import Runner, RunResult
    from respin.pipeline.stage import Artifact, Context, Handoff, NoOptions, PipelineView, Stage

# The product in one line (`respin --help`; pyproject's description, kept equal by a test):
# the engine itself names no domain.
DESCRIPTION = ("Rebuild RPM kernels with config changes, repack initrds and stage network files, "
               "reproducibly.")

__all__ = ["DESCRIPTION", "Artifact", "Context", "Handoff", "NoOptions", "PipelineFile", "PipelineView",
           "RespinError", "RunResult", "Runner", "Stage", "__version__", "load"]

# Where each lazily imported name lives: every `respin` command imports this package
# first, and a short one (`respin initrd list`) must not pay for the runner's imports.
_LAZY = {
    "load": "respin.pipeline.pipelinefile", "PipelineFile": "respin.pipeline.pipelinefile",
    "Runner": "respin.pipeline.runner", "RunResult": "respin.pipeline.runner",
    "Artifact": "respin.pipeline.stage", "Context": "respin.pipeline.stage", "Stage": "respin.pipeline.stage",
    "Handoff": "respin.pipeline.stage", "PipelineView": "respin.pipeline.stage",
    "NoOptions": "respin.pipeline.stage",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'respin' has no attribute {name!r}")
