"""respin's engine: stages, runner, fingerprints, manifest. Knows no domain."""

from pipeline.errors import RespinError
from pipeline.stage import Artifact, Context, Stage

__all__ = ["Artifact", "Context", "RespinError", "Stage"]
__version__ = "0.1.0"
