"""The tree an image leaves in the kernel's rootfs, and path lookup inside it.

Built from the entries in image order (a later entry of another type replaces
an earlier one), it answers what a path names once every part is unpacked.
Lookup follows symlinks as the kernel would on that root: absolute targets
start again at the image's root, `..` at the root stays there (nothing leads
outside the image), and more than 40 links in one lookup is a loop, as
Linux's own limit has it.
"""

from __future__ import annotations

from collections.abc import Callable

# Linux gives up after this many symlinks in one lookup (ELOOP).
MAX_LINKS = 40


class Unresolved(Exception):
    """A path that names nothing in the image; the message says why (no trailing period).

    `path` is where the lookup stopped, `followed` the links it had followed by then.
    """

    def __init__(self, message: str, path: str, followed: list[str]) -> None:
        super().__init__(message)
        self.path = path
        self.followed = followed


class ImageTree:
    """Kind, mode and symlink target per path ("a/b", no leading slash), plus the
    content of the few small files a caller asked to keep."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}
        self.modes: dict[str, int] = {}
        self.links: dict[str, str] = {}
        self.files: dict[str, bytes] = {}

    def add(self, path: str, kind: str, mode: int, target: str | None = None) -> None:
        """Record one entry as the kernel applies it (a different type replaces what was there)."""
        if self.kinds.get(path) not in (None, kind):
            self.remove(path)
        self.kinds[path] = kind
        self.modes[path] = mode
        if target is not None:
            self.links[path] = target

    def remove(self, path: str) -> None:
        """Forget `path` and, for a directory, everything under it."""
        tables: tuple[dict[str, str], dict[str, int], dict[str, str], dict[str, bytes]] = (
            self.kinds, self.modes, self.links, self.files)
        if self.kinds.get(path) == "dir":
            prefix = path + "/"
            for table in tables:
                for key in [k for k in table if k.startswith(prefix)]:
                    del table[key]
        for table in tables:
            table.pop(path, None)

    def resolve(self, path: str) -> tuple[str, list[str]]:
        """The real path `path` names, every symlink on the way followed (the last one too),
        and the links followed as "link -> target". Unresolved says why there is none."""
        return resolve(path, self.kinds.get, self.links.__getitem__)


def resolve(path: str, kind_of: Callable[[str], str | None],
            target_of: Callable[[str], str]) -> tuple[str, list[str]]:
    """Look `path` up in a tree told by `kind_of` (a path's kind, None when absent) and
    `target_of` (a symlink's target), with the rules above; as ImageTree.resolve."""
    pending = [c for c in reversed(path.split("/")) if c not in ("", ".")]
    done: list[str] = []
    followed: list[str] = []
    while pending:
        comp = pending.pop()
        if comp in ("", "."):
            continue
        if comp == "..":
            if done:
                done.pop()
            continue
        cur = "/".join([*done, comp])
        kind = kind_of(cur)
        if kind is None:
            raise Unresolved(f"no entry '{cur}'" + (f" ({', '.join(followed)})" if followed else ""),
                             cur, followed)
        if kind == "symlink":
            if len(followed) == MAX_LINKS:
                raise Unresolved(f"more than {MAX_LINKS} symlinks in one lookup, a loop "
                                 f"({', '.join(followed[:4])}, ...)", cur, followed)
            target = target_of(cur)
            followed.append(f"{cur} -> {target}")
            if target.startswith("/"):
                done = []
            pending.extend(reversed(target.split("/")))
            continue
        if pending and kind != "dir":
            raise Unresolved(f"'{cur}' is a {kind}, not a directory", cur, followed)
        done.append(comp)
    return "/".join(done), followed
