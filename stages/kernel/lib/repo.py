"""Source packages by name from a repository, through `dnf download --source`.

Only the one repository the pipeline names is used: no system repos, no
plugins' repos, no user cache; dnf's cache, logs and state stay in the
stage's directory, so this works as an unprivileged user with a read-only home.
"""

from __future__ import annotations

import re
import shutil
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from respin.pipeline import fsutil
from respin.pipeline.errors import CommandError, ConfigError, InputError

# A package name, optionally with version(-release), as dnf accepts it; never an option.
PACKAGE_SPEC = re.compile(r"[A-Za-z0-9_+][A-Za-z0-9._+~:-]*")
REPO_ID = "respin-source"
# `scheme://...`: a URL, not a path (group 1: the scheme).
URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def repo_url(repo: str, resolve: Callable[[str], Path]) -> str:
    """The repository as a URL dnf accepts: http(s)://, file://, or a local path made file://."""
    scheme = urllib.parse.urlparse(repo).scheme
    if scheme in ("http", "https", "file"):
        return repo
    if scheme and len(scheme) > 1:
        raise ConfigError(f"repo: '{repo}': only http(s)://, file:// or a local directory")
    return resolve(repo).as_uri()


def local_repomd(url: str) -> Path | None:
    """repodata/repomd.xml of a local repository (its fingerprint input), else None."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme != "file":
        return None
    return Path(urllib.parse.unquote(parsed.path)) / "repodata" / "repomd.xml"


def dnf_download_argv(package: str, url: str, workdir: Path, destdir: Path) -> list[str]:
    """`dnf download --source` against exactly one repository, state kept under `workdir`."""
    return [
        "dnf", "download", "--source", package,
        f"--config={workdir / 'dnf.conf'}",
        f"--repofrompath={REPO_ID},{url}", f"--repo={REPO_ID}",
        "--releasever=respin",  # not a Fedora host: nothing to detect, and nothing uses it
        f"--destdir={destdir}",
        f"--setopt=cachedir={workdir / 'cache'}",
        f"--setopt=logdir={workdir / 'log'}",
        f"--setopt=persistdir={workdir / 'persist'}",
        "--setopt=reposdir=/nonexistent",
        "--setopt=gpgcheck=0",
        "--assumeyes", "--quiet",
    ]


def download_source(package: str, repo: str, stagedir: Path, run: Callable[..., Any],
                    resolve: Callable[[str], Path]) -> Path:
    """Download the source package `package` from `repo`; return its path in the stage dir."""
    if not PACKAGE_SPEC.fullmatch(package):
        raise ConfigError(f"srpm: '{package}' is not a package name (with repo set, srpm names a "
                          "package in that repository)")
    url = repo_url(repo, resolve)
    repomd = local_repomd(url)
    if repomd is not None and not repomd.is_file():
        raise InputError(f"{repo}: not a repository (no repodata/repomd.xml; run createrepo_c on it)")
    dnfdir = stagedir / "dnf"
    shutil.rmtree(dnfdir, ignore_errors=True)
    dnfdir.mkdir(parents=True)
    fsutil.atomic_write(dnfdir / "dnf.conf", "[main]\ninstall_weak_deps=False\n")
    dest = stagedir / "download"
    tmp = fsutil.fresh_dir(dest)
    try:
        run(dnf_download_argv(package, url, dnfdir, tmp), env={"HOME": str(dnfdir)},
            log_file=stagedir / "dnf.log", what=f"dnf download --source {package}")
    except CommandError as exc:
        raise InputError(f"{repo}: cannot download the source package '{package}': {exc.message}",
                         hint=exc.hint) from exc
    found = sorted(tmp.glob("*.src.rpm"))
    if len(found) != 1:
        shutil.rmtree(tmp, ignore_errors=True)
        raise InputError(f"{repo}: dnf download --source {package} gave {len(found)} source packages, "
                         "expected one")
    fsutil.commit_dir(tmp, dest)
    return dest / found[0].name
