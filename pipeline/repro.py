"""`respin repro`: run a pipeline twice in fresh directories and name every artifact that differs.

The two runs use different work dir paths and start at different wall-clock
times (at least `pause` seconds apart, so second-resolution time stamps
differ); every artifact a stage wrote inside its work dir is compared byte
for byte (a directory artifact file by file, with modes and link targets).
Logs are left out: they name the paths and times on purpose.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from respin.pipeline import fsutil, workdirs
from respin.pipeline.errors import InputError, RespinError, UsageError, restated
from respin.pipeline.pipelinefile import PipelineFile, load
from respin.pipeline.progress import Progress
from respin.pipeline.runner import Runner

SKIPPED_KINDS = frozenset({"log"})


@dataclass(frozen=True)
class Difference:
    """One artifact (or one file inside a directory artifact) that is not the same in both runs."""

    stage: str
    kind: str
    path: str  # relative to the work dir
    detail: str

    def line(self) -> str:
        return f"{self.stage} {self.kind} {self.path}: {self.detail}"

    def to_json(self) -> dict[str, str]:
        return {"stage": self.stage, "kind": self.kind, "path": self.path, "detail": self.detail}


@dataclass
class ReproReport:
    """What `repro` compared and what differed."""

    workdirs: tuple[Path, ...]  # the work dirs that are kept
    compared: list[str] = field(default_factory=list)
    differences: list[Difference] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences

    def to_json(self) -> dict[str, Any]:
        return {"identical": self.identical, "workdirs": [str(w) for w in self.workdirs],
                "compared": self.compared, "differences": [d.to_json() for d in self.differences]}


def _compare(a: Path, b: Path, stage: str, kind: str, rel: str) -> list[Difference]:
    if not b.exists() and not b.is_symlink():
        return [Difference(stage, kind, rel, "missing in the second run")]
    if a.is_dir() != b.is_dir():
        return [Difference(stage, kind, rel, "a directory in one run, a file in the other")]
    if not a.is_dir():
        if fsutil.sha256_file(a) != fsutil.sha256_file(b):
            return [Difference(stage, kind, rel, f"content differs ({a.stat().st_size} vs "
                                                 f"{b.stat().st_size} bytes)")]
        if (a.stat().st_mode & 0o7777) != (b.stat().st_mode & 0o7777):
            return [Difference(stage, kind, rel, "mode differs")]
        return []
    ta, tb = fsutil.tree(a), fsutil.tree(b)
    diffs = []
    for name in sorted(set(ta) | set(tb)):
        if name not in tb:
            diffs.append(Difference(stage, kind, f"{rel}/{name}", "only in the first run"))
        elif name not in ta:
            diffs.append(Difference(stage, kind, f"{rel}/{name}", "only in the second run"))
        elif ta[name] != tb[name]:
            what = "mode differs" if ta[name][1] == tb[name][1] else "content differs"
            diffs.append(Difference(stage, kind, f"{rel}/{name}", what))
    return diffs


def compare_manifests(first: Mapping[str, Any], second: Mapping[str, Any]) -> ReproReport:
    """Compare every artifact written inside the work dir of two runs' manifests."""
    wa, wb = Path(first["workdir"]), Path(second["workdir"])
    report = ReproReport((wa, wb))

    def inside(manifest: Mapping[str, Any], workdir: Path) -> dict[tuple[str, str, str], Path]:
        found = {}
        for art in manifest["artifacts"]:
            path = Path(art["path"])
            if art["kind"] in SKIPPED_KINDS or not path.is_relative_to(workdir):
                continue
            found[(art["stage"], art["kind"], str(path.relative_to(workdir)))] = path
        return found

    arts_a, arts_b = inside(first, wa), inside(second, wb)
    for key in sorted(set(arts_a) | set(arts_b)):
        stage, kind, rel = key
        report.compared.append(f"{stage} {kind} {rel}")
        if key not in arts_a:
            report.differences.append(Difference(stage, kind, rel, "produced only in the second run"))
        elif key not in arts_b:
            report.differences.append(Difference(stage, kind, rel, "produced only in the first run"))
        else:
            report.differences += _compare(arts_a[key], arts_b[key], stage, kind, rel)
    return report


def repro(path: Path, overrides: Mapping[str, Any] | None = None, *, base: Path | None = None,
          pause: float = 1.5, keep: bool = False, progress: Progress | None = None) -> ReproReport:
    """Run the pipeline file twice, in two fresh work dirs, and compare what the runs produced.

    What repro made (the two work dirs; the base dir too, unless the user named it) is
    removed afterwards, whatever the outcome, unless `keep`. The report lists only the work
    dirs that are still there.
    """
    progress = progress or Progress(quiet=True)
    if not pause >= 0:  # also refuses NaN
        raise UsageError(f"--pause {pause}: must be zero or more seconds")
    load(path, overrides)  # a bad pipeline file fails here, before any directory is made
    dirs = (base / FIRST, base / SECOND) if base is not None else None
    if base is not None:
        if os.path.lexists(base) and not base.is_dir():
            raise UsageError(f"--base {base}: not a directory")
        for workdir in dirs or ():
            if os.path.lexists(workdir):
                # Perhaps kept by an earlier repro --keep: never removed without being asked.
                raise UsageError(f"--base {base}: {workdir.name}/ is already there (an earlier "
                                 "repro --keep?); remove it or choose another --base")
    made = base is None or not base.exists()
    if base is None:
        base = Path(tempfile.mkdtemp(prefix="respin-repro-"))
    else:
        base.mkdir(parents=True, exist_ok=True)
    dirs = (base / FIRST, base / SECOND)
    try:
        report = _twice(path, overrides, dirs, pause, keep, progress)
    finally:
        if not keep:
            for workdir in dirs:
                shutil.rmtree(workdir, ignore_errors=True)
            if made:
                shutil.rmtree(base, ignore_errors=True)
    report.workdirs = tuple(w for w in dirs if w.exists())
    return report


FIRST, SECOND = "first", "second-run"  # different names, so different path lengths too


def _twice(path: Path, overrides: Mapping[str, Any] | None, dirs: tuple[Path, Path], pause: float,
           keep: bool, progress: Progress) -> ReproReport:
    manifests = []
    for number, workdir in enumerate(dirs, 1):
        if number == 2:
            time.sleep(pause)
        progress.note(f"repro: run {number} of 2 in {workdir}")
        pipeline = load(path, {**(overrides or {}), "workdir": str(workdir)})
        try:
            pipeline = _redirected(pipeline, progress)
            manifests.append(Runner(pipeline, progress=progress).run(force=True).manifest)
        except RespinError as exc:
            kept = f"work dir kept: {workdir}" if keep else "work dirs removed; --keep keeps them"
            raise restated(exc, f"repro run {number} of 2: {exc.message} ({kept})") from exc
    return compare_manifests(manifests[0], manifests[1])


OUTSIDE = "outside"  # in each run's work dir: the copies of what stages write outside it


def _redirected(pipeline: PipelineFile, progress: Progress) -> PipelineFile:
    """`pipeline` with every path a stage writes outside the work dir (Stage.outputs: an
    image root, a repository) pointed at a copy of it in the work dir's `outside/`: each run
    starts from what is there, writes only its own copy, and the copies are compared."""
    workdir = pipeline.workdir
    workdirs.make(workdir)
    workdirs.claim(workdir, pipeline.path)  # repro made it, for this pipeline file
    runner = Runner(pipeline)
    stages = []
    for stage in pipeline.stages:
        where = f"{pipeline.path} [{stage.name}]"
        moved: dict[str, str] = {}
        for option, out in stage.outputs(runner.context(stage)).items():
            if Path(os.path.normpath(out.absolute())).is_relative_to(workdir):  # `..` too
                continue
            copy = workdir / OUTSIDE / f"{stage.name}.{option}"
            _copy(out, copy, f"{where} {option}")
            progress.note(f"repro: [{stage.name}] {option} {out}: this run writes a copy, {copy}")
            moved[option] = str(copy)
        if moved:
            stage = type(stage).from_table({**pipeline.raw.get(stage.name, {}), **moved}, where)
        stages.append(stage)
    return dataclasses.replace(pipeline, stages=tuple(stages))


def _copy(src: Path, dst: Path, given: str) -> None:
    """A copy of `src` (a file or a tree, links kept as links) at `dst`; none if `src` is absent."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        if src.is_dir() and not src.is_symlink():
            shutil.copytree(src, dst, symlinks=True)
        elif os.path.lexists(src):
            shutil.copy2(src, dst, follow_symlinks=False)
    except (OSError, shutil.Error) as exc:
        raise InputError(f"{given} {src}: cannot copy it for repro's run: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        first = exc.args[0][0]  # (src, dst, why) of the first file that failed
        return f"{first[0]}: {first[2]}"
    return getattr(exc, "strerror", None) or str(exc)
