"""Safe extraction of every part of an image, without root.

Everything is created through directory file descriptors opened with
O_NOFOLLOW, so nothing is ever written through a symlink the archive made;
symlinks themselves are created verbatim (absolute targets are normal in
initrds). Names with `..` are refused, leading `/` is dropped. Device nodes,
sockets, owners and setuid/setgid/sticky bits are not applied unless asked
(and then only as root); what was not applied goes into the manifest.

The result is built in a temp dir beside the target and renamed into place,
so a refused archive leaves the target as it was. DIR/initrd-extracted.json
records what was written (kind, mode, size, content hash per path), so a later
extract into DIR replaces it only when nothing was added, removed or changed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from respin.pipeline import fsutil
from respin.pipeline.errors import InputError, UsageError
from respin.stages.initrd.lib import newc
from respin.stages.initrd.lib.manifest import MANIFEST_NAME, Manifest, Record
from respin.stages.initrd.lib.reader import DEFAULT_MAX_ENTRIES, DEFAULT_MAX_SIZE, Entry, ImageReader, Part

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
# What extract wrote, so a later extract into the same directory can tell whether it
# was changed since (and keep the changes unless forced).
RECORD_NAME = "initrd-extracted.json"
RECORD_FORMAT = "respin-initrd-extracted"


# One way to open a path beneath a directory without following links: fsutil's.
BeneathError = fsutil.BeneathError
open_beneath = fsutil.open_beneath


class Refused(Exception):
    """An entry that must not be extracted; the message names it and says why."""


def split_name(name: bytes) -> tuple[list[str], bool]:
    """The path components of an archive name, and whether it was absolute.

    `.` and empty components are dropped; `..` anywhere is refused.
    """
    text = os.fsdecode(name)
    comps = [c for c in text.split("/") if c not in ("", ".")]
    if ".." in comps:
        raise Refused("has a '..' component")
    return comps, text.startswith("/")


def parts_json(parts: list[Part]) -> list[dict[str, Any]]:
    """The parts of an image as plain JSON data (with the level, and xz's dictionary size,
    that `pack` uses again)."""
    out: list[dict[str, Any]] = []
    for p in parts:
        data = {"index": p.index, "offset": p.offset, "end": p.end, "compression": p.compression,
                "detail": p.detail, "format": p.format, "archives": p.archives, "entries": p.entries,
                "size": p.size}
        if p.level is not None:
            data["level"] = p.level
        if p.dict_size is not None:
            data["dict_size"] = p.dict_size
        out.append(data)
    return out


@dataclass
class ExtractResult:
    """What `extract` did: the parts it read, warnings, and counts."""

    parts: list[Part]
    warnings: list[str] = field(default_factory=list)
    entries: int = 0
    trees: list[str] = field(default_factory=list)


class TreeBuilder:
    """Creates entries under one root directory fd; never follows a symlink."""

    def __init__(self, root: Path, name: str, manifest: Manifest, *, privileged: bool,
                 warn: Callable[[str], None]) -> None:
        os.mkdir(root, 0o755)
        self.root = root
        self.name = name
        self.root_fd = os.open(root, DIR_FLAGS)
        self.manifest = manifest
        self.records = manifest.records(name)
        self.privileged = privileged
        self.warn = warn
        self.links: dict[tuple[int, int, int, int], list[str]] = {}
        self.dirs: dict[str, tuple[int, int]] = {}
        self._cache: tuple[tuple[str, ...], int] | None = None

    def close(self) -> None:
        self._drop_cache()
        os.close(self.root_fd)

    # --- directory walking ----------------------------------------------------

    def _drop_cache(self) -> None:
        if self._cache is not None:
            os.close(self._cache[1])
            self._cache = None

    def _parent_fd(self, comps: list[str]) -> int:
        """An fd of the parent directory of `comps` (owned by the cache: do not close)."""
        key = tuple(comps[:-1])
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        fd = self._walk(key)
        self._drop_cache()
        self._cache = (key, fd)
        return fd

    def _walk(self, key: tuple[str, ...]) -> int:
        """Open the directory `key` component by component with O_NOFOLLOW (caller closes)."""
        def missing(fd: int, i: int) -> None:
            # The kernel would skip the entry; creating the parent loses nothing.
            self.warn(f"directory '{'/'.join(key[:i + 1])}' is missing from the archive; created it")
            os.mkdir(key[i], 0o755, dir_fd=fd)

        try:
            return open_beneath(self.root_fd, key, missing)
        except BeneathError as exc:
            if exc.error.errno in (errno.ELOOP, errno.ENOTDIR):
                what = "a symlink" if exc.is_link else "not a directory"
                raise Refused(f"goes through '{'/'.join(key[:exc.index + 1])}', which is {what}") from None
            raise exc.error from None

    def _clear(self, pfd: int, leaf: str, path: str, keep_dir: bool) -> None:
        """Remove what is at `leaf` unless it is a directory we keep (kernel: another type is removed)."""
        try:
            st = os.stat(leaf, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            # The cached fd is this leaf's parent, which stays; no need to drop it.
            shutil.rmtree(leaf, dir_fd=pfd)
            for key in [k for k in self.dirs if k.startswith(path + "/")]:
                del self.dirs[key]
            self.dirs.pop(path, None)
        else:
            os.unlink(leaf, dir_fd=pfd)
        self.manifest.forget(self.name, path)

    # --- entries --------------------------------------------------------------

    def add(self, entry: Entry, reader: ImageReader) -> None:
        """Create one entry (its data read from `reader`)."""
        h = entry.header
        comps, absolute = split_name(h.name)
        if absolute:
            self.warn(f"entry '{os.fsdecode(h.name)}': leading '/' dropped")
        perms = stat.S_IMODE(h.mode)
        if not comps:
            if h.kind != "dir":
                raise Refused(f"is the root but a {h.kind}")
            self.records["."] = Record(mode=perms, uid=h.uid, gid=h.gid, mtime=h.mtime)
            self.dirs["."] = (perms, h.mtime)
            return
        path = "/".join(comps)
        pfd = self._parent_fd(comps)
        leaf = comps[-1]
        self._clear(pfd, leaf, path, keep_dir=(h.kind == "dir"))
        rec = self._make(entry, reader, pfd, leaf, path, perms)
        if rec is None:
            # Device nodes and sockets live in the manifest only; pack puts them back.
            self.records[path] = Record(kind=h.kind, mode=perms, uid=h.uid, gid=h.gid, mtime=h.mtime,
                                        rdev=(h.rdevmajor, h.rdevminor) if h.kind in ("chr", "blk")
                                        else None)
            return
        if self.privileged and (h.uid or h.gid):
            self._own(h.kind, pfd, leaf, h.uid, h.gid, perms)
            rec.uid = rec.gid = 0
        if not rec.empty:
            self.records[path] = rec

    def _make(self, entry: Entry, reader: ImageReader, pfd: int, leaf: str, path: str,
              perms: int) -> Record | None:
        """Create the entry on disk (never with set-id bits unprivileged); the record of what
        the disk does not keep, or None for an entry only the manifest holds."""
        h = entry.header
        kind = h.kind
        rec = Record(uid=h.uid, gid=h.gid)
        made = perms & ~_SPECIAL_BITS if not self.privileged else perms
        if kind == "dir":
            with contextlib.suppress(FileExistsError):
                os.mkdir(leaf, 0o700, dir_fd=pfd)
            # Modes and mtimes of directories are applied last, so a read-only
            # directory does not block its own children.
            self.dirs[path] = (made | 0o700, h.mtime)
            made |= 0o700
        elif kind == "file":
            made |= 0o600
            self._file(entry, reader, pfd, leaf, path, made)
        elif kind == "symlink":
            target = reader.read_all(newc.SYMLINK_MAX)
            if b"\0" in target:
                raise Refused("symlink target contains a NUL byte")
            os.symlink(target, leaf.encode("utf-8", "surrogateescape"), dir_fd=pfd)
            os.utime(leaf, (h.mtime, h.mtime), dir_fd=pfd, follow_symlinks=False)
            return rec
        elif kind == "fifo":
            os.mkfifo(leaf, made, dir_fd=pfd)
            os.chmod(leaf, made, dir_fd=pfd)
            os.utime(leaf, (h.mtime, h.mtime), dir_fd=pfd, follow_symlinks=False)
        elif self.privileged and kind in ("chr", "blk"):
            fmt = stat.S_IFCHR if kind == "chr" else stat.S_IFBLK
            os.mknod(leaf, fmt | perms, os.makedev(h.rdevmajor, h.rdevminor), dir_fd=pfd)
            os.utime(leaf, (h.mtime, h.mtime), dir_fd=pfd, follow_symlinks=False)
            return rec
        else:
            return None
        if made != perms:
            rec.mode = perms
        return rec

    @staticmethod
    def _own(kind: str, pfd: int, leaf: str, uid: int, gid: int, perms: int) -> None:
        """Give the entry its owner (privileged extraction only)."""
        os.chown(leaf, uid, gid, dir_fd=pfd, follow_symlinks=False)
        if kind not in ("dir", "symlink"):
            # chown clears setuid bits; set them again.
            with contextlib.suppress(NotImplementedError, OSError):
                os.chmod(leaf, perms, dir_fd=pfd)

    def _file(self, entry: Entry, reader: ImageReader, pfd: int, leaf: str, path: str, mode: int) -> None:
        h = entry.header
        key = (entry.archive, *h.link_key)
        first = self.links.get(key) if h.nlink > 1 else None
        if first is None:
            if h.nlink > 1:
                self.links[key] = path.split("/")
            fd = os.open(leaf, _NEW_FILE, 0o600, dir_fd=pfd)
        else:
            # A later name of a hardlinked inode: link to the first name, found
            # again through O_NOFOLLOW directory fds, and only if still a file.
            src_parent = self._walk(tuple(first[:-1]))
            try:
                st = os.stat(first[-1], dir_fd=src_parent, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    raise Refused(f"is a hardlink to '{'/'.join(first)}', which is no longer a file")
                os.link(first[-1], leaf, src_dir_fd=src_parent, dst_dir_fd=pfd, follow_symlinks=False)
            finally:
                os.close(src_parent)
            if not h.filesize:
                return
            fd = os.open(leaf, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
        try:
            for chunk in reader.chunks():
                _write_all(fd, chunk)
            os.fchmod(fd, mode)
            os.utime(fd, (h.mtime, h.mtime))
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Apply directory modes and mtimes, deepest first."""
        for path in sorted(self.dirs, key=lambda p: (-p.count("/"), p)):
            mode, mtime = self.dirs[path]
            if path == ".":
                os.utime(self.root_fd, (mtime, mtime))
                continue
            comps = path.split("/")
            pfd = self._parent_fd(comps)
            dfd = os.open(comps[-1], DIR_FLAGS, dir_fd=pfd)
            try:
                os.fchmod(dfd, mode)
                os.utime(dfd, (mtime, mtime))
            finally:
                os.close(dfd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _rmtree(path: Path) -> None:
    """Remove a half-built tree even where a directory lost its write bit."""
    def fix(func: Callable[..., Any], p: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), 0o700)
            func(p)
    shutil.rmtree(path, onerror=fix)


class _Listing(dict[str, str]):
    """Every path under a directory but the record itself: relative name -> signature
    without content hash. lstat only, nothing followed.

    Kept small per entry (an image may hold a million): signatures are shared between the
    entries that have the same, and only hardlinked files keep their inode.
    """

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self._inodes: dict[str, tuple[int, int]] = {}
        self._digests: dict[tuple[int, int], str] = {}
        # One string per distinct signature ("file 0644 0"), however many entries have it.
        shared: dict[str, str] = {}
        stack = [""]
        while stack:
            rel = stack.pop()
            try:
                it = os.scandir(root / rel if rel else root)
            except OSError as exc:
                if not rel:
                    raise InputError(f"{root}: cannot read: {exc.strerror}") from None
                # Made unreadable since: its own entry (mode) shows the change, and sorts first.
                continue
            with it:
                for de in it:
                    self._add(shared, stack, f"{rel}{de.name}", de.stat(follow_symlinks=False))

    def _add(self, shared: dict[str, str], stack: list[str], name: str, st: os.stat_result) -> None:
        """Record one path (a directory goes on `stack`, to be read in its turn)."""
        if name == RECORD_NAME:
            return
        mode = stat.S_IMODE(st.st_mode)
        kind = newc.file_kind(st.st_mode)
        if kind == "symlink":
            sig = f"symlink {os.readlink(self.root / name)}"
        elif kind == "file":
            sig = f"file {mode:04o} {st.st_size}"
            if st.st_nlink > 1:
                self._inodes[name] = (st.st_dev, st.st_ino)
        elif kind in ("chr", "blk"):
            sig = f"{kind} {mode:04o} {os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
        else:
            sig = f"{kind} {mode:04o}"
        self[name] = shared.setdefault(sig, sig)
        if kind == "dir":
            stack.append(name + "/")

    def full(self, name: str) -> str:
        """The full signature of `name`: a regular file's gets the sha256 of its content
        (once per inode: a busybox hardlinked under 300 names is read once)."""
        sig = self[name]
        if not sig.startswith("file "):
            return sig
        inode = self._inodes.get(name)
        digest = self._digests.get(inode) if inode is not None else None
        if digest is None:
            path = self.root / name
            try:
                digest = fsutil.sha256_file(path)
            except OSError as exc:
                raise InputError(f"{path}: cannot read: {exc.strerror}") from None
            if inode is not None:
                self._digests[inode] = digest
        return f"{sig} {digest}"


def record_extraction(root: Path) -> None:
    """Write what `root` (a finished extraction) holds, for a later extract to compare.

    Written entry by entry, as json.dumps(indent=0, sort_keys=True) would write the whole:
    the record of a large image is never one string in memory.
    """
    listing = _Listing(root)
    with fsutil.atomic_open(root / RECORD_NAME) as fh:
        fh.write(b'{\n"files": {')
        sep = b"\n"
        for name in sorted(listing):
            fh.write(sep + f"{json.dumps(name)}: {json.dumps(listing.full(name))}".encode())
            sep = b",\n"
        fh.write((b"\n}" if sep != b"\n" else b"}") + f',\n"format": {json.dumps(RECORD_FORMAT)},\n'
                 '"version": 1\n}\n'.encode())


def first_change(root: Path) -> str | None:
    """How `root` differs from what extract recorded, for the first path (bytewise order)
    that does ("main/etc/x modified"); None when it holds just that. Raises UsageError
    when there is no usable record."""
    record = root / RECORD_NAME
    try:
        data = json.loads(record.read_text())
        if data.get("format") != RECORD_FORMAT or not isinstance(data.get("files"), dict):
            raise ValueError(f"not a {RECORD_FORMAT} file")
        recorded: dict[str, str] = {str(k): str(v) for k, v in data["files"].items()}
    except FileNotFoundError:
        raise UsageError(f"{root}: holds no record of what extract wrote there (an older respin, or "
                         "a tree initrd-modify made), so its changes cannot be told; --force replaces it"
                         ) from None
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise UsageError(f"{record}: unreadable record of what extract wrote ({exc}); "
                         "--force replaces the directory") from None
    current = _Listing(root)
    for name in sorted(set(recorded) | set(current)):
        if name not in current:
            return f"{name} removed"
        if name not in recorded:
            return f"{name} added"
        # Kind, mode, size and link target first; the content hash only when those agree.
        sig = current[name]
        if recorded[name] != sig and not recorded[name].startswith(sig + " "):
            return f"{name} modified"
        if current.full(name) != recorded[name]:
            return f"{name} modified"
    return None


def check_target(dest: Path, *, force: bool = False) -> None:
    """Refuse to replace what extract did not make, or an extraction changed since.

    An empty or missing `dest` is fine; an earlier extraction is replaced when it holds
    exactly what extract recorded, or with `force`; any other non-empty directory never.
    """
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise UsageError(f"{dest}: exists and is not a directory")
    if not dest.is_dir() or not any(dest.iterdir()):
        return
    if not (dest / MANIFEST_NAME).is_file():
        raise UsageError(f"{dest}: directory exists and is not empty (and is no earlier extraction); "
                         "choose a new directory")
    if force:
        return
    change = first_change(dest)
    if change is not None:
        raise UsageError(f"{dest}: changed since it was extracted ({change}); refusing to replace it "
                         "(--force does)")


def extract(image: Path, dest: Path, *, privileged: bool = False, max_size: int = DEFAULT_MAX_SIZE,
            max_entries: int = DEFAULT_MAX_ENTRIES, force: bool = False) -> ExtractResult:
    """Extract every part of `image` into `dest`/main (and `dest`/early), with the manifest.

    Leading uncompressed archives followed by a compressed member (early CPU
    microcode) go to early/; everything else is overlaid in image order into
    main/, as the kernel does. An earlier extraction at `dest` is replaced only when it
    is unchanged since, or with `force`.
    """
    if privileged and os.geteuid() != 0:
        raise UsageError("--privileged (devices, owners, setuid bits) needs root")
    dest = Path(dest)
    check_target(dest, force=force)
    reader = ImageReader(image, max_size=max_size, max_entries=max_entries)
    result = ExtractResult(parts=reader.parts)
    manifest = Manifest(image=Path(image).name)
    tmp = fsutil.fresh_dir(dest)
    builders: dict[str, TreeBuilder] = {}

    def warn(message: str) -> None:
        result.warnings.append(f"{image}: {message}")

    try:
        os.chmod(tmp, 0o755)
        seen_compressed = False
        for entry in reader.entries():
            part = reader.parts[entry.part]
            seen_compressed = seen_compressed or part.compression != "none"
            tree = "main" if seen_compressed else "early"
            builder = builders.get(tree)
            if builder is None:
                builder = builders[tree] = TreeBuilder(tmp / tree, tree, manifest,
                                                       privileged=privileged, warn=warn)
            try:
                builder.add(entry, reader)
            except Refused as exc:
                raise InputError(f"{image}: entry '{os.fsdecode(entry.name)}' {exc}; refused") from None
            except OSError as exc:
                raise InputError(f"{image}: entry '{os.fsdecode(entry.name)}': cannot create it: "
                                 f"{exc.strerror}") from None
            result.entries += 1
        for builder in builders.values():
            builder.finish()
            builder.close()
        builders.clear()
        if "main" not in manifest.trees and (tmp / "early").exists():
            # No compressed member: the uncompressed archives are the main tree.
            os.rename(tmp / "early", tmp / "main")
            manifest.trees["main"] = manifest.trees.pop("early")
        elif not (tmp / "main").exists():
            os.mkdir(tmp / "main", 0o755)
        manifest.trees.setdefault("main", {})
        manifest.parts = parts_json(reader.parts)
        result.warnings[:0] = reader.warnings
        manifest.write(tmp / MANIFEST_NAME)
        result.trees = sorted(t for t in ("early", "main") if (tmp / t).exists())
        record_extraction(tmp)
        fsutil.commit_dir(tmp, dest)
    except BaseException:
        for builder in builders.values():
            with contextlib.suppress(OSError):
                builder.close()
        _rmtree(tmp)
        raise
    return result
