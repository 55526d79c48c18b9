"""Build backends for the rebuild stage: rpmbuild on this host, mock, and a koji hub.

All three start from the same reproducible rpmbuild: `rpmbuild` builds the
packages itself; `mock` and `koji` build the SRPM locally (same macros, same
SOURCE_DATE_EPOCH) and hand it on with the same target and switches, then
collect what came back.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from respin.pipeline import fsutil
from respin.pipeline.errors import CommandError, ConfigError, InputError, UsageError
from respin.pipeline.process import Runs, clean_env
from respin.stages.kernel.lib.ccache import CompileCache, find_ccache, without_masquerade
from respin.stages.kernel.lib.rpmpkg import (
    FIXED_TOPDIR,
    build_trees,
    fixed_topdir_available,
    from_fixed,
    in_fixed_topdir,
    must_drop_root,
    rpmbuild_argv,
    rpmbuild_reason,
    take_back,
    to_fixed,
    written_packages,
)
from respin.stages.lib.rpmmacros import REPRO_MACROS, build_switches, empty_home

log = logging.getLogger("respin.rebuild")


@dataclass(frozen=True)
class BuildRequest:
    """One build, whatever runs it."""

    spec: Path
    topdir: Path
    target: str | None
    with_: tuple[str, ...]
    without: tuple[str, ...]
    nodeps: bool
    defines: Mapping[str, str]
    epoch: int
    stagedir: Path
    run: Runs  # ctx.run: the one way a stage runs a command
    # Signing in the build: directories copied for it under /var/tmp (seen path -> directory),
    # and what goes first on its PATH.
    copies: Mapping[Path, Path] = dataclasses.field(default_factory=dict)
    path_prefix: tuple[str, ...] = ()

    @property
    def log_file(self) -> Path:
        return self.stagedir / "rebuild.log"


def rpmbuild(req: BuildRequest, mode: str, cache: CompileCache | None = None) -> list[Path]:
    """rpmbuild in `mode` (-bb/-bs/-ba), with the topdir at its fixed path when possible,
    compiling through `cache` if given."""
    env = empty_home(req.stagedir)  # no ~/.rpmmacros of the user's leaks in
    if req.epoch:
        env["SOURCE_DATE_EPOCH"] = str(req.epoch)
    fixed = fixed_topdir_available()
    must_drop_root(fixed)
    if req.copies and not fixed:
        raise UsageError("signing in the build needs a private mount namespace (unshare), so the "
                         "keys are seen at a fixed path and never in the work dir")
    build_trees(req.topdir)
    path = clean_env()["PATH"]
    if cache is not None:
        env.update(cache.prepare(path, seen=fixed))
    else:
        # Off means off: not even a masquerade dir the host has on PATH.
        env["PATH"] = without_masquerade(path, find_ccache(path))
    env["PATH"] = os.pathsep.join([*req.path_prefix, env["PATH"]])
    if fixed:
        argv = rpmbuild_argv(mode, to_fixed(req.spec, req.topdir), topdir=FIXED_TOPDIR,
                             target=req.target, with_=req.with_, without=req.without,
                             nodeps=req.nodeps, defines=req.defines)
        wrapped = in_fixed_topdir(argv, req.topdir, mounts=cache.mounts() if cache else None,
                                  copies=req.copies)
        assert wrapped is not None
        env["TMPDIR"] = "/var/tmp"
    else:
        log.warning("rebuild: no private mount namespace (unshare): the packages record the work "
                    "dir path %s and differ from a build in another directory", req.topdir)
        wrapped = rpmbuild_argv(mode, req.spec, topdir=req.topdir, target=req.target, with_=req.with_,
                                without=req.without, nodeps=req.nodeps, defines=req.defines)
    try:
        result = req.run(wrapped, log_file=req.log_file, env=env, what=f"rpmbuild {mode} of {req.spec.name}",
                         summarize=rpmbuild_reason)
    finally:
        for sub in ("RPMS", "SRPMS"):
            take_back(req.topdir / sub)
    built = [from_fixed(p, req.topdir) for p in written_packages(result.stdout)]
    if not built:
        raise CommandError(f"rpmbuild of {req.spec.name} reported no package written "
                           f"(see {req.log_file})")
    return built


# --- mock -------------------------------------------------------------------------


def mock_argv(srpm: Path, resultdir: Path, *, config: str | None, target: str | None,
              with_: Sequence[str], without: Sequence[str], defines: Mapping[str, str],
              extra: Sequence[str] = ()) -> list[str]:
    """`mock --rebuild` of the SRPM with the same target, switches and macros as a local build."""
    argv = ["mock"]
    if config:
        argv += ["-r", config]
    argv += ["--rebuild", str(srpm), "--resultdir", str(resultdir), "--no-cleanup-after"]
    # SOURCE_DATE_EPOCH in the chroot comes from the changelog the inject stage dated.
    argv += build_switches(target, with_, without,
                           {"source_date_epoch_from_changelog": "1", **REPRO_MACROS, **defines})
    argv += list(extra)
    return argv


def mock_build(req: BuildRequest, *, config: str | None, extra: Sequence[str]) -> list[Path]:
    """Build the SRPM locally, `mock --rebuild` it, collect packages and logs from the result dir."""
    srpm = next(p for p in rpmbuild(req, "-bs") if p.name.endswith(".src.rpm"))
    resultdir = req.stagedir / "mock-result"
    shutil.rmtree(resultdir, ignore_errors=True)
    resultdir.mkdir(parents=True)
    argv = mock_argv(srpm, resultdir, config=config, target=req.target, with_=req.with_,
                     without=req.without, defines=req.defines, extra=extra)
    req.run(argv, log_file=req.stagedir / "mock.log", what=f"mock --rebuild of {srpm.name}")
    return collect_results(resultdir, srpm)


def collect_results(resultdir: Path, srpm: Path) -> list[Path]:
    """Packages in a result dir (mock's or koji's), the source package first; logs last."""
    rpms = sorted(p for p in resultdir.iterdir() if p.name.endswith(".rpm"))
    if not any(not p.name.endswith(".src.rpm") for p in rpms):
        raise CommandError(f"the build of {srpm.name} left no binary package in {resultdir}")
    logs = sorted(p for p in resultdir.iterdir() if p.name.endswith(".log"))
    return sorted(rpms, key=lambda p: not p.name.endswith(".src.rpm")) + logs


# --- koji -------------------------------------------------------------------------


@dataclass(frozen=True)
class KojiJob:
    """What the koji backend needs beyond the build request."""

    profile: str
    config: Path | None
    target: str
    scratch: bool
    scm: str | None
    timeout: float
    poll: float


def _koji() -> Any:
    try:
        import koji  # type: ignore[import-untyped]
    except ImportError as exc:
        raise UsageError("the koji backend needs the koji client library (pip install koji)") from exc
    return koji


def koji_session(profile: str, config: Path | None) -> tuple[Any, dict[str, Any]]:
    """A logged-in ClientSession for the hub and credentials of the user's koji profile."""
    koji = _koji()
    try:
        opts = dict(koji.read_config(profile, user_config=str(config) if config else None))
    except koji.ConfigurationError as exc:
        raise ConfigError(f"koji profile '{profile}': {exc}") from exc
    session = koji.ClientSession(opts["server"], koji.grab_session_options(opts))
    authtype = opts.get("authtype")
    try:
        if authtype == "noauth":
            pass
        elif authtype == "ssl" or (authtype is None and opts.get("cert") and os.path.isfile(opts["cert"])):
            session.ssl_login(opts["cert"], None, opts.get("serverca"))
        elif authtype == "password" or (authtype is None and opts.get("user")):
            session.login()
        else:
            session.gssapi_login(principal=opts.get("principal"), keytab=opts.get("keytab"))
    except (koji.GenericError, OSError) as exc:  # requests' errors are OSErrors
        raise CommandError(f"koji hub {opts['server']}: login failed: {_fault(exc)}") from exc
    return session, opts


def _fault(exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "faultString", "") or exc).split())
    return (text[:300] + "...") if len(text) > 300 else text or type(exc).__name__


def koji_build(req: BuildRequest, job: KojiJob) -> list[Path]:
    """Upload the SRPM (or name the SCM URL), start the build, wait, download its outputs."""
    koji = _koji()
    srpm: Path | None = None
    if job.scm is None:
        srpm = next(p for p in rpmbuild(req, "-bs") if p.name.endswith(".src.rpm"))
    session, opts = koji_session(job.profile, job.config)
    server = opts["server"]
    try:
        build_opts: dict[str, Any] = {"scratch": job.scratch}
        if job.scratch and req.target:
            build_opts["arch_override"] = req.target
        if srpm is not None:
            serverdir = f"respin/{fsutil.sha256_file(srpm)[:16]}"
            session.uploadWrapper(str(srpm), serverdir, name=srpm.name)
            source = f"{serverdir}/{srpm.name}"
        else:
            assert job.scm is not None
            source = job.scm
        task_id = int(session.build(source, job.target, build_opts))
        log.info("rebuild: koji task %d on %s (%s)", task_id, server, "scratch" if job.scratch else "real")
        state = _wait(koji, session, task_id, job)
        if state != koji.TASK_STATES["CLOSED"]:
            detail = ""
            try:
                session.getTaskResult(task_id)
            except koji.GenericError as exc:
                detail = f": {_fault(exc)}"
            raise CommandError(f"koji task {task_id} on {server} ended "
                               f"{koji.TASK_STATES[state]}{detail}")
        resultdir = req.stagedir / "koji-result"
        shutil.rmtree(resultdir, ignore_errors=True)
        resultdir.mkdir(parents=True)
        tasks = [task_id] + [int(t["id"]) for t in session.getTaskChildren(task_id)]
        for tid in tasks:
            for name in sorted(session.listTaskOutput(tid)):
                if name.endswith((".rpm", ".log")):
                    _download(session, tid, name, resultdir, len(tasks) > 1 and name.endswith(".log"))
    except koji.GenericError as exc:
        raise CommandError(f"koji hub {server}: {_fault(exc)}") from exc
    except OSError as exc:
        raise CommandError(f"koji hub {server}: {exc}") from exc
    finally:
        try:
            session.logout()
        except Exception:  # logging out of a hub that went away is not worth an error
            log.debug("koji logout failed", exc_info=True)
    return collect_results(resultdir, srpm or Path(job.scm or "scm"))


def _wait(koji: Any, session: Any, task_id: int, job: KojiJob) -> int:
    done = {koji.TASK_STATES[s] for s in ("CLOSED", "FAILED", "CANCELED")}
    deadline = time.monotonic() + job.timeout
    while True:
        info = session.getTaskInfo(task_id)
        if info is None:
            raise CommandError(f"koji task {task_id}: the hub does not know it")
        state = int(info["state"])
        if state in done:
            return state
        if time.monotonic() > deadline:
            raise CommandError(f"koji task {task_id} not finished after {job.timeout:.0f}s "
                               f"(state {koji.TASK_STATES[state]})")
        time.sleep(job.poll)


def _download(session: Any, task_id: int, name: str, dest: Path, prefix: bool) -> None:
    target = dest / (f"{task_id}-{name}" if prefix else name)
    if "/" in name or name.startswith("."):
        raise InputError(f"koji task {task_id} lists an output with a bad name: {name!r}")
    chunk = 1 << 20
    with fsutil.atomic_open(target) as out:
        offset = 0
        while True:
            data = session.downloadTaskOutput(task_id, name, offset=offset, size=chunk)
            if not data:
                break
            out.write(data)
            offset += len(data)
            if len(data) < chunk:
                break
