"""A dnf/yum repository in a directory: packages added beside what is there, metadata remade.

The metadata is createrepo_c's, made reproducible: every timestamp is the
run's SOURCE_DATE_EPOCH (`--revision`, `--set-timestamp-to-revision`), a
package file's time is its build time, no sqlite databases (their bytes vary),
gzip throughout. Signed metadata is `repodata/repomd.xml.asc`, an armoured
detached signature dnf checks with `repo_gpgcheck=1`.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from respin.pipeline import fsutil
from respin.pipeline.errors import CommandError, InputError, UsageError
from respin.pipeline.process import Runs
from respin.stages.kernel.lib.rpmpkg import read_package
from respin.stages.kernel.lib.signing import GpgKey, gpg_program


@dataclass(frozen=True)
class Entry:
    """A package file and what names it in a repository."""

    path: Path
    nevra: str
    sha256: str
    build_time: int | None


def entry(path: Path) -> Entry:
    pkg = read_package(path)
    return Entry(path, pkg.nevra, fsutil.sha256_file(path), pkg.build_time)


def existing(repo: Path) -> dict[str, Entry]:
    """The packages already in `repo` (at any depth, as createrepo_c finds them), by NEVRA."""
    found: dict[str, Entry] = {}
    for path in sorted(repo.rglob("*.rpm")):
        if path.is_file() and "repodata" not in path.relative_to(repo).parts:
            e = entry(path)
            found.setdefault(e.nevra, e)
    return found


def plan(repo: Path, packages: Sequence[Path]) -> tuple[list[Entry], list[Entry]]:
    """Which packages to add and which are there already with the same bytes. A package whose
    NEVRA the repository holds with other bytes is refused, before anything is written."""
    there = existing(repo) if repo.is_dir() else {}
    add: list[Entry] = []
    kept: list[Entry] = []
    for path in packages:
        new = entry(path)
        old = there.get(new.nevra)
        target = repo / path.name
        if old is None and target.exists():
            old = entry(target)  # a file of that name holding another package
        if old is None:
            add.append(new)
        elif old.sha256 == new.sha256:
            kept.append(old)
        else:
            raise InputError(f"{old.path}: the repository already holds {old.nevra} with other bytes than "
                             f"{path.name}; a published package is never replaced (give the build a new "
                             "release, e.g. [inject] buildid)")
    return add, kept


def add_packages(repo: Path, entries: Sequence[Entry]) -> list[Path]:
    """Copy each package into `repo`, whole or not at all, dated by its build time."""
    written = []
    for e in entries:
        target = repo / e.path.name
        # createrepo_c records a package file's time: the build's, not the copy's. Mode and
        # time go on the copy before it is renamed in (a chmod by name once it is there would
        # follow whatever another user has put at that name since).
        fsutil.atomic_copy(e.path, target, mode=0o644, mtime=e.build_time)
        written.append(target)
    return written


def make_metadata(repo: Path, epoch: int, run: Runs, log_file: Path | None = None) -> Path:
    """(Re)make `repo`/repodata for every package in it; the path of repomd.xml."""
    if shutil.which("createrepo_c") is None:
        raise UsageError("createrepo_c is not installed: publishing a repository needs it "
                         "(package createrepo-c, or createrepo_c on Fedora)")
    # createrepo_c writes .repodata/ and swaps it in; one left by a killed run stops it.
    shutil.rmtree(repo / ".repodata", ignore_errors=True)
    run(["createrepo_c", "--quiet", "--no-database", "--general-compress-type=gz",
         "--revision", str(epoch), "--set-timestamp-to-revision", "--retain-old-md=0", str(repo)],
        log_file=log_file, what=f"createrepo_c of {repo}")
    repomd = repo / "repodata" / "repomd.xml"
    if not repomd.is_file():
        raise CommandError(f"createrepo_c wrote no {repomd}")
    return repomd


def sign_metadata(repomd: Path, key: GpgKey, epoch: int, run: Runs) -> Path:
    """An armoured detached signature of repomd.xml, dated `epoch`, beside it."""
    asc = repomd.with_name(repomd.name + ".asc")
    # The armoured signature comes on stdout and is written as every file is (mode set on the
    # open temp file): gpg writing to a fixed name there would follow a link planted at it.
    signed = run([gpg_program(), "--homedir", str(key.home), "--batch", "--pinentry-mode", "error",
                  "--faked-system-time", f"{key.signing_time(epoch)}!", "--local-user", key.fingerprint,
                  "--armor", "--detach-sign", "--output", "-", str(repomd)],
                 what=f"gpg --detach-sign of {repomd}")
    if "-----BEGIN PGP SIGNATURE-----" not in signed.stdout:
        raise CommandError(f"gpg --detach-sign of {repomd} wrote no armoured signature")
    fsutil.atomic_write(asc, signed.stdout)
    return asc
