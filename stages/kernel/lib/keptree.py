"""The build tree an incremental rebuild keeps: where it lives, what it was built from, and
whether the next build may reuse it.

Kbuild recompiles only what a changed CONFIG symbol reaches, but only in a tree whose every
other input is the one it was built from. A kept tree is therefore reused only when the
package, arch and variant, the sources and patches, the spec (beside the change respin
carries in it) and the host tools Kconfig records (the compiler, the linker, pahole: their
versions land in the config as CONFIG_GCC_VERSION, CONFIG_LD_VERSION, CONFIG_PAHOLE_VERSION)
are all the same, and the last build in it ended well. Anything else is a clean build, and
`stale` says why in words a log line can carry.

One run at a time builds in a tree (`KeptTree.claim`, an flock the system drops with the
process); a build marks the tree before it starts and records what it was built from only
when it succeeded, so a tree a failed or killed build left is never trusted.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from respin.pipeline import fsutil, lock

RECORD = "provenance.json"  # what the tree was built from, written after a build succeeded
BUILDING = "building"  # present while a build runs in the tree, and after one that did not end well
LOCK = "lock"

# The tools whose version Kconfig writes into the config (init/Kconfig, scripts/Kconfig.include):
# another one gives another config and other objects, so a tree built with it is stale.
TOOLS = {"compiler": "gcc", "linker": "ld", "pahole": "pahole"}


@dataclass(frozen=True)
class Provenance:
    """What a kept tree was built from, beside the config change it may take next."""

    package: str  # name-version-release of the source package, without respin's release mark
    arch: str
    variant: str  # "" for the base kernel
    sources: Mapping[str, str]  # each Source and Patch but the change's own carrier: name -> sha256
    spec: str  # sha256 of the spec without the lines respin writes for the change
    tools: Mapping[str, str] = field(default_factory=dict)  # TOOLS name -> first line of --version

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["sources"], data["tools"] = dict(self.sources), dict(self.tools)
        return data

    @classmethod
    def from_json(cls, data: object) -> Provenance | None:
        """The record read back, or None when it is not one (damaged, or another version's)."""
        if not isinstance(data, dict):
            return None
        try:
            made = cls(**data)
        except TypeError:
            return None
        texts = (made.package, made.arch, made.variant, made.spec)
        maps = (made.sources, made.tools)
        if not all(isinstance(t, str) for t in texts) or not all(
                isinstance(m, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in m.items())
                for m in maps):
            return None
        return made


def stale(old: Provenance, new: Provenance) -> str | None:
    """Why a tree built from `old` cannot serve a build of `new` (one phrase), or None."""
    for what, a, b in (("package", old.package, new.package), ("arch", old.arch, new.arch),
                       ("variant", old.variant or "base", new.variant or "base")):
        if a != b:
            return f"the kept tree is of {what} {a}, this build is of {b}"
    changed = sorted(n for n in old.sources.keys() | new.sources.keys()
                     if old.sources.get(n) != new.sources.get(n))
    if changed:
        shown = ", ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        return f"other sources or patches than the kept tree was built from ({shown})"
    if old.spec != new.spec:
        return "the spec changed beyond the config change since the kept tree was built"
    for tool in sorted(old.tools.keys() | new.tools.keys()):
        a, b = old.tools.get(tool, "none"), new.tools.get(tool, "none")
        if a != b:
            return f"the {tool} changed since the kept tree was built ({a} -> {b})"
    return None


def tool_versions(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The first line of each of TOOLS' `--version`, as the build's PATH finds them ("none"
    for one it does not): what Kconfig will record of this host."""
    path = (env or os.environ).get("PATH", os.defpath)
    out: dict[str, str] = {}
    for name, command in TOOLS.items():
        found = shutil.which(command, path=path)
        if found is None:
            out[name] = "none"
            continue
        proc = subprocess.run([found, "--version"], capture_output=True, text=True, errors="replace",
                              stdin=subprocess.DEVNULL, env={"PATH": path, "LC_ALL": "C"}, check=False)
        first = (proc.stdout or proc.stderr).strip().splitlines()
        out[name] = first[0].strip() if first else f"{command} (no version)"
    return out


_KEY_CHARS = re.compile(r"[^A-Za-z0-9._+-]")


def key(package: str, arch: str, variant: str) -> str:
    """The directory name of the tree kept for a package, arch and variant."""
    return _KEY_CHARS.sub("_", f"{package}.{arch}" + (f".{variant}" if variant else ""))


class KeptTree:
    """One kept tree, `root/<key>/`: its build tree in `tree/`, beside its marks."""

    def __init__(self, root: Path, name: str) -> None:
        self.dir = root / name
        self.tree = self.dir / "tree"

    @contextlib.contextmanager
    def claim(self) -> Iterator[None]:
        """Hold the tree for this run, or raise LockedError at once: two runs never build in
        one tree at a time (a shared directory of kept trees serves several work dirs)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with lock.hold(self.dir, LOCK, "another respin run is building in this kept tree"):
            yield

    def recorded(self) -> Provenance | None:
        try:
            data = json.loads(fsutil.read_no_link(self.dir / RECORD, 1 << 20) or b"null")
        except (OSError, ValueError, fsutil.NotRegular):
            return None
        return Provenance.from_json(data)

    def why_not(self, wanted: Provenance) -> str | None:
        """Why the next build of `wanted` may not reuse this tree (None: it may)."""
        if os.path.lexists(self.dir / BUILDING):
            return "the last build in the kept tree failed or was killed"
        if not self.tree.is_dir() or self.tree.is_symlink():
            return "no tree is kept yet"
        old = self.recorded()
        if old is None:
            return "the kept tree has no record of what it was built from"
        return stale(old, wanted)

    def begin(self) -> None:
        """Mark the tree as being built (before the build touches it) and drop its record:
        from here on only a build that ends well makes it trusted again."""
        fsutil.atomic_write(self.dir / BUILDING, "")
        (self.dir / RECORD).unlink(missing_ok=True)

    def finish(self, built: Provenance) -> None:
        """Record what the tree was built from, then lift the mark: the build ended well."""
        fsutil.atomic_write(self.dir / RECORD, json.dumps(built.to_json(), indent=1, sort_keys=True) + "\n")
        (self.dir / BUILDING).unlink()
