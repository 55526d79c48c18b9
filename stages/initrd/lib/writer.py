"""Pack a tree into a reproducible, bootable initrd image.

newc entries in bytewise order of their names (so parents come before
children), no `./` prefix, inodes renumbered 1..N with hardlinks kept (data
on the last name, as GNU cpio and libarchive write it), owners from the
manifest or 0, mtimes clamped to SOURCE_DATE_EPOCH, and compressor settings
the kernel can read. The same tree and SOURCE_DATE_EPOCH give the same bytes.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from respin.pipeline import fsutil
from respin.pipeline.epoch import source_date_epoch
from respin.pipeline.errors import ConfigError, InputError, UsageError
from respin.stages.initrd.lib import newc
from respin.stages.initrd.lib.codecs import (
    DEFAULT_LEVEL,
    LEVEL_RANGE,
    PACK_COMPRESSIONS,
    Compressor,
    compressor,
)
from respin.stages.initrd.lib.manifest import MANIFEST_NAME, Manifest, Record
from respin.stages.initrd.lib.unpack import DIR_FLAGS, BeneathError, open_beneath

_READ_CHUNK = 1 << 20
_KIND_FMT = {"chr": stat.S_IFCHR, "blk": stat.S_IFBLK, "sock": stat.S_IFSOCK}


@dataclass
class Item:
    """One entry to write: where its bytes come from and its header fields."""

    name: bytes
    mode: int
    size: int = 0
    mtime: int = 0
    uid: int = 0
    gid: int = 0
    rdev: tuple[int, int] = (0, 0)
    link_group: tuple[int, int] | None = None
    ino: int = 0
    nlink: int = 1
    has_data: bool = True


@dataclass
class PackResult:
    """What `pack` wrote."""

    output: Path
    compression: str
    level: int
    dict_size: int | None = None  # xz's dictionary, when it is the extracted image's
    kept: bool = False  # compression and level are the extracted image's
    entries: int = 0
    early_entries: int = 0
    size: int = 0
    warnings: list[str] = field(default_factory=list)


def newc_epoch(value: str | int | None = None) -> int | None:
    """SOURCE_DATE_EPOCH as respin reads it (`value`, else the environment: pipeline.epoch),
    checked to fit newc's mtime field."""
    epoch = source_date_epoch(value)
    if epoch is not None and epoch > 0xFFFFFFFF:
        raise ConfigError(f"SOURCE_DATE_EPOCH={epoch} is out of range for newc (0..2^32-1)")
    return epoch


class Tree:
    """A tree read through directory descriptors opened without following symlinks:
    a directory swapped for a link while it is packed is refused, never followed (as
    root, a tree another user can write must not lead to files outside it)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.fd = fd
        self._cache: tuple[bytes, int] | None = None

    @classmethod
    def open(cls, path: Path, parent: Tree | None = None, name: str = "") -> Tree:
        """`path` itself (followed: the caller named it), or `name` in `parent`, which must
        be a real directory, not a symlink."""
        try:
            if parent is None:
                fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            else:
                fd = os.open(name, DIR_FLAGS, dir_fd=parent.fd)
        except OSError as exc:
            if parent is not None and os.path.islink(path):
                raise InputError(f"{path}: is a symlink; refusing to pack through it") from None
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise InputError(f"{path}: not a directory") from None
            raise InputError(f"{path}: cannot read: {exc.strerror}") from None
        return cls(path, fd)

    def close(self) -> None:
        """Close the tree's descriptors."""
        if self._cache is not None:
            os.close(self._cache[1])
            self._cache = None
        os.close(self.fd)

    def _open_dir(self, rel: bytes) -> int:
        """An fd of the directory `rel` under the tree, opened one component at a time
        without following links (the caller closes it)."""
        try:
            return open_beneath(self.fd, rel.split(b"/") if rel else ())
        except BeneathError as exc:
            raise self._changed(rel, exc.error) from None

    def _parent(self, name: bytes) -> tuple[int, bytes]:
        """The fd of `name`'s directory (cached: do not close) and its last component."""
        rel, _, leaf = name.rpartition(b"/")
        if self._cache is None or self._cache[0] != rel:
            fd = self._open_dir(rel)
            if self._cache is not None:
                os.close(self._cache[1])
            self._cache = (rel, fd)
        return self._cache[1], leaf

    def _changed(self, name: bytes, exc: OSError) -> InputError:
        return InputError(f"{self.path}: '{os.fsdecode(name)}': cannot read: {exc.strerror} "
                          "(changed while being packed?)")

    def open_file(self, name: bytes) -> int:
        """A read-only fd of the regular file `name` (never through a link)."""
        pfd, leaf = self._parent(name)
        try:
            # O_NONBLOCK: a fifo swapped in for the file must not hang the pack.
            fd = os.open(leaf, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=pfd)
        except OSError as exc:
            raise self._changed(name, exc) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise InputError(f"{self.path}: '{os.fsdecode(name)}': no longer a regular file "
                             "(changed while being packed)")
        return fd

    def readlink(self, name: bytes) -> bytes:
        """The target of the symlink `name`."""
        pfd, leaf = self._parent(name)
        try:
            return os.readlink(leaf, dir_fd=pfd)
        except OSError as exc:
            raise self._changed(name, exc) from None

    def mtime(self) -> int:
        """The mtime of the tree's own directory."""
        return int(os.fstat(self.fd).st_mtime)

    def scan(self) -> Iterator[tuple[bytes, os.stat_result]]:
        """Every path under the tree (not the tree itself), relative, as bytes, with its lstat."""
        stack = [b""]
        while stack:
            rel = stack.pop()
            fd = self._open_dir(rel)
            try:
                with os.scandir(fd) as it:
                    found = [(os.fsencode(de.name), de.stat(follow_symlinks=False)) for de in it]
            except OSError as exc:
                raise InputError(f"{self.path}: cannot read directory '{os.fsdecode(rel) or '.'}': "
                                 f"{exc.strerror}") from None
            finally:
                os.close(fd)
            for leaf, st in found:
                name = rel + b"/" + leaf if rel else leaf
                yield name, st
                if stat.S_ISDIR(st.st_mode):
                    stack.append(name)


def collect(root: Tree, records: dict[str, Record], epoch: int | None,
            warnings: list[str], first: Item | None = None) -> list[Item]:
    """The entries of one tree, sorted, numbered and with manifest data applied.

    `first` (the "." entry) goes before everything else.
    """
    items, groups, subdirs = _scan_items(root)
    _add_recorded_only(root, items, records, warnings)
    ordered = [items[k] for k in sorted(items)]
    for item in ordered:
        found = records.get(os.fsdecode(item.name))
        if found is not None:
            if found.mode is not None:
                item.mode = stat.S_IFMT(item.mode) | found.mode
            item.uid, item.gid = found.uid, found.gid
        item.mtime = _clamp(item.mtime, epoch)
        if stat.S_ISDIR(item.mode):
            item.nlink = 2 + subdirs.get(item.name, 0)
    if first is not None:
        ordered.insert(0, first)
    _number(ordered, groups)
    return ordered


def _scan_items(root: Tree) -> tuple[dict[bytes, Item], dict[tuple[int, int], list[Item]], dict[bytes, int]]:
    """Every path of the tree as an item; the hardlink groups; each directory's subdirectory count."""
    items: dict[bytes, Item] = {}
    groups: dict[tuple[int, int], list[Item]] = {}
    subdirs: dict[bytes, int] = {}
    for name, st in root.scan():
        if len(name) + 1 > newc.PATH_MAX:
            raise InputError(f"{root.path}: '{os.fsdecode(name)}': name longer than PATH_MAX")
        mode = st.st_mode
        item = Item(name=name, mode=mode, mtime=int(st.st_mtime))
        if stat.S_ISREG(mode):
            item.size = st.st_size
            if st.st_nlink > 1:
                item.link_group = (st.st_dev, st.st_ino)
                groups.setdefault(item.link_group, []).append(item)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            item.rdev = (os.major(st.st_rdev), os.minor(st.st_rdev))
        elif stat.S_ISDIR(mode):
            parent = os.path.dirname(name)
            subdirs[parent] = subdirs.get(parent, 0) + 1
        items[name] = item
    return items, groups, subdirs


def _add_recorded_only(root: Tree, items: dict[bytes, Item], records: dict[str, Record],
                       warnings: list[str]) -> None:
    """The entries only the manifest holds (device nodes, sockets), under a directory the tree has."""
    # What such an entry gets when the manifest has no time for it.
    tree_mtime = root.mtime()
    for path, rec in records.items():
        key = os.fsencode(path)
        if rec.kind in _KIND_FMT and key not in items:
            parent = os.path.dirname(key)
            if parent and (parent not in items or not stat.S_ISDIR(items[parent].mode)):
                warnings.append(f"{root.path}: manifest entry '{path}' has no parent directory; left out")
                continue
            items[key] = Item(name=key, mode=_KIND_FMT[rec.kind] | (rec.mode or 0), has_data=False,
                              rdev=rec.rdev or (0, 0),
                              mtime=rec.mtime if rec.mtime is not None else tree_mtime)


def _number(ordered: list[Item], groups: dict[tuple[int, int], list[Item]]) -> None:
    """Inode numbers in order; the names of a hardlinked file share one, data on the last."""
    ino = 0
    for item in ordered:
        if item.ino:
            continue
        ino += 1
        item.ino = ino
        if item.link_group is not None:
            members = groups[item.link_group]
            for other in members:
                other.ino = ino
                other.nlink = len(members)
                other.has_data = False
            # Data on the last name, as GNU cpio and libarchive write hardlinks.
            members[-1].has_data = True


def _clamp(mtime: int, epoch: int | None) -> int:
    """An mtime as written: no later than SOURCE_DATE_EPOCH, no earlier than 1970."""
    return max(0, mtime if epoch is None else min(mtime, epoch))


def root_item(records: dict[str, Record], epoch: int | None, root: Tree) -> Item | None:
    """The "." entry, only when the extracted image had one (it sets the rootfs's root mode).

    Its time is the recorded one, else that of `root` itself, clamped like every other.
    """
    rec = records.get(".")
    if rec is None:
        return None
    mtime = rec.mtime if rec.mtime is not None else root.mtime()
    return Item(name=b".", mode=stat.S_IFDIR | (rec.mode if rec.mode is not None else 0o755),
                uid=rec.uid, gid=rec.gid, mtime=_clamp(mtime, epoch), nlink=2, has_data=False)


class ArchiveWriter:
    """Writes newc entries of `tree` into a compressor, keeping the stream offset for padding."""

    def __init__(self, out: Compressor, tree: Tree) -> None:
        self.out = out
        self.tree = tree
        self.pos = 0

    def _put(self, data: bytes) -> None:
        self.out.write(data)
        self.pos += len(data)

    def add(self, item: Item) -> None:
        """Write one entry, streaming a regular file's data from disk."""
        data: bytes | None = None
        size = 0
        if stat.S_ISLNK(item.mode):
            data = self.tree.readlink(item.name)
            size = len(data)
        elif stat.S_ISREG(item.mode) and item.has_data:
            size = item.size
        self._put(newc.format_header(
            name=item.name, ino=item.ino, mode=item.mode, uid=item.uid, gid=item.gid,
            nlink=item.nlink, mtime=item.mtime, filesize=size, rdevmajor=item.rdev[0],
            rdevminor=item.rdev[1], offset=self.pos))
        if data is not None:
            self._put(data)
        elif size:
            self._copy(item.name, size)
        self._put(b"\0" * newc.pad4(size))

    def _copy(self, name: bytes, size: int) -> None:
        left = size
        fd = self.tree.open_file(name)
        path = self.tree.path / os.fsdecode(name)
        try:
            while left:
                chunk = os.read(fd, min(left, _READ_CHUNK))
                if not chunk:
                    break
                self._put(chunk)
                left -= len(chunk)
            if left or os.read(fd, 1):
                raise InputError(f"{path}: changed size while being packed")
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Write the TRAILER!!! entry."""
        self._put(newc.trailer(offset=self.pos))


class _Counting:
    """Counts bytes on their way to the output file."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.count = 0

    def write(self, data: bytes, /) -> int:
        self.count += len(data)
        return self.fh.write(data)

    def flush(self) -> None:
        self.fh.flush()


def open_layout(tree: Path, early: Path | None) -> tuple[Tree, Tree | None, Manifest | None]:
    """The main tree, early tree and manifest for `pack DIR` (DIR may be an extraction), opened.

    DIR and `--early` are followed (the caller named them); an extraction's own main/,
    early/ and manifest are not: a symlink there is refused, so whoever can write the
    extraction cannot make pack read what lies outside it. The caller closes the trees.
    """
    top = Tree.open(Path(tree))
    opened = [top]
    try:
        manifest = Manifest.load(top.path / MANIFEST_NAME, dir_fd=top.fd, missing_ok=True)
        main = top
        early_tree: Tree | None = None
        if manifest is not None:
            if not _has_dir(top, "main"):
                raise InputError(f"{tree}: has {MANIFEST_NAME} but no main/ directory")
            main = Tree.open(top.path / "main", top, "main")
            opened.append(main)
            if early is None and _has_dir(top, "early"):
                early_tree = Tree.open(top.path / "early", top, "early")
                opened.append(early_tree)
        if early is not None:
            early_tree = Tree.open(Path(early))
            opened.append(early_tree)
    except BaseException:
        for t in opened:
            t.close()
        raise
    if main is not top:
        top.close()
    return main, early_tree, manifest


def _has_dir(top: Tree, name: str) -> bool:
    """Whether `name` exists in `top`, as anything (a symlink there is then refused)."""
    try:
        os.stat(name, dir_fd=top.fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def pack(tree: Path, output: Path, *, compress: str | None = None, level: int | None = None,
         early: Path | None = None, epoch: int | None = None) -> PackResult:
    """Write the image for `tree` (and the uncompressed `early` tree before it) to `output`.

    `tree` may be a directory `extract` made (main/, early/, manifest) or any plain tree.
    Without `compress` an extraction keeps its image's compression, else gzip; with the
    image's compression and no `level`, its recorded level (and xz dictionary) too.
    """
    main, early_tree, manifest = open_layout(tree, early)
    try:
        return _pack(main, early_tree, manifest, Path(tree), Path(output), compress=compress, level=level,
                     epoch=epoch)
    finally:
        main.close()
        if early_tree is not None:
            early_tree.close()


def _pack(main: Tree, early: Tree | None, manifest: Manifest | None, tree: Path, output: Path, *,
          compress: str | None, level: int | None, epoch: int | None) -> PackResult:
    recorded = manifest.main_compression() if manifest else None
    dict_size: int | None = None
    kept = False
    if compress is None:
        compress = recorded[0] if recorded and recorded[0] in PACK_COMPRESSIONS else "gzip"
    if recorded and compress == recorded[0] and level is None and recorded[1] is not None:
        # The extracted image's own settings (see codecs.MemberInfo), so a repack comes
        # out no larger than the original.
        level, dict_size, kept = recorded[1], recorded[2], True
    if compress not in PACK_COMPRESSIONS:
        raise UsageError(f"unknown compression {compress!r} (choose from {', '.join(PACK_COMPRESSIONS)})")
    if level is not None:
        lo, hi = LEVEL_RANGE[compress]
        if not lo <= level <= hi:
            if kept:
                raise InputError(f"{Path(tree) / MANIFEST_NAME}: recorded level {level} is out of range "
                                 f"for {compress} ({lo}..{hi})")
            raise ConfigError(f"--level {level} is out of range for {compress} ({lo}..{hi})")
    if dict_size is not None:
        # What liblzma can write with; the image was read with it, so this only guards the record.
        dict_size = min(max(dict_size, 4 << 10), 1536 << 20)
    if epoch is None:
        epoch = newc_epoch()
    result = PackResult(output=Path(output), compression=compress,
                        level=DEFAULT_LEVEL[compress] if level is None else level, dict_size=dict_size,
                        kept=kept)
    main_records = manifest.records("main") if manifest else {}
    items = collect(main, main_records, epoch, result.warnings, first=root_item(main_records, epoch, main))
    early_items: list[Item] = []
    if early is not None:
        early_records = manifest.records("early") if manifest and early.path == tree / "early" else {}
        early_items = collect(early, early_records, epoch, result.warnings)
    with fsutil.atomic_open(Path(output)) as fh:
        counting = _Counting(fh)
        if early is not None:
            writer = ArchiveWriter(Compressor(counting), early)
            for item in early_items:
                writer.add(item)
            writer.finish()
            # The compressed member that follows starts 4-byte aligned, like dracut's.
            pad = newc.pad4(writer.pos)
            counting.write(b"\0" * pad)
        comp = compressor(compress, level, counting, dict_size)
        writer = ArchiveWriter(comp, main)
        for item in items:
            writer.add(item)
        writer.finish()
        comp.close()
        result.size = counting.count
    result.entries = len(items)
    result.early_entries = len(early_items)
    return result
