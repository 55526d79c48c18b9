"""rebuild: rpmbuild the patched spec with the chosen target and switches."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from typing import Literal

from pipeline.errors import CommandError
from pipeline.stage import Artifact, Context, Stage
from stages.kernel.inject import source_date
from stages.kernel.rpmpkg import read_package, rpmbuild_argv, written_packages

_SWITCH = re.compile(r"^[A-Za-z0-9_]+$")
_MODES = {"binary": "-bb", "source": "-bs", "all": "-ba"}


class RebuildStage(Stage):
    """rpmbuild -bb|-bs|-ba --target T --with/--without ..., reproducibly."""

    name = "rebuild"
    summary = "rpmbuild the patched spec (--with baseonly, chosen --target), reproducibly"
    version = "1"

    @dataclass(frozen=True)
    class Options:
        with_: tuple[str, ...] = ("baseonly",)
        without: tuple[str, ...] = ()
        mode: Literal["binary", "source", "all"] = "binary"
        nodeps: bool = True
        define: dict[str, str] | None = None  # extra rpm macros

        def __post_init__(self) -> None:
            for sw in (*self.with_, *self.without):
                if not _SWITCH.match(sw):
                    raise ValueError(f"'{sw}' is not an rpmbuild --with/--without switch name")
            for key in self.define or {}:
                if not _SWITCH.match(key):
                    raise ValueError(f"define: '{key}' is not a macro name")

    options: Options

    def run(self, ctx: Context) -> list[Artifact]:
        spec = ctx.artifact("spec").path
        # Only what this build writes is in RPMS/ and SRPMS/ afterwards.
        for sub in ("RPMS", "SRPMS"):
            shutil.rmtree(ctx.topdir / sub, ignore_errors=True)
            (ctx.topdir / sub).mkdir(parents=True)
        log_file = ctx.stagedir / "rebuild.log"
        log_file.unlink(missing_ok=True)
        argv = rpmbuild_argv(_MODES[self.options.mode], spec, topdir=ctx.topdir, target=ctx.target,
                             with_=self.options.with_, without=self.options.without,
                             nodeps=self.options.nodeps, defines=self.options.define)
        epoch = source_date(ctx)
        env = {"SOURCE_DATE_EPOCH": str(epoch)} if epoch else {}
        result = ctx.run(argv, log_file=log_file, env=env, what=f"rpmbuild of {spec.name}")
        ctx.record_tool("rpmbuild", ctx.run(["rpmbuild", "--version"]).stdout.strip())
        built = written_packages(result.stdout)
        if not built:
            raise CommandError(f"rpmbuild of {spec.name} reported no package written (see {log_file})")
        artifacts = [Artifact(log_file, "log")]
        for path in built:
            pkg = read_package(path)
            kind = "srpm" if pkg.is_source else "rpm"
            artifacts.append(Artifact(path, kind, meta={"name": pkg.name, "nvr": pkg.nvr,
                                                        "arch": pkg.arch}))
        ctx.log.info("rebuild: wrote %s", ", ".join(os.path.basename(p) for p in built))
        return artifacts
