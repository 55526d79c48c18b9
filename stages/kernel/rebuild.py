"""rebuild: build the patched spec with the chosen target and switches, reproducibly.

The build runs on one of three backends: `rpmbuild` (here), `mock` (`mock
--rebuild` of the SRPM built here) or `koji` (the SRPM uploaded to the hub of
the user's koji profile, scratch by default, or a dist-git SCM URL).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from respin.pipeline.errors import ConfigError, UsageError
from respin.pipeline.options import Check, Invalid, matching
from respin.pipeline.process import clean_env
from respin.pipeline.stage import Artifact, Context, PipelineView, Problem, Stage
from respin.stages.kernel.kinds import (
    EDITED,
    LOG,
    RPM,
    SPEC,
    SRPM,
    Edited,
    SigningKeys,
    Snapshot,
)
from respin.stages.kernel.lib import hostneeds, preview, signing, topdir
from respin.stages.kernel.lib.backends import BuildRequest, KojiJob, koji_build, mock_build, rpmbuild
from respin.stages.kernel.lib.ccache import CompileCache, find_ccache
from respin.stages.kernel.lib.rpmpkg import FIXED_KEYS, read_package
from respin.stages.lib.rpmmacros import build_switches, empty_home

_SWITCH = r"[A-Za-z0-9_]+"
Switch = Annotated[str, matching(_SWITCH, "is not an rpmbuild --with/--without switch name")]
MacroName = Annotated[str, matching(_SWITCH, "is not a macro name")]


def _positive(value: float) -> float:
    if value <= 0:
        raise Invalid(f"{value} is not positive")
    return value


Seconds = Annotated[float, Check(_positive, accepts=float)]
_MODES = {"binary": "-bb", "source": "-bs", "all": "-ba"}


class RebuildStage(Stage["RebuildStage.Options"]):
    """rpmbuild -bb|-bs|-ba --target T --with/--without ..., locally, in mock or on koji."""

    name = "rebuild"
    results = (SRPM, RPM)
    summary = "build the patched spec (--with baseonly, chosen --target) with rpmbuild, mock or koji"
    version = "3"  # 3: signs with the [sign] keys

    @dataclass(frozen=True)
    class Options:
        with_: tuple[Switch, ...] = ("baseonly",)
        without: tuple[Switch, ...] = ()
        mode: Literal["binary", "source", "all"] = "binary"  # rpmbuild backend only
        nodeps: bool = True
        define: dict[MacroName, str] | None = None  # extra rpm macros
        backend: Literal["rpmbuild", "mock", "koji"] = "rpmbuild"
        mock_config: str | None = None  # mock -r CONFIG (default: mock's own default)
        mock_args: tuple[str, ...] = ()  # extra mock switches, e.g. ["--isolation=simple"]
        koji_profile: str = "koji"  # the profile of the user's koji config (hub, credentials)
        koji_config: str | None = None  # a koji config file; default /etc/koji.conf, ~/.koji/config
        koji_target: str | None = None  # the koji build target
        koji_scratch: bool = True
        koji_scm: str | None = None  # build from this SCM URL (dist-git export) instead of the SRPM
        koji_timeout: Seconds = 6 * 3600.0
        koji_poll: Seconds = 20.0
        ccache: bool | None = None  # compile through ccache; default: when ccache is installed
        ccache_dir: str | None = None  # a cache several work dirs share; default <workdir>/ccache

        def __post_init__(self) -> None:
            if self.backend == "koji" and not self.koji_target:
                raise Invalid("needed with backend = \"koji\" (the koji build target)", key="koji_target")


    def options_json(self) -> dict[str, object]:
        # The cache changes how long a build takes, never its bytes (the tests compare
        # them): turning it on or off, or moving it, rebuilds nothing.
        data = dict(super().options_json())
        del data["ccache"], data["ccache_dir"]
        return data

    def workspaces(self, ctx: Context) -> list[Path]:
        # The compile cache, which work dirs may share, is the one place outside its own dir
        # the build writes.
        return [self._cache_dir(ctx)] if self._compiles_here and self.options.ccache is not False else []

    def _cache_dir(self, ctx: Context) -> Path:
        """The compile cache's directory: [rebuild] ccache_dir, else the work dir's."""
        given = self.options.ccache_dir
        return (ctx.resolve(given) if given else ctx.workdir / "ccache").absolute()

    def inputs(self, ctx: Context) -> list[Path]:
        config = self.options.koji_config
        return [ctx.resolve(config)] if self.options.backend == "koji" and config else []

    def check(self, ctx: Context, pipeline: PipelineView) -> Iterator[Problem]:
        """Before any stage runs: the backend's tool is here, the switches are ones the spec
        reads, the [sign] keys are ones this build can use."""
        where = f"{ctx.source} [rebuild]"
        opts = self.options
        path = clean_env()["PATH"]
        if opts.backend == "mock" and shutil.which("mock", path=path) is None:
            yield (f'{where} backend = "mock": mock is not installed (no mock on PATH); install it, '
                   'or use backend = "rpmbuild"')
        if opts.backend == "koji" and importlib.util.find_spec("koji") is None:
            yield (f'{where} backend = "koji": the koji client library is not installed '
                   "(pip install koji)")
        if opts.backend == "rpmbuild" and opts.mode != "source":
            yield from self._cache_problems(ctx, where, path)
        sign = pipeline.stage("sign")
        keys = sign.options_json() if sign is not None else {}
        if opts.backend != "rpmbuild" and (keys.get("module_key") or keys.get("secureboot_key")):
            yield _elsewhere(ctx, opts.backend)
        spec = preview.source(ctx, pipeline)
        if spec is not None:
            yield from self._switch_problems(spec, where)
        if spec is not None and self._compiles_here:
            # The build's macros but fetch's %dist ones, which name no build shell; and a
            # home of its own, so no ~/.rpmmacros is read and nothing is left behind.
            defines = {**dict(ctx.settings.get("define") or {}), **(self.options.define or {})}
            with tempfile.TemporaryDirectory(prefix="respin-check-") as home:
                yield from self._lacking(ctx, spec.spec, spec.spec_name, defines, {"HOME": home})

    def _switch_problems(self, spec: preview.Source, where: str) -> Iterator[str]:
        for kind, names in (("with", self.options.with_), ("without", self.options.without)):
            for name in names:
                why = preview.unread_switch(spec, kind, name)
                if why is not None:
                    yield f"{where} {kind}: {why}"

    def _cache_problems(self, ctx: Context, where: str, path: str) -> Iterator[str]:
        opts = self.options
        if opts.ccache and find_ccache(path) is None:
            yield _no_ccache(where)
        cache_dir = ctx.resolve(opts.ccache_dir) if opts.ccache_dir and opts.ccache is not False else None
        if cache_dir is not None and cache_dir.exists() and not cache_dir.is_dir():
            yield f"{where} ccache_dir {cache_dir}: not a directory"

    def _compile_cache(self, ctx: Context) -> CompileCache | None:
        """The cache this build compiles through, or None (off, or no ccache and not asked for)."""
        opts = self.options
        if opts.ccache is False:
            return None
        where = f"{ctx.source.name} [rebuild]"
        ccache = find_ccache(clean_env()["PATH"])
        if ccache is None:
            if opts.ccache:
                raise UsageError(_no_ccache(where))
            return None
        cache_dir = self._cache_dir(ctx)
        if cache_dir.exists() and not cache_dir.is_dir():
            raise ConfigError(f"{where} ccache_dir {cache_dir}: not a directory")
        version = ctx.run([str(ccache), "--version"]).stdout.splitlines()
        ctx.record_tool("ccache", version[0].strip() if version else "")
        return CompileCache(ccache=ccache, cache_dir=cache_dir, workspace=ctx.stagedir.absolute() / "ccache")

    @property
    def _compiles_here(self) -> bool:
        """Whether this host builds the binary packages: a source build runs no %build, and
        mock and koji build with their own macros, elsewhere."""
        return self.options.backend == "rpmbuild" and self.options.mode != "source"

    def _keys(self, ctx: Context) -> SigningKeys | None:
        """The [sign] keys, checked against what this build can do with them."""
        keys = SigningKeys.find(ctx)
        in_build = keys is not None and bool(keys.module_key or keys.secureboot_key)
        if in_build and self.options.backend != "rpmbuild":
            raise ConfigError(_elsewhere(ctx, self.options.backend))
        module_sig = _module_signing(ctx)
        if keys is not None and keys.module_key and module_sig is False:
            raise ConfigError(f"{ctx.source.name} [sign] module_key: the build's config does not set "
                              "CONFIG_MODULE_SIG, so no module would be signed with it (set it in [config])")
        if module_sig and not (keys and keys.module_key) and self._compiles_here:
            ctx.log.warning("rebuild: CONFIG_MODULE_SIG is set and [sign] module_key is not: the build "
                            "signs its modules with a key it makes on the spot, so two builds will not "
                            "be byte-identical")
        self._image_signing(ctx, keys)
        if keys is not None and keys.secureboot_key and shutil.which("faketime") is None:
            ctx.log.warning("rebuild: faketime is not installed: sbsign dates its signature with the "
                            "time it runs, so two builds will not be byte-identical (install faketime)")
        return keys

    def _image_signing(self, ctx: Context, keys: SigningKeys | None) -> None:
        """Refuse, before the build, a Secure Boot key the spec would not use, and a spec that
        signs its image with a %pesign this host cannot give it."""
        spec = ctx.artifact(SPEC).path
        signs = _PESIGN.search(spec.read_text(errors="replace")) is not None
        has_key = keys is not None and keys.secureboot_key is not None
        if has_key and not signs:
            raise ConfigError(f"{ctx.source.name} [sign] secureboot_key: {spec.name} never signs its kernel "
                              "image (no %pesign), so the package would carry it unsigned")
        snapshot = Snapshot.find(ctx)
        always = snapshot is not None and snapshot.macros.get("signkernel") == "1"
        if always and not has_key and self._compiles_here \
                and not ctx.run(["rpm", "--eval", "%{?pesign:1}"]).stdout.strip():
            raise ConfigError(f"{spec.name} signs the kernel image for Secure Boot with %pesign, which this "
                              "host does not define (pesign's macros): give [sign] secureboot_key and "
                              "secureboot_cert, and the image is signed with sbsign")

    def _lacking(self, ctx: Context, text: str, spec_name: str, defines: dict[str, str],
                 home: dict[str, str]) -> list[str]:
        """What the spec's build needs that this host lacks, one line each (hostneeds)."""
        shell = hostneeds.spec_buildshell(text)
        if shell is None:
            shell = ctx.run(["rpm", *build_switches(None, (), (), defines), "--eval", "%{_buildshell}"],
                            env=home, what="rpm --eval %_buildshell").stdout.strip()
        cpu = ctx.target.split("-")[0] if ctx.target else None
        return hostneeds.problems(text, spec_name, target_cpu=cpu, buildshell=shell, path=clean_env()["PATH"])

    def _host_needs(self, ctx: Context) -> None:
        """Refuse, before the build, a spec whose build needs what this host lacks (a bash-only
        construct under a build shell that is not bash, a command not on PATH), each named on
        a line of its own, all in one pass."""
        spec = ctx.artifact(SPEC).path
        lacking = self._lacking(ctx, spec.read_text(errors="replace"), spec.name,
                                {**topdir.run_defines(ctx), **(self.options.define or {})},
                                empty_home(ctx.stagedir))
        for line in lacking[1:]:
            ctx.log.error("rebuild: %s", line)
        if lacking:
            more = f" (and {len(lacking) - 1} more, each on a line above)" if len(lacking) > 1 else ""
            raise ConfigError(lacking[0] + more)

    def run(self, ctx: Context) -> list[Artifact]:
        # The check pass could not read the spec when fetch had not run yet (an SRPM by URL).
        spec = ctx.artifact(SPEC).path
        unread = list(self._switch_problems(preview.Source(spec.name, spec.read_text(errors="replace"), ()),
                                            f"{ctx.source} [rebuild]"))
        if unread:
            raise ConfigError(unread[0])
        keys = self._keys(ctx)
        if self._compiles_here:
            self._host_needs(ctx)
        # rebuild's own rpmbuild topdir, laid out from inject's build input.
        top = ctx.stagedir / "rpmbuild"
        spec = topdir.lay_out(top, *topdir.build_input(ctx))
        with signing.in_build(keys, FIXED_KEYS, topdir.source_date(ctx), private_in=ctx.stagedir,
                              trees=(top / "BUILD", top / "BUILDROOT")) as sign:
            built, cache = self._build(ctx, top, spec, sign)
        gpg = signing.gpg_key_of(keys)
        if gpg is not None:
            packages = [p for p in built if p.name.endswith(".rpm")]
            with signing.gpg_session(gpg.home, ctx.run):
                signing.rpmsign(packages, gpg, topdir.source_date(ctx), ctx.run,
                                log_file=ctx.stagedir / "rpmsign.log")
        return self._artifacts(ctx, built, cache)

    def _build(self, ctx: Context, top: Path, spec: Path, sign: signing.InBuild
               ) -> tuple[list[Path], CompileCache | None]:
        # Only what this build writes is in RPMS/ and SRPMS/ afterwards.
        for sub in ("RPMS", "SRPMS"):
            shutil.rmtree(top / sub, ignore_errors=True)
            (top / sub).mkdir(parents=True)
        req = BuildRequest(spec=spec, topdir=top, target=ctx.target, with_=self.options.with_,
                           without=self.options.without, nodeps=self.options.nodeps,
                           defines={**topdir.run_defines(ctx), **sign.defines, **(self.options.define or {})},
                           epoch=topdir.source_date(ctx),
                           stagedir=ctx.stagedir, run=ctx.run, copies=sign.copies,
                           path_prefix=sign.path_prefix)
        req.log_file.unlink(missing_ok=True)
        opts = self.options
        cache: CompileCache | None = None
        if opts.backend != "rpmbuild" and (opts.ccache or opts.ccache_dir):
            ctx.log.info("rebuild: ccache applies to the rpmbuild backend only; the %s build "
                         "runs without it", opts.backend)
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
            cache = self._compile_cache(ctx) if opts.mode != "source" else None
            built = rpmbuild(req, _MODES[opts.mode], cache)
        ctx.record_tool("rpmbuild", ctx.run(["rpmbuild", "--version"]).stdout.strip())
        return built, cache

    def _artifacts(self, ctx: Context, built: list[Path], cache: CompileCache | None) -> list[Artifact]:
        opts = self.options
        log_file = ctx.stagedir / "rebuild.log"
        log_meta: dict[str, object] = {}
        cached = ""
        if cache is not None:
            stats = cache.stats()
            log_meta["ccache"] = {**stats.to_json(), "dir": str(cache.cache_dir)}
            cached = f"; ccache: {stats.summary()} in {cache.cache_dir}"
        artifacts = [Artifact(log_file, LOG, meta=log_meta)] if log_file.exists() else []
        for path in built:
            if path.name.endswith(".log"):
                artifacts.append(Artifact(path, LOG, meta={"backend": opts.backend}))
                continue
            pkg = read_package(path)
            kind = SRPM if pkg.is_source else RPM
            artifacts.append(Artifact(path, kind, meta={"name": pkg.name, "nvr": pkg.nvr,
                                                        "arch": pkg.arch, "backend": opts.backend}))
        ctx.log.info("rebuild (%s): wrote %s%s", opts.backend,
                     ", ".join(os.path.basename(p) for p in built if not p.name.endswith(".log")), cached)
        return artifacts


def _no_ccache(where: str) -> str:
    return f"{where} ccache = true: ccache is not installed (install it, or set ccache = false)"


def _elsewhere(ctx: Context, backend: str) -> str:
    return (f"{ctx.source.name} [rebuild]: the [sign] module and Secure Boot keys are used inside the "
            f"build, which the {backend} backend runs elsewhere; use backend = \"rpmbuild\"")


_PESIGN = re.compile(r"^[^#\n]*%\{?pesign\b", re.M)
_MODULE_SIG = re.compile(r"^(CONFIG_MODULE_SIG)=y$|^# (CONFIG_MODULE_SIG) is not set$", re.M)


def _module_signing(ctx: Context) -> bool | None:
    """Whether the configs this build uses sign modules (CONFIG_MODULE_SIG); None when no
    config stage ran to say."""
    if not ctx.artifacts(EDITED):
        return None
    path, edited = Edited.read(ctx)
    asked = edited.requests.get("CONFIG_MODULE_SIG", "")
    if asked != "":
        return asked == "y"
    found = [m[1] is not None for name in edited.chosen if (path / name).is_file()
             for m in _MODULE_SIG.finditer((path / name).read_text(errors="replace"))]
    return any(found)
