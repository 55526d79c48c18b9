"""The runner: decides which stages run, runs them, records what happened.

One walk over the stages plans each in turn: its fingerprint chains its name,
version, options, the content of its inputs, the pipeline settings it reads and
what the stages before it handed on (their outputs' content and records, the
times they published). `plan` walks without running; `run` runs the plans that
have a reason as it walks, so a stage that reruns and makes the same bytes stops
the rerun there. A stage's state file is written only after it succeeds, so an
interrupted stage simply runs again.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import stat
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version
from pathlib import Path
from types import MappingProxyType
from typing import Any

from respin.pipeline import fsutil, lock, preflight, workdirs
from respin.pipeline.errors import (
    CommandError,
    InputError,
    Interrupted,
    RespinError,
    UsageError,
    as_error,
    report,
    restated,
)
from respin.pipeline.inputhash import InputHashes, content_hash, digest
from respin.pipeline.pipelinefile import PipelineFile
from respin.pipeline.process import OWNER_VAR, end_orphans
from respin.pipeline.progress import Progress
from respin.pipeline.stage import Artifact, Context, Stage

log = logging.getLogger("respin")

STATE_DIR = "state"
STAGES_DIR = "stages"  # each stage's own directory is STAGES_DIR/<name>
MANIFEST = "manifest.json"


def _stat_sig(path: Path) -> list[Any]:
    """A cheap signature to notice that an output was touched since it was recorded."""
    st = path.lstat()
    if not path.is_dir() or path.is_symlink():
        return [st.st_mode, st.st_size, st.st_mtime_ns]
    entries = []
    for p in fsutil.walk(path):
        s = p.lstat()
        if not stat.S_ISDIR(s.st_mode):  # a directory's own times change with its entries
            entries.append((str(p.relative_to(path)), s.st_mode, s.st_size, s.st_mtime_ns))
    return [st.st_mode, digest(entries)]


def _settings_read(stage: Stage[Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The settings that go into `stage`'s fingerprint: those it reads."""
    if stage.settings_read is None:
        return settings
    return {k: v for k, v in settings.items() if k in stage.settings_read}


def _recorded_date(state: dict[str, Any] | None) -> int | None:
    """The default time a stage published when it ran (Context.publish_source_date)."""
    value = (state or {}).get("source_date")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class _Handed:
    """What the stages walked so far hand on, each in pipeline order: their outputs, the
    tools they recorded and the times they published."""

    produced: dict[str, list[Artifact]] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)
    dates: dict[str, int] = field(default_factory=dict)

    def chain(self) -> str:
        """What the next stage's fingerprint builds on: every earlier output's path, kind,
        content hash and hand-off record, and the times published. Not the earlier stages'
        fingerprints: one that reran and made the same outputs leaves this unchanged."""
        return digest([[name, [a.to_json() for a in arts], self.dates.get(name)]
                       for name, arts in self.produced.items()])

    def take(self, plan: Plan) -> None:
        name = plan.stage.name
        self.produced[name] = plan.outputs
        self.tools.update(plan.tools)
        self.dates.pop(name, None)
        if plan.date is not None:
            self.dates[name] = plan.date


@dataclass
class _Run:
    """One run so far: each stage's record and what the stages walked hand on."""

    records: list[StageRecord]
    selected: list[str]
    handed: _Handed = field(default_factory=_Handed)

    def failed(self, name: str) -> None:
        """Mark `name` failed and the selected stages after it not reached."""
        names = [r.name for r in self.records]
        for record in self.records[names.index(name):]:
            if record.name == name:
                record.status = "failed"
            elif record.name in self.selected:
                record.status = "not reached"


@dataclass
class StageRecord:
    """What the manifest says of one stage in this run."""

    name: str
    status: str = "not selected"  # ran | up to date | failed | not reached (after a failure) | not selected
    reason: str = ""
    seconds: float = 0.0
    fingerprint: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "reason": self.reason,
                "seconds": round(self.seconds, 3), "fingerprint": self.fingerprint}


@dataclass
class Plan:
    """One stage's step in a walk: its fingerprint, why it would run (empty reason: up to
    date), its last recorded state, and what it hands on to the stages after it: what its
    state records, or what it made when the run ran it (`ran`)."""

    stage: Stage[Any]
    ctx: Context
    fingerprint: str
    parts: dict[str, str]
    reason: str
    state: dict[str, Any] | None
    missing: tuple[Path, ...] = ()  # inputs outside the work dir that do not exist
    outputs: list[Artifact] = field(default_factory=list)
    tools: dict[str, str] = field(default_factory=dict)
    date: int | None = None
    ran: bool = False


@dataclass
class RunResult:
    """The outcome of a run: per-stage records and the manifest as written."""

    records: list[StageRecord]
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def ran(self) -> list[str]:
        return [r.name for r in self.records if r.status == "ran"]


class Runner:
    """Runs a loaded pipeline file in its work directory."""

    def __init__(self, pipeline: PipelineFile, *, progress: Progress | None = None) -> None:
        self.pipeline = pipeline
        self.workdir = pipeline.workdir
        self.progress = progress or Progress(quiet=True)
        self.names = [s.name for s in pipeline.stages]
        self._hashes = InputHashes(self.workdir / STATE_DIR)
        self.manifest: dict[str, Any] | None = None  # the last one written, of a failed run too
        self._started = False  # whether a stage of this run began (then its work dir stays)

    # --- state ---------------------------------------------------------------

    def _state_path(self, name: str) -> Path:
        return self.workdir / STATE_DIR / f"{name}.json"

    def _failed_path(self, name: str) -> Path:
        # Written when the stage fails, removed when it succeeds: `status` says "failed".
        return self.workdir / STATE_DIR / f"{name}.failed.json"

    def _never_ran(self, name: str) -> str:
        """Why a stage with no state would run: it failed last time (when), or it never ran."""
        try:
            at = json.loads(self._failed_path(name).read_text())["at"]
            return f"failed at {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(int(at)))}"
        except (OSError, ValueError, KeyError, TypeError):
            return "never ran"

    def _load_state(self, name: str) -> dict[str, Any] | None:
        try:
            data: dict[str, Any] = json.loads(self._state_path(name).read_text())
            return data
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def context(self, stage: Stage[Any], produced: Mapping[str, Sequence[Artifact]] | None = None,
                dates: Mapping[str, int] | None = None) -> Context:
        """The context the runner hands `stage`: a read-only view of what earlier stages
        produced and the times they published, and its own record of tools."""
        return Context(workdir=self.workdir, source=self.pipeline.path,
                       settings=self.pipeline.settings_json(),
                       stagedir=self.workdir / STAGES_DIR / stage.name,
                       log=logging.getLogger(f"respin.{stage.name}"),
                       produced=MappingProxyType({k: tuple(v) for k, v in (produced or {}).items()}),
                       dates=MappingProxyType(dict(dates or {})), stage=stage.name)

    # --- planning ------------------------------------------------------------

    def _parts(self, stage: Stage[Any], inputs: Sequence[Path], chain: str) -> dict[str, str]:
        """What `stage`'s fingerprint is the digest of, each part named for `_why`."""
        return {
            "stage": stage.name,
            "version": stage.version,
            "options": digest(stage.options_json()),
            "inputs": digest({str(p): self._hashes.hash(p) for p in inputs}),
            "settings": digest(_settings_read(stage, self.pipeline.settings_json())),
            "prev": chain,
        }

    def _why(self, name: str, state: dict[str, Any] | None, fp: str, parts: dict[str, str]) -> str:
        if state is None:
            return self._never_ran(name)
        if state.get("fingerprint") != fp:
            old = state.get("parts", {})
            for key, label in (("version", "stage version changed"), ("options", "options changed"),
                               ("inputs", "inputs changed"), ("settings", "[pipeline] settings changed"),
                               ("prev", "an earlier stage's output changed")):
                if old.get(key) != parts[key]:
                    return label
            return "fingerprint changed"
        for art in state.get("artifacts", []):
            path = Path(art["path"])
            if not path.exists() and not path.is_symlink():
                return f"output missing: {path}"
            if _stat_sig(path) != art.get("stat"):
                return f"output changed: {path}"
        return ""

    def _walk(self, stages: Sequence[Stage[Any]], handed: _Handed) -> Iterator[Plan]:
        """Plan each of `stages` in order, on what the stages before it handed on. The caller
        runs a plan, or not, before it asks for the next: one it ran carries what it made."""
        pending: str | None = None  # the first stage that would run and was not run
        for stage in stages:
            state = self._load_state(stage.name)
            ctx = self.context(stage, handed.produced, handed.dates)
            inputs = stage.inputs(ctx)
            parts = self._parts(stage, inputs, handed.chain())
            fp = digest(parts)
            # A missing input outside the work dir (a package, an image) is what stops a run:
            # say so rather than "never ran" or "inputs changed".
            missing = tuple(p for p in inputs if not p.is_relative_to(self.workdir)
                            and not p.exists())
            reason = f"input missing: {missing[0]}" if missing else self._why(stage.name, state, fp, parts)
            if not reason and pending:
                reason = f"reruns if '{pending}' changes its output"
            plan = Plan(stage, ctx, fp, parts, reason, state, missing,
                        outputs=[Artifact.from_json(a) for a in (state or {}).get("artifacts", [])],
                        tools=dict((state or {}).get("tools", {})), date=_recorded_date(state))
            yield plan
            if plan.reason and not plan.ran:
                pending = pending or stage.name
            handed.take(plan)

    def plan(self) -> list[Plan]:
        """Walk every stage without running any: which would run and why."""
        return list(self._walk(self.pipeline.stages, _Handed()))

    # --- selection -----------------------------------------------------------

    def _check_name(self, name: str | None, flag: str) -> None:
        if name is not None and name not in self.names:
            raise UsageError(f"{flag} {name}: no such stage in {self.pipeline.path.name} "
                             f"(stages: {', '.join(self.names)})")

    def select(self, *, from_: str | None = None, until: str | None = None,
               only: Sequence[str] = ()) -> list[str]:
        """The stage names a --from/--until/--only selection picks, in order."""
        self._check_name(from_, "--from")
        self._check_name(until, "--until")
        for name in only:
            self._check_name(name, "--only")
        if only and (from_ or until):
            raise UsageError("--only cannot be combined with --from or --until")
        if only:
            return [n for n in self.names if n in only]
        lo = self.names.index(from_) if from_ else 0
        hi = self.names.index(until) if until else len(self.names) - 1
        if lo > hi:
            raise UsageError(f"--from {from_} comes after --until {until}")
        return self.names[lo:hi + 1]

    def run_in_progress(self) -> bool:
        """Whether a run holds the work dir's lock now (its state is half updated)."""
        return lock.held(self.workdir)

    # --- running -------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        workdirs.check(self.workdir, self.pipeline.path, "work dir", UsageError)
        made = workdirs.make(self.workdir)
        with lock.hold(self.workdir):
            adopted = False
            try:
                # Checked again under the lock: another pipeline file's run may have claimed it.
                workdirs.check(self.workdir, self.pipeline.path, "work dir", UsageError)
                adopted = workdirs.claim(self.workdir, self.pipeline.path)
                owner_prefix = hashlib.sha256(str(self.workdir).encode()).hexdigest()[:16]
                killed = end_orphans(owner_prefix + ":")
                if killed:
                    log.info("ended %d process(es) left by an interrupted run", killed)
                # What a killed run left half made (a build's key copies too, in its stage dir).
                stage_dirs = sorted(d for d in (self.workdir / STAGES_DIR).glob("*") if not d.is_symlink())
                for sub in (self.workdir, self.workdir / STATE_DIR, *stage_dirs):
                    fsutil.remove_stale_temps(sub)
                saved = os.environ.get(OWNER_VAR)
                os.environ[OWNER_VAR] = f"{owner_prefix}:{uuid.uuid4().hex}"
                try:
                    yield
                finally:
                    if saved is None:
                        os.environ.pop(OWNER_VAR, None)
                    else:
                        os.environ[OWNER_VAR] = saved
            except BaseException:
                if not self._started:
                    # Nothing ran: a failed invocation leaves no work dir behind.
                    workdirs.undo(self.workdir, made, adopted)
                raise

    def run(self, *, from_: str | None = None, until: str | None = None,
            only: Sequence[str] = (), force: bool = False) -> RunResult:
        """Run the selected stages that are not up to date (all selected ones with `force`)."""
        selected = self.select(from_=from_, until=until, only=only)
        self._started = False
        # The stages' own checks, all before the first stage: nothing runs, nor is written,
        # when any finds a problem.
        preflight.refuse(preflight.problems(self, selected, force=force))
        with self._locked():
            try:
                result = self._run(selected, force)
            except BaseException:
                # The run's own error is the one to report: a cache that cannot be saved on
                # the disk the stage filled must not take its place.
                with contextlib.suppress(OSError):
                    self._hashes.save()
                raise
            try:
                self._hashes.save()
            except OSError as exc:
                # Each stage that ran saved its own; what is left is a cache.
                log.warning("%s: %s; the next run hashes its inputs again", exc.filename or
                            self.workdir / STATE_DIR, exc.strerror or exc)
            return result

    def _run(self, selected: list[str], force: bool) -> RunResult:
        run = _Run(records=[StageRecord(name) for name in self.names], selected=selected)
        index = 0
        last = self.names.index(selected[-1])
        for plan, record in zip(self._walk(self.pipeline.stages[:last + 1], run.handed), run.records,
                                strict=False):
            name = plan.stage.name
            record.fingerprint = plan.fingerprint
            if name not in selected:
                if plan.reason:
                    raise UsageError(f"stage '{name}' is not up to date ({plan.reason}); "
                                     "run it first or widen the selection")
                record.status, record.reason = "up to date", "not selected"
                continue
            index += 1
            label = f"[{index}/{len(selected)}] {name}"
            if plan.reason or force:
                record.reason = plan.reason or "forced"
                self._check_inputs(plan, run)
                self._execute(plan, record, label, run)
            else:
                record.status = "up to date"
                self.progress.note(f"{label}: up to date")
        if not any(r.status == "ran" for r in run.records):
            self.progress.note("nothing to do: every selected stage is up to date")
        manifest = self._write_manifest(run)
        return RunResult(run.records, manifest)

    def _check_inputs(self, plan: Plan, run: _Run) -> None:
        """Refuse to start a stage when an input outside the work dir is missing (a typo in a
        path): it fails as the stage would, before it begins, so a fresh work dir goes too."""
        name = plan.stage.name
        missing = next((p for p in plan.stage.inputs(plan.ctx) if not p.is_relative_to(self.workdir)
                        and not os.path.lexists(p)), None)
        if missing is None:
            return
        error = InputError(f"{missing}: no such file (an input of stage '{name}')")
        run.failed(name)
        self._write_manifest(run, report(error).to_json(name))
        raise error

    def _execute(self, plan: Plan, record: StageRecord, label: str, run: _Run) -> None:
        """Run one stage and record its state; on failure, clean up, write the failed run's
        manifest and raise what the stage's failure is reported as."""
        stage, ctx = plan.stage, plan.ctx
        self._started = True
        self.progress.start(f"{label}: running ({record.reason})")
        started = time.monotonic()
        try:
            self._run_stage(plan)
        except BaseException as exc:
            record.seconds = time.monotonic() - started
            run.failed(stage.name)
            self.progress.done(f"{label}: failed after {record.seconds:.1f}s")
            error = _stage_error(stage.name, exc, self.workdir)
            # What the stage had half built goes (after the free-space check above).
            self._remove_temps(stage, ctx)
            said = report(error or exc)
            with contextlib.suppress(OSError):  # on a full disk the manifest says it, if anything
                fsutil.atomic_write(self._failed_path(stage.name), json.dumps(
                    {"at": int(time.time()), "message": said.message}) + "\n")
            self._write_manifest(run, said.to_json(stage.name))
            if error is not None:
                raise error from exc
            raise
        record.seconds = time.monotonic() - started
        record.status = "ran"
        self.progress.done(f"{label}: done in {record.seconds:.1f}s")

    def _run_stage(self, plan: Plan) -> None:
        """The stage's run in a clean stage dir, then its state file (only after it succeeded);
        the plan then carries what the stage made, for the stages after it."""
        stage, ctx = plan.stage, plan.ctx
        self._state_path(stage.name).unlink(missing_ok=True)
        ctx.stagedir.mkdir(parents=True, exist_ok=True)
        self._remove_temps(stage, ctx)
        artifacts = self._finish(stage.run(ctx), plan.state)
        fsutil.atomic_write(self._state_path(stage.name), json.dumps({
            "fingerprint": plan.fingerprint, "parts": plan.parts, "tools": ctx.tools,
            "artifacts": [{**a.to_json(), "stat": _stat_sig(a.path)} for a in artifacts],
            **({"source_date": ctx.published} if ctx.published is not None else {}),
        }, indent=1, sort_keys=True) + "\n")
        self._hashes.save()  # with the stage's record: a full disk here names the stage
        self._failed_path(stage.name).unlink(missing_ok=True)
        plan.outputs, plan.tools, plan.date, plan.ran = artifacts, dict(ctx.tools), ctx.published, True

    def _remove_temps(self, stage: Stage[Any], ctx: Context) -> None:
        """Temp files and dirs of a stage that was interrupted or failed: in its own dir, in
        the workspaces it names, in the state dir. Only inside the work dir: a workspace the
        user named elsewhere (a shared compile cache) holds files respin did not make."""
        inside = [d for d in stage.workspaces(ctx) if d.absolute().is_relative_to(self.workdir.absolute())]
        for directory in (ctx.stagedir, *inside, self.workdir / STATE_DIR):
            fsutil.remove_stale_temps(directory)

    def _finish(self, artifacts: list[Artifact], old_state: dict[str, Any] | None) -> list[Artifact]:
        """Fill in sha256s, reusing the old hash of an output whose stat is unchanged."""
        known = {}
        for a in (old_state or {}).get("artifacts", []):
            known[a["path"]] = (a.get("stat"), a.get("sha256"))
        done = []
        for art in artifacts:
            path = Path(art.path).absolute()
            if not path.exists():
                raise RespinError(f"stage produced no {art.kind} at {path} (a bug in the stage)")
            sig = _stat_sig(path)
            old_sig, old_hash = known.get(str(path), (None, None))
            digest = old_hash if old_sig == sig and old_hash else content_hash(path)
            done.append(Artifact(path, art.kind, digest, art.meta))
        return done

    def _write_manifest(self, run: _Run, error: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write the manifest (kept in `self.manifest`); with `error`, that of a failed run,
        whose own error a full disk must not replace."""
        records, handed = run.records, run.handed
        manifest = {
            "respin": _version("respin"),
            "pipeline": str(self.pipeline.path),
            "workdir": str(self.workdir),
            "settings": self.pipeline.settings_json(),
            "stages": [r.to_json() for r in records],
            # The default times stages published (Context.publish_source_date), by stage.
            "source_dates": dict(handed.dates),
            "artifacts": [{"stage": name, **a.to_json()} for name, arts in handed.produced.items()
                          for a in arts],
            # Each stage records the tools and libraries it used (ctx.record_tool).
            "tools": {"python": sys.version.split()[0], **handed.tools},
            "error": error,
        }
        self.manifest = manifest
        try:
            fsutil.atomic_write(self.workdir / MANIFEST, json.dumps(manifest, indent=1) + "\n")
        except OSError:
            if error is None:
                raise
        return manifest


def _stage_error(name: str, exc: BaseException, workdir: Path) -> RespinError | None:
    """What a stage's failure is reported as, naming the stage where the error itself
    cannot: an interruption, a file system error, a full disk. None: report `exc` as it is."""
    if isinstance(exc, OSError) and exc.filename is None and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        exc = OSError(exc.errno, exc.strerror, str(workdir))  # a full disk: the work dir's
    if isinstance(exc, KeyboardInterrupt):
        return Interrupted(f"interrupted during stage '{name}'")
    error = as_error(exc)
    if error is None:
        return None
    if isinstance(exc, (Interrupted, OSError)) or _NO_SPACE in error.message.lower():
        return restated(error, f"stage '{name}': {error.message}")
    free = fsutil.free_bytes(workdir)
    if isinstance(error, CommandError) and free is not None and free < _FULL:
        # Tools rarely say so (some report a failed write of a file that does not
        # exist on a full disk): the work dir's file system is the likely cause.
        return CommandError(f"stage '{name}': {error.message}; {workdir}: {_NO_SPACE} "
                            f"({free // 1024} KiB free)", hint=error.hint)
    return None


_NO_SPACE = "no space left on device"
_FULL = 256 * 1024  # less free than this in the work dir's file system counts as full


def _version(dist: str) -> str:
    try:
        return dist_version(dist)
    except PackageNotFoundError:
        return "unknown"
