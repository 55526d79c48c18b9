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
the image root it is true of.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any, Literal

from respin.pipeline import fsutil
from respin.pipeline.errors import InputError
from respin.stages.network.lib import rt_tables
from respin.stages.network.lib.files import Files, check_relative

log = logging.getLogger("respin.network")

STATE_PATH = "var/lib/respin/network.json"
_STATE_FORMAT = 1

Action = Literal["write", "unchanged", "remove"]


@dataclass(frozen=True)
class Change:
    """What staging did (or would do) to one path."""

    path: str
    action: Action


def _digest(data: bytes) -> str:
    return sha256(data).hexdigest()


def _load_state(root: Path) -> dict[str, Any]:
    path = root / STATE_PATH
    if not path.exists():
        return {"format": _STATE_FORMAT, "files": {}, "merged": []}
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or data.get("format") != _STATE_FORMAT \
                or not isinstance(data.get("files"), dict) or not isinstance(data.get("merged"), list):
            raise ValueError("unexpected shape")
        return data
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: respin's staging record is unreadable ({exc}); "
                         "remove it to start over") from exc


def _check_no_symlinks(root: Path, rel: str) -> None:
    """Refuse to write through a symlinked directory: an absolute link would leave the root."""
    current = root
    for part in Path(rel).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise InputError(f"{current}: is a symlink; refusing to stage {rel} through it")
        if current.exists() and not current.is_dir():
            raise InputError(f"{current}: is not a directory; cannot stage {rel}")


def _accepted(entry: Mapping[str, Any] | None) -> set[str]:
    """The hashes a file respin owns may have: what it wrote, and while a staging is under
    way, what was there before (so an interrupted staging is not mistaken for a hand edit)."""
    if entry is None:
        return set()
    return {str(entry.get("sha256")), *(str(h) for h in entry.get("pending", []))}


def _write_state(root: Path, files: Mapping[str, Any], merged: Sequence[str]) -> None:
    state = {"format": _STATE_FORMAT, "files": dict(sorted(files.items())), "merged": sorted(merged)}
    data = (json.dumps(state, indent=1, sort_keys=True) + "\n").encode()
    if _read(root / STATE_PATH) != (data, 0o644):
        _check_no_symlinks(root, STATE_PATH)
        fsutil.atomic_write(root / STATE_PATH, data, 0o644)


def _read(path: Path) -> tuple[bytes, int] | None:
    """Content and mode of a regular file, None if absent; anything else is refused."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return (b"\0not a regular file", -1)
    return path.read_bytes(), stat.S_IMODE(st.st_mode)


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
    state = _load_state(root)
    plan = _Plan(root, state["files"])
    was_merged = {str(p) for p in state["merged"]}
    for raw_rel, (data, mode) in sorted(files.items()):
        plan.stage(check_relative(raw_rel), data, mode, rel_merged=check_relative(raw_rel) in merged)
    plan.drop_unrendered()
    # A file respin merged into before but no longer does gets its block taken out.
    for rel in sorted(was_merged - merged):
        plan.unmerge(rel)
    if plan.conflicts and not force:
        more = f" (and {len(plan.conflicts) - 1} more)" if len(plan.conflicts) > 1 else ""
        raise InputError(f"{plan.conflicts[0]}; refusing to overwrite it ({replace_hint}){more}")
    if plan.writes or plan.removes:
        # Record first what may be found mid-way, so a crash leaves files respin still owns.
        _write_state(root, plan.journal(), sorted(merged | was_merged))
    plan.apply()
    _write_state(root, plan.new_owned, sorted(merged))
    return sorted(plan.changes, key=lambda c: c.path)


@dataclass
class _Plan:
    """What staging will do to an image root: writes, removals, and the files it refuses
    to replace; `new_owned` is the state respin records once it is done."""

    root: Path
    owned: Mapping[str, Mapping[str, Any]]
    writes: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    removes: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    new_owned: dict[str, dict[str, Any]] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)

    def stage(self, rel: str, data: bytes, mode: int, *, rel_merged: bool) -> None:
        """Plan one rendered file: unchanged, written, or a conflict with what is there."""
        _check_no_symlinks(self.root, rel)
        target = self.root / rel
        if target.is_dir() and not target.is_symlink():
            raise InputError(f"{target}: is a directory; cannot stage a file there")
        current = _read(target)
        if rel_merged:
            if current is not None and current[1] >= 0:
                mode = current[1]  # an edit keeps the image's own mode
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
            _check_no_symlinks(self.root, rel)
            current = _read(self.root / rel)
            if current is None:
                continue
            if not self._ours(rel, current):
                self.conflicts.append(f"{self.root / rel}: was changed since respin wrote it, "
                                      "and is no longer rendered")
            self.removes.append(rel)
            self.changes.append(Change(rel, "remove"))

    def unmerge(self, rel: str) -> None:
        """Plan taking respin's block out of a file it merged into before."""
        current = _read(self.root / rel)
        if current is None or current[1] < 0:
            return
        stripped = rt_tables.strip_block(current[0].decode(errors="surrogateescape"))
        data = stripped.encode(errors="surrogateescape")
        if data != current[0]:
            self.writes[rel] = (data, current[1])
            self.changes.append(Change(rel, "write"))

    def journal(self) -> dict[str, Any]:
        """The state to record before any write: every file respin may leave half done owned,
        with what was there before accepted as its own."""
        pending: dict[str, Any] = {rel: dict(self.owned[rel]) for rel in self.removes}
        for rel, entry in self.new_owned.items():
            entry = dict(entry)
            current = _read(self.root / rel)
            if current is not None and current[1] >= 0 and _digest(current[0]) != entry["sha256"]:
                entry["pending"] = [_digest(current[0])]
            pending[rel] = entry
        return pending

    def apply(self) -> None:
        for rel, (data, mode) in sorted(self.writes.items()):
            target = self.root / rel
            if target.is_symlink() or (target.exists() and not target.is_file()):
                # Only reached with force: replace the link or node itself, never its target.
                target.unlink()
            fsutil.atomic_write(target, data, mode)
            log.debug("wrote %s", target)
        for rel in self.removes:
            (self.root / rel).unlink()
            log.debug("removed %s", self.root / rel)

    def _ours(self, rel: str, current: tuple[bytes, int]) -> bool:
        """Whether the file at `rel` is as respin wrote it (a mode < 0 marks a special file)."""
        return _digest(current[0]) in _accepted(self.owned.get(rel)) and current[1] >= 0


def read_merge_base(root: Path) -> tuple[str | None, str]:
    """The rt_tables text a merge starts from, and the path to name in messages.

    The image's `etc/iproute2/rt_tables` if it has one, else the vendor copy
    under `usr/share/iproute2` (iproute2 >= 6.5), else None (stock entries).
    """
    for rel in (rt_tables.RT_TABLES, rt_tables.RT_TABLES_VENDOR):
        path = Path(root) / rel
        if path.is_file():
            return path.read_text(errors="surrogateescape"), str(path)
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
