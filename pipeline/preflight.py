"""The check pass: each stage's own checks (`Stage.check`), all of them, before any stage runs.

`respin run` runs the checks of the stages it will run and starts none when any
finds a problem; `respin check` runs the checks of every stage and nothing
else. Both come here. Every problem found is reported, one line each: the
long stage at the end of a pipeline never runs only to fail on what could be
seen at the start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from respin.pipeline.errors import ConfigError, InputError, RespinError
from respin.pipeline.options import OptionsError
from respin.pipeline.stage import Artifact, PipelineView, Problem, Stage

if TYPE_CHECKING:
    from respin.pipeline.runner import Runner


class CheckError(OptionsError):
    """The problems the check pass found, every one a line; the message is the first and a
    count of the rest (for a caller with one line to give: the manifest, --json)."""

    lists_all = "`respin check FILE` lists every one"


def problems(runner: Runner, selected: Sequence[str], *, force: bool = False,
             inputs: bool = False) -> list[Problem]:
    """Every problem the checks of the selected stages that will run find (of each selected
    one with `force`), in stage order; with `inputs`, also each input outside the work dir
    that is missing and no check named. Nothing is run and nothing is written: a check sees
    the earlier stages' outputs only where the work dir holds them up to date."""
    chosen = [s for s in runner.pipeline.stages if s.name in selected]
    if not inputs and not any(type(s).check is not Stage.check for s in chosen):
        return []  # no stage here checks anything: no need to plan
    plans = runner.plan()
    running = frozenset(p.stage.name for p in plans if p.stage.name in selected and (force or p.reason))
    view = PipelineView(runner.pipeline.stages, running)
    produced: dict[str, list[Artifact]] = {}
    found: list[Problem] = []
    for plan in plans:
        stage = plan.stage
        if stage.name in running:
            found += stage.check(runner.context(stage, produced), view)
        if not plan.reason:
            produced[stage.name] = plan.outputs
    if inputs:
        said = " ".join(_line(p) for p in found)
        found += [InputError(f"{m}: no such file (an input of stage '{p.stage.name}')")
                  for p in plans if p.stage.name in running for m in p.missing if str(m) not in said]
    return found


def _line(problem: Problem) -> str:
    return problem.message if isinstance(problem, RespinError) else problem


def refuse(found: Sequence[Problem]) -> None:
    """Raise what `found` amounts to: a single problem as its own error (its exit code), several
    as one CheckError listing every one (a pipeline file problem). Nothing when none."""
    if not found:
        return
    if len(found) == 1:
        only = found[0]
        raise only if isinstance(only, RespinError) else ConfigError(only)
    raise CheckError([_line(p) for p in found])
