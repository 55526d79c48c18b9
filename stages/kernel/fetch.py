"""fetch: get the kernel SRPM, check it is a source package, unpack it without root."""

from __future__ import annotations

import contextlib
import os
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from respin.pipeline import fsutil
from respin.pipeline.errors import InputError, restated
from respin.pipeline.options import Check, Invalid, matching
from respin.pipeline.stage import Artifact, Context, Stage
from respin.stages.kernel.kinds import PRISTINE_SPEC, SOURCES, Fetched
from respin.stages.kernel.lib import topdir
from respin.stages.kernel.lib.preview import local_srpm
from respin.stages.kernel.lib.repo import URL_SCHEME, download_source, local_repomd, repo_url
from respin.stages.kernel.lib.rpmpkg import read_package
from respin.stages.lib.rpmmacros import build_switches, dist_defines, empty_home


def _srpm(value: str) -> str:
    if not value.strip():
        raise Invalid("empty value (a path, a URL, or with repo a package name)")
    return value


Sha256 = Annotated[str, matching(r"[0-9a-fA-F]{64}", "is not 64 hex digits")]


@dataclass(frozen=True)
class _Copy:
    path: Path
    digest: str


def _check_digests(ctx: Context, srpm: Path, copy: Path, env: dict[str, str]) -> None:
    """Refuse a package whose payload digests fail (`rpm -K`): rpm -i checks the header's
    only, so a damaged or cut payload fails half-way in, and bytes after it pass."""
    proc = ctx.run(["rpm", "-Kv", "--nosignature", str(copy)], env=env, check=False,
                   what=f"rpm -K {srpm.name}")
    if proc.returncode == 0:
        return
    said = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    bad = [ln.partition(": BAD")[0] for ln in said if ": BAD" in ln]
    why = f"its {bad[0]} does not match" if bad else (said[-1] if said else "rpm -K failed")
    raise InputError(f"{srpm}: damaged package (cut short, altered, or with bytes after its payload): "
                     f"{why} (rpm -K: digests NOT OK)")


class FetchStage(Stage["FetchStage.Options"]):
    """Fetch an SRPM (path, file:// or http(s):// URL, or by name from a repository), check it,
    install it into the work dir."""

    name = "fetch"
    results = (PRISTINE_SPEC,)
    summary = ("get the kernel SRPM (path, URL or name in a repo; optional sha256 pin) and unpack "
               "spec and sources")
    version = "5"  # 5: typed hand-offs: the pristine spec is its own kind
    settings_read = ("define",)  # it builds nothing: another --target is not another fetch

    @dataclass(frozen=True)
    class Options:
        srpm: Annotated[str, Check(_srpm)]  # a path or URL; with `repo`, a package name
        sha256: Sha256 | None = None
        repo: str | None = None  # a repository URL or local directory (createrepo_c)

        def __post_init__(self) -> None:
            scheme = URL_SCHEME.match(self.srpm)
            # Any other scheme would be taken for a local path and reported missing.
            if self.repo is None and scheme and scheme[1].lower() not in ("file", "http", "https"):
                raise Invalid(f"unsupported URL scheme '{scheme[1]}' in '{self.srpm}' "
                              "(path, file://, http(s)://)", key="srpm")


    def _local(self, ctx: Context) -> Path | None:
        return local_srpm(self.options.srpm, self.options.repo, ctx.resolve)

    def inputs(self, ctx: Context) -> list[Path]:
        if self.options.repo is not None:
            # A local repository reruns fetch when its metadata changes; a directory with
            # no metadata is fetch's own error to name (it says how to make a repository).
            repomd = local_repomd(repo_url(self.options.repo, ctx.resolve))
            return [repomd] if repomd is not None and repomd.is_file() else []
        local = self._local(ctx)
        return [local] if local is not None else []

    def _download(self, ctx: Context) -> Path:
        name = Path(urllib.parse.urlparse(self.options.srpm).path).name or "download.src.rpm"
        dest = ctx.stagedir / "download" / name
        ctx.log.info("fetch: downloading %s", self.options.srpm)
        from http.client import HTTPException  # only a URL needs these
        from urllib.request import urlopen

        try:
            with urlopen(self.options.srpm, timeout=60) as resp, \
                    fsutil.atomic_open(dest) as out:
                shutil.copyfileobj(resp, out, 1 << 20)
        except (OSError, HTTPException) as exc:  # HTTPException: a URL http.client refuses too
            raise InputError(f"{self.options.srpm}: download failed: {exc}") from exc
        return dest

    def _own_copy(self, ctx: Context, srpm: Path) -> _Copy:
        """The copy of `srpm` in the stage dir that every later read uses, with the sha256 of
        its bytes. A download is already the stage's own."""
        if srpm.is_relative_to(ctx.stagedir):
            return _Copy(srpm, fsutil.sha256_file(srpm))
        copy = ctx.stagedir / "srpm" / srpm.name
        shutil.rmtree(copy.parent, ignore_errors=True)  # an earlier run's, of another name
        try:
            digest = fsutil.atomic_copy(srpm, copy)
        except IsADirectoryError as exc:
            raise InputError(f"{srpm}: is a directory, expected an RPM package") from exc
        except PermissionError as exc:
            raise InputError(f"{srpm}: cannot read: {exc.strerror}") from exc
        return _Copy(copy, digest)

    def run(self, ctx: Context) -> list[Artifact]:
        topdir.check_workdir(ctx)  # before any rpm call is given a path in it
        local = self._local(ctx)
        if self.options.repo is not None:
            ctx.log.info("fetch: dnf download --source %s from %s", self.options.srpm, self.options.repo)
            srpm = download_source(self.options.srpm, self.options.repo, ctx.stagedir, ctx.run,
                                   ctx.resolve)
        else:
            srpm = local if local is not None else self._download(ctx)
        if not srpm.exists():
            raise InputError(f"{srpm}: no such file")
        # Everything below reads one copy, hashed as it was made: a rename over the input
        # between the pin check and rpm -i cannot put another package in.
        used = self._own_copy(ctx, srpm)
        if self.options.sha256 and used.digest != self.options.sha256.lower():
            raise InputError(f"{srpm}: sha256 is {used.digest}, but the pipeline pins {self.options.sha256}")
        try:
            pkg = read_package(used.path)
        except InputError as exc:
            raise restated(exc, exc.message.replace(str(used.path), str(srpm))) from exc
        if not pkg.is_source:
            raise InputError(f"{srpm}: is a binary package ({pkg.nvr}.{pkg.arch}), expected a source "
                             "package (.src.rpm)")
        home = empty_home(ctx.stagedir)
        _check_digests(ctx, srpm, used.path, home)
        specs = [f for f in pkg.files if f.endswith(".spec")]
        if len(specs) != 1:
            raise InputError(f"{srpm}: source package holds {len(specs)} spec files, expected one")
        # Unpack into a temp topdir, then put it in place by rename: never half unpacked.
        pristine = ctx.stagedir / "pristine"
        free = fsutil.free_bytes(ctx.stagedir)
        need = pkg.size + (len(pkg.files) + 3) * 4096  # each file and dir takes whole blocks
        if free is not None and need > free:
            # rpm -i would fail half-way, blaming a missing file.
            raise InputError(f"{pristine}: no space left on device: unpacking {srpm.name} needs "
                             f"about {need // 1024} KiB, {free // 1024} KiB free")
        given = dict(ctx.settings.get("define") or {})
        host_dist = ctx.run(["rpm", "--eval", "%{?dist}"], env=home).stdout.strip()
        dist = dist_defines(pkg.release, host_dist, given)
        if dist:
            ctx.log.info("fetch: rpm here defines no %%dist; %s was made for %s: every rpm call of the "
                         "run gets %s ([pipeline] define chooses otherwise)", srpm.name, dist["dist"],
                         ", ".join(f"%{k} {v}" for k, v in dist.items()))
        tmp = fsutil.fresh_dir(pristine)
        ctx.run(["rpm", "-i", "--nodeps", *build_switches(None, (), (), {
                 **dist, **given, "_topdir": str(tmp), "_sourcedir": f"{tmp}/SOURCES",
                 "_specdir": f"{tmp}/SPECS"}), str(used.path)], env=home, what=f"rpm -i {srpm.name}")
        only_regular_files(tmp, srpm)
        spec = tmp / "SPECS" / specs[0]
        if not spec.is_file():
            raise InputError(f"{srpm}: installing it produced no {specs[0]}")
        # Kernel specs grep %{_specdir}/<name>.spec: keep that name.
        if spec.name != f"{pkg.name}.spec":
            spec.rename(spec.with_name(f"{pkg.name}.spec"))
        (tmp / "SOURCES").mkdir(exist_ok=True)
        fsutil.commit_dir(tmp, pristine)
        shutil.rmtree(home["HOME"], ignore_errors=True)  # and the rpm database rpm -i made there
        version = ctx.run(["rpm", "--version"]).stdout.strip()
        ctx.record_tool("rpm", version)
        fetched = Fetched(name=pkg.name, version=pkg.version, release=pkg.release,
                          changelog_time=pkg.changelog_time, build_time=pkg.build_time, dist_defines=dist)
        # The run's time where the user sets none: every later stage dates its outputs by it.
        when = pkg.changelog_time or pkg.build_time
        if when:
            ctx.publish_source_date(when)
        ctx.log.info("fetch: %s is %s, source package", srpm.name, pkg.nvr)
        return [fetched.artifact(used.path.absolute()),
                Artifact(pristine / "SPECS" / f"{pkg.name}.spec", PRISTINE_SPEC),
                Artifact(pristine / "SOURCES", SOURCES)]


def only_regular_files(tree: Path, srpm: Path) -> None:
    """Refuse a source package whose payload `rpm -i` unpacked into `tree` holds anything but
    regular files in SPECS/ and SOURCES/: a symlink there (a crafted payload can hold one)
    would have root read, link or share what it points to as one of the package's files."""
    for sub in ("SPECS", "SOURCES"):
        with contextlib.suppress(FileNotFoundError):
            for entry in sorted(os.scandir(tree / sub), key=lambda e: e.name):
                what = fsutil.not_regular(entry.stat(follow_symlinks=False).st_mode)
                if what is None:
                    continue
                raise InputError(f"{srpm}: its payload holds {sub}/{entry.name!r}, {what}: a source "
                                 "package's files must be regular files")
