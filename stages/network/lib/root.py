"""Staging rendered files into an image root, idempotently and without clobbering.

respin records what it wrote in `<root>/var/lib/respin/network.json`: each
path with the sha256 and mode it had when written. On the next staging a
file is replaced only if it is respin's and unchanged since; a file respin
did not write, or one changed by hand since, is refused in one line unless
forced. Files respin wrote before but no longer renders are removed (when
unchanged). Every check runs before anything is written, so a refusal
leaves the root as it was; a file whose bytes and mode already match is not
touched, so staging twice changes nothing.

The state lives in the root, beside what it describes, so it travels with
the image root it is true of. It is as untrusted as the rest of the root:
every path it lists must lie inside the root, and the only path it may call
merged is rt_tables.

An image root may belong to another user who changes it while respin (as
root) works: every path under it is reached through directory fds opened
with O_NOFOLLOW, when staging plans and again when it writes, so a directory
swapped for a symlink mid-way is refused, never followed; a file read from
the image (the state, rt_tables and its drop-ins) must be a regular file,
and no content of one is ever quoted in a message.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import stat
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from respin.pipeline import fsutil
from respin.pipeline.errors import InputError
from respin.stages.network.lib import rt_tables
from respin.stages.network.lib.files import Files, check_relative, inside_root

log = logging.getLogger("respin.network")

STATE_PATH = "var/lib/respin/network.json"
_STATE_FORMAT = 1

Action = Literal["write", "unchanged", "remove"]
# The only file respin merges into rather than owns.
MERGEABLE = frozenset({rt_tables.RT_TABLES})
# What `_Root.read` gives for something other than a regular file: never opened, and
# never respin's (a mode < 0 matches no mode respin writes).
_SPECIAL = (b"\0not a regular file", -1)
# What respin reads of an image (its record, rt_tables and drop-ins) is a few KB; a huge
# file planted there is refused rather than read into memory.
_READ_LIMIT = 16 << 20


@dataclass(frozen=True)
class Change:
    """What staging did (or would do) to one path."""

    path: str
    action: Action


def _digest(data: bytes) -> str:
    return sha256(data).hexdigest()


class _Root:
    """An image root, opened once; every path under it is reached through directory fds
    opened with O_NOFOLLOW (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def __enter__(self) -> _Root:
        return self

    def __exit__(self, *_exc: object) -> None:
        os.close(self.fd)

    @contextlib.contextmanager
    def directory(self, parts: Sequence[str], *, make: bool = False,
                  doing: str) -> Iterator[int | None]:
        """The fd of the directory `parts` (None if it is missing and not made); a symlink or
        non-directory on the way is refused, naming what `doing` was."""
        def made(fd: int, i: int) -> None:
            with contextlib.suppress(FileExistsError):
                os.mkdir(parts[i], 0o755, dir_fd=fd)

        try:
            fd: int | None = fsutil.open_beneath(self.fd, parts, made if make else None)
        except fsutil.BeneathError as exc:
            where = self.path.joinpath(*parts[:exc.index + 1])
            if isinstance(exc.error, FileNotFoundError):
                fd = None
            elif exc.is_link or exc.error.errno == errno.ELOOP:
                raise InputError(f"{where}: is a symlink; refusing to {doing} through it") from None
            elif exc.error.errno == errno.ENOTDIR:
                raise InputError(f"{where}: is not a directory; cannot {doing}") from None
            else:
                raise exc.error from None
        try:
            yield fd
        finally:
            if fd is not None:
                os.close(fd)

    @contextlib.contextmanager
    def parent(self, rel: str, *, make: bool = False,
               doing: str | None = None) -> Iterator[tuple[int | None, str]]:
        """The fd of `rel`'s directory (as `directory`) and `rel`'s name in it."""
        parts = PurePosixPath(rel).parts
        with self.directory(parts[:-1], make=make, doing=doing or f"stage {rel}") as fd:
            yield fd, parts[-1]

    def read(self, rel: str) -> tuple[bytes, int] | None:
        """Content and mode of the regular file `rel`, None if absent; anything else is
        _SPECIAL, never opened."""
        with self.parent(rel) as (dfd, name):
            if dfd is None:
                return None
            try:
                return fsutil.read_at(dfd, name, _READ_LIMIT)
            except fsutil.NotRegular:
                return _SPECIAL

    def read_strict(self, rel: str, what: str) -> tuple[bytes, int] | None:
        """Like `read`, but something other than a regular file is refused in one line."""
        with self.parent(rel, doing=f"read {what}") as (dfd, name):
            return None if dfd is None else self._read_strict_at(dfd, name, rel, what)

    def _read_strict_at(self, dfd: int, name: str, rel: str, what: str) -> tuple[bytes, int] | None:
        try:
            return fsutil.read_at(dfd, name, _READ_LIMIT)
        except fsutil.NotRegular as exc:
            raise InputError(f"{self.path / rel}: {what} is {exc.what}; refusing to read it") from None

    def read_dir_strict(self, rel_dir: str, suffix: str, what: str,
                        skip: Collection[str] = ()) -> list[tuple[str, str]]:
        """(path, text) of every `suffix` file in the directory `rel_dir` but those in `skip`,
        in name order, each refused as `read_strict` refuses; none if the directory is missing."""
        out: list[tuple[str, str]] = []
        with self.directory(PurePosixPath(rel_dir).parts, doing=f"read {what}") as dfd:
            if dfd is None:
                return out
            for name in sorted(n for n in os.listdir(dfd) if n.endswith(suffix)):
                rel = f"{rel_dir}/{name}"
                if rel in skip:
                    continue
                found = self._read_strict_at(dfd, name, rel, what)
                if found is not None:
                    out.append((rel, found[0].decode(errors="surrogateescape")))
        return out

    def is_dir(self, rel: str) -> bool:
        with self.parent(rel) as (dfd, name):
            if dfd is None:
                return False
            try:
                return stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode)
            except FileNotFoundError:
                return False

    def write(self, rel: str, data: bytes, mode: int) -> None:
        """Write `rel` by rename, making its directories; a link or special file there is
        replaced itself (only reached with force), a directory is refused."""
        with self.parent(rel, make=True) as (dfd, name):
            assert dfd is not None
            try:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                if stat.S_ISDIR(st.st_mode):
                    raise InputError(f"{self.path / rel}: is a directory; cannot stage a file there")
            fsutil.atomic_write_at(dfd, name, data, mode, shown=str(self.path / rel))

    def remove(self, rel: str) -> None:
        with self.parent(rel) as (dfd, name):
            if dfd is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=dfd)


def _load_state(root: _Root) -> dict[str, Any]:
    shown = root.path / STATE_PATH
    found = root.read_strict(STATE_PATH, "respin's staging record")
    if found is None:
        return {"format": _STATE_FORMAT, "files": {}, "merged": []}
    try:
        data = json.loads(found[0].decode())
        if not isinstance(data, dict) or data.get("format") != _STATE_FORMAT \
                or not isinstance(data.get("files"), dict) or not isinstance(data.get("merged"), list):
            raise ValueError("unexpected shape")
        for entry in data["files"].values():
            if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) \
                    or not isinstance(entry.get("pending", []), list):
                raise ValueError("unexpected shape")
    except ValueError as exc:
        # A decoding error would quote the bytes it met: say only what is wrong.
        why = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise InputError(f"{shown}: respin's staging record is unreadable ({why}); "
                         "remove it to start over") from exc
    data["files"] = {_state_path(shown, rel): entry for rel, entry in data["files"].items()}
    data["merged"] = [_state_path(shown, rel, merged=True) for rel in data["merged"]]
    return data


def _state_path(shown: Path, rel: object, *, merged: bool = False) -> str:
    """A path the staging record lists, checked as a rendered path is: the record is the
    image's, and an image is untrusted."""
    checked = inside_root(rel) if isinstance(rel, str) else None
    if checked is None:
        raise InputError(f"{shown}: lists {str(rel)[:200]!r}, which is not a path inside the image "
                         "root; refusing to touch it (remove the record to start over)")
    if merged and checked not in MERGEABLE:
        raise InputError(f"{shown}: lists {checked[:200]!r} as merged, but respin merges only into "
                         f"{rt_tables.RT_TABLES}; refusing to touch it (remove the record to start over)")
    return checked


def _accepted(entry: Mapping[str, Any] | None) -> set[str]:
    """The hashes a file respin owns may have: what it wrote, and while a staging is under
    way, what was there before (so an interrupted staging is not mistaken for a hand edit)."""
    if entry is None:
        return set()
    return {str(entry.get("sha256")), *(str(h) for h in entry.get("pending", []))}


def _write_state(root: _Root, files: Mapping[str, Any], merged: Sequence[str]) -> None:
    state = {"format": _STATE_FORMAT, "files": dict(sorted(files.items())), "merged": sorted(merged)}
    data = (json.dumps(state, indent=1, sort_keys=True) + "\n").encode()
    if root.read(STATE_PATH) != (data, 0o644):
        root.write(STATE_PATH, data, 0o644)


def _make_root(root: Path) -> None:
    """A missing image root is made, as `make install DESTDIR=` does (nothing in it can be
    overwritten), but only inside a directory that exists: a mistyped parent is reported,
    not built. Anything else that is not a directory is refused."""
    if root.is_symlink() and not root.exists():
        raise InputError(f"{root}: image root is a symlink to {os.readlink(root)}, which does not exist")
    if root.exists():
        if not root.is_dir():
            raise InputError(f"{root}: image root is not a directory")
        return
    try:
        root.mkdir()
    except FileNotFoundError as exc:
        raise InputError(f"{root}: image root does not exist, and neither does {root.parent}") from exc
    except OSError as exc:
        raise InputError(f"{root}: image root does not exist and cannot be made: {exc.strerror}") from exc
    log.info("made image root %s (it did not exist)", root)


def stage_into_root(files: Files, root: Path, *, merged: frozenset[str] = frozenset(),
                    force: bool = False, replace_hint: str = "--force replaces it") -> list[Change]:
    """Put `files` into the image root `root`; return what changed, sorted by path.

    Paths in `merged` are edits of the image's own file that keep its content
    (rt_tables in merge mode), so they may replace a file respin did not write.
    With `force`, foreign or hand-changed files are replaced too; a refusal says
    `replace_hint`, how the caller's user asks for that.
    """
    root = Path(root)
    _make_root(root)
    with _Root(root) as tree:
        state = _load_state(tree)
        plan = _Plan(tree, state["files"])
        was_merged = set(state["merged"])
        for raw_rel, (data, mode) in sorted(files.items()):
            rel = check_relative(raw_rel)
            plan.stage(rel, data, mode, rel_merged=rel in merged)
        plan.drop_unrendered()
        # A file respin merged into before but no longer does gets its block taken out.
        for rel in sorted(was_merged - merged):
            plan.unmerge(rel)
        if plan.conflicts and not force:
            more = f" (and {len(plan.conflicts) - 1} more)" if len(plan.conflicts) > 1 else ""
            raise InputError(f"{plan.conflicts[0]}; refusing to overwrite it ({replace_hint}){more}")
        if plan.writes or plan.removes:
            # Record first what may be found mid-way, so a crash leaves files respin still owns.
            _write_state(tree, plan.journal(), sorted(merged | was_merged))
        plan.apply()
        _write_state(tree, plan.new_owned, sorted(merged))
    return sorted(plan.changes, key=lambda c: c.path)


def _merged_mode(mode: int) -> int:
    """The mode a merged rt_tables keeps from the image's: a data file, readable, never
    executable nor writable by anyone but its owner."""
    return mode & 0o644


@dataclass
class _Plan:
    """What staging will do to an image root: writes, removals, and the files it refuses
    to replace; `new_owned` is the state respin records once it is done."""

    root: _Root
    owned: Mapping[str, Mapping[str, Any]]
    writes: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    removes: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    new_owned: dict[str, dict[str, Any]] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)

    def stage(self, rel: str, data: bytes, mode: int, *, rel_merged: bool) -> None:
        """Plan one rendered file: unchanged, written, or a conflict with what is there."""
        target = self.root.path / rel
        if self.root.is_dir(rel):
            raise InputError(f"{target}: is a directory; cannot stage a file there")
        current = self.root.read(rel)
        if rel_merged:
            if current is not None and current[1] >= 0:
                mode = _merged_mode(current[1])  # an edit keeps the image's own mode
        else:
            self.new_owned[rel] = {"sha256": _digest(data), "mode": f"{mode:04o}"}
        if current == (data, mode):
            self.changes.append(Change(rel, "unchanged"))
            return
        if current is not None and not rel_merged and not self._ours(rel, current):
            why = ("was changed since respin wrote it" if rel in self.owned
                   else "exists and was not written by respin")
            self.conflicts.append(f"{target}: {why}")
        self.writes[rel] = (data, mode)
        self.changes.append(Change(rel, "write"))

    def drop_unrendered(self) -> None:
        """Plan the removal of files respin wrote before and renders no more."""
        for rel in sorted(set(self.owned) - set(self.new_owned)):
            current = self.root.read(rel)
            if current is None:
                continue
            if not self._ours(rel, current):
                self.conflicts.append(f"{self.root.path / rel}: was changed since respin wrote it, "
                                      "and is no longer rendered")
            self.removes.append(rel)
            self.changes.append(Change(rel, "remove"))

    def unmerge(self, rel: str) -> None:
        """Plan taking respin's block out of a file it merged into before."""
        current = self.root.read(rel)
        if current is None or current[1] < 0:
            return
        stripped = rt_tables.strip_block(current[0].decode(errors="surrogateescape"))
        data = stripped.encode(errors="surrogateescape")
        if data != current[0]:
            self.writes[rel] = (data, _merged_mode(current[1]))
            self.changes.append(Change(rel, "write"))

    def journal(self) -> dict[str, Any]:
        """The state to record before any write: every file respin may leave half done owned,
        with what was there before accepted as its own."""
        pending: dict[str, Any] = {rel: dict(self.owned[rel]) for rel in self.removes}
        for rel, entry in self.new_owned.items():
            entry = dict(entry)
            current = self.root.read(rel)
            if current is not None and current[1] >= 0 and _digest(current[0]) != entry["sha256"]:
                entry["pending"] = [_digest(current[0])]
            pending[rel] = entry
        return pending

    def apply(self) -> None:
        """Write and remove, each path walked again without following links: what the plan
        checked may have been swapped since."""
        for rel, (data, mode) in sorted(self.writes.items()):
            self.root.write(rel, data, mode)
            log.debug("wrote %s", self.root.path / rel)
        for rel in self.removes:
            self.root.remove(rel)
            log.debug("removed %s", self.root.path / rel)

    def _ours(self, rel: str, current: tuple[bytes, int]) -> bool:
        """Whether the file at `rel` is as respin wrote it (a mode < 0 marks a special file)."""
        return _digest(current[0]) in _accepted(self.owned.get(rel)) and current[1] >= 0


def read_image_dir(root: Path, rel_dir: str, suffix: str, what: str,
                   skip: Collection[str] = ()) -> list[tuple[str, str]]:
    """(image-relative path, text) of every `suffix` file in the image's `rel_dir` but those
    in `skip`, read as `read_image_file` reads."""
    if not root.is_dir():
        return []
    with _Root(root) as tree:
        return tree.read_dir_strict(rel_dir, suffix, what, skip)


def read_image_file(root: Path, rel: str, what: str) -> str | None:
    """The text of the image's regular file `rel` (None if absent or no root), read through
    O_NOFOLLOW directory fds: a symlink or special file is refused in one line, unread."""
    if not root.is_dir():
        return None
    with _Root(root) as tree:
        found = tree.read_strict(rel, what)
    return None if found is None else found[0].decode(errors="surrogateescape")


def read_merge_base(root: Path) -> tuple[str | None, str]:
    """The rt_tables text a merge starts from, and the path to name in messages.

    The image's `etc/iproute2/rt_tables` if it has one, else the vendor copy
    under `usr/share/iproute2` (iproute2 >= 6.5), else None (stock entries).
    """
    for rel in (rt_tables.RT_TABLES, rt_tables.RT_TABLES_VENDOR):
        text = read_image_file(Path(root), rel, "the image's rt_tables")
        if text is not None:
            return text, str(Path(root) / rel)
    return None, str(Path(root) / rt_tables.RT_TABLES)


def write_tree(files: Files, dest: Path) -> None:
    """Write `files` into a fresh directory `dest` (replaced as a whole, by rename)."""
    tmp = fsutil.fresh_dir(dest)
    try:
        for raw_rel, (data, mode) in sorted(files.items()):
            fsutil.atomic_write(tmp / check_relative(raw_rel), data, mode)
        # Directories get a fixed mode so the tree (and what packs it) is reproducible.
        for dirpath, _dirs, _files in os.walk(tmp):
            os.chmod(dirpath, 0o755)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsutil.commit_dir(tmp, dest)
