"""rebuild: build the patched spec with the chosen target and switches, reproducibly.

The build runs on one of three backends: `rpmbuild` (here), `mock` (`mock
--rebuild` of the SRPM built here) or `koji` (the SRPM uploaded to the hub of
the user's koji profile, scratch by default, or a dist-git SCM URL).
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.stage import Artifact, Context, Stage
from stages.kernel.backends import BuildRequest, KojiJob, koji_build, mock_build, rpmbuild
from stages.kernel.inject import source_date
from stages.kernel.rpmpkg import read_package

_SWITCH = re.compile(r"^[A-Za-z0-9_]+$")
_MODES = {"binary": "-bb", "source": "-bs", "all": "-ba"}


class RebuildStage(Stage):
    """rpmbuild -bb|-bs|-ba --target T --with/--without ..., locally, in mock or on koji."""

    name = "rebuild"
    summary = "build the patched spec (--with baseonly, chosen --target) with rpmbuild, mock or koji"
    version = "2"

    @dataclass(frozen=True)
    class Options:
        with_: tuple[str, ...] = ("baseonly",)
        without: tuple[str, ...] = ()
        mode: Literal["binary", "source", "all"] = "binary"  # rpmbuild backend only
        nodeps: bool = True
        define: dict[str, str] | None = None  # extra rpm macros
        backend: Literal["rpmbuild", "mock", "koji"] = "rpmbuild"
        mock_config: str | None = None  # mock -r CONFIG (default: mock's own default)
        mock_args: tuple[str, ...] = ()  # extra mock switches, e.g. ["--isolation=simple"]
        koji_profile: str = "koji"  # the profile of the user's koji config (hub, credentials)
        koji_config: str | None = None  # a koji config file; default /etc/koji.conf, ~/.koji/config
        koji_target: str | None = None  # the koji build target
        koji_scratch: bool = True
        koji_scm: str | None = None  # build from this SCM URL (dist-git export) instead of the SRPM
        koji_timeout: float = 6 * 3600.0
        koji_poll: float = 20.0

        def __post_init__(self) -> None:
            for sw in (*self.with_, *self.without):
                if not _SWITCH.match(sw):
                    raise ValueError(f"'{sw}' is not an rpmbuild --with/--without switch name")
            for key in self.define or {}:
                if not _SWITCH.match(key):
                    raise ValueError(f"define: '{key}' is not a macro name")
            if self.backend == "koji" and not self.koji_target:
                raise ValueError("backend koji needs koji_target (the koji build target)")
            if self.koji_poll <= 0 or self.koji_timeout <= 0:
                raise ValueError("koji_poll and koji_timeout must be positive")

    options: Options

    def inputs(self, ctx: Context) -> list[Path]:
        config = self.options.koji_config
        return [ctx.resolve(config)] if self.options.backend == "koji" and config else []

    def run(self, ctx: Context) -> list[Artifact]:
        spec = ctx.artifact("spec").path
        # Only what this build writes is in RPMS/ and SRPMS/ afterwards.
        for sub in ("RPMS", "SRPMS"):
            shutil.rmtree(ctx.topdir / sub, ignore_errors=True)
            (ctx.topdir / sub).mkdir(parents=True)
        req = BuildRequest(spec=spec, topdir=ctx.topdir, target=ctx.target, with_=self.options.with_,
                           without=self.options.without, nodeps=self.options.nodeps,
                           defines=dict(self.options.define or {}), epoch=source_date(ctx),
                           stagedir=ctx.stagedir, run=ctx.run)
        req.log_file.unlink(missing_ok=True)
        opts = self.options
        if opts.backend == "mock":
            built = mock_build(req, config=opts.mock_config, extra=opts.mock_args)
        elif opts.backend == "koji":
            assert opts.koji_target is not None
            job = KojiJob(profile=opts.koji_profile,
                          config=ctx.resolve(opts.koji_config) if opts.koji_config else None,
                          target=opts.koji_target, scratch=opts.koji_scratch, scm=opts.koji_scm,
                          timeout=opts.koji_timeout, poll=opts.koji_poll)
            built = koji_build(req, job)
        else:
            built = rpmbuild(req, _MODES[opts.mode])
        ctx.record_tool("rpmbuild", ctx.run(["rpmbuild", "--version"]).stdout.strip())
        artifacts = [Artifact(req.log_file, "log")] if req.log_file.exists() else []
        for path in built:
            if path.name.endswith(".log"):
                artifacts.append(Artifact(path, "log", meta={"backend": opts.backend}))
                continue
            pkg = read_package(path)
            kind = "srpm" if pkg.is_source else "rpm"
            artifacts.append(Artifact(path, kind, meta={"name": pkg.name, "nvr": pkg.nvr,
                                                        "arch": pkg.arch, "backend": opts.backend}))
        ctx.log.info("rebuild (%s): wrote %s", opts.backend,
                     ", ".join(os.path.basename(p) for p in built if not p.name.endswith(".log")))
        return artifacts
