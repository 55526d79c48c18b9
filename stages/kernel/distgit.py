"""distgit: export the modified package as a dist-git style git repository.

The layout koji and fedpkg expect: `<name>.spec`, the patches and small
sources committed; the large archives listed in `sources` (`SHA512 (file) =
digest`, the lookaside cache's index) and in `.gitignore`, and kept inside the
checkout in `.lookaside/` (ignored by git) for uploading. The commit's author, committer and dates are fixed
(SOURCE_DATE_EPOCH), so the same package gives the same commit id.
Build it on koji with `[rebuild] backend = "koji"`, `koji_scm = "git+<url>#<commit>"`.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from respin.pipeline import fsutil
from respin.pipeline.options import checked
from respin.pipeline.stage import Artifact, Context, Stage
from respin.stages.kernel.kinds import DISTGIT
from respin.stages.kernel.lib import topdir
from respin.stages.kernel.lib.spectext import Identity, identity

# Archives go to the lookaside cache; everything else is committed.
_LOOKASIDE = re.compile(r"\.(tar(\.[a-z0-9]+)?|tgz|tbz2|txz|zip|src\.rpm|rpm|bz2|gz|xz|zst)$")


def _sha512(path: Path) -> str:
    digest = hashlib.sha512()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def lookaside(name: str, size: int, limit: int) -> bool:
    """Whether a source file goes to the lookaside cache instead of git."""
    return bool(_LOOKASIDE.search(name)) or size > limit


Branch = Annotated[str, checked(
    lambda b: re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", b) and ".." not in b, "is not a branch name")]


class DistGitStage(Stage["DistGitStage.Options"]):
    """Commit the spec and sources as a dist-git checkout; archives listed in `sources`."""

    name = "distgit"
    summary = "export the modified package as a dist-git repository (spec, patches, sources file)"
    version = "1"

    @dataclass(frozen=True)
    class Options:
        branch: Branch = "rawhide"
        author: Identity = "respin <respin@localhost>"
        message: str | None = None  # default: the spec's newest changelog line
        max_git_size: int = 1 << 20  # larger plain files go to the lookaside cache too


    def run(self, ctx: Context) -> list[Artifact]:
        import git

        ctx.record_tool("GitPython", git.__version__)

        spec, sources = topdir.build_input(ctx)
        repo_dir = ctx.stagedir / "repo"
        tmp = fsutil.fresh_dir(repo_dir)
        lookaside_dir = tmp / ".lookaside"  # in the checkout, ignored by git: what to upload
        index: list[str] = []
        committed: list[str] = [spec.name]
        shutil.copyfile(spec, tmp / spec.name)
        for entry in sorted(sources.iterdir()):
            if not entry.is_file():
                continue
            if lookaside(entry.name, entry.stat().st_size, self.options.max_git_size):
                lookaside_dir.mkdir(exist_ok=True)
                shutil.copyfile(entry, lookaside_dir / entry.name)
                index.append(f"SHA512 ({entry.name}) = {_sha512(entry)}")
            else:
                shutil.copyfile(entry, tmp / entry.name)
                committed.append(entry.name)
        (tmp / "sources").write_text("".join(f"{line}\n" for line in index))
        (tmp / ".gitignore").write_text("".join(f"/{line.split('(')[1].split(')')[0]}\n" for line in index)
                                        + "/.lookaside/\n")
        committed += ["sources", ".gitignore"]

        epoch = topdir.source_date(ctx)
        name, email = identity(self.options.author) or ("", "")  # Options checked it
        actor = git.Actor(name, email)
        when = f"{epoch} +0000"
        message = self.options.message or _message(spec.read_text(), spec.stem)
        repo = git.Repo.init(tmp, initial_branch=self.options.branch)
        with repo.config_writer() as cfg:
            cfg.set_value("user", "name", name)
            cfg.set_value("user", "email", email)
        for path in committed:
            os.chmod(tmp / path, 0o644)
        repo.index.add(sorted(committed))
        commit = repo.index.commit(message, author=actor, committer=actor, author_date=when,
                                   commit_date=when)
        repo.close()
        fsutil.commit_dir(tmp, repo_dir)
        sha = commit.hexsha
        ctx.log.info("distgit: %s committed %s on %s (%d file(s), %d in the lookaside cache)",
                     repo_dir, sha[:12], self.options.branch, len(committed), len(index))
        meta = {"commit": sha, "branch": self.options.branch,
                "scm_url": f"git+file://{repo_dir}#{sha}", "lookaside": str(repo_dir / ".lookaside")}
        return [Artifact(repo_dir, DISTGIT, meta=meta)]


def _message(spec_text: str, name: str) -> str:
    after = spec_text.split("%changelog", 1)[1] if "%changelog" in spec_text else ""
    for line in after.splitlines():
        if line.startswith("- "):
            return line[2:].strip()
    return f"Rebuild {name}"
