"""diff: the change as a diff to review, proven to apply: on the 2010 layout the config
patch itself (what inject declares and the build applies), on today's what kernel-local
gains. The mechanism config chose says which (lib/mechanism.py)."""

from __future__ import annotations

from respin.pipeline.stage import Artifact, Context, NoOptions, Stage
from respin.stages.kernel.kinds import LOCAL_DIFF, PATCH, Edited
from respin.stages.kernel.lib import mechanism


class DiffStage(Stage[NoOptions]):
    """Write the config patch: only configs that changed, applicable with patch -p1."""

    name = "diff"
    # The diff a user reviews: `respin run` shows it.
    results = (PATCH, LOCAL_DIFF)
    summary = "diff edited configs against the snapshot into a patch; prove it with patch --dry-run"
    version = "1"

    def run(self, ctx: Context) -> list[Artifact]:
        edited_path, edited = Edited.read(ctx)
        return mechanism.of(edited).review(ctx, edited_path, edited)
