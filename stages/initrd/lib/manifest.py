"""The manifest beside an extracted tree: what the filesystem could not hold.

`extract` writes DIR/initrd-manifest.json next to DIR/main (and DIR/early):
device nodes and sockets it did not create, owners it could not set, modes
it changed (setuid bits dropped, owner read forced) and the image's parts.
`pack` reads it back, so a round trip as a normal user loses nothing.
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from respin.pipeline import fsutil
from respin.pipeline.errors import InputError

MANIFEST_NAME = "initrd-manifest.json"
FORMAT = "respin-initrd-manifest"
VERSION = 1
TREES = ("early", "main")


@dataclass
class Record:
    """What the tree does not show about one path.

    `kind` is set for entries that are not in the tree at all (chr, blk, sock);
    `mode` holds permission bits (with setuid/setgid/sticky) when they differ
    from the file's; `uid`/`gid` when not 0; `rdev` for devices; `mtime` for
    entries not in the tree.
    """

    kind: str | None = None
    mode: int | None = None
    uid: int = 0
    gid: int = 0
    rdev: tuple[int, int] | None = None
    mtime: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.kind is not None:
            out["kind"] = self.kind
        if self.mode is not None:
            out["mode"] = f"{self.mode:04o}"
        if self.uid:
            out["uid"] = self.uid
        if self.gid:
            out["gid"] = self.gid
        if self.rdev is not None:
            out["rdev"] = list(self.rdev)
        if self.mtime is not None:
            out["mtime"] = self.mtime
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        rdev = data.get("rdev")
        mode = data.get("mode")
        return cls(
            kind=data.get("kind"),
            mode=int(mode, 8) if isinstance(mode, str) else None,
            uid=int(data.get("uid", 0)),
            gid=int(data.get("gid", 0)),
            rdev=(int(rdev[0]), int(rdev[1])) if rdev else None,
            mtime=int(data["mtime"]) if "mtime" in data else None,
        )

    @property
    def empty(self) -> bool:
        return not self.to_json()


@dataclass
class Manifest:
    """Per-tree records keyed by path ("." is the archive's root entry), plus the image's parts."""

    trees: dict[str, dict[str, Record]] = field(default_factory=dict)
    parts: list[dict[str, Any]] = field(default_factory=list)
    image: str = ""

    def records(self, tree: str) -> dict[str, Record]:
        return self.trees.setdefault(tree, {})

    def main_compression(self) -> tuple[str, int | None, int | None] | None:
        """(compression, level, xz dictionary size) of the image's last compressed part,
        if any; level and size are None where extract did not record them."""
        found = [p for p in self.parts if p.get("compression") not in (None, "none")]
        if not found:
            return None
        part = found[-1]
        level, dict_size = part.get("level"), part.get("dict_size")
        return (str(part["compression"]), level if isinstance(level, int) else None,
                dict_size if isinstance(dict_size, int) else None)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "image": self.image,
            "parts": self.parts,
            "trees": {name: {path: rec.to_json() for path, rec in sorted(recs.items()) if not rec.empty}
                      for name, recs in sorted(self.trees.items())},
        }

    def write(self, path: Path) -> None:
        """Write atomically as sorted, indented JSON (stable bytes for the same content)."""
        fsutil.atomic_write(path, json.dumps(self.to_json(), indent=1, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path, *, dir_fd: int | None = None, missing_ok: bool = False) -> Manifest | None:
        """Read a manifest (`path`, or its name in the directory `dir_fd`), never through a
        symlink; a malformed one is an InputError naming the file. None when there is none
        and `missing_ok`."""
        try:
            try:
                fd = os.open(path.name if dir_fd is not None else path,
                             os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
            except FileNotFoundError:
                if missing_ok:
                    return None
                raise
            with os.fdopen(fd, "rb") as fh:
                data = json.loads(fh.read())
            if data.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            if int(data.get("version", 0)) > VERSION:
                raise ValueError(f"version {data['version']} is newer than this respin reads")
            trees = {str(name): {str(p): Record.from_json(r) for p, r in recs.items()}
                     for name, recs in data.get("trees", {}).items()}
            return cls(trees=trees, parts=list(data.get("parts", [])), image=str(data.get("image", "")))
        except OSError as exc:
            why = "a symlink, which is never followed" if exc.errno == errno.ELOOP else exc.strerror
            raise InputError(f"{path}: unreadable manifest: {why}") from None
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            raise InputError(f"{path}: unreadable manifest: {exc}") from None

    def forget(self, tree: str, path: str) -> None:
        """Drop the records of `path` and everything under it (it was replaced or removed)."""
        recs = self.records(tree)
        prefix = path + "/"
        for key in [k for k in recs if k == path or k.startswith(prefix)]:
            del recs[key]
