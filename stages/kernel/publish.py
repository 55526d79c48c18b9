"""publish: gather the run's packages into a dnf repository, signed when [sign] has a GnuPG key.

`[publish] repo = "DIR"`: the packages every earlier stage built (the
kernel's, and the network stage's RPM) are added to DIR beside what it
holds, and its metadata is remade (createrepo_c). A package DIR holds
already with the same bytes is kept; one with the same NEVRA and other bytes
is refused, before anything is written. With a `sign` stage's GnuPG key, a
package not yet signed by it is signed on its way in (the rebuild signs the
kernel's), the metadata gets `repodata/repomd.xml.asc`, and the public key
is put in DIR as RPM-GPG-KEY-respin, for a `.repo` file's `gpgkey=`.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from respin.pipeline import fsutil
from respin.pipeline.errors import InputError, UsageError, restated
from respin.pipeline.options import Check, Invalid
from respin.pipeline.stage import Artifact, Context, PipelineView, Problem, Stage
from respin.stages.kernel.kinds import GPG_PUBKEY, REPO, SigningKeys
from respin.stages.kernel.lib import signing, topdir, yumrepo
from respin.stages.kernel.lib.repo import URL_SCHEME
from respin.stages.lib import packages

PUBKEY_NAME = "RPM-GPG-KEY-respin"


def _local_dir(repo: str) -> str:
    # A URL would otherwise be taken for a relative path and made a directory here.
    if URL_SCHEME.match(repo):
        raise Invalid(f"'{repo}' is a URL; publish fills a local directory "
                      "(serve or sync that directory to publish it further)")
    return repo


class PublishStage(Stage["PublishStage.Options"]):
    """Add the run's packages to a repository directory and remake (and sign) its metadata."""

    name = "publish"
    results = (REPO,)
    summary = "add the run's packages to a dnf repository (createrepo_c), signed with the [sign] GnuPG key"
    version = "1"

    @dataclass(frozen=True)
    class Options:
        repo: Annotated[str, Check(_local_dir)]  # the repository directory; made if its parent exists

    def outputs(self, ctx: Context) -> Mapping[str, Path]:
        return {"repo": ctx.resolve(self.options.repo)}

    def check(self, ctx: Context, pipeline: PipelineView) -> list[Problem]:
        """Before any stage runs: the repository directory is one, or can be made."""
        try:
            _check_repo_dir(ctx.resolve(self.options.repo))
        except InputError as exc:
            return [restated(exc, f"{ctx.source} [publish] repo: {exc.message}")]
        return []

    def run(self, ctx: Context) -> list[Artifact]:
        repo = ctx.resolve(self.options.repo)
        built = [a.path for a in packages.built(ctx)]
        if not built:
            raise UsageError(f"{ctx.source.name} [publish]: no stage before it built a package "
                             "(put publish after rebuild)")
        _check_repo_dir(repo)
        gpg = signing.gpg_key_of(SigningKeys.find(ctx))
        epoch = topdir.source_date(ctx)
        pubkey = ctx.artifact(GPG_PUBKEY).path if gpg is not None else None
        if gpg is not None and pubkey is not None:
            with signing.gpg_session(gpg.home, ctx.run):
                built = self._signed(ctx, built, gpg, pubkey, epoch)
        add, kept = yumrepo.plan(repo, built)
        pubkey_text = pubkey.read_text() if pubkey is not None else None
        if pubkey_text is not None:
            _check_pubkey(repo / PUBKEY_NAME, pubkey_text)
        repo.mkdir(exist_ok=True)
        added = yumrepo.add_packages(repo, add)
        repomd = yumrepo.make_metadata(repo, epoch, ctx.run, log_file=ctx.stagedir / "createrepo.log")
        outputs = [Artifact(p, "published-package") for p in added]
        if gpg is not None and pubkey_text is not None:
            with signing.gpg_session(gpg.home, ctx.run):
                asc = yumrepo.sign_metadata(repomd, gpg, epoch, ctx.run)
            fsutil.atomic_write(repo / PUBKEY_NAME, pubkey_text)
            outputs += [Artifact(asc, "repo-signature"), Artifact(repo / PUBKEY_NAME, "repo-gpg-key")]
        ctx.log.info("publish: %s: added %d package(s), kept %d already there; metadata %s", repo,
                     len(added), len(kept), "signed" if gpg else "unsigned")
        meta = {"repo": str(repo), "added": sorted(e.nevra for e in add),
                "kept": sorted(e.nevra for e in kept), "signed": gpg is not None}
        return [Artifact(repomd, REPO, meta=meta), *outputs]

    def _signed(self, ctx: Context, built: list[Path], gpg: signing.GpgKey, pubkey: Path,
                epoch: int) -> list[Path]:
        """`built`, each package not yet signed by the key replaced by a signed copy in the stage dir."""
        unsigned = signing.signature_problems(built, pubkey, ctx.run)
        if not unsigned:
            return built
        copies = ctx.stagedir / "signed"
        shutil.rmtree(copies, ignore_errors=True)
        copies.mkdir()
        out = []
        for path in built:
            if path in unsigned:
                copy = copies / path.name
                shutil.copyfile(path, copy)
                path = copy
            out.append(path)
        signing.rpmsign([copies / p.name for p in unsigned], gpg, epoch, ctx.run,
                        log_file=ctx.stagedir / "rpmsign.log")
        return out


def _check_repo_dir(repo: Path) -> None:
    if repo.exists() and not repo.is_dir():
        raise InputError(f"{repo}: is not a directory (expected the repository directory)")
    if not repo.exists() and not repo.parent.is_dir():
        raise InputError(f"{repo}: its parent directory does not exist (a typo? respin makes the "
                         "repository directory, not the path to it)")


def _check_pubkey(path: Path, text: str) -> None:
    """Refuse a repository whose public key file is another key's: its packages would not verify."""
    if path.exists() and path.read_text(errors="replace") != text:
        raise InputError(f"{path}: holds another public key than the [sign] gpg_key's; the repository "
                         "is signed by another key (publish into another directory)")
