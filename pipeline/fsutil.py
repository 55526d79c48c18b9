"""The one way respin writes files: a temp file beside the target, fsync, rename.

A crash or kill at any point leaves either the old file or the new one,
never a half-written one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

_CHUNK = 1 << 20
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _naming(exc: OSError, path: Path) -> OSError:
    """`exc` naming `path` where it names one of `path`'s temp files (`.NAME.*.tmp` beside it),
    or no file at all on a full disk: the user asked for `path`, the temp name is respin's."""
    name = exc.filename
    temp = name is not None and Path(os.fsdecode(name)).parent == path.parent \
        and Path(os.fsdecode(name)).name.startswith(f".{path.name}.")
    if temp or (name is None and exc.errno in _NO_SPACE):
        return OSError(exc.errno, exc.strerror, str(path))
    return exc


def _temp_beside(path: Path, make: Callable[..., Any]) -> Any:
    """`make` (mkstemp, mkdtemp) run for a temp name beside `path`; an error names `path`."""
    try:
        return make(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _naming(exc, path) from exc


@contextlib.contextmanager
def atomic_open(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """Open a temp file beside `path` for binary writing; rename it over `path` on success.

    On any exception the temp file is removed and `path` is left as it was; an error names
    `path`, not the temp file. Replacing (not writing through) also keeps hard-linked copies
    untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(path, tempfile.mkstemp)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and _naming(exc, path) is not exc:
            raise _naming(exc, path) from exc
        raise
    _fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Write `data` to `path` atomically."""
    if isinstance(data, str):
        data = data.encode()
    with atomic_open(path, mode) as fh:
        fh.write(data)


def atomic_copy(src: Path, dst: Path) -> str:
    """Copy a file's content to `dst` atomically, keeping the source's permission bits; return
    the hex sha256 of the bytes copied. The source is read through one descriptor, so what
    was hashed is what `dst` holds, whatever is renamed over `src` meanwhile."""
    digest = hashlib.sha256()
    with open(src, "rb") as fin:
        mode = os.fstat(fin.fileno()).st_mode & 0o7777
        with atomic_open(dst, mode) as fout:
            while chunk := fin.read(_CHUNK):
                digest.update(chunk)
                fout.write(chunk)
    return digest.hexdigest()


def free_bytes(path: Path) -> int | None:
    """Bytes this process may still write on `path`'s file system (root may use the reserve)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return (st.f_bfree if os.geteuid() == 0 else st.f_bavail) * st.f_frsize


def umask() -> int:
    """The process's umask, read without changing it (/proc), else by setting it back."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fresh_dir(path: Path) -> Path:
    """Return an empty sibling temp dir of `path`, to be committed with `commit_dir`.

    Its mode is what `mkdir` would give (0755 under umask 022): mkdtemp's 0700 is
    for a private temp dir, and this one becomes `path`.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(_temp_beside(path, tempfile.mkdtemp))
    os.chmod(tmp, 0o777 & ~umask())
    return tmp


def commit_dir(tmp: Path, path: Path) -> None:
    """Put a fully built directory `tmp` in place of `path` by rename.

    The old directory is renamed aside first and removed after, so an
    interruption leaves either the old tree or the new one at `path`.
    """
    old: Path | None = None
    try:
        if path.exists():
            old = path.with_name(f".{path.name}.old.{os.getpid()}")
            if old.exists():
                shutil.rmtree(old)
            os.replace(path, old)
        os.replace(tmp, path)
    except OSError as exc:
        raise _naming(exc, path) from exc
    _fsync_dir(path.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def walk(top: Path) -> Iterator[Path]:
    """Every path under `top` (not `top` itself), each directory's entries in name order, a
    directory before what it holds; symlinks to directories are listed, not followed."""
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            yield Path(dirpath) / name


def tree(top: Path) -> dict[str, tuple[str, str]]:
    """Everything under `top`: relative path -> (type and permission bits, content digest or
    link target). The one walk behind content hashes (the runner's) and comparisons (repro's)."""
    out: dict[str, tuple[str, str]] = {}
    for path in walk(top):
        rel = path.relative_to(top).as_posix()
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = (f"dir {oct(st.st_mode & 0o7777)}", "")
        else:
            out[rel] = (f"file {oct(st.st_mode & 0o7777)}", sha256_file(path))
    return out


def remove_stale_temps(directory: Path) -> None:
    """Remove temp files and dirs left by an interrupted run (names `.X.*.tmp`, `.X.old.N`)."""
    if not directory.is_dir():
        return
    for entry in directory.iterdir():
        name = entry.name
        if name.startswith(".") and (name.endswith(".tmp") or ".old." in name):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
