"""respin's engine: stages, runner, fingerprints, manifest. Knows no domain."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from respin.pipeline.errors import RespinError

if TYPE_CHECKING:
    from respin.pipeline.stage import Artifact, Context, Stage

__all__ = ["Artifact", "Context", "RespinError", "Stage"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # The stage contract is imported on first use: deferred, pipeline/startup.py.
    if name in ("Artifact", "Context", "Stage"):
        from respin.pipeline import stage

        return getattr(stage, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
