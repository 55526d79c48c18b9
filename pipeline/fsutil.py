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
from collections.abc import Callable, Iterator, Sequence
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
def atomic_open(path: Path, mode: int = 0o644, mtime: int | None = None) -> Iterator[BinaryIO]:
    """Open a temp file beside `path` for binary writing; rename it over `path` on success.

    On any exception the temp file is removed and `path` is left as it was; an error names
    `path`, not the temp file. Replacing (not writing through) also keeps hard-linked copies
    untouched. The mode (and `mtime`, when given) are set on the open file before the rename:
    never through a name, which another user who can write the directory could have pointed
    elsewhere by then.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temp_beside(path, tempfile.mkstemp)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            if mtime is not None:
                os.utime(fh.fileno(), (mtime, mtime))
            os.fsync(fh.fileno())
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


def atomic_copy(src: Path, dst: Path, mode: int | None = None, mtime: int | None = None) -> str:
    """Copy a file's content to `dst` atomically, with the source's permission bits (or
    `mode`) and, when given, `mtime`; return the hex sha256 of the bytes copied. The source is
    read through one descriptor, so what was hashed is what `dst` holds, whatever is renamed
    over `src` meanwhile."""
    digest = hashlib.sha256()
    with open(src, "rb") as fin:
        if mode is None:
            mode = os.fstat(fin.fileno()).st_mode & 0o7777
        with atomic_open(dst, mode, mtime) as fout:
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


# --- Working under a directory another user may change ------------------------------------
# Every component is opened relative to the one before with O_NOFOLLOW, so a symlink planted
# (or swapped in mid-way) anywhere under the top directory is refused, never followed.

NOFOLLOW_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class BeneathError(Exception):
    """Component `index` of a path could not be opened as a directory (`error` says why;
    `is_link` when it is a symlink)."""

    def __init__(self, index: int, error: OSError, is_link: bool) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error
        self.is_link = is_link


def open_beneath(base_fd: int, comps: Sequence[str | bytes],
                 missing: Callable[[int, int], None] | None = None) -> int:
    """An fd of the directory `comps` under `base_fd`, opened one component at a time with
    O_NOFOLLOW, so no symlink is followed (the caller closes it). `missing(fd, i)` may create
    a missing component `i` in `fd`; BeneathError says which component failed."""
    fd = os.dup(base_fd)
    try:
        for i, comp in enumerate(comps):
            try:
                try:
                    nfd = os.open(comp, NOFOLLOW_DIR, dir_fd=fd)
                except FileNotFoundError:
                    if missing is None:
                        raise
                    missing(fd, i)
                    nfd = os.open(comp, NOFOLLOW_DIR, dir_fd=fd)
            except OSError as exc:
                try:
                    is_link = stat.S_ISLNK(os.stat(comp, dir_fd=fd, follow_symlinks=False).st_mode)
                except OSError:
                    is_link = False
                raise BeneathError(i, exc, is_link) from None
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


class NotRegular(Exception):
    """A file under a directory fd that is not a regular file; `what` says what it is
    ("a symlink", "a directory", "not a regular file")."""

    def __init__(self, name: str, what: str) -> None:
        super().__init__(f"{name}: is {what}")
        self.what = what


def not_regular(mode: int) -> str | None:
    """What a file of `mode` (an lstat's) is when it is not a regular file, in the words
    respin's errors use ("a symlink", "a directory", "not a regular file"); None if it is."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "a directory" if stat.S_ISDIR(mode) else "not a regular file"


def _kind_at(dir_fd: int, name: str) -> str:
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return "gone"
    return not_regular(st.st_mode) or "a regular file"


def read_at(dir_fd: int, name: str, limit: int | None = None) -> tuple[bytes, int] | None:
    """Content and permission bits of the regular file `name` in `dir_fd`; None if absent.

    Anything else (a symlink, a fifo, a device) raises NotRegular without being opened,
    and a file swapped between the check and the open is refused too, as is one of more
    than `limit` bytes (read no further).
    """
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise NotRegular(name, _kind_at(dir_fd, name))
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular(name, "a symlink") from None
        raise
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or not stat.S_ISREG(now.st_mode):
            raise NotRegular(name, "a file that was replaced while being read")
        chunks = []
        size = 0
        while chunk := os.read(fd, _CHUNK):
            size += len(chunk)
            if limit is not None and size > limit:
                raise NotRegular(name, f"larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks), stat.S_IMODE(now.st_mode)
    finally:
        os.close(fd)


def read_no_link(path: Path, limit: int | None = None) -> bytes | None:
    """The regular file `path`, read as `read_at` reads (no link followed at its last
    component, nothing but a plain file opened, at most `limit` bytes); None if absent."""
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        found = read_at(dir_fd, path.name, limit)
    finally:
        os.close(dir_fd)
    return None if found is None else found[0]


def atomic_write_at(dir_fd: int, name: str, data: bytes, mode: int = 0o644, *,
                    shown: str | None = None) -> None:
    """Write `data` as `name` in the directory fd `dir_fd`, as `atomic_write` does: a new temp
    file (O_EXCL, O_NOFOLLOW) given its mode before it is renamed over `name`.

    Rename replaces a symlink at `name` itself, never what it points to. An error names
    `shown` (the path the user knows, default `name`), not the temp file.
    """
    tmp = f".{name}.{os.urandom(4).hex()}.tmp"
    made = False
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=dir_fd)
        made = True
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException as exc:
        if made:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=dir_fd)
        if isinstance(exc, OSError):
            raise OSError(exc.errno, exc.strerror, shown or name) from exc
        raise
    os.fsync(dir_fd)
