"""The input-hash cache: each input file's content hash, kept while its stat is unchanged.

A stage's fingerprint hashes the files its `inputs` name; a 100 MB package is hashed
once and then known by its (device, inode, size, mtime, ctime), as git's index knows a
file. The cache is a file in the work dir's state dir; a damaged one is no cache.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from respin.pipeline import fsutil

FILE = "inputs.json"


def digest(data: Any) -> str:
    """The sha256 of `data` as canonical JSON."""
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def content_hash(path: Path) -> str:
    """A file's sha256, or a directory's: of its entries' names, types and contents."""
    if not path.is_dir():
        return fsutil.sha256_file(path)
    return digest(sorted(fsutil.tree(path).items()))


class InputHashes:
    """The cache of one work dir, read on first use and written by `save`."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILE
        self._known: dict[str, list[Any]] | None = None
        self._dirty = False

    def _load(self) -> dict[str, list[Any]]:
        try:
            loaded = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            loaded = {}
        # A cache of another shape (damaged, or from elsewhere) is just no cache.
        ok = isinstance(loaded, dict) and all(isinstance(v, list) and len(v) == 6 for v in loaded.values())
        return loaded if ok else {}

    def hash(self, path: Path) -> str | None:
        """`path`'s content hash (None when it does not exist); a directory is hashed each
        time, as its entries' stats are no cheaper to read than their contents are to trust."""
        if not path.exists():
            return None
        if path.is_dir():
            return content_hash(path)
        if self._known is None:
            self._known = self._load()
        st = path.stat()
        sig = [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
        known = self._known.get(str(path))
        if known is not None and known[:5] == sig:
            return str(known[5])
        value = content_hash(path)
        self._known[str(path)] = [*sig, value]
        self._dirty = True
        return value

    def save(self) -> None:
        """Write the cache if a hash was added since it was read (raises OSError)."""
        if self._dirty and self._known is not None:
            fsutil.atomic_write(self.path, json.dumps(self._known, indent=0, sort_keys=True) + "\n")
            self._dirty = False
