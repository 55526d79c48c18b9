"""RPM packages through the rpm bindings: headers, payload files, rpmbuild command lines."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rpm

from pipeline.errors import InputError

REPRO_MACROS: dict[str, str] = {
    # rpm's own reproducibility switches: build time and file mtimes from
    # SOURCE_DATE_EPOCH, a fixed build host.
    "use_source_date_epoch_as_buildtime": "1",
    "clamp_mtime_to_source_date_epoch": "1",
    "_buildhost": "respin.build",
}


@dataclass(frozen=True)
class PackageInfo:
    """What respin needs from a package header."""

    name: str
    version: str
    release: str
    arch: str
    is_source: bool
    changelog_time: int | None
    files: tuple[str, ...]

    @property
    def nvr(self) -> str:
        return f"{self.name}-{self.version}-{self.release}"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _header(path: Path) -> Any:
    ts = rpm.TransactionSet()
    # Packages here are rebuilt locally and unsigned; signatures are not the question.
    ts.setVSFlags(rpm._RPMVSF_NOSIGNATURES | rpm._RPMVSF_NODIGESTS)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise InputError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise InputError(f"{path}: is a directory, expected an RPM package") from exc
    try:
        return ts.hdrFromFdno(fd)
    except rpm.error as exc:
        raise InputError(f"{path}: not an RPM package ({exc})") from exc
    finally:
        os.close(fd)


def read_package(path: Path) -> PackageInfo:
    """Read a package's header, or fail with one line naming the file."""
    hdr = _header(path)
    times = hdr[rpm.RPMTAG_CHANGELOGTIME] or []
    return PackageInfo(
        name=_text(hdr[rpm.RPMTAG_NAME]),
        version=_text(hdr[rpm.RPMTAG_VERSION]),
        release=_text(hdr[rpm.RPMTAG_RELEASE]),
        arch=_text(hdr[rpm.RPMTAG_ARCH]) if hdr[rpm.RPMTAG_ARCH] else "noarch",
        is_source=bool(hdr.isSource()),
        changelog_time=int(times[0]) if times else None,
        files=tuple(_text(f) for f in (hdr[rpm.RPMTAG_FILENAMES] or [])),
    )


def payload_files(path: Path, wanted: re.Pattern[str]) -> Iterator[tuple[str, bytes]]:
    """Yield (name, content) of regular files in the payload whose name matches `wanted`."""
    ts = rpm.TransactionSet()
    ts.setVSFlags(rpm._RPMVSF_NOSIGNATURES | rpm._RPMVSF_NODIGESTS)
    fd = rpm.fd.open(str(path))
    try:
        # Reading the header leaves the descriptor at the start of the payload.
        hdr = ts.hdrFromFdno(fd)
        compressor = _text(hdr[rpm.RPMTAG_PAYLOADCOMPRESSOR] or "gzip")
        payload = rpm.fd(fd, "r", flags=compressor)
        archive = rpm.files(hdr).archive(payload, write=False)
        for entry in archive:
            name = _text(entry.name)
            if wanted.search(name) and archive.hascontent():
                yield name, archive.read()
    except rpm.error as exc:
        raise InputError(f"{path}: cannot read the payload ({exc})") from exc
    finally:
        fd.close()


def rpmbuild_argv(mode: str, spec: Path, *, topdir: Path, target: str | None,
                  with_: Sequence[str] = (), without: Sequence[str] = (), nodeps: bool = True,
                  defines: Mapping[str, str] | None = None) -> list[str]:
    """An rpmbuild command line that keeps everything under `topdir`."""
    argv = ["rpmbuild", mode]
    if nodeps:
        argv.append("--nodeps")
    if target:
        argv.append(f"--target={target}")
    for sw in with_:
        argv += ["--with", sw]
    for sw in without:
        argv += ["--without", sw]
    macros = {"_topdir": str(topdir), **REPRO_MACROS, **(defines or {})}
    for key, value in macros.items():
        argv += ["--define", f"{key} {value}"]
    argv.append(str(spec))
    return argv


def written_packages(log_text: str) -> list[Path]:
    """The packages rpmbuild reports in its `Wrote:` lines, in order."""
    return [Path(m.group(1).strip()) for m in re.finditer(r"^Wrote: (.+\.rpm)\s*$", log_text, re.M)]
