"""Rendered files: an in-memory mapping of image-relative paths to content and mode.

Every backend returns one, so rendering stays pure; only staging writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath

from respin.stages.network.lib.model import NetworkModel

# {"etc/sysconfig/network-scripts/ifcfg-eth0": (b"...", 0o644), ...}
Files = Mapping[str, tuple[bytes, int]]


def header(model: NetworkModel, comment: str = "#") -> str:
    """The first line of every rendered file: where it came from, and not to edit it by hand."""
    name = PurePosixPath(model.source).name
    return f"{comment} Written by respin from {name}: edit that model, not this file.\n"


def check_relative(path: str) -> str:
    """Refuse a rendered path that is absolute or climbs out of the image root (a bug guard)."""
    p = PurePosixPath(path)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ValueError(f"rendered path {path!r} is not relative to the image root")
    return str(p)
