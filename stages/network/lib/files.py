"""Rendered files: an in-memory mapping of image-relative paths to content and mode.

Every backend returns one, so rendering stays pure; only staging writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath

from respin.stages.network.lib.model import NetworkModel

# {"etc/sysconfig/network-scripts/ifcfg-eth0": (b"...", 0o644), ...}
Files = Mapping[str, tuple[bytes, int]]


def _comment_safe(text: str) -> str:
    """`text` with every character that could end a comment line, or join it to the next,
    replaced by `?`: line breaks of any format (YAML and Python also break on \\x85, \\u2028),
    other control and format characters, undecodable bytes, and a backslash (a trailing one
    continues a systemd line)."""
    return "".join(ch if ch.isprintable() and ch != "\\" else "?" for ch in text)


def header(model: NetworkModel, comment: str = "#") -> str:
    """The first line of every rendered file: where it came from, and not to edit it by hand.

    The model's file name is the user's (or an attacker's) choice, and the line is a
    comment in shell-sourced files too, so it is made unable to leave its comment.
    """
    name = _comment_safe(PurePosixPath(model.source).name)
    return f"{comment} Written by respin from {name}: edit that model, not this file.\n"


def inside_root(path: str) -> str | None:
    """`path` normalised if it names a file inside an image root: relative, not climbing
    out with `..`, not empty, no NUL; else None."""
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or not p.parts or "\0" in path:
        return None
    return str(p)


def check_relative(path: str) -> str:
    """Refuse a rendered path that is absolute or climbs out of the image root (a bug guard)."""
    rel = inside_root(path)
    if rel is None:
        raise ValueError(f"rendered path {path!r} is not relative to the image root")
    return rel
