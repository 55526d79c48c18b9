"""A small noarch RPM that installs the rendered files, built reproducibly with rpmbuild.

The spec is generated; the files go in as one tree under SOURCES and the
`%files` list names exactly the rendered paths, so the payload holds those
and nothing else (no directories the system already owns). Same input, same
bytes: build time and file mtimes come from SOURCE_DATE_EPOCH, the build
host is fixed, the payload compressor is fixed, and rpmbuild runs in a
private topdir with HOME pointed there so no ~/.rpmmacros leaks in.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from respin.pipeline import fsutil
from respin.pipeline.epoch import source_date_epoch
from respin.pipeline.errors import CommandError, ConfigError
from respin.pipeline.options import checked, matching
from respin.pipeline.process import Runs
from respin.pipeline.process import run as default_run
from respin.stages.lib.rpmmacros import REPRO_MACROS, build_switches
from respin.stages.network.lib.files import Files, check_relative
from respin.stages.network.lib.root import write_tree

# 1980-01-01, the zip epoch: used when neither the pipeline nor the environment sets one.
DEFAULT_SOURCE_DATE_EPOCH = 315532800

PackageName = Annotated[str, matching(r"[A-Za-z0-9][A-Za-z0-9._+-]*", "is not a valid package name")]
VersionPart = Annotated[str, matching(r"[A-Za-z0-9._+~^]+", "is not valid (no '-' or spaces)")]
OneLine = Annotated[str, checked(lambda v: v.strip() and "\n" not in v, "must be one non-empty line")]


@dataclass(frozen=True)
class RpmOptions:
    """The `rpm = { ... }` table of the network stage."""

    name: PackageName
    version: VersionPart
    release: VersionPart = "1"
    summary: OneLine = "Policy-routing network configuration"
    license: OneLine = "MIT"

    @property
    def filename(self) -> str:
        """The file name rpmbuild gives the package."""
        return f"{self.name}-{self.version}-{self.release}.noarch.rpm"


def _macro_safe(text: str) -> str:
    # '%' starts a macro in a spec file; a literal one is written '%%'.
    return text.replace("%", "%%")


def spec_text(opts: RpmOptions, files: Files, description: str) -> str:
    """The spec file that packages `files` (paths relative to /)."""
    lines = [
        f"Name: {opts.name}",
        f"Version: {opts.version}",
        f"Release: {opts.release}",
        f"Summary: {_macro_safe(opts.summary)}",
        f"License: {_macro_safe(opts.license)}",
        "BuildArch: noarch",
        "",
        "%description",
        _macro_safe(description),
        "",
        "%prep",
        "",
        "%build",
        "",
        "%install",
        "cp -pR %{_sourcedir}/root/. %{buildroot}/",
        "",
        "%files",
    ]
    for rel, (_data, mode) in sorted(files.items()):
        path = "/" + check_relative(rel)
        if any(c in path for c in " \t%*?[]{}\"'\\"):
            raise ConfigError(f"{path}: cannot be listed in a spec %files section")
        # Edited configuration survives upgrades (the new one lands as .rpmnew).
        lines.append(f"%attr({mode:04o},root,root) %config(noreplace) {path}")
    return "\n".join(lines) + "\n"


def build_time(configured: int | None = None) -> int:
    """The time the RPM carries: the run's SOURCE_DATE_EPOCH (the stage's, else the environment
    as pipeline.epoch reads it), else a fixed one: the files have no input to date them by."""
    epoch = configured if configured is not None else source_date_epoch()
    return DEFAULT_SOURCE_DATE_EPOCH if epoch is None else epoch


def build_rpm(files: Files, opts: RpmOptions, dest_dir: Path, *, description: str,
              epoch: int | None = None, log_file: Path | None = None,
              run: Runs = default_run) -> Path:
    """Build the noarch RPM holding `files` and put it in `dest_dir`; return its path."""
    sde = build_time(epoch)
    with tempfile.TemporaryDirectory(prefix="respin-netrpm-") as tmp:
        topdir = Path(tmp)
        write_tree(files, topdir / "SOURCES" / "root")
        spec = topdir / "SPECS" / f"{opts.name}.spec"
        fsutil.atomic_write(spec, spec_text(opts, files, description))
        defines = {
            "_topdir": str(topdir),
            **REPRO_MACROS,
            "_source_date_epoch_from_changelog": "0",
            "_binary_payload": "w9.gzdio",
            "_build_id_links": "none",
            "debug_package": "%{nil}",
            # The brp scripts compress and strip; nothing here should change.
            "__os_install_post": "%{nil}",
        }
        argv = ["rpmbuild", "-bb", "--quiet", *build_switches(None, (), (), defines), str(spec)]
        run(argv, env={"SOURCE_DATE_EPOCH": str(sde), "HOME": str(topdir)}, log_file=log_file,
            what=f"rpmbuild of {opts.filename}")
        built = topdir / "RPMS" / "noarch" / opts.filename
        if not built.is_file():
            raise CommandError(f"rpmbuild did not produce {opts.filename} (check rpm.name/version)")
        target = Path(dest_dir) / opts.filename
        fsutil.atomic_copy(built, target)
        os.chmod(target, 0o644)
        return target
